// SPDX-License-Identifier: MIT
// Transport: how a device's frontend reaches it (vhost-user today; VDUSE, vfio-user or a
// DPU-emulated PCIe function on paper, see docs/transports.md). The session (Device) asks
// it, when the driver is ready, what was negotiated: the features, the guest memory
// regions, and each vring's addresses, size, start indexes and kick fd. On stop it hands
// the ring positions back, and on the poll lcores it interrupts the guest (QueueNotifier).
// Everything else (queues, lcores, drain, QoS, stats, plugins) is the session's and the
// same for every transport.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "queue_notifier.h"
#include "virtqueue.h"

namespace vdh {

/// One guest memory region, mapped into this process by the transport.
struct TransportRegion {
    uint64_t guest_phys_addr = 0;
    uint64_t size = 0;
    void* host_addr = nullptr; ///< where guest_phys_addr is mapped
    /// The whole mapping that holds the region (kept reserved while abandoned requests may
    /// still write into it, see memory_quarantine.h); null when the transport does not own
    /// one.
    void* mmap_addr = nullptr;
    uint64_t mmap_size = 0;
};

/// One vring as the driver set it up.
struct TransportVring {
    VringAddrs addrs;        ///< host addresses of the ring parts, size, layout
    uint16_t last_avail = 0; ///< where the device starts taking (packed: bit 15 = wrap)
    uint16_t last_used = 0;  ///< where the device starts returning (packed: bit 15 = wrap)
    int kick_fd = -1;        ///< the driver's kicks, borrowed for the session (-1: none)
};

class Transport : public QueueNotifier {
public:
    /// Short name for logs and stats ("vhost-user").
    virtual const char* kind() const noexcept = 0;

    // --- session description (control thread, when the session starts or resumes) ---
    /// Feature bits the driver and the device agreed on.
    virtual bool negotiated_features(uint64_t* features) noexcept = 0;
    /// Number of vrings the driver set up.
    virtual uint16_t vring_count() noexcept = 0;
    /// The guest memory regions (replaces \p out). Valid until the session is paused or
    /// stopped.
    virtual bool memory_regions(std::vector<TransportRegion>* out) noexcept = 0;
    /// Vring \p q, its layout given by \p packed (VIRTIO_F_RING_PACKED negotiated). Sets
    /// \p err on failure.
    virtual bool vring(uint16_t q, bool packed, TransportVring* out, std::string* err) = 0;

    // --- session end (control thread, the queue drained and detached) ---
    /// Where vring \p q stopped: the frontend reads it back (vhost-user GET_VRING_BASE).
    virtual void set_vring_base(uint16_t q, uint16_t last_avail,
                                uint16_t last_used) noexcept = 0;
};

} // namespace vdh
