// SPDX-License-Identifier: MIT
// Includes the kernel's virtio ring definitions in a form that compiles as C++ (the legacy
// helpers in <linux/virtio_ring.h> do not), plus the event-index helpers they drop.
#pragma once

#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <cstdint>

namespace vdh {

/// used_event: the driver's "notify me when used->idx passes this" (split ring).
inline volatile uint16_t* split_used_event(struct vring_avail* avail, uint16_t size) {
    return reinterpret_cast<volatile uint16_t*>(&avail->ring[size]);
}
/// avail_event: the device's "kick me when avail->idx passes this" (split ring).
inline volatile uint16_t* split_avail_event(struct vring_used* used, uint16_t size) {
    return reinterpret_cast<volatile uint16_t*>(&used->ring[size]);
}
/// The virtio spec's vring_need_event.
inline bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

} // namespace vdh
