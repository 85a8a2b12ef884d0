// SPDX-License-Identifier: MIT
// The running host's devices: add, remove, reload, list and stats (see runtime.h).
#include "runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <sstream>

#include "device.h"
#include "host_api.h"
#include "json_text.h"
#include "log.h"
#include "metrics.h"
#include "qos_command.h"
#include "poll_lcore.h"
#include "socket_dir.h"
#include "vdh_build_config.h"
#include "vhost_user_transport.h"

namespace vdh {
namespace {

std::string json_list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
        out += (i ? "," : "") + json_string(v[i]);
    }
    return out + "]";
}

/// The config block without the position padding (config.h: DeviceConfig::config_text),
/// so that a device moved within the file compares equal.
std::string trimmed_block(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) {
        return "";
    }
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

/// Same device as far as serving goes, QoS aside (positions in the file do not count).
bool same_device(const DeviceConfig& a, const DeviceConfig& b) {
    return a.name == b.name && a.type == b.type && a.socket == b.socket &&
           a.socket_fd == b.socket_fd &&
           a.lcores == b.lcores && a.queue_size_max == b.queue_size_max &&
           a.socket_mode == b.socket_mode && a.has_socket_group == b.has_socket_group &&
           a.socket_gid == b.socket_gid && trimmed_block(a.config_text) == trimmed_block(b.config_text);
}

bool under(const std::string& path, const std::string& dir) {
    return path == dir ||
           (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

const char* origin_name(DeviceOrigin o) { return o == DeviceOrigin::Config ? "config" : "control"; }

} // namespace

bool plugin_check_config(const Plugin& plugin, const DeviceConfig& dev, std::string* err) {
    const vdh_plugin_info* info = plugin.info;
    if (info->struct_size < offsetof(vdh_plugin_info, check_config) + sizeof(void*) ||
        info->check_config == nullptr) {
        return true;
    }
    char msg[1024] = {0};
    if (info->check_config(dev.config_text.c_str(), dev.config_text.size(), dev.origin.c_str(),
                           msg, sizeof(msg)) != 0) {
        *err = msg[0] ? msg : device_error(dev, "config", "invalid device config");
        return false;
    }
    return true;
}

bool plugin_host_paths(const Plugin& plugin, const DeviceConfig& dev,
                       std::vector<HostPath>* paths, std::string* err) {
    const vdh_plugin_info* info = plugin.info;
    if (info->struct_size < offsetof(vdh_plugin_info, host_paths) + sizeof(void*) ||
        info->host_paths == nullptr) {
        return true;
    }
    char msg[1024] = {0};
    auto add = [](void* ctx, const char* path, uint32_t flags) {
        static_cast<std::vector<HostPath>*>(ctx)->push_back(
            HostPath{path, (flags & VDH_HOST_PATH_READONLY) == 0});
    };
    if (info->host_paths(dev.config_text.c_str(), dev.config_text.size(), dev.origin.c_str(), add,
                         paths, msg, sizeof(msg)) != 0) {
        *err = msg[0] ? msg : device_error(dev, "config", "host_paths failed");
        return false;
    }
    return true;
}

std::string ReloadReport::json() const {
    std::ostringstream out;
    out << "{\"added\":" << json_list(added) << ",\"removed\":" << json_list(removed)
        << ",\"replaced\":" << json_list(replaced) << ",\"qos_changed\":" << json_list(qos_changed)
        << ",\"unchanged\":" << unchanged
        << ",\"refused\":" << json_list(refused);
    if (!error.empty()) {
        out << ",\"error\":" << json_string(error);
    }
    out << "}";
    return out.str();
}

Runtime::Runtime(Setup setup)
    : config_(std::move(setup.config)), plugins_(setup.plugins), lcores_(std::move(setup.lcores)),
      fd_budget_(setup.fd_budget), sandbox_dirs_(std::move(setup.sandbox_dirs)),
      online_cpus_(setup.online_cpus), config_dir_(std::move(setup.config_dir)) {}

Runtime::~Runtime() { remove_all(); }

size_t Runtime::device_count() const {
    std::lock_guard<std::mutex> g(mu_);
    return entries_.size();
}

bool Runtime::in_sandbox(const std::string& path, bool writable, bool socket_dir) const {
    if (config_.host.sandbox == SandboxMode::None) {
        return true;
    }
    for (const SandboxDir& d : sandbox_dirs_) {
        if (socket_dir ? (d.socket_dir && d.path == path)
                       : (under(path, d.path) && (!writable || d.writable) && !d.socket_dir)) {
            return true;
        }
    }
    return false;
}

bool Runtime::check_new(const DeviceConfig& dev, std::string* err) const {
    {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& r : revoked_) {
            if (r->socket() == dev.socket) {
                *err = device_error(dev, "socket",
                                    "socket " + dev.socket + " still belongs to the removed device " +
                                        r->name() + ", whose guest is still connected");
                return false;
            }
        }
        for (const Entry& e : entries_) {
            if (e.dev->name() == dev.name) {
                *err = device_error(dev, "name", "a device named \"" + dev.name + "\" is running");
                return false;
            }
            if (e.dev->socket() == dev.socket) {
                *err = device_error(dev, "socket",
                                    "socket " + dev.socket + " is in use by device " + e.dev->name());
                return false;
            }
        }
    }
    auto p = plugins_->find(dev.type);
    if (p == plugins_->end()) {
        std::string known;
        for (const auto& [type, plugin] : *plugins_) {
            known += (known.empty() ? "" : ", ") + type;
        }
        *err = device_error(dev, "type",
                            "no plugin \"" + dev.type + "\" was loaded at start (loaded: " + known + ")");
        return false;
    }
    if (!plugin_check_config(*p->second, dev, err)) {
        return false;
    }
    if (config_.host.sandbox == SandboxMode::None) {
        return true;
    }
    std::vector<HostPath> paths;
    if (!plugin_host_paths(*p->second, dev, &paths, err)) {
        return false;
    }
    for (const HostPath& hp : paths) {
        if (!in_sandbox(hp.path, hp.writable, false)) {
            *err = device_error(dev, "config",
                                hp.path + " is not inside vdhost's sandbox: a device added while "
                                          "running can only use directories below host.share_roots "
                                          "(or ones a device used at start" +
                                    std::string(hp.writable ? ", writable" : "") + ")");
            return false;
        }
    }
    std::string dir = parent_dir(dev.socket);
    if (dev.socket_fd < 0 && !in_sandbox(dir, true, true)) {
        *err = device_error(dev, "socket",
                            "socket directory " + dir + " is not one vdhost's sandbox holds: use the "
                            "directory of host.control_socket or of a device configured at start");
        return false;
    }
    return true;
}

