// SPDX-License-Identifier: MIT
// libFuzzer target for the virtio-fs share profile loader (plugins/virtiofs/
// share_profile.cc parse_share_profile): the input is a device's `config:` block (seeds:
// the blocks of configs/*.yaml). Beyond crashes and sanitizer findings it checks the
// contract: a refused block gets "file:line:column: config...." and an accepted profile
// holds values inside their documented ranges, and everything derived from it (INIT
// capabilities, timeouts, open flags, names) can be computed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "share_profile.h"

namespace {

using vdh::fuzz::has_position_prefix;
using vdh::virtiofs::ShareProfile;

constexpr char kOrigin[] = "fuzz.yaml";

void check_profile(const ShareProfile& p) {
    using vdh::virtiofs::BackendKind;
    if (p.backend == BackendKind::Passthrough) {
        FUZZ_CHECK(!p.shared_dir.empty() && p.shared_dir[0] == '/');
    }
    FUZZ_CHECK(p.tag.size() <= 36);
    FUZZ_CHECK(p.fd_limit >= 64 && p.fd_limit <= 1048576);
    FUZZ_CHECK(p.max_pages >= 1 && p.max_pages <= 256);
    FUZZ_CHECK(p.shared_dir_pos.line >= 1 && p.shared_dir_pos.column >= 1);
    (void)vdh::virtiofs::capabilities_from(p);
    vdh::virtiofs::FuseTimeout e = vdh::virtiofs::entry_timeout(p);
    vdh::virtiofs::FuseTimeout a = vdh::virtiofs::attr_timeout(p);
    FUZZ_CHECK(e.nsec < 1000000000u && a.nsec < 1000000000u);
    (void)vdh::virtiofs::open_flags_for(p, false);
    (void)vdh::virtiofs::open_flags_for(p, true);
    FUZZ_CHECK(std::strlen(vdh::virtiofs::to_string(p.cache)) > 0);
    FUZZ_CHECK(std::strlen(vdh::virtiofs::to_string(p.inode_file_handles)) > 0);
    FUZZ_CHECK(std::strlen(vdh::virtiofs::to_string(p.backend)) > 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view yaml(reinterpret_cast<const char*>(data), size);
    std::string err;
    auto profile = vdh::virtiofs::parse_share_profile(yaml, kOrigin, "fuzzdev", &err);
    if (!profile) {
        FUZZ_CHECK(has_position_prefix(err, kOrigin));
        return 0;
    }
    check_profile(*profile);
    return 0;
}
