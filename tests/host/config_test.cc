// SPDX-License-Identifier: MIT
// Tests of host/src/config.cc: the YAML schema, defaults, exact error messages and the
// position-preserving `config:` text handed to plugins. Mostly parse_config() on inline
// strings; one test goes through load_config() with a temporary file.

#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "vdh/unique_fd.h"
#include "vdh_build_config.h"

namespace vdh {
namespace {

constexpr unsigned kCpus = 4;

/// Parses \p yaml that must be valid.
Config parse_ok(const std::string& yaml, unsigned cpus = kCpus) {
    ConfigError err;
    auto cfg = parse_config(yaml, "t.yaml", cpus, &err);
    EXPECT_TRUE(cfg.has_value()) << err.message;
    return cfg.value_or(Config{});
}

/// Parses \p yaml that must be invalid and returns the message.
std::string parse_err(const std::string& yaml, unsigned cpus = kCpus) {
    ConfigError err;
    auto cfg = parse_config(yaml, "t.yaml", cpus, &err);
    EXPECT_FALSE(cfg.has_value()) << "accepted:\n" << yaml;
    return err.message;
}

/// A one-device file with \p host (a `host:` section or "") and extra device lines.
std::string one_device(const std::string& host, const std::string& extra) {
    return host +
           "devices:\n"
           "  - name: fs0\n"
           "    type: virtiofs\n"
           "    socket: /tmp/fs0.sock\n" +
           extra;
}

// ---- valid configs and defaults -----------------------------------------------------------

TEST(Config, ParsesMinimalConfigWithDefaults) {
    Config cfg = parse_ok(one_device("", ""));
    EXPECT_EQ(cfg.path, "t.yaml");
    EXPECT_EQ(cfg.host.poll_lcores, std::vector<unsigned>{kCpus - 1});
    EXPECT_EQ(cfg.host.log_level, "info");
    EXPECT_TRUE(cfg.host.eal_args.empty());
    EXPECT_EQ(cfg.host.plugin_dir, "");
    EXPECT_EQ(cfg.host.control_socket, "");
    EXPECT_EQ(cfg.host.idle_poll_us, 200u);
    EXPECT_EQ(cfg.host.queue_slice_us, 25u);
    EXPECT_EQ(cfg.host.max_sleep_ms, 100u);
    EXPECT_EQ(cfg.host.teardown_timeout_ms, 2000u);
    ASSERT_EQ(cfg.devices.size(), 1u);
    const DeviceConfig& d = cfg.devices[0];
    EXPECT_EQ(d.socket_mode, 0600u);
    EXPECT_FALSE(d.has_socket_group);
    EXPECT_EQ(d.name, "fs0");
    EXPECT_EQ(d.type, "virtiofs");
    EXPECT_EQ(d.socket, "/tmp/fs0.sock");
    EXPECT_EQ(d.lcores, std::vector<unsigned>{kCpus - 1});
    EXPECT_EQ(d.queue_size_max, 1024);
    EXPECT_EQ(d.config_text, "");
    EXPECT_EQ(d.line, 2);
    EXPECT_EQ(d.column, 5);
    EXPECT_EQ(d.index, 0u);
    EXPECT_EQ(d.type_line, 3);
    EXPECT_EQ(d.type_column, 11);
}

TEST(Config, DefaultPollLcoreIsLastOnlineCpu) {
    EXPECT_EQ(parse_ok(one_device("", ""), 1).host.poll_lcores, std::vector<unsigned>{0});
    EXPECT_EQ(parse_ok(one_device("", ""), 16).host.poll_lcores, std::vector<unsigned>{15});
}

TEST(Config, ParsesAllHostKeys) {
    Config cfg = parse_ok(one_device("host:\n"
                                     "  poll_lcores: [2, 0]\n"
                                     "  log_level: debug\n"
                                     "  eal_args: [\"--log-level=lib.eal:notice\", -n4]\n"
                                     "  plugin_dir: /opt/vdh/plugins\n"
                                     "  control_socket: /run/vdhost.ctl\n"
                                     "  idle_poll_us: 0\n"
                                     "  queue_slice_us: 100000\n"
                                     "  max_sleep_ms: 10000\n",
                                     "    queue_size_max: 32768\n"));
    EXPECT_EQ(cfg.host.poll_lcores, (std::vector<unsigned>{2, 0}));
    EXPECT_EQ(cfg.host.log_level, "debug");
    EXPECT_EQ(cfg.host.eal_args, (std::vector<std::string>{"--log-level=lib.eal:notice", "-n4"}));
    EXPECT_EQ(cfg.host.plugin_dir, "/opt/vdh/plugins");
    EXPECT_EQ(cfg.host.control_socket, "/run/vdhost.ctl");
    EXPECT_EQ(cfg.host.idle_poll_us, 0u);
    EXPECT_EQ(cfg.host.queue_slice_us, 100000u);
    EXPECT_EQ(cfg.host.max_sleep_ms, 10000u);
    EXPECT_EQ(cfg.devices[0].queue_size_max, 32768);
    EXPECT_EQ(cfg.devices[0].lcores, std::vector<unsigned>{2});
}

TEST(Config, EmptyHostSectionMeansDefaults) {
    Config cfg = parse_ok(one_device("host:\n", ""));
    EXPECT_EQ(cfg.host.poll_lcores, std::vector<unsigned>{kCpus - 1});
}

TEST(Config, LcoreAsIntAndAsList) {
    Config cfg = parse_ok("host:\n"
                          "  poll_lcores: [1, 2, 3]\n"
                          "devices:\n"
                          "  - {name: a, type: echo, socket: /tmp/a, lcore: 2}\n"
                          "  - {name: b, type: echo, socket: /tmp/b, lcore: [3, 1]}\n");
    EXPECT_EQ(cfg.devices[0].lcores, std::vector<unsigned>{2});
    EXPECT_EQ(cfg.devices[1].lcores, (std::vector<unsigned>{3, 1}));
}

TEST(Config, DevicesWithoutLcoreAreSpreadRoundRobin) {
    Config cfg = parse_ok("host: {poll_lcores: [3, 1]}\n"
                          "devices:\n"
                          "  - {name: a, type: echo, socket: /tmp/a}\n"
                          "  - {name: b, type: echo, socket: /tmp/b, lcore: 3}\n"
                          "  - {name: c, type: echo, socket: /tmp/c}\n");
    ASSERT_EQ(cfg.devices.size(), 3u);
    EXPECT_EQ(cfg.devices[0].lcores, std::vector<unsigned>{3});
    EXPECT_EQ(cfg.devices[1].lcores, std::vector<unsigned>{3});
    EXPECT_EQ(cfg.devices[2].lcores, std::vector<unsigned>{3});
    EXPECT_EQ(cfg.devices[2].index, 2u);

    Config two = parse_ok("host: {poll_lcores: [3, 1]}\n"
                          "devices:\n"
                          "  - {name: a, type: echo, socket: /tmp/a}\n"
                          "  - {name: b, type: echo, socket: /tmp/b}\n");
    EXPECT_EQ(two.devices[0].lcores, std::vector<unsigned>{3});
    EXPECT_EQ(two.devices[1].lcores, std::vector<unsigned>{1});
}

TEST(Config, AcceptsNameAndTypeCharacters) {
    Config cfg = parse_ok("devices:\n"
                          "  - name: Fs_0.a-b\n"
                          "    type: virtio_fs-2\n"
                          "    socket: /tmp/x\n");
    EXPECT_EQ(cfg.devices[0].name, "Fs_0.a-b");
    EXPECT_EQ(cfg.devices[0].type, "virtio_fs-2");
}

// ---- errors: structure --------------------------------------------------------------------

TEST(ConfigError, EmptyFile) {
    EXPECT_EQ(parse_err(""), "t.yaml:1:1: (root): expected mapping, got empty document");
    EXPECT_EQ(parse_err("# only a comment\n\n"),
              "t.yaml:1:1: (root): expected mapping, got empty document");
}

TEST(ConfigError, RootNotAMapping) {
    EXPECT_EQ(parse_err("- a\n- b\n"), "t.yaml:1:1: (root): expected mapping, got sequence");
    EXPECT_EQ(parse_err("\n  hello\n"), "t.yaml:2:3: (root): expected mapping, got \"hello\"");
}

TEST(ConfigError, MoreThanOneDocument) {
    EXPECT_EQ(parse_err(one_device("", "") + "---\ndevices: []\n"),
              "t.yaml:5:1: (root): expected a single YAML document");
    EXPECT_EQ(parse_err(one_device("", "") + "...\n# fine\n\nhost: {}\n"),
              "t.yaml:8:1: (root): expected a single YAML document");
    EXPECT_EQ(parse_err(one_device("", "") + "...\n--- # x\n"),
              "t.yaml:6:1: (root): expected a single YAML document");
    // Markers around one document are fine.
    EXPECT_EQ(parse_ok("%YAML 1.2\n---\n" + one_device("", "") + "...\n").devices.size(), 1u);
    EXPECT_EQ(parse_ok("--- # the config\n" + one_device("", "")).devices.size(), 1u);
}

TEST(ConfigError, StrayCommaAtStart) {
    // yaml-cpp's LoadAll() would loop forever on this.
    EXPECT_EQ(parse_err(",devices: []\n"), "t.yaml:1:1: (root): expected mapping, got null");
}

TEST(ConfigError, SyntaxError) {
    EXPECT_EQ(parse_err("devices:\n  - {name: a, type: echo\nhost: {}\n"),
              "t.yaml:3:5: yaml: end of map flow not found");
    EXPECT_EQ(parse_err("devices:\n  - name: a\n   bad: [\n"),
              "t.yaml:3:4: yaml: end of sequence not found");
}

TEST(ConfigError, UnknownTopLevelKey) {
    EXPECT_EQ(parse_err(one_device("", "") + "extra: 1\n"),
              "t.yaml:5:1: extra: unknown key (expected one of: host, devices)");
}

TEST(ConfigError, UnknownHostKey) {
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcore: [1]\n", "")),
              "t.yaml:2:3: host.poll_lcore: unknown key (expected one of: poll_lcores, "
              "log_level, eal_args, plugin_dir, control_socket, idle_poll_us, queue_slice_us, "
              "max_sleep_ms, teardown_timeout_ms, sandbox, seccomp, share_roots, telemetry, metrics)");
}

TEST(Config, TelemetryAndMetricsKeys) {
    Config d = parse_ok(one_device("", ""));
    EXPECT_TRUE(d.host.telemetry);
    EXPECT_EQ(d.host.metrics_listen, "");
    Config c = parse_ok(one_device("host:\n  telemetry: false\n  metrics:\n"
                                   "    listen: \"127.0.0.1:9464\"\n",
                                   ""));
    EXPECT_FALSE(c.host.telemetry);
    EXPECT_EQ(c.host.metrics_listen, "127.0.0.1:9464");
    Config u = parse_ok(one_device("host:\n  metrics: { listen: \"unix:/run/vdhost/m.sock\" }\n", ""));
    EXPECT_EQ(u.host.metrics_listen, "unix:/run/vdhost/m.sock");
}

TEST(ConfigError, BadTelemetryAndMetricsValues) {
    EXPECT_EQ(parse_err(one_device("host:\n  telemetry: maybe\n", "")),
              "t.yaml:2:14: host.telemetry: expected true or false");
    EXPECT_EQ(parse_err(one_device("host:\n  metrics:\n    listen: localhost:9464\n", "")),
              "t.yaml:3:13: host.metrics.listen: 'localhost' is not a numeric IPv4 or IPv6 "
              "address, got \"localhost:9464\"");
    EXPECT_EQ(parse_err(one_device("host:\n  metrics:\n    port: 1\n", "")),
              "t.yaml:3:5: host.metrics.port: unknown key (expected one of: listen)");
}

TEST(ConfigError, UnknownDeviceKey) {
    EXPECT_EQ(parse_err(one_device("", "    queue_size: 256\n")),
              "t.yaml:5:5: devices[0].queue_size: unknown key (expected one of: name, type, "
              "socket, socket_fd, lcore, queue_size_max, socket_mode, socket_group, qos, config)");
}

TEST(Config, QosDefaultsToUnlimitedAndParsesEveryKey) {
    Config none = parse_ok(one_device("", ""));
    EXPECT_FALSE(none.devices[0].qos.limited());
    EXPECT_EQ(none.devices[0].qos.burst_ms, QosConfig::kDefaultBurstMs);
    Config cfg = parse_ok(one_device(
        "", "    qos:\n      iops: 2000\n      bandwidth: 100MiB\n      burst_ms: 20\n"));
    EXPECT_EQ(cfg.devices[0].qos, (QosConfig{2000, 100ULL << 20, 20}));
    EXPECT_EQ(parse_ok(one_device("", "    qos: {bandwidth: \"20MB/s\"}\n")).devices[0].qos,
              (QosConfig{0, 20000000, QosConfig::kDefaultBurstMs}));
    EXPECT_EQ(parse_ok(one_device("", "    qos: {bandwidth: 65536}\n")).devices[0].qos.bandwidth,
              65536u);
    EXPECT_FALSE(
        parse_ok(one_device("", "    qos: {iops: 0, bandwidth: 0}\n")).devices[0].qos.limited());
    EXPECT_FALSE(parse_ok(one_device("", "    qos:\n")).devices[0].qos.limited());
}

TEST(ConfigError, QosKeysArePositionedAndExplained) {
    EXPECT_EQ(parse_err(one_device("", "    qos: {iops: 10, rate: 5}\n")),
              "t.yaml:5:21: devices[0].qos.rate: unknown key (expected one of: iops, "
              "bandwidth, burst_ms)");
    EXPECT_EQ(parse_err(one_device("", "    qos: {iops: -1}\n")),
              "t.yaml:5:17: devices[0].qos.iops: expected unsigned integer, got \"-1\"");
    EXPECT_EQ(parse_err(one_device("", "    qos: {iops: 100000001}\n")),
              "t.yaml:5:17: devices[0].qos.iops: out of range: 100000001 (expected "
              "0..100000000)");
    EXPECT_EQ(parse_err(one_device("", "    qos:\n      bandwidth: 100Mbit\n")),
              "t.yaml:6:18: devices[0].qos.bandwidth: unknown unit \"Mbit\" (expected K, M, G, "
              "T, KiB, MiB, GiB, TiB, KB, MB, GB or TB), got \"100Mbit\"");
    EXPECT_EQ(parse_err(one_device("", "    qos: {bandwidth: 100}\n")),
              "t.yaml:5:22: devices[0].qos.bandwidth: out of range: 100 bytes/s (expected 0 = "
              "unlimited, or 1024..1099511627776)");
    EXPECT_EQ(parse_err(one_device("", "    qos: {bandwidth: [1]}\n")),
              "t.yaml:5:22: devices[0].qos.bandwidth: expected byte rate such as \"100MiB\", "
              "got sequence");
    EXPECT_EQ(parse_err(one_device("", "    qos: {burst_ms: 0}\n")),
              "t.yaml:5:21: devices[0].qos.burst_ms: out of range: 0 (expected 1..10000)");
    EXPECT_EQ(parse_err(one_device("", "    qos: 2000\n")),
              "t.yaml:5:10: devices[0].qos: expected mapping, got \"2000\"");
}

TEST(ConfigError, DuplicateKeyInAMapping) {
    EXPECT_EQ(parse_err(one_device("", "    name: fs1\n")),
              "t.yaml:5:5: devices[0].name: duplicate key (first at line 2)");
    EXPECT_EQ(parse_err(one_device("host: {log_level: info, log_level: debug}\n", "")),
              "t.yaml:1:25: host.log_level: duplicate key (first at line 1)");
    EXPECT_EQ(parse_err(one_device("", "") + "devices: []\n"),
              "t.yaml:5:1: devices: duplicate key (first at line 1)");
}

TEST(ConfigError, NonScalarKey) {
    EXPECT_EQ(parse_err(one_device("", "    [a]: 1\n")),
              "t.yaml:5:5: devices[0]: expected string key, got sequence");
}

TEST(ConfigError, MissingDevices) {
    EXPECT_EQ(parse_err("host:\n  log_level: info\n"), "t.yaml:1:1: devices: missing required key");
}

TEST(ConfigError, NoDevices) {
    EXPECT_EQ(parse_err("devices: []\n"),
              "t.yaml:1:10: devices: expected at least one device (or a host.control_socket, to "
              "add them later)");
    // With a control socket, devices can all come later (vdhostctl add).
    EXPECT_TRUE(parse_config("host:\n  control_socket: /run/v/ctl\ndevices: []\n", "t.yaml", 4,
                             nullptr)
                    .has_value());
    EXPECT_EQ(parse_err("devices:\n"), "t.yaml:2:1: devices: expected sequence, got null");
    EXPECT_EQ(parse_err("devices: {a: 1}\n"),
              "t.yaml:1:10: devices: expected sequence, got mapping");
}

TEST(ConfigError, MissingRequiredDeviceKey) {
    EXPECT_EQ(parse_err("devices:\n  - name: fs0\n    socket: /tmp/a\n"),
              "t.yaml:2:5: devices[0].type: missing required key");
    EXPECT_EQ(parse_err("devices:\n  - type: echo\n    socket: /tmp/a\n"),
              "t.yaml:2:5: devices[0].name: missing required key");
    EXPECT_EQ(parse_err("devices:\n  - {name: a, type: echo}\n"),
              "t.yaml:2:5: devices[0].socket: missing required key");
}

TEST(ConfigError, DeviceNotAMapping) {
    EXPECT_EQ(parse_err(one_device("", "  - fs1\n")),
              "t.yaml:5:5: devices[1]: expected mapping, got \"fs1\"");
}

// ---- errors: types and values -------------------------------------------------------------

TEST(ConfigError, HostWrongType) {
    EXPECT_EQ(parse_err(one_device("host: [1]\n", "")),
              "t.yaml:1:7: host: expected mapping, got sequence");
}

TEST(ConfigError, UnsignedWrongType) {
    EXPECT_EQ(parse_err(one_device("host:\n  idle_poll_us: fast\n", "")),
              "t.yaml:2:17: host.idle_poll_us: expected unsigned integer, got \"fast\"");
    EXPECT_EQ(parse_err(one_device("host:\n  idle_poll_us: -1\n", "")),
              "t.yaml:2:17: host.idle_poll_us: expected unsigned integer, got \"-1\"");
    EXPECT_EQ(parse_err(one_device("host:\n  max_sleep_ms: \"5\"\n", "")),
              "t.yaml:2:17: host.max_sleep_ms: expected unsigned integer, got quoted string "
              "\"5\"");
    EXPECT_EQ(parse_err(one_device("host:\n  max_sleep_ms: [5]\n", "")),
              "t.yaml:2:17: host.max_sleep_ms: expected unsigned integer, got sequence");
    EXPECT_EQ(parse_err(one_device("", "    queue_size_max:\n")),
              "t.yaml:6:1: devices[0].queue_size_max: expected unsigned integer, got null");
}

TEST(ConfigError, UnsignedOutOfRange) {
    EXPECT_EQ(parse_err(one_device("host:\n  idle_poll_us: 1000001\n", "")),
              "t.yaml:2:17: host.idle_poll_us: out of range: 1000001 (expected 0..1000000)");
    EXPECT_EQ(parse_err(one_device("host:\n  queue_slice_us: 100001\n", "")),
              "t.yaml:2:19: host.queue_slice_us: out of range: 100001 (expected 0..100000)");
    EXPECT_EQ(parse_err(one_device("host:\n  max_sleep_ms: 0\n", "")),
              "t.yaml:2:17: host.max_sleep_ms: out of range: 0 (expected 1..10000)");
    EXPECT_EQ(parse_err(one_device("host:\n  max_sleep_ms: 99999999999999999999999\n", "")),
              "t.yaml:2:17: host.max_sleep_ms: out of range: 99999999999999999999999 "
              "(expected 1..10000)");
}

TEST(ConfigError, StringWrongType) {
    EXPECT_EQ(parse_err(one_device("host:\n  plugin_dir: {a: b}\n", "")),
              "t.yaml:2:15: host.plugin_dir: expected string, got mapping");
    EXPECT_EQ(parse_err("devices:\n  - name:\n    type: echo\n    socket: /tmp/a\n"),
              "t.yaml:3:5: devices[0].name: expected string, got null");
    EXPECT_EQ(parse_err(one_device("host:\n  eal_args: -n4\n", "")),
              "t.yaml:2:13: host.eal_args: expected sequence, got \"-n4\"");
    EXPECT_EQ(parse_err(one_device("host:\n  eal_args: [-n4, [x]]\n", "")),
              "t.yaml:2:19: host.eal_args[1]: expected string, got sequence");
}

TEST(ConfigError, BadLogLevel) {
    EXPECT_EQ(parse_err(one_device("host:\n  log_level: verbose\n", "")),
              "t.yaml:2:14: host.log_level: expected one of err, warning, notice, info, debug, "
              "got \"verbose\"");
}

TEST(ConfigError, PollLcores) {
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [1, 4]\n", "")),
              "t.yaml:2:20: host.poll_lcores[1]: CPU 4 out of range (4 CPUs online: 0..3)");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [1, 2, 1]\n", "")),
              "t.yaml:2:23: host.poll_lcores[2]: duplicate CPU 1");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: []\n", "")),
              "t.yaml:2:16: host.poll_lcores: expected at least one CPU");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: 1\n", "")),
              "t.yaml:2:16: host.poll_lcores: expected sequence, got \"1\"");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [x]\n", "")),
              "t.yaml:2:17: host.poll_lcores[0]: expected unsigned integer, got \"x\"");
}

