// SPDX-License-Identifier: MIT
// The commands of the control socket, run against the Runtime:
//   ping                    {"pong":true}
//   stats                   every lcore's and device's counters (Runtime::stats_json)
//   list                    the devices, their state and origin (Runtime::list_json)
//   add [ORIGIN] <<N        adds the device described by the YAML body (the keys of one
//                           `devices:` entry); errors name ORIGIN:line:column and the key
//   remove NAME             removes a device; a connected guest's session is ended
//   reload                  re-reads the config file and applies the difference
//   qos NAME [iops=N] [bandwidth=RATE] [burst_ms=N]   shows or changes a device's limits
// Every reply is one JSON object; a failure is {"error":"..."}.
#pragma once

#include <string>

namespace vdh {

class Runtime;

/// Runs one control request (\p line is the command line, \p body its body, if any).
std::string run_control_command(Runtime& rt, const std::string& line, const std::string& body);

} // namespace vdh