bool Runtime::add(const DeviceConfig& dev, DeviceOrigin origin, std::string* err) {
    std::lock_guard<std::mutex> ops(ops_mu_);
    reap_retired();
    std::unique_ptr<Device> d = prepare(dev, err);
    return d != nullptr && serve(std::move(d), origin, err);
}

bool Runtime::add_all(const std::vector<DeviceConfig>& devs, DeviceOrigin origin,
                      std::string* err) {
    std::lock_guard<std::mutex> ops(ops_mu_);
    reap_retired();
    // Every device is created (and its fds reserved) before the first socket listens: a
    // config that does not fit never lets a guest connect to part of it.
    std::vector<std::unique_ptr<Device>> ready;
    // (Names and sockets within one config are unique: the config loader refuses repeats.)
    for (const DeviceConfig& dev : devs) {
        std::unique_ptr<Device> d = prepare(dev, err);
        if (d == nullptr) {
            return false; // `ready` gives its fds back
        }
        ready.push_back(std::move(d));
    }
    for (auto& d : ready) {
        if (!serve(std::move(d), origin, err)) {
            return false; // the caller tears down what already serves
        }
    }
    return true;
}

std::unique_ptr<Device> Runtime::prepare(const DeviceConfig& dev, std::string* err) {
    if (!check_new(dev, err)) {
        return nullptr;
    }
    std::vector<PollLcore*> ls;
    for (unsigned cpu : dev.lcores) {
        auto it = lcores_.find(cpu);
        if (it == lcores_.end()) {
            *err = device_error(dev, "lcore", "CPU " + std::to_string(cpu) + " runs no poll lcore");
            return nullptr;
        }
        ls.push_back(it->second);
    }
    auto d = std::make_unique<Device>(dev, plugins_->at(dev.type).get(), ls);
    d->set_teardown_timeout_ms(config_.host.teardown_timeout_ms);
    d->set_fd_budget(fd_budget_);
    // A device destroyed on the way out gives its fds back itself (~Device).
    if (!d->create(host_api(), dev.origin, err)) {
        return nullptr;
    }
    NofileLimits nofile = read_nofile_limits();
    if (fd_budget_->needed() > nofile.soft && !set_nofile_limit(fd_budget_->needed(), err)) {
        return nullptr;
    }
    if (config_.host.sandbox == SandboxMode::None && dev.socket_fd < 0 &&
        !secure_socket_dir(parent_dir(dev.socket), dev.has_socket_group, dev.socket_gid, err)) {
        *err = device_error(dev, "socket", *err);
        return nullptr;
    }
    return d;
}

