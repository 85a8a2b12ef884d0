// SPDX-License-Identifier: MIT
// Request extension decoding (see request_ext.h). Layouts (include/uapi/linux/fuse.h):
//   fuse_ext_header     {u32 size (header included, multiple of 8); u32 type}
//   FUSE_EXT_GROUPS(32): fuse_supp_groups {u32 nr_groups; u32 groups[]}, record padded to 8
//   types 0..31: fuse_secctx_header {u32 size (all of it); u32 nr_secctx}, then per context
//     fuse_secctx {u32 size (of the value); u32 padding}, name NUL, value; padded to 8.
#include "fuse/request_ext.h"

#include <cerrno>
#include <cstring>
#include <string_view>

#include "fuse/fuse_wire.h"

namespace vdh::virtiofs {

namespace {

constexpr size_t kXattrNameMax = 255; // XATTR_NAME_MAX

uint32_t load_u32(const char* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

constexpr size_t align8(size_t n) noexcept {
    return (n + 7) & ~static_cast<size_t>(7);
}

/// One FUSE_EXT_GROUPS record of \p size bytes (header included) at \p p.
int parse_groups(const char* p, size_t size, RequestCtx* out) noexcept {
    constexpr size_t kFixed = sizeof(fuse_ext_header) + sizeof(FuseSuppGroups);
    if (size < kFixed) {
        return EINVAL;
    }
    const uint32_t nr = load_u32(p + sizeof(fuse_ext_header));
    if (nr == 0 || nr > kMaxExtGroups ||
        size != align8(kFixed + static_cast<size_t>(nr) * sizeof(uint32_t))) {
        return EINVAL;
    }
    out->supp_group = load_u32(p + kFixed);
    out->has_supp_group = true;
    return 0;
}

/// One security context extension of \p size bytes (header included) at \p p.
int parse_secctx(const char* p, size_t size, RequestCtx* out) noexcept {
    fuse_secctx_header h;
    std::memcpy(&h, p, sizeof(h));
    if (h.size != size || h.nr_secctx > kMaxSecctx) {
        return EINVAL;
    }
    const char* rec = p + sizeof(h);
    const char* end = p + size;
    if (h.nr_secctx == 0) {
        return rec == end ? 0 : EINVAL;
    }
    if (static_cast<size_t>(end - rec) < sizeof(fuse_secctx)) {
        return EINVAL;
    }
    fuse_secctx sc;
    std::memcpy(&sc, rec, sizeof(sc));
    if (sc.size > kXattrSizeMax) {
        return EINVAL;
    }
    const char* name = rec + sizeof(sc);
    const size_t room = static_cast<size_t>(end - name);
    const auto* nul = static_cast<const char*>(
        std::memchr(name, '\0', room < kXattrNameMax + 1 ? room : kXattrNameMax + 1));
    if (nul == nullptr || nul == name) {
        return EINVAL;
    }
    const size_t namelen = static_cast<size_t>(nul - name) + 1;
    // The record is exactly what the kernel builds: header, name, value, padded to 8.
    if (static_cast<size_t>(end - rec) != align8(sizeof(sc) + namelen + sc.size)) {
        return EINVAL;
    }
    out->secctx_name = std::string_view(name, namelen - 1);
    out->secctx_value = name + namelen;
    out->secctx_size = sc.size;
    out->has_secctx = true;
    return 0;
}

} // namespace

int parse_request_ext(const char* p, size_t size, ExtPolicy policy, RequestCtx* rc) noexcept {
    RequestCtx r = *rc;
    bool seen_groups = false;
    bool seen_secctx = false;
    size_t pos = 0;
    while (pos < size) {
        if (size - pos < sizeof(fuse_ext_header)) {
            return EINVAL;
        }
        fuse_ext_header xh;
        std::memcpy(&xh, p + pos, sizeof(xh));
        if (xh.size < sizeof(xh) || xh.size % 8 != 0 || xh.size > size - pos) {
            return EINVAL;
        }
        int err = EINVAL;
        if (xh.type == kFuseExtGroups) {
            if (policy.groups && !seen_groups) {
                seen_groups = true;
                err = parse_groups(p + pos, xh.size, &r);
            }
        } else if (xh.type <= FUSE_MAX_NR_SECCTX) {
            if (policy.secctx && !seen_secctx) {
                seen_secctx = true;
                err = parse_secctx(p + pos, xh.size, &r);
            }
        }
        if (err != 0) {
            return err;
        }
        pos += xh.size;
    }
    *rc = r;
    return 0;
}

} // namespace vdh::virtiofs
