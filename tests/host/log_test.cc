// SPDX-License-Identifier: MIT
// Host logging: the line prefix for a terminal or file (timestamp, level name) and for
// systemd's journal (sd-daemon "<N>" priority, no timestamp), and the JOURNAL_STREAM match
// against the file stderr is open on.
#include "log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

std::string prefix(int level, const char* component, bool journal, timespec now = {}) {
    char buf[256];
    int n = format_log_prefix(buf, sizeof(buf), level, component, journal, now);
    EXPECT_GT(n, 0);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

TEST(Log, PlainPrefixHasTimeAndLevelName) {
    // 1970-01-02 03:04:05.678 UTC
    const timespec t{86400 + 3 * 3600 + 4 * 60 + 5, 678 * 1000000 + 999};
    EXPECT_EQ(prefix(VDH_LOG_INFO, "host", false, t), "03:04:05.678 vdhost[INFO] host: ");
    EXPECT_EQ(prefix(VDH_LOG_ERR, "fs0", false, t), "03:04:05.678 vdhost[ERR] fs0: ");
    EXPECT_EQ(prefix(VDH_LOG_WARNING, nullptr, false, t), "03:04:05.678 vdhost[WARN] -: ");
}

TEST(Log, JournalPrefixIsSyslogPriorityWithoutTime) {
    const timespec t{12345, 0};
    EXPECT_EQ(prefix(VDH_LOG_ERR, "host", true, t), "<3>host: ");
    EXPECT_EQ(prefix(VDH_LOG_WARNING, "host", true, t), "<4>host: ");
    EXPECT_EQ(prefix(VDH_LOG_NOTICE, "fs0", true, t), "<5>fs0: ");
    EXPECT_EQ(prefix(VDH_LOG_INFO, "host", true, t), "<6>host: ");
    EXPECT_EQ(prefix(VDH_LOG_DEBUG, nullptr, true, t), "<7>-: ");
    // Out-of-range levels are clamped to a valid priority.
    EXPECT_EQ(prefix(0, "x", true, t), "<3>x: ");
    EXPECT_EQ(prefix(9, "x", true, t), "<7>x: ");
}

TEST(Log, JournalStreamMatchesOnlyTheSameDeviceAndInode) {
    testing::TempDir dir;
    UniqueFd a(::open(dir.file("a").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    UniqueFd b(::open(dir.file("b").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    struct stat st {};
    ASSERT_EQ(::fstat(a.get(), &st), 0);
    const std::string dev = std::to_string(st.st_dev);
    const std::string ino = std::to_string(st.st_ino);
    EXPECT_TRUE(journal_stream_matches((dev + ":" + ino).c_str(), a.get()));
    EXPECT_FALSE(journal_stream_matches((dev + ":" + ino).c_str(), b.get()));
    EXPECT_FALSE(
        journal_stream_matches((dev + ":" + std::to_string(st.st_ino + 1)).c_str(), a.get()));
    EXPECT_FALSE(journal_stream_matches(nullptr, a.get()));
    for (const std::string& bad :
         {std::string(""), dev, dev + ":", ":" + ino, dev + ":" + ino + "x", dev + ":-" + ino,
          " " + dev + ":" + ino, dev + ":" + ino + "99999999999999999999999"}) {
        EXPECT_FALSE(journal_stream_matches(bad.c_str(), a.get())) << bad;
    }
    EXPECT_FALSE(journal_stream_matches((dev + ":" + ino).c_str(), -1));
}

/// What print_error writes (\p text) to a stderr that is the file \p path, in a child
/// process, with JOURNAL_STREAM naming that file when \p journal (the journal decision is
/// made once per process, so each case gets a fresh one).
std::string print_error_output(const std::string& path, bool journal, const char* text) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0 || ::dup2(fd, STDERR_FILENO) < 0) {
            ::_exit(2);
        }
        if (journal) {
            const std::string v = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
            ::setenv("JOURNAL_STREAM", v.c_str(), 1);
        } else {
            ::unsetenv("JOURNAL_STREAM");
        }
        print_error("%s", text);
        std::fflush(stderr);
        ::_exit(0);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    FILE* f = std::fopen(path.c_str(), "r");
    std::string out;
    if (f != nullptr) {
        char buf[512];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
            out.append(buf, n);
        }
        std::fclose(f);
    }
    return out;
}

TEST(Log, PrintErrorIsPlainOnATerminalAndErrPriorityUnderTheJournal) {
    testing::TempDir dir;
    const char* text = "cfg.yaml:3:5: host.x: unknown key\nTry 'vdhost --help'.\n";
    EXPECT_EQ(print_error_output(dir.file("plain"), false, text), text);
    EXPECT_EQ(print_error_output(dir.file("journal"), true, text),
              "<3>cfg.yaml:3:5: host.x: unknown key\n<3>Try 'vdhost --help'.\n");
    EXPECT_EQ(print_error_output(dir.file("no-newline"), true, "no newline"), "<3>no newline\n");
}

} // namespace
} // namespace vdh