bool Runtime::serve(std::unique_ptr<Device> d, DeviceOrigin origin, std::string* err) {
    Device* raw = d.get();
    {
        std::lock_guard<std::mutex> g(mu_);
        entries_.push_back(Entry{std::move(d), origin});
    }
    if (!vhost_register_device(raw, err)) {
        std::unique_ptr<Device> back;
        {
            std::lock_guard<std::mutex> g(mu_);
            auto it = std::find_if(entries_.begin(), entries_.end(),
                                   [raw](const Entry& e) { return e.dev.get() == raw; });
            back = std::move(it->dev);
            entries_.erase(it);
        }
        return false; // `back` frees it
    }
    if (metrics_ != nullptr) {
        metrics_->add_device(raw);
    }
    VDH_NOTICE(raw->name().c_str(), "device added (%s, from %s)", raw->config().type.c_str(),
               origin_name(origin));
    return true;
}

void Runtime::finish_removal(std::unique_ptr<Device> dev) {
    if (metrics_ != nullptr) {
        metrics_->remove_device(dev.get());
    }
    vhost_unregister_device(dev.get());
    std::string name = dev->name();
    if (dev->stuck_requests() != 0) {
        VDH_WARN(name.c_str(), "removed with %u requests still stuck; freed once they complete",
                 dev->stuck_requests());
        retired_.push_back(std::move(dev));
        return;
    }
    dev.reset();
    VDH_NOTICE(name.c_str(), "device removed");
}

void Runtime::reap_retired() {
    std::vector<std::unique_ptr<Device>> gone;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (auto it = revoked_.begin(); it != revoked_.end();) {
            if ((*it)->connection() < 0) {
                gone.push_back(std::move(*it));
                it = revoked_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& d : gone) {
        VDH_INFO(d->name().c_str(), "the removed device's guest disconnected");
        finish_removal(std::move(d));
    }
    for (auto it = retired_.begin(); it != retired_.end();) {
        if ((*it)->stuck_requests() == 0) {
            std::string name = (*it)->name();
            it = retired_.erase(it);
            VDH_NOTICE(name.c_str(), "removed device freed (its stuck requests completed)");
        } else {
            ++it;
        }
    }
}

bool Runtime::remove(const std::string& name_arg, std::string* err) {
    const std::string name = name_arg; // may point into the device removed below
    std::lock_guard<std::mutex> ops(ops_mu_);
    reap_retired();
    std::unique_ptr<Device> dev;
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const Entry& e) { return e.dev->name() == name; });
        if (it == entries_.end()) {
            *err = "no device named \"" + name + "\"";
            return false;
        }
        dev = std::move(it->dev);
        entries_.erase(it);
    }
    if (dev->revoke()) {
        // A guest is attached: it keeps its connection and gets errors instead of a hang.
        // Nothing new can connect (the socket's name is gone); the device is freed once
        // its frontend disconnects (housekeeping()).
        unlink(dev->socket().c_str());
        VDH_NOTICE(name.c_str(), "device removed; its guest is still connected and gets "
                   "errors until it disconnects");
        std::lock_guard<std::mutex> g(mu_);
        revoked_.push_back(std::move(dev));
        return true;
    }
    finish_removal(std::move(dev));
    return true;
}

void Runtime::housekeeping() {
    std::lock_guard<std::mutex> ops(ops_mu_);
    reap_retired();
}

