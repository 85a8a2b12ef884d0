// SPDX-License-Identifier: MIT
// The vhost-user transport, the only code that talks to rte_vhost: it registers a device's
// vhost-user socket (features and protocol features for a non-net device: no STATUS bit,
// QEMU 7.2's vhost-user-fs never sends DRIVER_OK; CONFIG only for a device whose plugin
// serves its config space), turns rte_vhost's device callbacks into the session's lifecycle
// calls, pauses a running session around memory-table and ring changes and answers
// GET_CONFIG and SET_CONFIG from the plugin (pre/post message hooks), and is the session's Transport:
// negotiated features, memory table, vrings, ring bases and guest notification.
#pragma once

#include <string>
#include <vector>

#include "vdh/result.h"

namespace vdh {

class Device;

/// Registers and starts the vhost-user server socket of \p d (removing a stale socket file
/// first, only if it is a socket). Returns false and sets \p err on failure, with nothing
/// left registered. Control thread.
bool vhost_register_device(Device* d, std::string* err);

/// Unregisters \p d's socket: closes it and its connection (a running session is drained
/// and stopped, the plugin's connection state dropped) and removes the socket file. After
/// it returns no rte_vhost callback reaches \p d. Control thread.
void vhost_unregister_device(Device* d);

/// Virtio ring features every device offers on top of the plugin's own.
uint64_t vhost_transport_features();

} // namespace vdh
