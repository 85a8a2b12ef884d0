// SPDX-License-Identifier: MIT
// Implementation of host logging: formats into a stack buffer and writes one line.
#include "log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace vdh {
namespace {
std::atomic<int> g_level{VDH_LOG_INFO};

const char* level_name(int level) {
    switch (level) {
    case VDH_LOG_ERR:
        return "ERR";
    case VDH_LOG_WARNING:
        return "WARN";
    case VDH_LOG_NOTICE:
        return "NOTICE";
    case VDH_LOG_INFO:
        return "INFO";
    default:
        return "DEBUG";
    }
}
} // namespace

void set_log_level(int level) noexcept { g_level.store(level, std::memory_order_relaxed); }
int log_level() noexcept { return g_level.load(std::memory_order_relaxed); }

int parse_log_level(std::string_view name) noexcept {
    if (name == "err" || name == "error") {
        return VDH_LOG_ERR;
    }
    if (name == "warning" || name == "warn") {
        return VDH_LOG_WARNING;
    }
    if (name == "notice") {
        return VDH_LOG_NOTICE;
    }
    if (name == "info") {
        return VDH_LOG_INFO;
    }
    if (name == "debug") {
        return VDH_LOG_DEBUG;
    }
    return -1;
}

void log_msg(int level, const char* component, const char* fmt, ...) noexcept {
    char buf[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld vdhost[%s] %s: ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_name(level),
                     component != nullptr ? component : "-");
    if (n < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - static_cast<size_t>(n) - 1, fmt, ap);
    va_end(ap);
    size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
    if (len > sizeof(buf) - 2) {
        len = sizeof(buf) - 2;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        --len;
    }
    buf[len++] = '\n';
    [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, buf, len);
}

} // namespace vdh