TEST(ConfigError, DeviceLcoreNotInPollLcores) {
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [1, 2]\n", "    lcore: 3\n")),
              "t.yaml:7:12: devices[0].lcore: CPU 3 is not in host.poll_lcores [1, 2]");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [1, 2]\n", "    lcore: [2, 0]\n")),
              "t.yaml:7:16: devices[0].lcore[1]: CPU 0 is not in host.poll_lcores [1, 2]");
    EXPECT_EQ(parse_err(one_device("host:\n  poll_lcores: [1, 2]\n", "    lcore: [2, 2]\n")),
              "t.yaml:7:16: devices[0].lcore[1]: duplicate CPU 2");
    EXPECT_EQ(parse_err(one_device("", "    lcore: []\n")),
              "t.yaml:5:12: devices[0].lcore: expected at least one CPU");
    EXPECT_EQ(parse_err(one_device("", "    lcore: {cpu: 1}\n")),
              "t.yaml:5:12: devices[0].lcore: expected unsigned integer or sequence, got mapping");
}

TEST(ConfigError, QueueSizeNotPowerOfTwo) {
    EXPECT_EQ(parse_err(one_device("", "    queue_size_max: 1000\n")),
              "t.yaml:5:21: devices[0].queue_size_max: expected a power of two in 1..32768, got "
              "1000");
    EXPECT_EQ(parse_err(one_device("", "    queue_size_max: 65536\n")),
              "t.yaml:5:21: devices[0].queue_size_max: expected a power of two in 1..32768, got "
              "65536");
    EXPECT_EQ(parse_err(one_device("", "    queue_size_max: 0\n")),
              "t.yaml:5:21: devices[0].queue_size_max: expected a power of two in 1..32768, got "
              "0");
    EXPECT_EQ(parse_ok(one_device("", "    queue_size_max: 1\n")).devices[0].queue_size_max, 1);
}

