// SPDX-License-Identifier: MIT
// dlopen-based plugin loading and ABI checks.
#include "plugin_loader.h"

#include <dlfcn.h>

#include <cstring>

namespace vdh {

DlHandle& DlHandle::operator=(DlHandle&& o) noexcept {
    if (this != &o) {
        if (h_ != nullptr) {
            dlclose(h_);
        }
        h_ = o.h_;
        o.h_ = nullptr;
    }
    return *this;
}

DlHandle::~DlHandle() {
    if (h_ != nullptr) {
        dlclose(h_);
    }
}

std::string plugin_file(const std::string& dir, const std::string& type) {
    return dir + "/vdh-" + type + ".so";
}

std::unique_ptr<Plugin> load_plugin(const std::string& path, std::string* err) {
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
        const char* e = dlerror();
        *err = "cannot load plugin " + path + ": " + (e != nullptr ? e : "unknown error");
        return nullptr;
    }
    DlHandle handle(h);
    dlerror();
    void* sym = dlsym(h, VDH_PLUGIN_ENTRY_SYMBOL);
    if (sym == nullptr) {
        *err = "plugin " + path + " has no entry point " VDH_PLUGIN_ENTRY_SYMBOL "()";
        return nullptr;
    }
    auto entry = reinterpret_cast<vdh_plugin_entry_fn>(sym);
    const vdh_plugin_info* info = entry();
    if (info == nullptr) {
        *err = "plugin " + path + ": entry point returned no descriptor";
        return nullptr;
    }
    // Read the version fields first: they are at fixed offsets in every ABI major.
    if (info->abi_major != VDH_ABI_MAJOR) {
        *err = "plugin " + path + " was built for plugin ABI " + std::to_string(info->abi_major) +
               "." + std::to_string(info->abi_minor) + ", this vdhost speaks ABI " +
               std::to_string(VDH_ABI_MAJOR) + "." + std::to_string(VDH_ABI_MINOR);
        return nullptr;
    }
    constexpr size_t kMinInfo = offsetof(vdh_plugin_info, create) + sizeof(info->create);
    if (info->struct_size < kMinInfo) {
        *err = "plugin " + path + ": descriptor too small (" + std::to_string(info->struct_size) +
               " bytes, need at least " + std::to_string(kMinInfo) + ")";
        return nullptr;
    }
    if (info->name == nullptr || info->name[0] == '\0' || info->create == nullptr) {
        *err = "plugin " + path + ": descriptor lacks a name or create()";
        return nullptr;
    }
    auto p = std::make_unique<Plugin>();
    p->path = path;
    p->info = info;
    p->handle = std::move(handle);
    return p;
}

} // namespace vdh
