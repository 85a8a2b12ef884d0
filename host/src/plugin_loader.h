// SPDX-License-Identifier: MIT
// Loads device plugins: dlopen(RTLD_NOW|RTLD_LOCAL), finds the one entry point, and checks
// the versioned descriptor before the host touches anything else in the plugin. A loaded
// plugin stays mapped until its Plugin object is destroyed.
#pragma once

#include <memory>
#include <string>

#include "vdh/plugin_abi.h"

namespace vdh {

/// Owns a dlopen handle.
class DlHandle {
public:
    DlHandle() noexcept = default;
    explicit DlHandle(void* h) noexcept : h_(h) {}
    DlHandle(DlHandle&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
    DlHandle& operator=(DlHandle&& o) noexcept;
    DlHandle(const DlHandle&) = delete;
    DlHandle& operator=(const DlHandle&) = delete;
    ~DlHandle();
    void* get() const noexcept { return h_; }
    /// Gives up ownership: the library stays loaded for the rest of the process (when
    /// its code may still run, e.g. on a thread of a plugin instance that was not freed).
    void* release() noexcept {
        void* h = h_;
        h_ = nullptr;
        return h;
    }

private:
    void* h_ = nullptr;
};

/// A loaded, ABI-checked plugin.
struct Plugin {
    std::string path;
    const vdh_plugin_info* info = nullptr;
    DlHandle handle;
};

/// The file a plugin named \p type is loaded from: DIR/vdh-TYPE.so.
std::string plugin_file(const std::string& dir, const std::string& type);

/// Loads the plugin file \p path. On failure returns nullptr and sets \p err to a message
/// (missing file, missing entry point, ABI major mismatch naming both versions, a
/// descriptor too small or missing required functions).
std::unique_ptr<Plugin> load_plugin(const std::string& path, std::string* err);

} // namespace vdh