// ---- teardown deadline and socket access ---------------------------------------------------

TEST(Config, TeardownTimeout) {
    EXPECT_EQ(parse_ok(one_device("host:\n  teardown_timeout_ms: 750\n", ""))
                  .host.teardown_timeout_ms,
              750u);
    EXPECT_EQ(parse_err(one_device("host:\n  teardown_timeout_ms: 5\n", "")),
              "t.yaml:2:24: host.teardown_timeout_ms: out of range: 5 (expected 10..600000)");
    EXPECT_EQ(parse_err(one_device("host:\n  teardown_timeout_ms: soon\n", "")),
              "t.yaml:2:24: host.teardown_timeout_ms: expected unsigned integer, got "
              "\"soon\"");
}

TEST(Config, SocketModeIsOctalWithinOwnerAndGroupReadWrite) {
    EXPECT_EQ(parse_ok(one_device("", "    socket_mode: 0660\n")).devices[0].socket_mode, 0660u);
    EXPECT_EQ(parse_ok(one_device("", "    socket_mode: 640\n")).devices[0].socket_mode, 0640u);
    EXPECT_EQ(parse_ok(one_device("", "    socket_mode: 0o600\n")).devices[0].socket_mode, 0600u);
    EXPECT_EQ(parse_ok(one_device("", "    socket_mode: \"0620\"\n")).devices[0].socket_mode,
              0620u);
    EXPECT_EQ(parse_err(one_device("", "    socket_mode: 0666\n")),
              "t.yaml:5:18: devices[0].socket_mode: mode 0666 allows more than read/write for "
              "owner and group (expected a subset of 0660: others must not reach a device "
              "socket)");
    EXPECT_EQ(parse_err(one_device("", "    socket_mode: 0700\n")),
              "t.yaml:5:18: devices[0].socket_mode: mode 0700 allows more than read/write for "
              "owner and group (expected a subset of 0660: others must not reach a device "
              "socket)");
    EXPECT_EQ(parse_err(one_device("", "    socket_mode: 0060\n")),
              "t.yaml:5:18: devices[0].socket_mode: mode 0060 lacks read/write for the owner "
              "(expected 06x0)");
    EXPECT_EQ(parse_err(one_device("", "    socket_mode: 0689\n")),
              "t.yaml:5:18: devices[0].socket_mode: expected an octal mode such as 0600, got "
              "\"0689\"");
    EXPECT_EQ(parse_err(one_device("", "    socket_mode: [1]\n")),
              "t.yaml:5:18: devices[0].socket_mode: expected octal mode such as 0600, got "
              "sequence");
}