bool Runtime::remove_all() {
    std::lock_guard<std::mutex> ops(ops_mu_);
    std::vector<Entry> all;
    std::vector<std::unique_ptr<Device>> revoked;
    {
        std::lock_guard<std::mutex> g(mu_);
        all.swap(entries_);
        revoked.swap(revoked_);
    }
    for (Entry& e : all) {
        finish_removal(std::move(e.dev));
    }
    for (auto& d : revoked) {
        finish_removal(std::move(d));
    }
    reap_retired();
    bool stuck = !retired_.empty();
    // What is still stuck is left to the process exit: the plugin may still complete
    // those requests or wake the device, so neither is freed (see ~Device).
    for (auto& d : retired_) {
        VDH_WARN(d->name().c_str(), "%u stuck requests at shutdown; not destroying the plugin",
                 d->stuck_requests());
        (void)d.release();
    }
    retired_.clear();
    return stuck;
}

ReloadReport Runtime::reload(const std::string& path) {
    ReloadReport r;
    ConfigError cerr;
    std::optional<Config> next;
    if (config_dir_) {
        size_t slash = path.rfind('/');
        next = load_config_at(config_dir_.get(),
                              slash == std::string::npos ? path : path.substr(slash + 1), path,
                              online_cpus_, &cerr);
    } else {
        next = load_config(path, online_cpus_, &cerr);
    }
    if (!next) {
        r.error = cerr.message;
        VDH_ERR("host", "reload: %s; nothing changed", cerr.message.c_str());
        return r;
    }
    const HostConfig& a = config_.host;
    const HostConfig& b = next->host;
    if (a.log_level != b.log_level) {
        set_log_level(parse_log_level(b.log_level));
        config_.host.log_level = b.log_level;
    }
    auto refuse_host = [&](bool changed, const char* key) {
        if (changed) {
            r.refused.push_back(std::string("host.") + key +
                                ": cannot change while running (restart vdhost to apply it)");
        }
    };
    refuse_host(a.poll_lcores != b.poll_lcores, "poll_lcores");
    refuse_host(a.eal_args != b.eal_args, "eal_args");
    refuse_host(a.plugin_dir != b.plugin_dir, "plugin_dir");
    refuse_host(a.control_socket != b.control_socket, "control_socket");
    refuse_host(a.idle_poll_us != b.idle_poll_us, "idle_poll_us");
    refuse_host(a.queue_slice_us != b.queue_slice_us, "queue_slice_us");
    refuse_host(a.max_sleep_ms != b.max_sleep_ms, "max_sleep_ms");
    refuse_host(a.teardown_timeout_ms != b.teardown_timeout_ms, "teardown_timeout_ms");
    refuse_host(a.sandbox != b.sandbox, "sandbox");
    refuse_host(a.seccomp != b.seccomp, "seccomp");
    refuse_host(a.share_roots != b.share_roots, "share_roots");

    // What runs now, by name.
    struct Running {
        DeviceConfig cfg;
        DeviceOrigin origin;
        bool attached;
    };
    std::map<std::string, Running> running;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (const Entry& e : entries_) {
            Running run{e.dev->config(), e.origin, e.dev->connection() >= 0};
            run.cfg.qos = e.dev->qos(); // as set now (qos commands, earlier reloads)
            running.emplace(e.dev->name(), std::move(run));
        }
    }
    std::map<std::string, const DeviceConfig*> wanted;
    for (const DeviceConfig& d : next->devices) {
        wanted.emplace(d.name, &d);
    }
    std::string err;
    // Removals first, so a socket or name can move to a new device.
    for (const auto& [name, run] : running) {
        if (run.origin == DeviceOrigin::Config && wanted.count(name) == 0) {
            if (remove(name, &err)) {
                r.removed.push_back(name);
            }
        }
    }
    for (const DeviceConfig& d : next->devices) {
        auto it = running.find(d.name);
        if (it == running.end()) {
            if (add(d, DeviceOrigin::Config, &err)) {
                r.added.push_back(d.name);
            } else {
                r.refused.push_back(d.name + ": " + err);
            }
            continue;
        }
        const Running& run = it->second;
        if (run.origin == DeviceOrigin::Control) {
            r.refused.push_back(d.name + ": a device of that name was added through the control "
                                         "socket; remove it first");
            continue;
        }
        if (same_device(run.cfg, d)) {
            if (run.cfg.qos == d.qos) {
                ++r.unchanged;
            } else {
                std::lock_guard<std::mutex> g(mu_);
                for (Entry& e : entries_) {
                    if (e.dev->name() == d.name) {
                        e.dev->set_qos(d.qos);
                    }
                }
                r.qos_changed.push_back(d.name);
            }
            continue;
        }
        if (run.attached) {
            r.refused.push_back(d.name + ": changed while a guest is connected; applying it would "
                                         "end the guest's session (the device keeps running "
                                         "unchanged; apply it when the guest is gone, or remove "
                                         "and add the device)");
            continue;
        }
        // No guest: replace it. The new config is checked first; if the new device cannot
        // start, the old one is put back.
        auto p = plugins_->find(d.type);
        if (p == plugins_->end() || !plugin_check_config(*p->second, d, &err)) {
            r.refused.push_back(d.name + ": " +
                                (p == plugins_->end() ? "no plugin \"" + d.type + "\"" : err));
            continue;
        }
        if (!remove(d.name, &err)) {
            r.refused.push_back(d.name + ": " + err);
            continue;
        }
        if (add(d, DeviceOrigin::Config, &err)) {
            r.replaced.push_back(d.name);
        } else {
            std::string restore_err;
            bool restored = add(run.cfg, DeviceOrigin::Config, &restore_err);
            r.refused.push_back(d.name + ": " + err +
                                (restored ? " (the old device runs again)"
                                          : "; the old device could not be restored either: " +
                                                restore_err));
        }
    }
    if (r.refused.empty()) {
        config_.host = next->host;
    }
    config_.devices = next->devices;
    VDH_NOTICE("host",
               "reload: %zu added, %zu removed, %zu replaced, %zu with new qos, %zu unchanged, "
               "%zu refused",
               r.added.size(), r.removed.size(), r.replaced.size(), r.qos_changed.size(),
               r.unchanged, r.refused.size());
    for (const std::string& why : r.refused) {
        VDH_WARN("host", "reload refused %s", why.c_str());
    }
    return r;
}

