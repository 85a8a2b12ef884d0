// SPDX-License-Identifier: MIT
// QueueNotifier: the one thing a QueueRuntime asks of the outside world during a session,
// interrupting the guest about used entries. The transport implements it (vhost-user: the
// call eventfd); unit tests implement it to drive the per-queue data path
// over a fake ring. Called at most once per pass, never per request.
#pragma once

namespace vdh {

class QueueRuntime;

class QueueNotifier {
public:
    virtual ~QueueNotifier() = default;

    /// Has the guest notified about \p q's used entries (lcore; the entries are already
    /// published). Returns false if it must be retried on a later pass (the transport was
    /// busy). Must not block.
    virtual bool notify(QueueRuntime& q) noexcept = 0;
};

} // namespace vdh
