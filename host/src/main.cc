// SPDX-License-Identifier: MIT
// vdhost entry point: command line, config validation, EAL and lcores, plugins and
// devices, vhost-user sockets, then wait for SIGINT/SIGTERM and shut down in reverse.
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <boost/program_options.hpp>

#include "config.h"
#include "control_commands.h"
#include "control_client.h"
#include "control_socket.h"
#include "device.h"
#include "eal.h"
#include "fd_budget.h"
#include "host_api.h"
#include "log.h"
#include "plugin_loader.h"
#include "runtime.h"
#include "poll_lcore.h"
#include "privileges.h"
#include "qos_command.h"
#include "sandbox.h"
#include "sd_notify.h"
#include "seccomp_filter.h"
#include "socket_dir.h"
#include "telemetry.h"
#include "vdh_build_config.h"
#include "vhost_user_transport.h"

namespace po = boost::program_options;

namespace vdh {
namespace {

struct Options {
    std::string config;
    bool check_only = false;
    std::string log_level;
    std::string plugin_dir;
    std::vector<std::string> eal;
    std::string stats_socket;
};

std::vector<std::string> plugin_dirs(const Options& o, const Config& cfg) {
    std::vector<std::string> dirs;
    if (!o.plugin_dir.empty()) {
        dirs.push_back(o.plugin_dir);
    } else if (!cfg.host.plugin_dir.empty()) {
        dirs.push_back(cfg.host.plugin_dir);
    } else {
        dirs.push_back(VDH_PLUGIN_DIR);
        dirs.push_back(VDH_BUILD_PLUGIN_DIR);
    }
    return dirs;
}

/// Finds DIR/vdh-TYPE.so or DIR/TYPE/vdh-TYPE.so (the build tree's layout).
std::string find_plugin(const std::vector<std::string>& dirs, const std::string& type) {
    for (const auto& d : dirs) {
        for (const std::string& p : {plugin_file(d, type), plugin_file(d + "/" + type, type)}) {
            if (access(p.c_str(), R_OK) == 0) {
                return p;
            }
        }
    }
    return "";
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) {
        s += (i ? sep : "") + v[i];
    }
    return s;
}

// ---- socket directories (socket_dir.h) ----
/// The directory of one or more vhost-user or control sockets.
struct SocketDir {
    std::string path;          ///< parent_dir() of the sockets
    const DeviceConfig* first; ///< the first device with a socket here (nullptr: control only)
    const DeviceConfig* group; ///< the first device here with a socket_group (nullptr: none)
};

/// The directories of every device socket and of the control socket, each once, in config
/// order: secured before the sandbox (secure_socket_dirs) and bound into it.
std::vector<SocketDir> socket_dirs(const Config& cfg) {
    std::vector<SocketDir> dirs;
    auto add = [&](const std::string& socket, const DeviceConfig* d) {
        std::string path = parent_dir(socket);
        const DeviceConfig* g = d != nullptr && d->has_socket_group ? d : nullptr;
        for (SocketDir& sd : dirs) {
            if (sd.path == path) {
                sd.group = sd.group != nullptr ? sd.group : g;
                return;
            }
        }
        dirs.push_back(SocketDir{path, d, g});
    };
    for (const DeviceConfig& d : cfg.devices) {
        if (d.socket_fd < 0) { // an inherited socket (socket_fd) needs no directory
            add(d.socket, &d);
        }
    }
    if (!cfg.host.control_socket.empty()) {
        add(cfg.host.control_socket, nullptr);
    }
    if (std::string m = metrics_socket_path(cfg.host); !m.empty()) {
        add(m, nullptr); // telemetry: the Prometheus endpoint's UNIX socket
    }
    return dirs;
}

/// Secures every socket directory (created 0700, or refused when someone else could write
/// it). A directory is given the group of the first device in it that has a socket_group.
bool secure_socket_dirs(const std::vector<SocketDir>& dirs, std::string* err) {
    for (const SocketDir& sd : dirs) {
        bool group = sd.group != nullptr;
        if (!secure_socket_dir(sd.path, group, group ? sd.group->socket_gid : 0, err)) {
            return false;
        }
    }
    return true;
}

/// Adds every directory the sandbox must hold: each device's host directories (the
/// plugin's host_paths()), and the socket directories (created and checked before, by
/// secure_socket_dirs()).
bool build_sandbox_plan(const Config& cfg,
                        const std::map<std::string, std::unique_ptr<Plugin>>& plugins,
                        const std::vector<SocketDir>& sockets, SandboxPlan* plan,
                        std::string* err) {
    for (const DeviceConfig& d : cfg.devices) {
        std::vector<HostPath> paths;
        if (!plugin_host_paths(*plugins.at(d.type), d, &paths, err)) {
            return false;
        }
        for (const HostPath& hp : paths) {
            if (!plan->add_share(hp.path, hp.writable, err)) {
                *err = device_error(cfg, d, "config", *err);
                return false;
            }
        }
    }
    for (const std::string& root : cfg.host.share_roots) {
        if (!plan->add_share(root, true, err)) {
            *err = cfg.path + ": host.share_roots: " + *err;
            return false;
        }
    }
    for (const SocketDir& sd : sockets) {
        if (!plan->add_socket_dir(sd.path, err)) {
            *err = sd.first != nullptr ? device_error(cfg, *sd.first, "socket", *err)
                                       : cfg.path + ": host.control_socket: " + *err;
            return false;
        }
    }
    return true;
}

/// Loads, besides the plugins the config names, every other plugin found in \p dirs, so
/// that a device of any installed type can be added while running (inside the sandbox
/// the plugin directory is out of reach). A plugin that fails to load is skipped with a
/// warning unless the config uses it.
void load_other_plugins(const std::vector<std::string>& dirs,
                        std::map<std::string, std::unique_ptr<Plugin>>* plugins) {
    std::vector<std::string> types;
    for (const std::string& d : dirs) {
        DIR* dir = opendir(d.c_str());
        if (dir == nullptr) {
            continue;
        }
        while (dirent* e = readdir(dir)) {
            std::string n = e->d_name;
            if (n.size() > 7 && n.compare(0, 4, "vdh-") == 0 &&
                n.compare(n.size() - 3, 3, ".so") == 0) {
                types.push_back(n.substr(4, n.size() - 7));
            } else if (n[0] != '.' && e->d_type == DT_DIR) {
                types.push_back(n); // the build tree: DIR/TYPE/vdh-TYPE.so
            }
        }
        closedir(dir);
    }
    for (const std::string& t : types) {
        if (plugins->count(t) != 0) {
            continue;
        }
        std::string path = find_plugin(dirs, t);
        if (path.empty()) {
            continue;
        }
        std::string err;
        auto p = load_plugin(path, &err);
        if (!p) {
            VDH_WARN("host", "plugin %s not loaded: %s", path.c_str(), err.c_str());
            continue;
        }
        (*plugins)[t] = std::move(p);
    }
}

int run(const Options& o) {
    unsigned cpus = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN));
    ConfigError cerr;
    auto cfg = load_config(o.config, cpus, &cerr);
    if (!cfg) {
        print_error("%s\n", cerr.message.c_str());
        return 1;
    }
    int level = parse_log_level(o.log_level.empty() ? cfg->host.log_level : o.log_level);
    if (level < 0) {
        print_error("--log-level: unknown level \"%s\" (expected err, warning, notice, "
                             "info or debug)\n", o.log_level.c_str());
        return 1;
    }
    set_log_level(level);

    // Plugins: load each type once; check every device's config block.
    auto dirs = plugin_dirs(o, *cfg);
    std::map<std::string, std::unique_ptr<Plugin>> plugins;
    for (const DeviceConfig& d : cfg->devices) {
        if (plugins.count(d.type) == 0) {
            std::string path = find_plugin(dirs, d.type);
            if (path.empty()) {
                print_error("%s\n",
                             device_error(*cfg, d, "type",
                                          "no plugin \"" + d.type + "\" (looked for vdh-" +
                                              d.type + ".so in " + join(dirs, ", ") + ")")
                                 .c_str());
                return 1;
            }
            std::string err;
            auto p = load_plugin(path, &err);
            if (!p) {
                print_error("%s\n", device_error(*cfg, d, "type", err).c_str());
                return 1;
            }
            plugins[d.type] = std::move(p);
        }
        std::string err;
        if (!plugin_check_config(*plugins[d.type], d, &err)) {
            print_error("%s\n", err.c_str());
            return 1;
        }
    }
    if (!o.check_only) {
        load_other_plugins(dirs, &plugins);
    }
    // ---- fd budget (fd_budget.h): the host's reserve plus every plugin's reserve_fds() must
    // fit in RLIMIT_NOFILE: the hard limit, or fs.nr_open when we may raise the hard limit.
    NofileLimits nofile = read_nofile_limits();
    bool can_raise_nofile = has_cap_sys_resource();
    FdBudget fd_budget(can_raise_nofile ? nofile.nr_open : nofile.hard,
                       // Each device reserves its own host fds when it is created.
                       host_fd_reserve(0, cfg->host.poll_lcores.size()));
    for (const auto& [type, p] : plugins) {
        if (p->info->abi_minor < 1) {
            VDH_NOTICE("host", "plugin %s (ABI %u.%u) reserves no fds: its fds are not "
                       "accounted", type.c_str(), p->info->abi_major, p->info->abi_minor);
        }
    }
    if (o.check_only) {
        // Create each device, serving nothing, so that its plugin reserves its fds.
        std::vector<std::unique_ptr<Device>> trial;
        for (const DeviceConfig& d : cfg->devices) {
            auto dev =
                std::make_unique<Device>(d, plugins[d.type].get(), std::vector<PollLcore*>{});
            dev->set_fd_budget(&fd_budget);
            std::string err;
            if (!dev->create(host_api(/*check_only=*/true), cfg->path, &err)) {
                print_error("%s\n", err.c_str());
                return 1;
            }
            trial.push_back(std::move(dev));
        }
        trial.clear();
        std::printf("%s: OK (%zu device%s; %llu fds needed of %llu)\n", cfg->path.c_str(),
                    cfg->devices.size(), cfg->devices.size() == 1 ? "" : "s",
                    static_cast<unsigned long long>(fd_budget.needed()),
                    static_cast<unsigned long long>(fd_budget.limit()));
        return 0;
    }

    // ---- credentials and socket directories, before any thread exists ----
    const std::vector<SocketDir> sock_dirs = socket_dirs(*cfg);
    {
        std::string err;
        if (!drop_supplementary_groups(&err) || !secure_socket_dirs(sock_dirs, &err) ||
            !set_nofile_limit(nofile.hard, &err)) {
            VDH_ERR("host", "%s", err.c_str());
            return 1;
        }
    }
    // systemd readiness (sd_notify.h): $NOTIFY_SOCKET is connected before the sandbox hides it.
    const SdNotifier notify = sd_notifier_from_environment();

    // Signals are taken by sigwait in main; every thread created from here inherits the mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    std::string err;
    // The sandbox: entered before EAL starts any thread (mount namespace, root and
    // capabilities are per thread until then), after everything that needs the host view.
    // Reload reads the config file again from inside the sandbox, through its directory;
    // group names of devices added later resolve from what /etc/group says now.
    UniqueFd config_dir;
    {
        size_t slash = cfg->path.rfind('/');
        std::string dir = slash == std::string::npos ? "." : cfg->path.substr(0, slash + 1);
        if (auto d = UniqueFd::from_syscall(
                ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC))) {
            config_dir = std::move(*d);
        }
        remember_groups();
    }
    std::vector<SandboxDir> sandbox_dirs;
    {
        SandboxPlan plan;
        if (cfg->host.sandbox != SandboxMode::None) {
            if (!build_sandbox_plan(*cfg, plugins, sock_dirs, &plan, &err) ||
                !add_telemetry_sandbox_dirs(cfg->host, &plan, &err) ||
                !enter_sandbox(cfg->host.sandbox, plan, &err) || !drop_privileges(&err)) {
                VDH_ERR("host", "%s", err.c_str());
                return 1;
            }
        }
        VDH_INFO("host", "sandbox: %s (%zu director%s), seccomp: %s",
                 to_string(cfg->host.sandbox), plan.dirs().size(),
                 plan.dirs().size() == 1 ? "y" : "ies", to_string(cfg->host.seccomp));
        sandbox_dirs = plan.dirs();
    }

    auto eal_args = build_eal_args(cfg->host, cpus, o.eal);
    VDH_DEBUG("host", "EAL arguments: %s", join(eal_args, " ").c_str());
    if (!eal_init(eal_args, &err)) {
        VDH_ERR("host", "%s", err.c_str());
        return 1;
    }

    std::map<unsigned, std::unique_ptr<PollLcore>> lcores; // by CPU
    unsigned lcore_id = 1;
    for (unsigned cpu : cfg->host.poll_lcores) {
        auto l = std::make_unique<PollLcore>(lcore_id++, cpu, cfg->host.idle_poll_us,
                                             cfg->host.max_sleep_ms, cfg->host.queue_slice_us);
        if (!l->init() || !rte_lcore_is_enabled(l->lcore_id())) {
            VDH_ERR("host", "cannot set up poll lcore for cpu %u", cpu);
            eal_cleanup();
            return 1;
        }
        lcores[cpu] = std::move(l);
    }
    mode_t old_umask = umask(0177);

    for (auto& [cpu, l] : lcores) {
        rte_eal_remote_launch(PollLcore::run_trampoline, l.get(), l->lcore_id());
    }
    auto stop_lcores = [&] {
        for (auto& [cpu, l] : lcores) {
            l->request_stop();
        }
        rte_eal_mp_wait_lcore();
    };

    Runtime::Setup setup;
    setup.config = *cfg;
    setup.plugins = &plugins;
    for (auto& [cpu, l] : lcores) {
        setup.lcores[cpu] = l.get();
    }
    setup.fd_budget = &fd_budget;
    setup.sandbox_dirs = sandbox_dirs;
    setup.online_cpus = cpus;
    setup.config_dir = std::move(config_dir);
    auto runtime = std::make_unique<Runtime>(std::move(setup));
    // ---- telemetry (telemetry.h): DPDK telemetry commands and the metrics endpoint; the
    // runtime reports each device to it as it is added and removed.
    Telemetry telemetry;
    bool stuck = false;
    auto fail = [&](const std::string& m) {
        umask(old_umask);
        VDH_ERR("host", "%s", m.c_str());
        telemetry.stop();
        stuck = runtime->remove_all();
        runtime.reset();
        stop_lcores();
        if (!stuck) {
            plugins.clear();
        }
        eal_cleanup();
        return 1;
    };
    // Sockets are born 0600 (then get socket_mode); only around start-up, since plugins
    // create guest files with the modes the guest asks for.
    {
        std::vector<const PollLcore*> tl;
        for (auto& [cpu, l] : lcores) {
            tl.push_back(l.get());
        }
        if (!telemetry.start(cfg->host, tl, {}, &err)) {
            return fail(err);
        }
        runtime->set_metrics(&telemetry.registry());
    }
    if (!runtime->add_all(cfg->devices, DeviceOrigin::Config, &err)) {
        return fail(err);
    }
    // From here on RLIMIT_NOFILE's hard limit is what devices added later can use.
    fd_budget.set_limit(std::max(read_nofile_limits().hard, fd_budget.needed()));
    VDH_INFO("host", "fd budget: %llu for the host + %llu reserved by devices of %llu "
             "(RLIMIT_NOFILE %llu)",
             static_cast<unsigned long long>(fd_budget.host_reserve()),
             static_cast<unsigned long long>(fd_budget.reserved()),
             static_cast<unsigned long long>(fd_budget.limit()),
             static_cast<unsigned long long>(read_nofile_limits().soft));

    ControlSocket control;
    if (!cfg->host.control_socket.empty()) {
        auto handler = [&](const std::string& line, const std::string& body) {
            return run_control_command(*runtime, line, body);
        };
        // Removed devices whose guest went away are freed within a second.
        control.set_tick([&runtime] { runtime->housekeeping(); }, 1000);
        if (!control.start(cfg->host.control_socket, handler, &err)) {
            return fail(err);
        }
    }
    umask(old_umask);

    // Start-up is over and every thread exists: the allow-list goes on all of them at once.
    if (!install_seccomp(cfg->host.seccomp, &err)) {
        control.stop();
        return fail(err);
    }

    VDH_NOTICE("host", "vdhost %s ready: %zu device%s on %zu poll lcore%s", VDH_VERSION,
               runtime->device_count(), runtime->device_count() == 1 ? "" : "s", lcores.size(),
               lcores.size() == 1 ? "" : "s");
    notify.ready("serving " + std::to_string(runtime->device_count()) + " device(s)");

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0 || sig == SIGHUP) {
        if (sig != SIGHUP) {
            continue;
        }
        VDH_NOTICE("host", "SIGHUP: reloading %s", cfg->path.c_str());
        if (!cfg->host.control_socket.empty()) {
            // Every change runs on the control thread, one at a time.
            control.post([&runtime] { runtime->reload(runtime->config().path); });
        } else {
            runtime->reload(runtime->config().path);
        }
    }
    VDH_NOTICE("host", "%s received, shutting down", strsignal(sig));
    notify.stopping();
    control.stop();
    telemetry.stop();
    stuck = runtime->remove_all(); // disconnects frontends; their sessions drain first
    runtime.reset();
    stop_lcores();
    if (stuck) {
        // A device with stuck requests was not destroyed (see ~Device): its plugin's
        // threads may still run plugin code, so no library is unloaded.
        for (auto& [type, p] : plugins) {
            (void)p->handle.release();
        }
    }
    plugins.clear();
    eal_cleanup();
    VDH_NOTICE("host", "stopped");
