// SPDX-License-Identifier: MIT
// vdh-fsx (tools/fsx/vdh_fsx.cc) run as a program against a file in a host temp dir: it
// passes buffered with and without mmap and with O_DIRECT, every kind of op runs, the same
// seed gives the same run, disabled ops stay off, and a byte changed behind its model
// (--test-corrupt-at) fails the run with the offset and the op log. The guest runs are
// tests/e2e/fsx_guest.sh.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef VDH_FSX_PATH
#error "VDH_FSX_PATH must name the vdh-fsx binary"
#endif

namespace {

struct FsxRun {
    int status = -1; ///< exit status, or -1 when it did not exit normally
    std::string out; ///< stdout and stderr
};

/// Runs vdh-fsx with \p args (a shell word list; the tests pass plain words only).
FsxRun run_fsx(const std::string& args) {
    FsxRun r;
    const std::string cmd = std::string(VDH_FSX_PATH) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
        r.out.append(buf, n);
    }
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

/// "name=value" pairs of the PASS line. (No std::regex: gcc 12 warns inside it with the
/// sanitizer build's flags, and warnings are errors.)
std::map<std::string, std::string> summary(const std::string& out) {
    std::map<std::string, std::string> m;
    const size_t at = out.find("vdh-fsx: PASS ");
    if (at == std::string::npos) {
        return m;
    }
    std::istringstream line(out.substr(at, out.find('\n', at) - at));
    std::string word;
    while (line >> word) {
        const size_t eq = word.find('=');
        if (eq != std::string::npos && eq > 0) {
            m[word.substr(0, eq)] = word.substr(eq + 1);
        }
    }
    return m;
}

/// The summary without its time (what two runs of one seed must share).
std::string without_time(const std::string& out) {
    const size_t at = out.find("vdh-fsx: PASS ");
    if (at == std::string::npos) {
        return "";
    }
    std::string line = out.substr(at, out.find('\n', at) - at);
    return line.substr(0, line.find(" time="));
}

const char* const kOps[] = {"read",      "write",     "mapread",   "mapwrite",  "truncate",
                            "fallocate", "punchhole", "zerorange", "copyrange", "reopen"};

class VdhFsxTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/vdh-fsx-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        file_ = dir_ + "/f";
    }
    void TearDown() override {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    /// Every op ran at least once, except the ones the file system refused (listed as
    /// unsupported) and \p off.
    void expect_all_ops_ran(const std::map<std::string, std::string>& s,
                            const std::string& off = "") {
        const std::string unsupported = "," + s.at("unsupported") + ",";
        for (const char* op : kOps) {
            const bool refused = unsupported.find("," + std::string(op) + ",") != std::string::npos;
            const bool disabled =
                ("," + off + ",").find("," + std::string(op) + ",") != std::string::npos;
            ASSERT_TRUE(s.count(op)) << op;
            if (disabled || refused) {
                EXPECT_EQ(s.at(op), "0") << op;
            } else {
                EXPECT_GT(std::stoul(s.at(op)), 0u) << op;
            }
        }
    }

    std::string dir_;
    std::string file_;
};

TEST_F(VdhFsxTest, BufferedWithMmapPasses) {
    FsxRun r = run_fsx("-S 11 -N 2000 " + file_);
    ASSERT_EQ(r.status, 0) << r.out;
    auto s = summary(r.out);
    ASSERT_FALSE(s.empty()) << r.out;
    EXPECT_EQ(s["ops"], "2000");
    EXPECT_EQ(s["mode"], "buffered");
    EXPECT_EQ(s["mmap"], "on");
    expect_all_ops_ran(s);
    struct stat st {};
    ASSERT_EQ(::stat(file_.c_str(), &st), 0);
    EXPECT_EQ(std::to_string(st.st_size), s["final_size"]);
}

TEST_F(VdhFsxTest, BufferedWithoutMmapPasses) {
    FsxRun r = run_fsx("-S 12 -N 2000 -M " + file_);
    ASSERT_EQ(r.status, 0) << r.out;
    auto s = summary(r.out);
    ASSERT_FALSE(s.empty()) << r.out;
    EXPECT_EQ(s["mmap"], "off");
    expect_all_ops_ran(s, "mapread,mapwrite");
}

TEST_F(VdhFsxTest, DirectWithMmapPasses) {
    FsxRun r = run_fsx("-S 13 -N 2000 -o " + file_);
    if (r.status == 2 && r.out.find("Invalid argument") != std::string::npos) {
        GTEST_SKIP() << "no O_DIRECT on " << dir_ << ": " << r.out;
    }
    ASSERT_EQ(r.status, 0) << r.out;
    auto s = summary(r.out);
    ASSERT_FALSE(s.empty()) << r.out;
    EXPECT_EQ(s["mode"], "direct");
    EXPECT_EQ(s["mmap"], "on");
    expect_all_ops_ran(s);
}

