// SPDX-License-Identifier: MIT
// vdhostctl: the operator's command line over vdhost's control socket — list, add,
// remove, stats, reload. Tables by default, the server's JSON with --json.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "control_client.h"
#include "ctl_format.h"

namespace po = boost::program_options;

namespace {

constexpr const char* kDefaultSocket = "/run/vdhost/vdhost.ctl";

constexpr const char* kUsage =
    "vdhostctl: controls a running vdhost through its control socket.\n\n"
    "Usage: vdhostctl [--socket PATH] [--json] COMMAND [ARGS]\n\n"
    "Commands:\n"
    "  list                  the devices: state, guest connected, lcores, origin, socket\n"
    "  stats [NAME]          counters of every device (or one), its queues and the lcores\n"
    "  add FILE|-            adds the device described in FILE (or stdin): the keys of one\n"
    "                        `devices:` entry of vdhost's YAML\n"
    "  add --name N --type T --socket PATH [--lcore CPU] [--set KEY=VALUE]...\n"
    "                        adds a device from flags; --set gives its plugin's settings\n"
    "  remove NAME           removes a device; a connected guest's session ends\n"
    "  qos NAME [iops=N] [bandwidth=RATE] [burst_ms=N]\n"
    "                        shows or changes a device's rate limits (0 lifts a limit)\n"
    "  reload                re-reads vdhost's YAML file and applies the difference\n"
    "                        (as SIGHUP does); exits 2 when a change was refused\n"
    "  ping                  checks that vdhost answers\n\n"
    "The socket is host.control_socket of vdhost's config (default: $VDHOST_CONTROL_SOCKET,\n"
    "else /run/vdhost/vdhost.ctl).\n\nOptions";

std::string read_all(std::istream& in) {
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

int run(int argc, char** argv) {
    std::string socket;
    bool json = false;
    std::string name, type, dev_socket, lcore;
    std::vector<std::string> settings;
    std::vector<std::string> args;
    po::options_description opts(kUsage);
    opts.add_options()
        ("help,h", "print this help and exit")
        ("socket,s", po::value<std::string>(&socket), "the control socket")
        ("json", po::bool_switch(&json), "print the server's JSON reply")
        ("name", po::value<std::string>(&name), "add: the device name")
        ("type", po::value<std::string>(&type), "add: the plugin type (e.g. virtiofs)")
        ("socket-path", po::value<std::string>(&dev_socket), "add: the vhost-user socket")
        ("lcore", po::value<std::string>(&lcore), "add: the poll lcore CPU, or a list [a, b]")
        ("set", po::value<std::vector<std::string>>(&settings), "add: a plugin setting KEY=VALUE (repeatable)");
    po::options_description hidden;
    hidden.add_options()("args", po::value<std::vector<std::string>>(&args));
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description pos;
    pos.add("args", -1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help") || args.empty()) {
        std::cout << opts << "\n";
        return args.empty() && !vm.count("help") ? 1 : 0;
    }
    if (socket.empty()) {
        const char* env = std::getenv("VDHOST_CONTROL_SOCKET");
        socket = env != nullptr && *env ? env : kDefaultSocket;
    }
    const std::string& cmd = args[0];
    std::string line = cmd;
    std::string body;
    if (cmd == "add") {
        if (args.size() == 2) {
            if (args[1] == "-") {
                body = read_all(std::cin);
                line = "add stdin";
            } else {
                std::ifstream f(args[1]);
                if (!f) {
                    throw std::runtime_error("cannot read " + args[1]);
                }
                body = read_all(f);
                line = "add " + args[1];
            }
        } else if (args.size() == 1) {
            if (name.empty() || type.empty() || dev_socket.empty()) {
                throw std::runtime_error("add: give FILE, or --name, --type and --socket-path");
            }
            body = vdh::ctl::device_yaml(name, type, dev_socket, lcore, settings);
            line = "add flags";
        } else {
            throw std::runtime_error("usage: vdhostctl add FILE|- (or flags)");
        }
        if (body.empty()) {
            throw std::runtime_error("add: empty device description");
        }
    } else if (cmd == "remove") {
        if (args.size() != 2) {
            throw std::runtime_error("usage: vdhostctl remove NAME");
        }
        line = "remove " + args[1];
    } else if (cmd == "qos") {
        if (args.size() < 2) {
            throw std::runtime_error("usage: vdhostctl qos NAME [iops=N] [bandwidth=RATE] [burst_ms=N]");
        }
        for (size_t i = 1; i < args.size(); ++i) {
            line += " " + args[i];
        }
    } else if (cmd == "stats") {
        if (args.size() > 2) {
            throw std::runtime_error("usage: vdhostctl stats [NAME]");
        }
    } else if (cmd == "list" || cmd == "reload" || cmd == "ping") {
        if (args.size() != 1) {
            throw std::runtime_error("usage: vdhostctl " + cmd);
        }
    } else {
        throw std::runtime_error("unknown command \"" + cmd + "\" (see vdhostctl --help)");
    }

    std::string reply, err;
    if (!vdh::control_request(socket, line, &reply, &err, body)) {
        throw std::runtime_error(socket + ": " + err);
    }
    while (!reply.empty() && reply.back() == '\n') {
        reply.pop_back();
    }
    if (reply.empty()) {
        throw std::runtime_error(socket + ": no reply (is the server busy with too many clients?)");
    }
    std::string error = vdh::ctl::reply_error(reply);
    if (json) {
        std::cout << reply << "\n";
    } else if (!error.empty() && cmd != "reload") {
        // printed below
    } else if (cmd == "list") {
        std::cout << vdh::ctl::format_list(reply);
    } else if (cmd == "stats") {
        std::cout << vdh::ctl::format_stats(reply, args.size() == 2 ? args[1] : "");
    } else if (cmd == "reload") {
        std::cout << vdh::ctl::format_reload(reply);
    } else if (cmd == "add") {
        std::cout << "added\n";
    } else if (cmd == "remove") {
        std::cout << "removed " << args[1] << "\n";
    } else if (cmd == "qos") {
        std::cout << reply << "\n";
    } else {
        std::cout << "ok\n";
    }
    if (cmd == "reload") {
        return vdh::ctl::reload_incomplete(reply) ? 2 : 0;
    }
    if (!error.empty()) {
        if (!json) {
            std::fprintf(stderr, "vdhostctl: %s\n", error.c_str());
        }
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vdhostctl: %s\n", e.what());
        return 1;
    }
}
