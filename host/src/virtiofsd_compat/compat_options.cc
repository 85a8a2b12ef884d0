// SPDX-License-Identifier: MIT
// vdhost-virtiofsd's option parser and config writer (see compat_options.h). The option
// table in docs/virtiofsd-compat.md follows the order of parse_long() and apply_o().
#include "compat_options.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "vdh_build_config.h"

namespace vdh::compat {
namespace {

/// Parsing state: the options so far, the first error, and what was given once already.
class Parser {
  public:
    explicit Parser(CompatOptions* o) : o_(o) {}

    bool failed() const { return !err_.empty(); }
    const std::string& error() const { return err_; }

    void fail(const std::string& msg) {
        if (err_.empty()) {
            err_ = msg;
        }
    }
    void unsupported(const std::string& opt, const std::string& why = "") {
        fail(opt + " is not supported yet" + (why.empty() ? "" : " (" + why + ")"));
    }
    void ignore(const std::string& opt, const std::string& reason, bool warn) {
        o_->ignored.push_back(IgnoredOption{opt, reason, warn});
    }

    // ---- setters shared by the long options and -o ----
    void set_once(std::string* field, bool* seen, const std::string& opt, const std::string& v) {
        if (*seen && *field != v) {
            fail(opt + ": the shared directory or socket is given twice (\"" + *field +
                 "\" and \"" + v + "\")");
            return;
        }
        if (v.empty()) {
            fail(opt + ": expected a non-empty value");
            return;
        }
        *seen = true;
        *field = v;
    }
    void xattrmap(const std::string& opt, const std::string& v) {
        if (o_->xattrmap && *o_->xattrmap != v) {
            fail(opt + ": the xattr map is given twice");
            return;
        }
        o_->xattrmap = v; // its rules are checked by the share profile when vdhost starts
    }
    void shared_dir(const std::string& opt, const std::string& v) {
        set_once(&o_->shared_dir, &seen_dir_, opt, v);
    }
    void socket_path(const std::string& opt, const std::string& v) {
        set_once(&o_->socket_path, &seen_socket_, opt, v);
    }
    void fd(const std::string& opt, const std::string& v) {
        unsigned long long n = 0;
        if (!number(opt, v, &n) || n > 1U << 30) {
            fail(opt + ": expected a file descriptor number, got \"" + v + "\"");
            return;
        }
        if (o_->fd >= 0 && o_->fd != static_cast<int>(n)) {
            fail(opt + ": given twice (" + std::to_string(o_->fd) + " and " + v + ")");
            return;
        }
        o_->fd = static_cast<int>(n);
    }
    void cache(const std::string& opt, const std::string& v) {
        if (v == "none" || v == "never") { // "none" is the C virtiofsd's name
            o_->cache = "never";
        } else if (v == "auto" || v == "always" || v == "metadata") {
            o_->cache = v;
        } else {
            fail(opt + ": unknown cache mode \"" + v +
                 "\" (expected never, auto, always, "
                 "metadata; or none)");
        }
    }
    void sandbox(const std::string& opt, const std::string& v) {
        if (v == "namespace" || v == "chroot" || v == "none") {
            o_->sandbox = v;
        } else {
            fail(opt + ": unknown sandbox \"" + v + "\" (expected namespace, chroot or none)");
        }
    }
    void seccomp(const std::string& opt, const std::string& v) {
        if (v == "none" || v == "kill" || v == "log") {
            o_->seccomp = v;
        } else if (v == "trap") {
            o_->seccomp = "kill";
            ignore(opt + "=trap",
                   "vdhost has no trap action; a call outside the allow-list "
                   "kills the process (SIGSYS) as with kill",
                   true);
        } else {
            fail(opt + ": unknown seccomp action \"" + v + "\" (expected none, kill, log or trap)");
        }
    }
    void log_level(const std::string& opt, const std::string& v) {
        if (v == "error" || v == "err" || v == "off") {
            o_->log_level = "err";
        } else if (v == "warn" || v == "warning") {
            o_->log_level = "warning";
        } else if (v == "info") {
            o_->log_level = "info";
        } else if (v == "debug" || v == "trace") {
            o_->log_level = "debug";
        } else {
            fail(opt + ": unknown log level \"" + v +
                 "\" (expected error, warn, info, debug, "
                 "trace, off; or err)");
        }
    }
    void inode_file_handles(const std::string& opt, const std::string& v) {
        if (v == "never" || v == "prefer" || v == "mandatory") {
            o_->inode_file_handles = v;
        } else if (v == "fallback") { // the Rust virtiofsd's deprecated alias
            o_->inode_file_handles = "prefer";
        } else {
            fail(opt + ": unknown mode \"" + v + "\" (expected never, prefer or mandatory)");
        }
    }
    void tag(const std::string& opt, const std::string& v) {
        if (v.empty() || v.size() > 36) {
            fail(opt + ": a tag has 1 to 36 bytes, got " + std::to_string(v.size()));
            return;
        }
        o_->tag = v;
    }
    bool number(const std::string& opt, const std::string& v, unsigned long long* n) {
        if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 18) {
            fail(opt + ": expected a non-negative integer, got \"" + v + "\"");
            return false;
        }
        *n = std::strtoull(v.c_str(), nullptr, 10);
        return true;
    }
    void timeout(const std::string& opt, const std::string& v) {
        char* end = nullptr;
        double s = std::strtod(v.c_str(), &end);
        if (v.empty() || end == nullptr || *end != '\0' || !(s >= 0) || s > 86400.0 * 365) {
            fail(opt + ": expected a number of seconds, got \"" + v + "\"");
            return;
        }
        o_->timeout_ms = static_cast<unsigned long long>(s * 1000.0 + 0.5);
    }

