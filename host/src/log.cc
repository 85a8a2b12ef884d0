// SPDX-License-Identifier: MIT
// Implementation of host logging: formats into a stack buffer and writes one line.
#include "log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
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
/// Decided at the first line, from the environment vdhost started with.
bool to_journal() noexcept {
    static const bool journal = journal_stream_matches(std::getenv("JOURNAL_STREAM"),
                                                       STDERR_FILENO);
    return journal;
}

bool parse_decimal(const char* s, const char* end, unsigned long long* out) noexcept {
    if (s == end) {
        return false;
    }
    unsigned long long v = 0;
    for (; s != end; ++s) {
        if (*s < '0' || *s > '9' || v > (~0ULL - 9) / 10) {
            return false;
        }
        v = v * 10 + static_cast<unsigned>(*s - '0');
    }
    *out = v;
    return true;
}
} // namespace

bool journal_stream_matches(const char* env, int fd) noexcept {
    if (env == nullptr) {
        return false;
    }
    const char* colon = std::strchr(env, ':');
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (colon == nullptr || !parse_decimal(env, colon, &dev) ||
        !parse_decimal(colon + 1, colon + std::strlen(colon), &ino)) {
        return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        return false;
    }
    return static_cast<unsigned long long>(st.st_dev) == dev &&
           static_cast<unsigned long long>(st.st_ino) == ino;
}

void print_error(const char* fmt, ...) noexcept {
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    const int n = std::vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    const size_t len = std::min(static_cast<size_t>(n), sizeof(text) - 1);
    if (!to_journal()) {
        std::fwrite(text, 1, len, stderr);
        return;
    }
    // One "<3>" per line (the journal splits at newlines).
    for (size_t start = 0; start < len;) {
        const char* nl = static_cast<const char*>(std::memchr(text + start, '\n', len - start));
        const size_t end = nl != nullptr ? static_cast<size_t>(nl - text) + 1 : len;
        std::fprintf(stderr, "<%d>%.*s%s", VDH_LOG_ERR, static_cast<int>(end - start),
                     text + start, nl != nullptr ? "" : "\n");
        start = end;
    }
}

int format_log_prefix(char* buf, size_t size, int level, const char* component, bool journal,
                      const struct timespec& now) noexcept {
    const char* comp = component != nullptr ? component : "-";
    if (journal) {
        const int prio = level < VDH_LOG_ERR ? VDH_LOG_ERR : level > VDH_LOG_DEBUG ? VDH_LOG_DEBUG
                                                                                 : level;
        return snprintf(buf, size, "<%d>%s: ", prio, comp);
    }
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    return snprintf(buf, size, "%02d:%02d:%02d.%03ld vdhost[%s] %s: ", tm.tm_hour, tm.tm_min,
                    tm.tm_sec, now.tv_nsec / 1000000, level_name(level), comp);
}

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
    int n = format_log_prefix(buf, sizeof(buf), level, component, to_journal(), ts);
    if (n < 0 || static_cast<size_t>(n) >= sizeof(buf) - 1) {
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
