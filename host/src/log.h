// SPDX-License-Identifier: MIT
// Host logging: leveled, thread-safe lines on stderr ("HH:MM:SS.mmm vdhost[LEVEL] component:
// msg"). When stderr is systemd's journal stream ($JOURNAL_STREAM names its device and
// inode), each line is "<N>component: msg" instead: the sd-daemon priority prefix (syslog
// level N) and no timestamp of our own, since the journal records one.
// For the control path only; the data path counts instead of logging.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstddef>
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

/// A user-facing error (a bad config, a bad option) printed as is on stderr: no timestamp
/// or component, so command-line output stays plain. Under the journal each line gets the
/// err priority prefix "<3>", so `journalctl -p err` shows why vdhost did not start.
/// \p fmt ends its lines with "\n" itself.
void print_error(const char* fmt, ...) noexcept __attribute__((format(printf, 1, 2)));

/// Formats the start of a line into \p buf (\p size bytes): the journal's "<N>component: "
/// when \p journal, else "HH:MM:SS.mmm vdhost[LEVEL] component: " with \p now (UTC).
/// Returns its length (snprintf's), or -1.
int format_log_prefix(char* buf, size_t size, int level, const char* component, bool journal,
                      const struct timespec& now) noexcept;

/// Whether $JOURNAL_STREAM's value \p env ("DEV:INODE", decimal) names the file that \p fd
/// is open on (systemd sets it when it connects stderr to the journal; a child that
/// redirected stderr must not keep writing the journal's format).
bool journal_stream_matches(const char* env, int fd) noexcept;

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