#if defined(__SANITIZE_ADDRESS__)
    if (cfg->host.seccomp != SeccompMode::None) {
        // Sanitizer builds only: LeakSanitizer's exit-time check stops every thread with
        // ptrace, which the seccomp allow-list refuses, so it would hang or be killed here.
        // Everything is torn down already; leave without the atexit handlers. (vdhost's
        // leaks are checked by the sanitizer stage's runs with seccomp: none.)
        std::fflush(nullptr);
        _exit(0);
    }
#endif
    return 0;
}

} // namespace
} // namespace vdh

int main(int argc, char** argv) {
    vdh::Options o;
    po::options_description desc(
        "vdhost: serves virtio devices to QEMU guests over vhost-user on poll-mode lcores.\n\n"
        "Usage: vdhost [--config FILE] [options]   (FILE: " VDH_DEFAULT_CONFIG " by default)\n"
        "       vdhost --check-config FILE\n"
        "       vdhost --stats CONTROL_SOCKET\n\nOptions");
    std::string check;
    std::vector<std::string> eal_strings;
    desc.add_options()
        ("help,h", "show this help and exit")
        ("version,V", "print the version and exit")
        ("config,c", po::value<std::string>(&o.config), "run the devices described in FILE (default: " VDH_DEFAULT_CONFIG ")")
        ("check-config", po::value<std::string>(&check), "validate FILE (and its plugins' config blocks) and exit 0 (valid) or 1")
        ("log-level,l", po::value<std::string>(&o.log_level), "err | warning | notice | info | debug (overrides host.log_level)")
        ("plugin-dir", po::value<std::string>(&o.plugin_dir), "directory to load plugins from (overrides host.plugin_dir)")
        ("eal", po::value<std::vector<std::string>>(&eal_strings), "one extra EAL argument, repeatable; appended after host.eal_args, so it overrides them (e.g. --eal=-m --eal=256)")
        ("stats", po::value<std::string>(&o.stats_socket), "print the run-time statistics of the vdhost serving CONTROL_SOCKET and exit");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        vdh::print_error("vdhost: %s\nTry 'vdhost --help'.\n", e.what());
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    if (vm.count("version")) {
        std::printf("vdhost %s (plugin ABI %d.%d)\n", VDH_VERSION, VDH_ABI_MAJOR, VDH_ABI_MINOR);
        return 0;
    }
    if (!o.stats_socket.empty()) {
        std::string reply;
        std::string err;
        if (!vdh::control_request(o.stats_socket, "stats", &reply, &err)) {
            vdh::print_error("vdhost: %s\n", err.c_str());
            return 1;
        }
        std::fputs(reply.c_str(), stdout);
        return 0;
    }
    if (!check.empty()) {
        o.config = check;
        o.check_only = true;
    }
    if (o.config.empty()) {
        // No --config: the installed default (meson's sysconfdir/vdhost/vdhost.yaml).
        o.config = VDH_DEFAULT_CONFIG;
        if (access(o.config.c_str(), R_OK) != 0) {
            vdh::print_error("vdhost: no --config given and the default config %s cannot "
                                 "be read: %s\nGive one with --config FILE.\n",
                         o.config.c_str(), strerror(errno));
            return 1;
        }
    }
    o.eal = eal_strings;
    try {
        return vdh::run(o);
    } catch (const std::exception& e) {
        vdh::print_error("vdhost: fatal: %s\n", e.what());
        return 1;
    }
}
