// SPDX-License-Identifier: MIT
// Tests of vdhostctl's output (tools/vdhostctl/ctl_format.cc): the control socket's JSON as
// tables, and the device YAML built from flags.
#include "ctl_format.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace vdh::ctl {
namespace {

TEST(CtlFormat, ListIsATableWithOneRowPerDevice) {
    std::string json = R"({"devices":[{"name":"fs0","type":"virtiofs","socket":"/run/vdhost/fs0.sock",)"
                       R"("state":"running","connected":true,"lcores":[1],"origin":"config"},)"
                       R"({"name":"e1","type":"echo","socket":"/run/vdhost/e1.sock","state":"idle",)"
                       R"("connected":false,"lcores":[0,1],"origin":"control"}]})";
    EXPECT_EQ(format_list(json),
              "NAME  TYPE      STATE    GUEST  LCORES  ORIGIN   SOCKET\n"
              "fs0   virtiofs  running  yes    1       config   /run/vdhost/fs0.sock\n"
              "e1    echo      idle     no     0,1     control  /run/vdhost/e1.sock\n");
    EXPECT_EQ(format_list(R"({"devices":[]})"),
              "NAME  TYPE  STATE  GUEST  LCORES  ORIGIN  SOCKET\n");
}

TEST(CtlFormat, StatsSumsQueuesPerDeviceAndFiltersByName) {
    std::string json =
        R"({"version":"0.1","pid":1,"lcores":[{"lcore":1,"cpu":1,"loops":10,"sleeps":2}],)"
        R"("devices":[{"name":"fs0","state":"running","sessions":3,"stuck_requests":0,"queues":[)"
        R"({"index":0,"cpu":1,"requests":5,"batches":2,"inflight":0,"bad_chains":0,"kicks":1,)"
        R"("notifies":1,"errors":1,"bytes_in":1024,"bytes_out":0},)"
        R"({"index":1,"cpu":1,"requests":7,"batches":3,"inflight":1,"bad_chains":0,"kicks":2,)"
        R"("notifies":2,"errors":0,"bytes_in":1048576,"bytes_out":2048}]},)"
        R"({"name":"e1","state":"idle","sessions":0,"stuck_requests":0,"queues":[]}]})";
    std::string all = format_stats(json, "");
    EXPECT_NE(all.find("fs0     running  3         12        1       1.0 MiB  2.0 KiB  0\n"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("LCORE  CPU  LOOPS  SLEEPS\n1      1    10     2\n"), std::string::npos)
        << all;
    std::string one = format_stats(json, "e1");
    EXPECT_EQ(one.find("fs0"), std::string::npos) << one;
    EXPECT_NE(one.find("e1"), std::string::npos) << one;
    EXPECT_THROW(format_stats(json, "nosuch"), std::runtime_error);
}

TEST(CtlFormat, ReloadSaysWhatChangedAndWhatWasRefused) {
    std::string ok = R"({"added":["fs2"],"removed":[],"replaced":["e3"],"qos_changed":[],)"
                     R"("unchanged":1,"refused":[]})";
    EXPECT_EQ(format_reload(ok),
              "added: fs2\nremoved: -\nreplaced: e3\nqos_changed: -\nunchanged: 1\n");
    EXPECT_FALSE(reload_incomplete(ok));
    std::string refused = R"({"added":[],"removed":[],"replaced":[],"qos_changed":[],)"
                          R"("unchanged":1,"refused":["host.idle_poll_us: cannot change"]})";
    EXPECT_NE(format_reload(refused).find("refused: host.idle_poll_us: cannot change\n"),
              std::string::npos);
    EXPECT_TRUE(reload_incomplete(refused));
    EXPECT_TRUE(reload_incomplete(R"({"error":"x.yaml:1:1: bad"})"));
    EXPECT_EQ(reply_error(R"({"error":"no device named \"x\""})"), "no device named \"x\"");
    EXPECT_EQ(reply_error(R"({"pong":true})"), "");
    EXPECT_THROW(format_list("{not json"), std::runtime_error);
}

TEST(CtlFormat, DeviceYamlFromFlagsKeepsValueTypes) {
    std::string y = device_yaml("fs1", "virtiofs", "/run/vdhost/fs1.sock", "1",
                                {"shared_dir=/srv/vm1", "xattr=true", "fd_limit=4096"});
    EXPECT_EQ(y, "name: fs1\ntype: virtiofs\nsocket: /run/vdhost/fs1.sock\nlcore: 1\nconfig:\n"
                 "  shared_dir: /srv/vm1\n  xattr: true\n  fd_limit: 4096\n");
    EXPECT_THROW(device_yaml("a", "echo", "/s", "", {"novalue"}), std::runtime_error);
}

} // namespace
} // namespace vdh::ctl