    /// One `-o` item: "key" or "key=value" (the C virtiofsd's options).
    void apply_o(const std::string& item) {
        size_t eq = item.find('=');
        std::string k = item.substr(0, eq);
        bool has_v = eq != std::string::npos;
        std::string v = has_v ? item.substr(eq + 1) : "";
        std::string opt = "-o " + k;
        auto flag = [&](std::optional<bool>* f, bool value) {
            if (has_v) {
                fail(opt + " takes no value");
            } else {
                *f = value;
            }
        };
        auto valued = [&]() {
            if (!has_v) {
                fail(opt + " needs a value (" + k + "=...)");
            }
            return has_v;
        };
        if (k == "source") {
            if (valued())
                shared_dir(opt, v);
        } else if (k == "cache") {
            if (valued())
                cache(opt, v);
        } else if (k == "sandbox") {
            if (valued())
                sandbox(opt, v);
        } else if (k == "log_level") {
            if (valued())
                log_level(opt, v);
        } else if (k == "timeout") {
            if (valued())
                timeout(opt, v);
        } else if (k == "xattr") {
            flag(&o_->xattr, true);
        } else if (k == "no_xattr") {
            flag(&o_->xattr, false);
        } else if (k == "writeback") {
            flag(&o_->writeback, true);
        } else if (k == "no_writeback") {
            flag(&o_->writeback, false);
        } else if (k == "flock") {
            flag(&o_->flock, true);
        } else if (k == "no_flock") {
            flag(&o_->flock, false);
        } else if (k == "posix_lock") {
            flag(&o_->posix_locks, true);
        } else if (k == "no_posix_lock") {
            flag(&o_->posix_locks, false);
        } else if (k == "announce_submounts") {
            flag(&o_->announce_submounts, true);
        } else if (k == "debug") {
            o_->log_level = "debug";
        } else if (k == "max_idle_threads") {
            unsigned long long n = 0;
            if (valued() && number(opt, v, &n)) {
                ignore(opt, "vdhost serves requests on poll lcores and io_uring, not a thread pool",
                       false);
            }
        } else if (k == "readdirplus") {
            flag(&o_->readdirplus, true);
        } else if (k == "no_readdirplus") {
            flag(&o_->readdirplus, false);
        } else if (k == "allow_direct_io") {
            flag(&o_->allow_direct_io, true);
        } else if (k == "no_allow_direct_io") {
            flag(&o_->allow_direct_io, false);
        } else if (k == "killpriv_v2") {
            ignore(opt,
                   "vdhost does not offer FUSE_HANDLE_KILLPRIV_V2; the guest kernel clears "
                   "setuid/setgid bits itself",
                   true);
        } else if (k == "no_killpriv_v2") {
            ignore(opt, "vdhost never offers FUSE_HANDLE_KILLPRIV_V2", false);
        } else if (k == "posix_acl") {
            flag(&o_->posix_acl, true);
        } else if (k == "no_posix_acl") {
            flag(&o_->posix_acl, false);
        } else if (k == "security_label") {
            flag(&o_->security_label, true);
        } else if (k == "no_security_label") {
            flag(&o_->security_label, false);
        } else if (k == "allow_root") {
            ignore(opt, "a FUSE mount option with no meaning for virtio-fs", false);
        } else if (k == "xattrmap") {
            if (valued())
                xattrmap(opt, v);
        } else if (k == "modcaps") {
            unsupported(opt);
        } else {
            fail("unknown option " + opt);
        }
    }

