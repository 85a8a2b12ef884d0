// SPDX-License-Identifier: MIT
// vhost-user wire format as seen by a FRONTEND (the QEMU side): request codes, header flags,
// payload structs and feature bits. Layouts follow the vhost-user specification byte for
// byte (static_asserts below). Used by VhostUserConnection and by tests that build or parse
// raw messages; it has no behaviour of its own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vdh::frontend {

/// Frontend → backend request codes (the subset this library sends).
enum class Request : uint32_t {
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SetBackendReqFd = 21,
    GetConfig = 24,
    SetConfig = 25,
};

/// Returns a short name for logs and test messages ("SET_MEM_TABLE"), "UNKNOWN" otherwise.
const char* request_name(uint32_t request) noexcept;

// Header flags.
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagReply = 0x4;
inline constexpr uint32_t kFlagNeedReply = 0x8;

/// Upper bound on a payload we are prepared to send or receive. The largest real payload is
/// GET_CONFIG (12 + 256 bytes); anything bigger than this is a protocol error.
inline constexpr uint32_t kMaxPayload = 4096;
/// Maximum fds in one message (and regions in one memory table) in the baseline protocol.
inline constexpr uint32_t kMaxFds = 8;
inline constexpr uint32_t kMaxMemRegions = 8;

/// In SET_VRING_KICK/CALL/ERR payloads: low 8 bits are the vring index; this bit says that
/// no fd accompanies the message (polling mode / "invalid fd").
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 0x100;

// Virtio feature bits (device-independent ones the frontend cares about).
inline constexpr uint64_t kFIndirectDesc = 1ULL << 28;
inline constexpr uint64_t kFEventIdx = 1ULL << 29;
inline constexpr uint64_t kFProtocolFeatures = 1ULL << 30; ///< VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr uint64_t kFVersion1 = 1ULL << 32;
inline constexpr uint64_t kFRingPacked = 1ULL << 34;

// vhost-user protocol feature bits.
inline constexpr uint64_t kPfMq = 1ULL << 0;
inline constexpr uint64_t kPfLogShmfd = 1ULL << 1;
inline constexpr uint64_t kPfReplyAck = 1ULL << 3;
inline constexpr uint64_t kPfBackendReq = 1ULL << 5;
inline constexpr uint64_t kPfConfig = 1ULL << 9;
inline constexpr uint64_t kPfBackendSendFd = 1ULL << 10;
inline constexpr uint64_t kPfStatus = 1ULL << 16;

/// Every message starts with this header; `size` bytes of payload follow.
struct MsgHeader {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};

/// SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE.
struct VringState {
    uint32_t index;
    uint32_t num;
};

/// SET_VRING_ADDR. The three ring addresses are FRONTEND virtual addresses (the `uaddr`
/// space of the memory table), exactly as QEMU sends them.
struct VringAddr {
    uint32_t index;
    uint32_t flags; ///< bit 0: VHOST_VRING_F_LOG (unused here)
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};

/// One entry of SET_MEM_TABLE; its fd travels in SCM_RIGHTS at the same position.
struct MemoryRegionDesc {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr; ///< where the FRONTEND mapped this region
    uint64_t mmap_offset;    ///< offset of the region inside its fd
};

/// SET_MEM_TABLE payload. Only `nregions` entries are sent (QEMU trims the tail).
struct MemoryTable {
    uint32_t nregions;
    uint32_t padding;
    MemoryRegionDesc regions[kMaxMemRegions];
};

/// GET_CONFIG / SET_CONFIG header; `size` config bytes follow it.
struct ConfigHeader {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
};

inline constexpr uint32_t kMaxConfigSize = 256;

static_assert(sizeof(MsgHeader) == 12);
static_assert(sizeof(VringState) == 8);
static_assert(sizeof(VringAddr) == 40);
static_assert(sizeof(MemoryRegionDesc) == 32);
static_assert(sizeof(MemoryTable) == 8 + 8 * 32);
static_assert(offsetof(MemoryTable, regions) == 8);
static_assert(sizeof(ConfigHeader) == 12);

} // namespace vdh::frontend