TEST_F(VdhFsxTest, SameSeedSameRunOtherSeedOtherRun) {
    FsxRun a = run_fsx("-S 21 -N 600 " + file_);
    FsxRun b = run_fsx("-S 21 -N 600 " + file_);
    FsxRun c = run_fsx("-S 22 -N 600 " + file_);
    ASSERT_EQ(a.status, 0) << a.out;
    ASSERT_EQ(b.status, 0) << b.out;
    ASSERT_EQ(c.status, 0) << c.out;
    EXPECT_FALSE(without_time(a.out).empty());
    EXPECT_EQ(without_time(a.out), without_time(b.out));
    // Op counts and final size of another seed: the same for all of them is vanishingly
    // unlikely (and deterministic, so never flaky).
    EXPECT_NE(without_time(a.out).substr(without_time(a.out).find(" mode=")),
              without_time(c.out).substr(without_time(c.out).find(" mode=")));
    // -v prints each op: the same log for the same seed.
    FsxRun va = run_fsx("-S 21 -N 200 -v " + file_);
    FsxRun vb = run_fsx("-S 21 -N 200 -v " + file_);
    ASSERT_EQ(va.status, 0);
    EXPECT_EQ(va.out.substr(0, va.out.find("vdh-fsx: PASS")),
              vb.out.substr(0, vb.out.find("vdh-fsx: PASS")));
}

TEST_F(VdhFsxTest, DisabledOpsNeverRun) {
    FsxRun r = run_fsx("-S 31 -N 800 -M -F -H -z -C -T -R " + file_);
    ASSERT_EQ(r.status, 0) << r.out;
    auto s = summary(r.out);
    ASSERT_FALSE(s.empty()) << r.out;
    expect_all_ops_ran(s,
                       "mapread,mapwrite,truncate,fallocate,punchhole,zerorange,copyrange,reopen");
}

TEST_F(VdhFsxTest, ByteChangedBehindTheModelFailsTheRun) {
    // The byte is flipped after the last op; the final check must see it, and only it.
    for (const char* mode : {"", "-M", "-o"}) {
        SCOPED_TRACE(mode);
        FsxRun r = run_fsx(std::string(mode) + " -S 41 -N 400 --test-corrupt-at=400 " + file_);
        if (std::string(mode) == "-o" && r.status == 2) {
            continue; // no O_DIRECT here (DirectWithMmapPasses skips too)
        }
        EXPECT_EQ(r.status, 1) << r.out;
        EXPECT_EQ(r.out.find("vdh-fsx: PASS"), std::string::npos) << r.out;
        const std::string kFlipped = "flipped the byte at ";
        const size_t at = r.out.find(kFlipped);
        ASSERT_NE(at, std::string::npos) << r.out;
        const std::string offset = r.out.substr(
            at + kFlipped.size(), r.out.find(' ', at + kFlipped.size()) - at - kFlipped.size());
        EXPECT_EQ(offset.substr(0, 2), "0x");
        EXPECT_NE(r.out.find("data mismatch at " + offset + ", 1 byte(s) differ"),
                  std::string::npos)
            << r.out;
        EXPECT_NE(r.out.find("the last 32 ops"), std::string::npos) << r.out;
    }
    // The same run without the flip passes: the failure is the flip's.
    FsxRun clean = run_fsx("-S 41 -N 400 " + file_);
    EXPECT_EQ(clean.status, 0) << clean.out;
}

TEST_F(VdhFsxTest, FailedOperationIsReported) {
    // The file's directory is gone: the first open fails.
    FsxRun r = run_fsx("-N 10 " + dir_ + "/missing/f");
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find("No such file or directory"), std::string::npos) << r.out;
}

TEST_F(VdhFsxTest, BadArgumentsAreUsageErrors) {
    const std::vector<std::string> cases = {
        "",
        "-N",
        "-N x " + file_,
        "-l 0 " + file_,
        "-o -A 1000 " + file_,
        "-o -l 100 " + file_,
        "--test-corrupt-at=0 " + file_,
        file_ + " " + file_,
    };
    for (const std::string& args : cases) {
        FsxRun r = run_fsx(args);
        EXPECT_EQ(r.status, 2) << args << ": " << r.out;
        EXPECT_TRUE(r.out.find("usage: vdh-fsx") != std::string::npos ||
                    r.out.find("must be at least") != std::string::npos)
            << args << ": " << r.out;
    }
}

} // namespace
