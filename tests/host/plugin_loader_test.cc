// SPDX-License-Identifier: MIT
// Tests of host/src/plugin_loader: the echo plugin loads and works through its C ABI;
// a wrong ABI major, a missing entry point, a short descriptor and a missing file are
// refused with messages that say why; a minor-0 plugin is accepted; a plugin reserves fds
// only through a host table that has reserve_fds (ABI 1.1).
#include "plugin_loader.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "../../plugins/echo/echo_protocol.h"

namespace vdh {
namespace {

std::string test_plugin(const char* name) { return std::string(TEST_PLUGIN_DIR) + "/" + name; }

TEST(PluginLoader, LoadsEchoPluginAndChecksDescriptor) {
    std::string err;
    auto p = load_plugin(ECHO_PLUGIN_PATH, &err);
    ASSERT_NE(p, nullptr) << err;
    EXPECT_STREQ(p->info->name, "echo");
    EXPECT_EQ(p->info->abi_major, static_cast<uint32_t>(VDH_ABI_MAJOR));
    EXPECT_EQ(p->info->struct_size, sizeof(vdh_plugin_info));
    EXPECT_NE(p->info->create, nullptr);
}

void noop_complete(void*, int64_t) {}

TEST(PluginLoader, EchoPluginHandlesARequestThroughTheAbi) {
    std::string err;
    auto p = load_plugin(ECHO_PLUGIN_PATH, &err);
    ASSERT_NE(p, nullptr) << err;
    vdh_host_api api{};
    api.struct_size = sizeof(api);
    api.abi_major = VDH_ABI_MAJOR;
    api.complete = noop_complete;
    void* dev = nullptr;
    const vdh_device_ops* ops = nullptr;
    char msg[256] = {0};
    ASSERT_EQ(p->info->create(&api, nullptr, "e0", "", 0, "test.yaml", &dev, &ops, msg,
                              sizeof(msg)),
              0)
        << msg;
    ASSERT_NE(ops, nullptr);
    vdh_queue_info qi{0, 8, 0};
    ASSERT_EQ(ops->start(dev, 0, &qi, 1), 0);

    uint8_t in[sizeof(echo::EchoHeader) + 5];
    echo::EchoHeader h{echo::kEchoOpEcho, 0};
    std::memcpy(in, &h, sizeof(h));
    std::memcpy(in + sizeof(h), "hello", 5);
    char out[16] = {0};
    struct iovec iv_in = {in, sizeof(in)};
    struct iovec iv_out = {out, sizeof(out)};
    vdh_request req{};
    req.in = &iv_in;
    req.n_in = 1;
    req.out = &iv_out;
    req.n_out = 1;
    req.in_bytes = sizeof(in);
    req.out_bytes = sizeof(out);
    EXPECT_EQ(ops->handle_request(dev, &req), 5);
    EXPECT_EQ(std::memcmp(out, "hello", 5), 0);

    h = {echo::kEchoOpFail, 5};
    std::memcpy(in, &h, sizeof(h));
    EXPECT_EQ(ops->handle_request(dev, &req), -5);
    ops->stop(dev);
    ops->destroy(dev);
}

TEST(PluginLoader, EchoPluginRejectsBadConfigWithPosition) {
    std::string err;
    auto p = load_plugin(ECHO_PLUGIN_PATH, &err);
    ASSERT_NE(p, nullptr) << err;
    ASSERT_NE(p->info->check_config, nullptr);
    // Layout as the host hands it over: the block keeps its file position.
    const char* text = "\n\n      delay_us: 5\n      colour: blue\n";
    char msg[256] = {0};
    EXPECT_NE(p->info->check_config(text, strlen(text), "dev.yaml", msg, sizeof(msg)), 0);
    EXPECT_STREQ(msg,
                 "dev.yaml:4:7: config.colour: unknown key (expected one of: delay_us, fail_every, "
                 "fds)");
}

TEST(PluginLoader, RefusesWrongAbiMajorNamingBothVersions) {
    std::string err;
    auto p = load_plugin(test_plugin("vdh-bad-abi.so"), &err);
    EXPECT_EQ(p, nullptr);
    std::string want = "was built for plugin ABI " + std::to_string(VDH_ABI_MAJOR + 98) +
                       ".3, this vdhost speaks ABI " + std::to_string(VDH_ABI_MAJOR) + "." +
                       std::to_string(VDH_ABI_MINOR);
    EXPECT_NE(err.find(want), std::string::npos) << err;
}

TEST(PluginLoader, RefusesMissingEntryPoint) {
    std::string err;
    auto p = load_plugin(test_plugin("vdh-no-entry.so"), &err);
    EXPECT_EQ(p, nullptr);
    EXPECT_NE(err.find("has no entry point vdh_plugin_entry()"), std::string::npos) << err;
}

TEST(PluginLoader, RefusesShortDescriptor) {
    std::string err;
    auto p = load_plugin(test_plugin("vdh-short-info.so"), &err);
    EXPECT_EQ(p, nullptr);
    EXPECT_NE(err.find("descriptor too small (8 bytes"), std::string::npos) << err;
}

TEST(PluginLoader, AcceptsAPluginBuiltForMinorZero) {
    std::string err;
    auto p = load_plugin(test_plugin("vdh-minor-zero.so"), &err);
    ASSERT_NE(p, nullptr) << err;
    EXPECT_EQ(p->info->abi_minor, 0u);
    EXPECT_STREQ(p->info->name, "minor-zero");
}

struct ReserveCall {
    void* dev = nullptr;
    uint64_t n = 0;
    int calls = 0;
    int rc = 0;
};
ReserveCall g_reserve;

int fake_reserve(void* host_dev, uint64_t n, char* err, size_t err_len) {
    g_reserve.dev = host_dev;
    g_reserve.n = n;
    ++g_reserve.calls;
    if (g_reserve.rc != 0) {
        std::snprintf(err, err_len, "no fds for you");
    }
    return g_reserve.rc;
}

TEST(PluginLoader, EchoReservesFdsOnlyThroughAMinorOneHostTable) {
    std::string err;
    auto p = load_plugin(ECHO_PLUGIN_PATH, &err);
    ASSERT_NE(p, nullptr) << err;
    vdh_host_api api{};
    api.struct_size = sizeof(api);
    api.abi_major = VDH_ABI_MAJOR;
    api.abi_minor = VDH_ABI_MINOR;
    api.complete = noop_complete;
    api.reserve_fds = fake_reserve;
    const char* text = "fds: 10\n";
    int host_dev = 0;
    void* dev = nullptr;
    const vdh_device_ops* ops = nullptr;
    char msg[256] = {0};
    g_reserve = ReserveCall{};
    ASSERT_EQ(p->info->create(&api, &host_dev, "e", text, strlen(text), "x.yaml", &dev, &ops, msg,
                              sizeof(msg)),
              0)
        << msg;
    EXPECT_EQ(g_reserve.calls, 1);
    EXPECT_EQ(g_reserve.n, 10u);
    EXPECT_EQ(g_reserve.dev, &host_dev);
    ops->destroy(dev);

    // A refused reservation fails create() with the host's message.
    g_reserve = ReserveCall{};
    g_reserve.rc = -EMFILE;
    EXPECT_EQ(p->info->create(&api, &host_dev, "e", text, strlen(text), "x.yaml", &dev, &ops, msg,
                              sizeof(msg)),
              -EMFILE);
    EXPECT_STREQ(msg, "no fds for you");

    // A host of minor 0: its table ends before reserve_fds, which must not be read.
    api.struct_size = offsetof(vdh_host_api, reserve_fds);
    api.abi_minor = 0;
    g_reserve = ReserveCall{};
    ASSERT_EQ(p->info->create(&api, &host_dev, "e", text, strlen(text), "x.yaml", &dev, &ops, msg,
                              sizeof(msg)),
              0)
        << msg;
    EXPECT_EQ(g_reserve.calls, 0);
    ops->destroy(dev);
}

TEST(PluginLoader, RefusesMissingFile) {
    std::string err;
    auto p = load_plugin(test_plugin("vdh-does-not-exist.so"), &err);
    EXPECT_EQ(p, nullptr);
    EXPECT_NE(err.find("cannot load plugin"), std::string::npos) << err;
    EXPECT_NE(err.find("No such file"), std::string::npos) << err;
}

TEST(PluginLoader, PluginFileNaming) {
    EXPECT_EQ(plugin_file("/usr/lib/vdhost", "virtiofs"), "/usr/lib/vdhost/vdh-virtiofs.so");
}

} // namespace
} // namespace vdh
