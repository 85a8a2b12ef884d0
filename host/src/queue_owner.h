// SPDX-License-Identifier: MIT
// QueueOwner: what a QueueRuntime needs from the device that owns it (the plugin's
// function table and instance, and a way to interrupt the guest), so that the per-queue
// data path does not depend on Device or on rte_vhost and can be driven over a fake ring
// in unit tests.
#pragma once

#include "vdh/plugin_abi.h"

namespace vdh {

class QueueRuntime;

class QueueOwner {
public:
    virtual ~QueueOwner() = default;

    /// The plugin's function table (never null while a queue exists).
    virtual const vdh_device_ops* ops() const noexcept = 0;
    /// The plugin's device instance, first argument of every op.
    virtual void* plugin_dev() const noexcept = 0;
    /// Has the guest notified about \p q's used entries (lcore). Returns false if it must
    /// be retried on a later pass (the transport was busy).
    virtual bool notify_guest(QueueRuntime& q) noexcept = 0;
};

} // namespace vdh
