// SPDX-License-Identifier: MIT
// libFuzzer target for the host YAML config loader (host/src/config.cc parse_config): the
// input is the text of a config file (seeds: configs/*.yaml). Beyond crashes and
// sanitizer findings it checks the loader's contract: a refused file gets a message that
// starts with "file:line:column:", an accepted one has devices whose `config:` text keeps
// the file's layout (each byte is the file's byte or a blank, line breaks stay in place,
// only the final line break may move) and whose positions lie inside the file.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "config.h"
#include "fuzz_check.h"

namespace {

using vdh::fuzz::has_position_prefix;

constexpr char kOrigin[] = "fuzz.yaml";
constexpr unsigned kOnlineCpus = 8;

void check_config_text(const std::string& text, const vdh::DeviceConfig& dev) {
    const std::string& ct = dev.config_text;
    FUZZ_CHECK(ct.size() <= text.size() + 2);
    // The line break that ends the block's last line comes right after the block, not at
    // its place in the file (what followed on that line, a comment, is dropped).
    size_t n = ct.size();
    if (n > 0 && ct[n - 1] == '\n') {
        n -= n > 1 && ct[n - 2] == '\r' ? 2 : 1;
    }
    FUZZ_CHECK(n <= text.size());
    for (size_t i = 0; i < n; ++i) {
        if (text[i] == '\n') {
            FUZZ_CHECK(ct[i] == '\n');
        } else {
            FUZZ_CHECK(ct[i] == text[i] || ct[i] == ' ');
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    vdh::ConfigError err;
    std::optional<vdh::Config> cfg = vdh::parse_config(text, kOrigin, kOnlineCpus, &err);
    if (!cfg) {
        FUZZ_CHECK(has_position_prefix(err.message, kOrigin));
        return 0;
    }
    FUZZ_CHECK(!cfg->host.poll_lcores.empty());
    for (unsigned cpu : cfg->host.poll_lcores) {
        FUZZ_CHECK(cpu < kOnlineCpus);
    }
    for (const vdh::DeviceConfig& dev : cfg->devices) {
        FUZZ_CHECK(!dev.lcores.empty());
        FUZZ_CHECK(dev.line >= 1 && dev.column >= 1);
        check_config_text(text, dev);
        FUZZ_CHECK(has_position_prefix(vdh::device_error(*cfg, dev, "type", "x"), kOrigin));
        FUZZ_CHECK(has_position_prefix(vdh::device_error(*cfg, dev, "", "x"), kOrigin));
    }
    return 0;
}