    /// "-o a,b=c": items separated by ',', with ",," for a literal comma (as libvirt escapes
    /// a path).
    void apply_o_list(const std::string& list) {
        std::string item;
        for (size_t i = 0; i < list.size(); ++i) {
            if (list[i] == ',' && i + 1 < list.size() && list[i + 1] == ',') {
                item += ',';
                ++i;
            } else if (list[i] == ',') {
                if (!item.empty()) {
                    apply_o(item);
                }
                item.clear();
            } else {
                item += list[i];
            }
        }
        if (!item.empty()) {
            apply_o(item);
        }
    }

    /// One long option; \p next takes the following argument for a value. Returns false when
    /// the name is unknown.
    template <typename Next>
    bool parse_long(const std::string& name, const std::optional<std::string>& inline_value,
                    Next&& next) {
        const std::string opt = "--" + name;
        auto value = [&]() -> std::optional<std::string> {
            if (inline_value) {
                return inline_value;
            }
            auto v = next();
            if (!v) {
                fail(opt + " needs a value");
            }
            return v;
        };
        auto flag = [&]() {
            if (inline_value) {
                fail(opt + " takes no value");
                return false;
            }
            return true;
        };
        std::optional<std::string> v;
        if (name == "shared-dir") {
            if ((v = value()))
                shared_dir(opt, *v);
        } else if (name == "socket-path" || name == "socket") {
            if ((v = value()))
                socket_path(opt, *v);
        } else if (name == "fd") {
            if ((v = value()))
                fd(opt, *v);
        } else if (name == "socket-group") {
            if ((v = value())) {
                if (v->empty()) {
                    fail(opt + ": expected a group name");
                }
                o_->socket_group = *v;
            }
        } else if (name == "tag") {
            if ((v = value()))
                tag(opt, *v);
        } else if (name == "cache") {
            if ((v = value()))
                cache(opt, *v);
        } else if (name == "sandbox") {
            if ((v = value()))
                sandbox(opt, *v);
        } else if (name == "seccomp") {
            if ((v = value()))
                seccomp(opt, *v);
        } else if (name == "log-level") {
            if ((v = value()))
                log_level(opt, *v);
        } else if (name == "inode-file-handles") {
            // Only --inode-file-handles=MODE takes a value; alone it means prefer.
            inode_file_handles(opt, inline_value ? *inline_value : "prefer");
        } else if (name == "xattr") {
            if (flag())
                o_->xattr = true;
        } else if (name == "no-xattr") {
            if (flag())
                o_->xattr = false;
        } else if (name == "readonly") {
            if (flag())
                o_->readonly = true;
        } else if (name == "writeback") {
            if (flag())
                o_->writeback = true;
        } else if (name == "announce-submounts") {
            if (flag())
                o_->announce_submounts = true;
        } else if (name == "no-announce-submounts") {
            if (flag())
                o_->announce_submounts = false;
        } else if (name == "print-capabilities") {
            if (flag())
                o_->action = CompatAction::PrintCapabilities;
        } else if (name == "version") {
            if (flag())
                o_->action = CompatAction::Version;
        } else if (name == "help") {
            if (flag())
                o_->action = CompatAction::Help;
        } else if (name == "thread-pool-size") {
            unsigned long long n = 0;
            if ((v = value()) && number(opt, *v, &n)) {
                ignore(opt, "vdhost serves requests on poll lcores and io_uring, not a thread pool",
                       false);
            }
        } else if (name == "rlimit-nofile") {
            unsigned long long n = 0;
            if ((v = value()) && number(opt, *v, &n)) {
                ignore(opt,
                       "vdhost sets RLIMIT_NOFILE from its fd budget (the share's fd_limit "
                       "plus its own reserve)",
                       false);
            }
        } else if (name == "syslog") {
            if (flag())
                ignore(opt, "vdhost logs to stderr", true);
        } else if (name == "allow-direct-io") {
            if (flag())
                o_->allow_direct_io = true;
        } else if (name == "preserve-noatime") {
            if (flag())
                o_->preserve_noatime = true;
        } else if (name == "no-readdirplus") {
            if (flag())
                o_->readdirplus = false;
        } else if (name == "allow-mmap") {
            if (flag())
                o_->allow_mmap = true;
        } else if (name == "killpriv-v2") {
            if (flag()) {
                ignore(opt,
                       "vdhost does not offer FUSE_HANDLE_KILLPRIV_V2; the guest kernel "
                       "clears setuid/setgid bits itself",
                       true);
            }
        } else if (name == "no-killpriv-v2") {
            if (flag())
                ignore(opt, "vdhost never offers FUSE_HANDLE_KILLPRIV_V2", false);
        } else if (name == "migration-mode" || name == "migration-on-error") {
            if ((v = value())) {
                ignore(opt, "vdhost does not migrate (it does not claim migrate-precopy)", false);
            }
        } else if (name == "migration-verify-handles" || name == "migration-confirm-paths") {
            if (flag()) {
                ignore(opt, "vdhost does not migrate (it does not claim migrate-precopy)", false);
            }
        } else if (name == "posix-acl") {
            if (flag())
                o_->posix_acl = true;
        } else if (name == "security-label") {
            if (flag())
                o_->security_label = true;
        } else if (name == "daemonize") {
            if (flag())
                unsupported(opt);
        } else if (name == "xattrmap") {
            if ((v = value()))
                xattrmap(opt, *v);
        } else if (name == "modcaps" || name == "translate-uid" ||
                   name == "translate-gid" || name == "uid-map" || name == "gid-map") {
            if ((v = value()))
                unsupported(opt);
        } else {
            return false;
        }
        return true;
    }