TEST(Config, SocketGroupByNameOrNumber) {
    Config cfg = parse_ok(one_device("", "    socket_group: root\n"));
    EXPECT_TRUE(cfg.devices[0].has_socket_group);
    EXPECT_EQ(cfg.devices[0].socket_gid, 0u);
    EXPECT_EQ(cfg.devices[0].socket_group, "root");
    cfg = parse_ok(one_device("", "    socket_group: 4242\n"));
    EXPECT_TRUE(cfg.devices[0].has_socket_group);
    EXPECT_EQ(cfg.devices[0].socket_gid, 4242u);
    EXPECT_EQ(parse_err(one_device("", "    socket_group: no-such-group-vdh\n")),
              "t.yaml:5:19: devices[0].socket_group: unknown group \"no-such-group-vdh\"");
    EXPECT_EQ(parse_err(one_device("", "    socket_group: {a: 1}\n")),
              "t.yaml:5:19: devices[0].socket_group: expected string, got mapping");
}

TEST(ConfigError, BadDeviceNameAndType) {
    EXPECT_EQ(parse_err("devices:\n  - {name: 'a b', type: echo, socket: /tmp/a}\n"),
              "t.yaml:2:12: devices[0].name: invalid device name \"a b\" (expected 1-63 "
              "characters of A-Z a-z 0-9 _ . -)");
    EXPECT_EQ(parse_err("devices:\n  - {name: " + std::string(64, 'x') +
                        ", type: echo, socket: /tmp/a}\n"),
              "t.yaml:2:12: devices[0].name: invalid device name "
              "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" (expected 1-63 characters of A-Z "
              "a-z 0-9 _ . -)");
    EXPECT_EQ(
        parse_ok("devices:\n  - {name: " + std::string(63, 'x') + ", type: echo, socket: /tmp/a}\n")
            .devices[0]
            .name.size(),
        63u);
    EXPECT_EQ(parse_err("devices:\n  - {name: a, type: Echo, socket: /tmp/a}\n"),
              "t.yaml:2:21: devices[0].type: invalid plugin name \"Echo\" (expected characters "
              "a-z 0-9 _ -)");
}

TEST(ConfigError, SocketPath) {
    EXPECT_EQ(parse_err("devices:\n  - {name: a, type: echo, socket: a.sock}\n"),
              "t.yaml:2:35: devices[0].socket: expected an absolute path, got \"a.sock\"");
    std::string ok_path = "/" + std::string(106, 's');
    EXPECT_EQ(parse_ok("devices:\n  - {name: a, type: echo, socket: " + ok_path + "}\n")
                  .devices[0]
                  .socket,
              ok_path);
    EXPECT_EQ(parse_err("devices:\n  - {name: a, type: echo, socket: " + ok_path + "x}\n"),
              "t.yaml:2:35: devices[0].socket: path too long: 108 bytes (a UNIX socket path has "
              "at most 107)");
    EXPECT_EQ(parse_err(one_device("host: {control_socket: " + ok_path + "x}\n", "")),
              "t.yaml:1:24: host.control_socket: path too long: 108 bytes (a UNIX socket path "
              "has at most 107)");
}

TEST(ConfigError, DuplicateDeviceName) {
    EXPECT_EQ(parse_err("devices:\n"
                        "  - name: fs0\n"
                        "    type: virtiofs\n"
                        "    socket: /tmp/a\n"
                        "  - name: fs0\n"
                        "    type: virtiofs\n"
                        "    socket: /tmp/b\n"),
              "t.yaml:5:11: devices[1].name: duplicate device name \"fs0\" (first at line 2)");
}

TEST(ConfigError, DuplicateSocket) {
    EXPECT_EQ(parse_err("devices:\n"
                        "  - {name: a, type: echo, socket: /tmp/s}\n"
                        "  - {name: b, type: echo, socket: /tmp/t}\n"
                        "  - {name: c, type: echo,\n"
                        "     socket: /tmp/s}\n"),
              "t.yaml:5:14: devices[2].socket: duplicate socket \"/tmp/s\" (first at line 2)");
}

TEST(ConfigError, ConfigAliasRejected) {
    EXPECT_EQ(parse_err("devices:\n"
                        "  - {name: a, type: echo, socket: /tmp/a, config: &c {x: 1}}\n"
                        "  - {name: b, type: echo, socket: /tmp/b, config: *c}\n"),
              "t.yaml:3:43: devices[1].config: an alias is not supported here (write the block "
              "out in place)");
}

TEST(ConfigError, ConfigUsingOutsideAnchorRejected) {
    std::string msg = parse_err("devices:\n"
                                "  - {name: a, type: echo, socket: /tmp/a, config: &c {x: 1}}\n"
                                "  - name: b\n"
                                "    type: echo\n"
                                "    socket: /tmp/b\n"
                                "    config:\n"
                                "      inner: *c\n");
    EXPECT_EQ(msg.rfind("t.yaml:7:7: devices[1].config: cannot be handed to the plugin as "
                        "standalone YAML: ",
                        0),
              0u)
        << msg;
}

TEST(ConfigError, ConfigContinuedBelowItsIndentation) {
    // Not valid YAML (a quoted scalar's next line must be indented), but yaml-cpp takes it.
    EXPECT_EQ(parse_err(one_device("", "    config:\n"
                                       "      a: \"one\n"
                                       "    two\"\n")),
              "t.yaml:6:7: devices[0].config: cannot be handed to the plugin as standalone YAML "
              "(indent all of its lines more than the `config` key)");
}

TEST(ConfigError, ErrorPointerIsOptional) {
    EXPECT_FALSE(parse_config("", "t.yaml", kCpus, nullptr).has_value());
}

// ---- load_config and device_error ---------------------------------------------------------

class TempFile {
public:
    explicit TempFile(const std::string& content) {
        char tmpl[] = "/tmp/vdh_config_test_XXXXXX";
        UniqueFd fd(::mkstemp(tmpl));
        EXPECT_TRUE(fd.valid());
        path_ = tmpl;
        EXPECT_EQ(::write(fd.get(), content.data(), content.size()),
                  static_cast<ssize_t>(content.size()));
    }
    ~TempFile() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST(LoadConfig, ReadsFileAndReportsItsPath) {
    TempFile f(one_device("", "    config:\n      delay_us: 5\n"));
    ConfigError err;
    auto cfg = load_config(f.path(), kCpus, &err);
    ASSERT_TRUE(cfg.has_value()) << err.message;
    EXPECT_EQ(cfg->path, f.path());
    EXPECT_EQ(cfg->devices[0].config_text, std::string(8, ' ') + "\n" + std::string(13, ' ') +
                                               "\n" + std::string(18, ' ') + "\n" +
                                               std::string(25, ' ') + "\n" + std::string(11, ' ') +
                                               "\n" + "      delay_us: 5\n");

    TempFile bad(one_device("", "    lcore: 9\n"));
    EXPECT_FALSE(load_config(bad.path(), kCpus, &err).has_value());
    EXPECT_EQ(err.message, bad.path() + ":5:12: devices[0].lcore: CPU 9 is not in "
                                        "host.poll_lcores [3]");
}

TEST(LoadConfig, UnreadableFile) {
    ConfigError err;
    EXPECT_FALSE(load_config("/nonexistent/vdh.yaml", kCpus, &err).has_value());
    EXPECT_EQ(err.message, "/nonexistent/vdh.yaml: cannot read: No such file or directory");
    EXPECT_FALSE(load_config("/tmp", kCpus, &err).has_value());
    EXPECT_EQ(err.message, "/tmp: cannot read: Is a directory");
}

/// A file of the source tree. __FILE__ is relative to the build root when meson compiles.
std::string source_path(const std::string& rel) {
    std::filesystem::path f = __FILE__;
    if (f.is_relative()) {
        f = std::filesystem::path(VDH_BUILD_PLUGIN_DIR).parent_path() / f;
    }
    return (f.parent_path() / "../.." / rel).lexically_normal().string();
}

TEST(LoadConfig, ShippedConfigsAreValid) {
    ConfigError err;
    auto def = load_config(source_path("configs/default.yaml"), 2, &err);
    ASSERT_TRUE(def.has_value()) << err.message;
    ASSERT_EQ(def->devices.size(), 1u);
    EXPECT_EQ(def->devices[0].type, "virtiofs");
    EXPECT_EQ(def->devices[0].socket, "/run/vdhost/fs0.sock");
    EXPECT_EQ(def->devices[0].lcores, std::vector<unsigned>{1});
    EXPECT_EQ(def->host.control_socket, "/run/vdhost/vdhost.ctl");
    YAML::Node fs = YAML::Load(def->devices[0].config_text);
    EXPECT_EQ(fs["shared_dir"].as<std::string>(), "/tmp/vdhost/share");
    EXPECT_TRUE(fs["create"].as<bool>()); // a fresh machine has no /tmp/vdhost/share
    EXPECT_EQ(fs["tag"].as<std::string>(), "fs0");
    EXPECT_EQ(fs["cache"].as<std::string>(), "auto");

    auto echo = load_config(source_path("configs/echo.yaml"), 2, &err);
    ASSERT_TRUE(echo.has_value()) << err.message;
    ASSERT_EQ(echo->devices.size(), 1u);
    EXPECT_EQ(echo->devices[0].type, "echo");
    YAML::Node e = YAML::Load(echo->devices[0].config_text);
    EXPECT_EQ(e["delay_us"].as<unsigned>(), 0u);
    EXPECT_EQ(e["fail_every"].as<unsigned>(), 0u);
}

TEST(DeviceError, UsesDevicePositionAndTypePosition) {
    Config cfg = parse_ok("devices:\n"
                          "  - {name: a, type: echo, socket: /tmp/a}\n"
                          "  - name: b\n"
                          "    socket: /tmp/b\n"
                          "    type:   nosuch\n");
    EXPECT_EQ(device_error(cfg, cfg.devices[1], "type", "no plugin \"nosuch\""),
              "t.yaml:5:13: devices[1].type: no plugin \"nosuch\"");
    EXPECT_EQ(device_error(cfg, cfg.devices[1], "", "cannot start"),
              "t.yaml:3:5: devices[1]: cannot start");
    EXPECT_EQ(device_error(cfg, cfg.devices[0], "socket", "in use"),
              "t.yaml:2:5: devices[0].socket: in use");
}

// ---- config_text --------------------------------------------------------------------------

/// Checks \p node and \p other have the same content and positions.
void expect_same_tree(const YAML::Node& a, const YAML::Node& b, const std::string& where) {
    ASSERT_EQ(a.Type(), b.Type()) << where;
    EXPECT_EQ(a.Tag(), b.Tag()) << where;
    if (!a.IsNull()) {
        EXPECT_EQ(a.Mark().line, b.Mark().line) << where;
        EXPECT_EQ(a.Mark().column, b.Mark().column) << where;
    }
    if (a.IsScalar()) {
        EXPECT_EQ(a.Scalar(), b.Scalar()) << where;
    } else if (a.IsSequence()) {
        ASSERT_EQ(a.size(), b.size()) << where;
        for (size_t i = 0; i < a.size(); ++i) {
            expect_same_tree(a[i], b[i], where + "[" + std::to_string(i) + "]");
        }
    } else if (a.IsMap()) {
        ASSERT_EQ(a.size(), b.size()) << where;
        auto ia = a.begin();
        auto ib = b.begin();
        for (; ia != a.end(); ++ia, ++ib) {
            expect_same_tree(ia->first, ib->first, where + ".key");
            expect_same_tree(ia->second, ib->second, where + "." + ia->first.Scalar());
        }
    }
}

/// \p text with the (unique) \p region in place: spaces before it (line breaks kept), and
/// after it only the line break ending its last line.
std::string blanked(const std::string& text, const std::string& region) {
    size_t at = text.find(region);
    EXPECT_NE(at, std::string::npos) << region;
    EXPECT_EQ(text.find(region, at + 1), std::string::npos) << "region not unique: " << region;
    std::string out;
    for (size_t i = 0; i < at; ++i) {
        out += text[i] == '\n' || (text[i] == '\r' && text[i + 1] == '\n') ? text[i] : ' ';
    }
    out += region;
    if (!region.empty() && region.back() == '\n') {
        return out;
    }
    size_t eol = text.find('\n', at + region.size());
    if (eol != std::string::npos) {
        out += (text[eol - 1] == '\r' && region.back() != '\r') ? "\r\n" : "\n";
    }
    return out;
}

/// Parses \p text, checks device \p index's config_text is exactly \p region of it with
/// the rest blanked, and that parsing config_text gives the original node, positions too.
void expect_config_text(const std::string& text, size_t index, const std::string& region) {
    SCOPED_TRACE(text);
    Config cfg = parse_ok(text);
    ASSERT_GT(cfg.devices.size(), index);
    const std::string& got = cfg.devices[index].config_text;
    EXPECT_EQ(got, blanked(text, region));
    YAML::Node original = YAML::Load(text)["devices"][index]["config"];
    YAML::Node reparsed = YAML::Load(got);
    expect_same_tree(original, reparsed, "config");
}

TEST(ConfigText, EmptyWithoutConfigKey) {
    EXPECT_EQ(parse_ok(one_device("", "")).devices[0].config_text, "");
    EXPECT_EQ(parse_ok(one_device("", "    config:\n    lcore: 3\n")).devices[0].config_text, "");
    EXPECT_EQ(parse_ok(one_device("", "    config:\n")).devices[0].config_text, "");
}

TEST(ConfigText, BlockMapping) {
    expect_config_text(one_device("", "    config:\n"
                                      "      shared_dir: /srv/share\n"
                                      "      cache: auto\n"
                                      "    lcore: 3\n"),
                       0, "shared_dir: /srv/share\n      cache: auto");
}

TEST(ConfigText, FlowMapping) {
    expect_config_text(one_device("", "    config: {shared_dir: /srv, tag: \"a, }\", x: ['#]']}"
                                      "  # comment\n"
                                      "    queue_size_max: 256\n"),
                       0, "{shared_dir: /srv, tag: \"a, }\", x: ['#]']}");
}

TEST(ConfigText, FlowMappingOverSeveralLines) {
    expect_config_text(one_device("", "    config: {a: 1,\n"
                                      "    b: [2,\n"
                                      "  3]}\n"
                                      "    lcore: 3\n"),
                       0, "{a: 1,\n    b: [2,\n  3]}");
}

TEST(ConfigText, CompactSequence) {
    expect_config_text(one_device("", "    config:\n"
                                      "    - a\n"
                                      "    - b: 1\n"
                                      "      c: 2\n"
                                      "    -\n"
                                      "    queue_size_max: 64\n"),
                       0, "- a\n    - b: 1\n      c: 2\n    -");
}

TEST(ConfigText, IndentedSequence) {
    expect_config_text(one_device("", "    config:\n"
                                      "      - x\n"
                                      "      - y\n"),
                       0, "- x\n      - y");
}

TEST(ConfigText, NestedMaps) {
    expect_config_text(one_device("", "    config:\n"
                                      "      a:\n"
                                      "        b:\n"
                                      "          c: 1\n"
                                      "\n"
                                      "          d: [1, 2]\n"
                                      "        e: {f: g}\n"
                                      "      h: 'single ''quoted'''\n"
                                      "  - name: fs1\n"
                                      "    type: virtiofs\n"
                                      "    socket: /tmp/fs1.sock\n"),
                       0,
                       "a:\n        b:\n          c: 1\n\n          d: [1, 2]\n        e: {f: g}\n"
                       "      h: 'single ''quoted'''");
}

TEST(ConfigText, ConfigFollowedByMoreKeysAndDevices) {
    std::string text = "devices:\n"
                       "  - name: a\n"
                       "    config:\n"
                       "      k: 1\n"
                       "    type: echo\n"
                       "    socket: /tmp/a\n"
                       "  - config:\n"
                       "      k: 2\n"
                       "    name: b\n"
                       "    type: echo\n"
                       "    socket: /tmp/b\n"
                       "host:\n"
                       "  log_level: debug\n";
    expect_config_text(text, 0, "k: 1");
    expect_config_text(text, 1, "k: 2");
}

TEST(ConfigText, ConfigIsLastKeyInFile) {
    expect_config_text(one_device("", "    config:\n      delay_us: 10\n      fail_every: 3\n"), 0,
                       "delay_us: 10\n      fail_every: 3");
    // No final newline.
    expect_config_text(one_device("", "    config:\n      delay_us: 10"), 0, "delay_us: 10");
}

TEST(ConfigText, CommentsInsideAndAfterTheBlock) {
    expect_config_text(one_device("", "    config:    # about config\n"
                                      "      # leading\n"
                                      "      a: 1   # trailing on a\n"
                                      "  # inside, less indented\n"
                                      "      b: \"#x\"  # trailing on b\n"
                                      "      # after, indented\n"
                                      "    # after, at key indentation\n"
                                      "\n"
                                      "    lcore: 3\n"),
                       0, "a: 1   # trailing on a\n  # inside, less indented\n      b: \"#x\"");
}

TEST(ConfigText, BlockScalarKeepsHashLines) {
    expect_config_text(one_device("", "    config: |\n"
                                      "      run\n"
                                      "      # part of the text\n"
                                      "    lcore: 3\n"),
                       0, "|\n      run\n      # part of the text");
    expect_config_text(one_device("", "    config:\n"
                                      "      script: >\n"
                                      "        one\n"
                                      "        # two\n"
                                      "      # a comment\n"
                                      "    lcore: 3\n"),
                       0, "script: >\n        one\n        # two");
}

TEST(ConfigText, BlockScalarEndingTheBlockBeforeLongLines) {
    // The lines after the node must not become space-only lines inside the scalar.
    expect_config_text(one_device("", "    config:\n"
                                      "      script: |\n"
                                      "        echo hi\n"
                                      "    queue_size_max: 1024\n"
                                      "  - name: fs1\n"
                                      "    type: virtiofs\n"
                                      "    socket: /tmp/a-rather-long-socket-path.sock\n"),
                       0, "script: |\n        echo hi");
    expect_config_text(one_device("", "    config: |+\n"
                                      "      kept\n"
                                      "\n"
                                      "\n"
                                      "    lcore: 3\n"),
                       0, "|+\n      kept\n\n\n");
}

TEST(ConfigText, AliasInsideTheBlock) {
    expect_config_text(one_device("", "    config:\n"
                                      "      a: &x {k: v}\n"
                                      "      b: *x\n"),
                       0, "a: &x {k: v}\n      b: *x");
}

TEST(ConfigText, CrLfLineBreaks) {
    expect_config_text("devices:\r\n"
                       "  - name: a\r\n"
                       "    config:\r\n"
                       "      x: 1\r\n"
                       "      y: [2]\r\n"
                       "    type: echo\r\n"
                       "    socket: /tmp/a\r\n",
                       0, "x: 1\r\n      y: [2]\r");
}

TEST(ConfigText, ScalarsAndPropertiesAndNull) {
    expect_config_text(one_device("", "    config: plain words   # c\n"), 0, "plain words");
    expect_config_text(one_device("", "    config: \"quoted\n      two lines\"\n    lcore: 3\n"), 0,
                       "\"quoted\n      two lines\"");
    expect_config_text(one_device("", "    config: &cfg !mytag\n      x: 1\n"), 0,
                       "&cfg !mytag\n      x: 1");
    expect_config_text(one_device("", "    config: ~\n"), 0, "~");
}

TEST(ConfigText, FlowDeviceEntry) {
    std::string text = "devices: [{name: a, type: echo, socket: /tmp/a, config: {delay_us: 5}},\n"
                       "          {name: b, type: echo, config: word, socket: /tmp/b}]\n";
    expect_config_text(text, 0, "{delay_us: 5}");
    expect_config_text(text, 1, "word");
}

// ---- host.sandbox / host.seccomp ---------------------------------------------------------

TEST(ConfigSandbox, DefaultsAreNamespaceAndKill) {
    Config cfg = parse_ok(one_device("", ""));
    EXPECT_EQ(cfg.host.sandbox, SandboxMode::Namespace);
    EXPECT_EQ(cfg.host.seccomp, SeccompMode::Kill);
}

TEST(ConfigSandbox, ParsesEveryValue) {
    const std::pair<const char*, SandboxMode> modes[] = {{"namespace", SandboxMode::Namespace},
                                                         {"chroot", SandboxMode::Chroot},
                                                         {"none", SandboxMode::None}};
    for (const auto& [text, mode] : modes) {
        Config cfg = parse_ok(one_device(std::string("host:\n  sandbox: ") + text + "\n", ""));
        EXPECT_EQ(cfg.host.sandbox, mode) << text;
    }
    const std::pair<const char*, SeccompMode> filters[] = {
        {"kill", SeccompMode::Kill}, {"log", SeccompMode::Log}, {"none", SeccompMode::None}};
    for (const auto& [text, mode] : filters) {
        Config cfg = parse_ok(one_device(std::string("host:\n  seccomp: ") + text + "\n", ""));
        EXPECT_EQ(cfg.host.seccomp, mode) << text;
    }
}

TEST(ConfigSandbox, RejectsUnknownValuesWithPosition) {
    EXPECT_EQ(parse_err(one_device("host:\n  sandbox: jail\n", "")),
              "t.yaml:2:12: host.sandbox: expected one of namespace, chroot, none, got \"jail\"");
    EXPECT_EQ(parse_err(one_device("host:\n  log_level: info\n  seccomp: trap\n", "")),
              "t.yaml:3:12: host.seccomp: expected one of kill, log, none, got \"trap\"");
}

TEST(ConfigSandbox, RejectsNonScalarsAndDuplicates) {
    EXPECT_NE(parse_err(one_device("host:\n  sandbox: [none]\n", ""))
                  .find("t.yaml:2:12: host.sandbox:"),
              std::string::npos);
    EXPECT_EQ(parse_err(one_device("host: {seccomp: log, seccomp: none}\n", "")),
              "t.yaml:1:22: host.seccomp: duplicate key (first at line 1)");
}

} // namespace
} // namespace vdh