std::string Runtime::qos(const std::string& command) {
    std::lock_guard<std::mutex> ops(ops_mu_);
    std::vector<Device*> devs;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (Entry& e : entries_) {
            devs.push_back(e.dev.get());
        }
    }
    return qos_command(command, devs);
}

std::string Runtime::list_json() const {
    std::ostringstream out;
    bool first = true;
    // A removed device whose guest is still attached serves on no lcore any more.
    auto entry = [&](const Device& d, const char* state, const char* origin, bool lcores) {
        out << (first ? "" : ",") << "{\"name\":" << json_string(d.name())
            << ",\"type\":" << json_string(d.config().type)
            << ",\"socket\":" << json_string(d.socket()) << ",\"state\":\"" << state
            << "\",\"connected\":" << (d.connection() >= 0 ? "true" : "false") << ",\"lcores\":[";
        for (size_t j = 0; lcores && j < d.config().lcores.size(); ++j) {
            out << (j ? "," : "") << d.config().lcores[j];
        }
        out << "],\"origin\":\"" << origin << "\"}";
        first = false;
    };
    out << "{\"devices\":[";
    std::lock_guard<std::mutex> g(mu_);
    for (const Entry& e : entries_) {
        entry(*e.dev, device_state_name(e.dev->state()), origin_name(e.origin), true);
    }
    for (const auto& d : revoked_) {
        entry(*d, "removed", "removed", false);
    }
    out << "]}";
    return out.str();
}

std::string Runtime::stats_json() const {
    std::ostringstream out;
    out << "{\"version\":\"" VDH_VERSION "\",\"pid\":" << getpid() << ",\"lcores\":[";
    bool first = true;
    for (const auto& [cpu, l] : lcores_) {
        out << (first ? "" : ",") << "{\"lcore\":" << l->lcore_id() << ",\"cpu\":" << cpu
            << ",\"loops\":" << l->loops() << ",\"sleeps\":" << l->sleeps() << "}";
        first = false;
    }
    out << "],\"devices\":[";
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < entries_.size(); ++i) {
        out << (i ? "," : "") << entries_[i].dev->stats_json();
    }
    out << "]}";
    return out.str();
}

} // namespace vdh