  private:
    CompatOptions* o_;
    std::string err_;
    bool seen_dir_ = false;
    bool seen_socket_ = false;
};

/// A YAML double-quoted scalar: every byte outside printable ASCII, '"' and '\\' escaped.
std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

} // namespace

std::optional<CompatOptions> parse_compat_args(const std::vector<std::string>& args,
                                               std::string* err) {
    CompatOptions o;
    Parser p(&o);
    for (size_t i = 0; i < args.size() && !p.failed(); ++i) {
        const std::string& a = args[i];
        auto next = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) {
                return std::nullopt;
            }
            return args[++i];
        };
        if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
            size_t eq = a.find('=');
            std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
            std::optional<std::string> v;
            if (eq != std::string::npos) {
                v = a.substr(eq + 1);
            }
            if (!p.parse_long(name, v, next)) {
                p.fail("unknown option --" + name);
            }
        } else if (a.compare(0, 2, "-o") == 0) {
            if (a.size() > 2) {
                p.apply_o_list(a.substr(2));
            } else if (auto v = next()) {
                p.apply_o_list(*v);
            } else {
                p.fail("-o needs a value");
            }
        } else if (a == "-d") {
            o.log_level = "debug";
        } else if (a == "-f") {
            o.ignored.push_back({"-f", "vdhost always runs in the foreground", false});
        } else if (a == "-V") {
            o.action = CompatAction::Version;
        } else if (a == "-h") {
            o.action = CompatAction::Help;
        } else {
            p.fail(a.size() > 1 && a[0] == '-' ? "unknown option " + a
                                               : "unexpected argument \"" + a + "\"");
        }
    }
    if (!p.failed() && o.action == CompatAction::Run) {
        if (o.shared_dir.empty()) {
            p.fail("--shared-dir (or -o source=) is required");
        } else if (o.socket_path.empty() && o.fd < 0) {
            p.fail("--socket-path or --fd is required");
        } else if (!o.socket_path.empty() && o.fd >= 0) {
            p.fail("--fd and --socket-path cannot be used together");
        } else if (!o.socket_group.empty() && o.fd >= 0) {
            o.ignored.push_back({"--socket-group",
                                 "the inherited socket (--fd) was created by "
                                 "the caller, which set its access",
                                 true});
            o.socket_group.clear();
        }
    }
    if (p.failed()) {
        *err = p.error();
        return std::nullopt;
    }
    return o;
}

