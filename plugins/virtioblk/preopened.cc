// SPDX-License-Identifier: MIT
// The registry of backing files opened before the sandbox (see preopened.h).
#include "preopened.h"

#include <map>
#include <mutex>

namespace vdh::virtioblk {

namespace {

std::mutex g_mu; // guards registry(). Lock order: leaf.

std::multimap<std::string, BackingFile>& registry() {
    static std::multimap<std::string, BackingFile> files;
    return files;
}

std::string key_of(std::string_view origin, std::string_view config_text) {
    std::string k(origin);
    k += '\0';
    k += config_text;
    return k;
}

} // namespace

void put_preopened(std::string_view origin, std::string_view config_text, BackingFile b) {
    std::lock_guard<std::mutex> g(g_mu);
    registry().emplace(key_of(origin, config_text), std::move(b));
}

std::optional<BackingFile> take_preopened(std::string_view origin, std::string_view config_text) {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = registry().find(key_of(origin, config_text));
    if (it == registry().end()) {
        return std::nullopt;
    }
    BackingFile b = std::move(it->second);
    registry().erase(it);
    return b;
}

} // namespace vdh::virtioblk
