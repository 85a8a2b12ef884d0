// SPDX-License-Identifier: MIT
// Host logging: leveled, thread-safe lines on stderr ("vdhost[LEVEL] component: msg").
// For the control path only; the data path counts instead of logging.
#pragma once

#include <string_view>

#include "vdh/plugin_abi.h"

namespace vdh {

/// Sets the threshold (VDH_LOG_* level); messages above it are dropped.
void set_log_level(int level) noexcept;
int log_level() noexcept;
/// Parses "err|warning|notice|info|debug"; returns -1 if unknown.
int parse_log_level(std::string_view name) noexcept;

/// printf-style log line. Thread-safe; one write() per line.
void log_msg(int level, const char* component, const char* fmt, ...) noexcept
    __attribute__((format(printf, 3, 4)));

} // namespace vdh

#define VDH_LOG(level, component, ...)                                                            \
    do {                                                                                          \
        if ((level) <= ::vdh::log_level()) {                                                      \
            ::vdh::log_msg((level), (component), __VA_ARGS__);                                    \
        }                                                                                         \
    } while (0)
#define VDH_ERR(comp, ...) VDH_LOG(VDH_LOG_ERR, comp, __VA_ARGS__)
#define VDH_WARN(comp, ...) VDH_LOG(VDH_LOG_WARNING, comp, __VA_ARGS__)
#define VDH_NOTICE(comp, ...) VDH_LOG(VDH_LOG_NOTICE, comp, __VA_ARGS__)
#define VDH_INFO(comp, ...) VDH_LOG(VDH_LOG_INFO, comp, __VA_ARGS__)
#define VDH_DEBUG(comp, ...) VDH_LOG(VDH_LOG_DEBUG, comp, __VA_ARGS__)