std::string build_vdhost_config(const CompatOptions& o) {
    std::string y = "# Written by vdhost-virtiofsd from its command line.\nhost:\n";
    y += "  log_level: " + quoted(o.log_level) + "\n";
    y += "  sandbox: " + quoted(o.sandbox) + "\n";
    y += "  seccomp: " + quoted(o.seccomp) + "\n";
    y += "devices:\n  - name: fs\n    type: virtiofs\n";
    if (o.fd >= 0) {
        y += "    socket_fd: " + std::to_string(o.fd) + "\n";
    } else {
        y += "    socket: " + quoted(o.socket_path) + "\n";
        if (!o.socket_group.empty()) {
            y += "    socket_mode: \"0660\"\n";
            y += "    socket_group: " + quoted(o.socket_group) + "\n";
        }
    }
    y += "    config:\n";
    y += "      shared_dir: " + quoted(o.shared_dir) + "\n";
    if (!o.tag.empty()) {
        y += "      tag: " + quoted(o.tag) + "\n";
    }
    y += "      cache: " + o.cache + "\n";
    y += "      inode_file_handles: " + o.inode_file_handles + "\n";
    auto boolean = [&](const char* key, const std::optional<bool>& v) {
        if (v) {
            y += std::string("      ") + key + ": " + (*v ? "true" : "false") + "\n";
        }
    };
    boolean("xattr", o.xattr);
    boolean("writeback", o.writeback);
    boolean("readonly", o.readonly);
    boolean("announce_submounts", o.announce_submounts);
    boolean("flock", o.flock);
    boolean("posix_locks", o.posix_locks);
    boolean("allow_mmap", o.allow_mmap);
    boolean("readdirplus", o.readdirplus);
    boolean("preserve_noatime", o.preserve_noatime);
    if (o.xattrmap) {
        y += "      xattrmap: " + quoted(*o.xattrmap) + "\n";
    }
    boolean("allow_direct_io", o.allow_direct_io);
    boolean("posix_acl", o.posix_acl);
    boolean("security_label", o.security_label);
    if (o.timeout_ms) {
        y += "      entry_timeout_ms: " + std::to_string(*o.timeout_ms) + "\n";
        y += "      attr_timeout_ms: " + std::to_string(*o.timeout_ms) + "\n";
    }
    return y;
}

std::string capabilities_json() {
    // separate-options: --shared-dir, --cache and the rest as separate options (libvirt then
    // uses them instead of -o). No migrate-precopy: vdhost does not migrate a share's state.
    return "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"separate-options\"\n  ]\n}\n";
}

std::string usage_text() {
    return "vdhost-virtiofsd " VDH_VERSION ": serves one virtio-fs share with vdhost, taking the\n"
           "command line of virtiofsd (as libvirt, KubeVirt and Kata run it).\n\n"
           "Usage: vdhost-virtiofsd --shared-dir DIR (--socket-path PATH | --fd N) [options]\n\n"
           "  --shared-dir DIR, -o source=DIR    directory to share\n"
           "  --socket-path PATH, --socket PATH  vhost-user socket to create\n"
           "  --fd N                             inherited listening socket to serve on\n"
           "  --socket-group GROUP               group of the socket (mode 0660)\n"
           "  --tag TAG                          informational tag\n"
           "  --cache never|auto|always|metadata, -o cache=none|auto|always\n"
           "  --xattr, --no-xattr, -o xattr|no_xattr\n"
           "  --xattrmap MAP, -o xattrmap=MAP     xattr name mapping (virtiofsd's rules)\n"
           "  --readonly, --writeback, -o writeback|no_writeback\n"
           "  --announce-submounts, --no-announce-submounts, -o announce_submounts\n"
           "  --inode-file-handles[=never|prefer|mandatory]\n"
           "  -o flock|no_flock, -o posix_lock|no_posix_lock, -o timeout=SECONDS\n"
           "  --allow-mmap, --preserve-noatime, --no-readdirplus, -o [no_]readdirplus\n"
           "  --allow-direct-io, -o allow_direct_io|no_allow_direct_io\n"
           "  --posix-acl, -o posix_acl|no_posix_acl (implies xattr)\n"
           "  --security-label, -o security_label|no_security_label\n"
           "  --sandbox namespace|chroot|none, -o sandbox=...\n"
           "  --seccomp none|kill|log|trap (trap acts as kill)\n"
           "  --log-level error|warn|info|debug|trace|off, -o log_level=..., -d\n"
           "  --print-capabilities               print the vhost-user.json capabilities\n"
           "  -V, --version; -h, --help\n\n"
           "Accepted with no effect: --thread-pool-size, --rlimit-nofile, --syslog, -f,\n"
           "--[no-]killpriv-v2, --migration-*, -o max_idle_threads, allow_root.\n"
           "Not supported (exit 1): --modcaps, --translate-uid/gid, --uid-map/--gid-map,\n"
           "--daemonize.\n"
           "See docs/virtiofsd-compat.md.\n";
}

} // namespace vdh::compat
