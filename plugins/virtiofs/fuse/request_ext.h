// SPDX-License-Identifier: MIT
// Request extensions (FUSE 7.38: fuse_in_header.total_extlen * 8 bytes after a create-type
// request's arguments): decodes FUSE_EXT_GROUPS (CREATE_SUPP_GROUP) and the security
// context (SECURITY_CTX) strictly, as guest-controlled bytes: every length, count and
// alignment is checked against the bytes there are, and nothing is read outside them.
// The results point into the caller's buffer (no copy, no allocation).
// Hot path: no alloc, no block, no throw.
#pragma once

#include <cstddef>
#include <cstdint>

#include "filesystem.h"

namespace vdh::virtiofs {

/// Which extensions INIT enabled (a guest sending any other one is malformed).
struct ExtPolicy {
    bool groups = false; ///< FUSE_CREATE_SUPP_GROUP negotiated
    bool secctx = false; ///< FUSE_SECURITY_CTX negotiated
};

/// Decodes the \p size extension bytes at \p p (any alignment) into \p rc's supp_group and
/// secctx fields, which then point into [p, p + size). Returns 0, or EINVAL when the bytes
/// are malformed: a header shorter than 8 bytes or not a multiple of 8, a size past the
/// end, an extension type INIT did not enable, one type twice, a group count other than
/// 1 (the kernel sends exactly one), more than one security context, a context whose name
/// is empty, unterminated or longer than XATTR_NAME_MAX, or whose value is larger than
/// XATTR_SIZE_MAX or past its record. \p rc is left unchanged on error.
int parse_request_ext(const char* p, size_t size, ExtPolicy policy, RequestCtx* rc) noexcept;

} // namespace vdh::virtiofs
