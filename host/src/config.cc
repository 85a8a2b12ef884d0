// SPDX-License-Identifier: MIT
// Loads and validates the vdhost YAML config (see config.h and configs/README.md) with the
// shared reader vdh/yaml_reader.h (key checks, typed getters): everything yaml-cpp or a
// getter throws is caught here and becomes a ConfigError "file:line:column: key: message".
// Also cuts each device's `config:` block out of the file as position-preserving text for
// its plugin. Cold path: exceptions allowed.

#include "config.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <map>
#include <string_view>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "metrics_server.h"
#include "vdh/yaml_reader.h"

#include "inherited_listen_fd.h"
#include "vdh/unique_fd.h"

namespace vdh {

std::map<std::string, uint32_t>& group_cache();

namespace {

using yaml::child_path;
using yaml::Entry;
using yaml::fail;
using yaml::fail_type;
using yaml::find_entry;
using yaml::index_path;
using yaml::parse_string;
using yaml::parse_string_list;
using yaml::parse_uint;
using yaml::pos_of;
using yaml::quoted;
using yaml::read_mapping;
using Pos = yaml::SourcePos;

constexpr size_t kMaxDeviceName = 63;
/// sun_path holds the path and its NUL.
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
constexpr uint64_t kMaxIdlePollUs = 1000000;
constexpr uint64_t kMaxQueueSliceUs = 100000;
constexpr uint64_t kMinSleepMs = 1;
constexpr uint64_t kMaxSleepMs = 10000;
constexpr uint64_t kMaxQueueSize = 32768;
constexpr uint64_t kMinTeardownMs = 10;
constexpr uint64_t kMaxTeardownMs = 600000;
constexpr int kMaxTreeDepth = 256;

/// A UNIX socket path: fits sun_path; absolute when \p absolute.
void check_socket_path(const YAML::Node& n, const std::string& path, const std::string& value,
                       bool absolute) {
    if (absolute && (value.empty() || value[0] != '/')) {
        fail(n, path, "expected an absolute path, got " + quoted(value));
    }
    if (value.size() > kMaxSocketPath) {
        fail(n, path,
             "path too long: " + std::to_string(value.size()) +
                 " bytes (a UNIX socket path has at most " + std::to_string(kMaxSocketPath) + ")");
    }
}

std::string cpu_list_text(const std::vector<unsigned>& cpus) {
    std::string s = "[";
    for (size_t i = 0; i < cpus.size(); ++i) {
        s += (i != 0 ? ", " : "") + std::to_string(cpus[i]);
    }
    return s + "]";
}

// ---- config_text extraction --------------------------------------------------------------

bool is_blank_char(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/// The file text with a line table, mapping yaml-cpp marks to byte offsets.
class SourceText {
public:
    explicit SourceText(const std::string& text) : text_(text) {
        // yaml-cpp does not count a UTF-8 byte order mark in line 0's columns.
        line_starts_.push_back(text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0);
        for (size_t i = 0; i < text.size(); ++i) {
            if (text[i] == '\n') {
                line_starts_.push_back(i + 1);
            }
        }
    }

    const std::string& text() const { return text_; }
    size_t size() const { return text_.size(); }
    char at(size_t off) const { return off < text_.size() ? text_[off] : '\0'; }
    size_t num_lines() const { return line_starts_.size(); }
    size_t line_start(size_t line) const { return line_starts_[line]; }
    /// Offset of the line's '\n' (or the end of the text).
    size_t line_end(size_t line) const {
        return line + 1 < line_starts_.size() ? line_starts_[line + 1] - 1 : text_.size();
    }
    size_t line_of(size_t off) const {
        auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
        return it == line_starts_.begin() ? 0 : static_cast<size_t>(it - line_starts_.begin() - 1);
    }
    size_t offset(const YAML::Mark& m) const {
        if (m.is_null() || static_cast<size_t>(m.line) >= line_starts_.size()) {
            return text_.size();
        }
        return std::min(line_starts_[m.line] + static_cast<size_t>(m.column), text_.size());
    }

    /// The text of [begin, end) at its place: every character before it except line breaks
    /// becomes a space; after it comes only the line break that ends its last line. (Kept
    /// lines after the node, even blanked, could add to a block scalar that ends it.)
    std::string cut_out(size_t begin, size_t end) const {
        std::string out;
        out.reserve(end);
        for (size_t i = 0; i < begin; ++i) {
            char c = text_[i];
            bool line_break =
                c == '\n' || (c == '\r' && i + 1 < text_.size() && text_[i + 1] == '\n');
            out += line_break ? c : ' ';
        }
        out.append(text_, begin, end - begin);
        if (end > begin && text_[end - 1] == '\n') {
            return out;
        }
        size_t eol = line_end(line_of(end));
        if (eol >= text_.size()) {
            return out;
        }
        size_t from = eol > end && text_[eol - 1] == '\r' ? eol - 1 : eol;
        return out.append(text_, std::max(from, end), eol + 1 - std::max(from, end));
    }

private:
    const std::string& text_;
    std::vector<size_t> line_starts_;
};

/// Same content, tags and (non-null) positions.
bool same_tree(const YAML::Node& a, const YAML::Node& b, int depth = 0) {
    if (depth > kMaxTreeDepth || a.Type() != b.Type() || a.Tag() != b.Tag()) {
        return false;
    }
    if (!a.IsNull() && (a.Mark().line != b.Mark().line || a.Mark().column != b.Mark().column)) {
        return false;
    }
    switch (a.Type()) {
    case YAML::NodeType::Scalar:
        return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
        if (a.size() != b.size()) {
            return false;
        }
        for (size_t i = 0; i < a.size(); ++i) {
            if (!same_tree(a[i], b[i], depth + 1)) {
                return false;
            }
        }
        return true;
    case YAML::NodeType::Map: {
        auto ia = a.begin();
        auto ib = b.begin();
        for (; ia != a.end() && ib != b.end(); ++ia, ++ib) {
            if (!same_tree(ia->first, ib->first, depth + 1) ||
                !same_tree(ia->second, ib->second, depth + 1)) {
                return false;
            }
        }
        return ia == a.end() && ib == b.end();
    }
    default:
        return true;
    }
}

/// Cuts a device's `config:` value out of the file. The value's start is its mark; its end
/// is found lexically (matching bracket or quote for flow nodes, indentation for block
/// nodes), then checked by parsing the cut text and comparing it with the original node.
class ConfigTextExtractor {
public:
    ConfigTextExtractor(const SourceText& src, const YAML::Node& key, const YAML::Node& value,
                        bool flow_context, std::string path)
        : src_(src), key_(key), value_(value), flow_context_(flow_context), path_(std::move(path)) {
    }

    std::string extract() {
        size_t key_off = src_.offset(key_.Mark());
        size_t start = src_.offset(value_.Mark());
        if (value_.IsNull() && (start <= key_off || !at_null_token(start))) {
            return ""; // `config:` with nothing after it
        }
        if (start <= key_off) {
            fail(key_, path_, "an alias is not supported here (write the block out in place)");
        }
        size_t content = skip_properties(start);
        char c = src_.at(content);
        bool collection_in_block = !flow_context_ && value_.Style() == YAML::EmitterStyle::Block &&
                                   (value_.IsMap() || value_.IsSequence());
        size_t end = 0;
        if (!collection_in_block && (c == '{' || c == '[')) {
            end = scan_flow_collection(content);
        } else if (!collection_in_block && (c == '"' || c == '\'')) {
            end = scan_quoted(content);
        } else if (flow_context_) {
            end = scan_plain_flow(content);
        } else {
            size_t key_col = key_off - src_.line_start(src_.line_of(key_off));
            size_t col = content - src_.line_start(src_.line_of(content));
            end = block_end(start, key_col, c == '-' && col == key_col);
        }
        std::string message;
        if (!same_as_value(start, end, &message)) {
            fail(value_, path_, "cannot be handed to the plugin as standalone YAML" + message);
        }
        return src_.cut_out(start, end);
    }

private:
    bool at_null_token(size_t off) const { return yaml::null_token_at(src_.text(), off); }

    /// Skips a leading tag and/or anchor (`!t &a`), and comments and space after them.
    size_t skip_properties(size_t off) const {
        while (src_.at(off) == '!' || src_.at(off) == '&') {
            while (off < src_.size() && !std::isspace(static_cast<unsigned char>(src_.at(off)))) {
                ++off;
            }
            while (off < src_.size()) {
                char c = src_.at(off);
                if (std::isspace(static_cast<unsigned char>(c))) {
                    ++off;
                } else if (c == '#') {
                    off = src_.line_end(src_.line_of(off));
                } else {
                    break;
                }
            }
        }
        return off;
    }

    size_t scan_quoted(size_t off) const {
        char q = src_.at(off);
        for (size_t i = off + 1; i < src_.size(); ++i) {
            char c = src_.at(i);
            if (q == '"' && c == '\\') {
                ++i;
            } else if (c == q) {
                if (q == '\'' && src_.at(i + 1) == '\'') {
                    ++i;
                } else {
                    return i + 1;
                }
            }
        }
        return src_.size();
    }

    size_t scan_flow_collection(size_t off) const {
        int depth = 0;
        for (size_t i = off; i < src_.size(); ++i) {
            char c = src_.at(i);
            char prev = i > 0 ? src_.at(i - 1) : ' ';
            if ((c == '"' || c == '\'') && (std::isspace(static_cast<unsigned char>(prev)) ||
                                            std::strchr("{[,:?", prev) != nullptr)) {
                i = scan_quoted(i) - 1;
            } else if (c == '#' && std::isspace(static_cast<unsigned char>(prev))) {
                i = src_.line_end(src_.line_of(i));
            } else if (c == '{' || c == '[') {
                ++depth;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return src_.size();
    }

    /// A plain scalar inside a flow collection: up to the next indicator.
    size_t scan_plain_flow(size_t off) const {
        size_t i = off;
        for (; i < src_.size(); ++i) {
            char c = src_.at(i);
            char next = src_.at(i + 1);
            if (c == ',' || c == '}' || c == ']' || c == '\n' ||
                (c == '#' && i > off && is_blank_char(src_.at(i - 1))) ||
                (c == ':' && (next == '\0' || std::strchr(" \t\r\n,]}", next) != nullptr))) {
                break;
            }
        }
        while (i > off && is_blank_char(src_.at(i - 1))) {
            --i;
        }
        return i;
    }

    /// A block node (or a plain or block scalar in block context): the start line, then
    /// every line indented more than the `config` key; for a sequence written at the key's
    /// own indentation, also the lines at that indentation that start with "- ". Comment
    /// lines never end it. A trailing comment on the last line and trailing comment lines
    /// are left out when parsing shows they are comments (not block scalar text); trailing
    /// blank lines are taken in when they belong to the node (a `|+` scalar).
    size_t block_end(size_t start, size_t key_col, bool compact_seq) const {
        size_t first = src_.line_of(start);
        size_t last = first;          // last line that belongs to the node
        size_t last_content = first;  // ... and is not a comment line
        std::vector<size_t> trailing; // comment lines after last_content that may belong
        for (size_t l = first + 1; l < src_.num_lines(); ++l) {
            size_t b = src_.line_start(l);
            size_t e = src_.line_end(l);
            size_t indent = 0;
            while (b + indent < e && src_.at(b + indent) == ' ') {
                ++indent;
            }
            size_t p = b + indent;
            while (p < e && is_blank_char(src_.at(p))) {
                ++p;
            }
            if (p == e) {
                continue; // blank
            }
            bool comment = src_.at(p) == '#';
            bool inside =
                indent > key_col || (compact_seq && indent == key_col && src_.at(p) == '-' &&
                                     (p + 1 == e || is_blank_char(src_.at(p + 1))));
            if (comment) {
                if (inside) {
                    last = l;
                    trailing.push_back(l);
                }
                continue;
            }
            if (!inside) {
                break;
            }
            last = l;
            last_content = l;
            trailing.clear();
        }
        // Candidate ends, shortest first; the first that parses to the same node wins.
        std::vector<size_t> ends;
        size_t content_end = src_.line_end(last_content);
        for (size_t i = std::max(start, src_.line_start(last_content)) + 1; i < content_end; ++i) {
            if (src_.at(i) == '#' && is_blank_char(src_.at(i - 1))) {
                size_t cut = i; // a trailing comment on the last line
                while (cut > start && is_blank_char(src_.at(cut - 1))) {
                    --cut;
                }
                ends.push_back(cut);
            }
        }
        ends.push_back(content_end);
        for (size_t l : trailing) {
            ends.push_back(src_.line_end(l)); // a comment, or block scalar text?
        }
        size_t next = last + 1; // with trailing blank lines (a `|+` scalar)
        while (next < src_.num_lines() && line_is_blank(next)) {
            ++next;
        }
        ends.push_back(next < src_.num_lines() ? src_.line_start(next) : src_.size());
        for (size_t end : ends) {
            if (end > start && same_as_value(start, end, nullptr)) {
                return end;
            }
        }
        return ends.back();
    }

    bool line_is_blank(size_t line) const {
        for (size_t i = src_.line_start(line); i < src_.line_end(line); ++i) {
            if (!is_blank_char(src_.at(i))) {
                return false;
            }
        }
        return true;
    }

    /// Whether the text [begin, end), blanked around, parses to the same node as value_.
    bool same_as_value(size_t begin, size_t end, std::string* message) const {
        try {
            YAML::Node parsed = YAML::Load(src_.cut_out(begin, end));
            if (same_tree(parsed, value_)) {
                return true;
            }
            if (message != nullptr) {
                // yaml-cpp accepts some under-indented text that the cut cannot follow.
                *message = " (indent all of its lines more than the `config` key)";
            }
        } catch (const YAML::Exception& e) {
            if (message != nullptr) {
                *message = ": " + e.msg;
            }
        }
        return false;
    }

    const SourceText& src_;
    const YAML::Node& key_;
    const YAML::Node& value_;
    bool flow_context_;
    std::string path_;
};

// ---- the schema ----------------------------------------------------------------------------

class ConfigParser {
public:
    ConfigParser(const std::string& text, const std::string& origin, unsigned online_cpus)
        : src_(text), origin_(origin), online_cpus_(online_cpus == 0 ? 1 : online_cpus) {}

    Config parse() {
        YAML::Node root = load_root("mapping");
        auto top = read_mapping(root, "", {"host", "devices"});

        Config cfg;
        const Entry* host = find_entry(top, "host");
        cfg.host = parse_host(host != nullptr ? host->value : YAML::Node());
        const Entry* devices = find_entry(top, "devices");
        if (devices == nullptr) {
            fail(root, "devices", "missing required key");
        }
        cfg.devices = parse_devices(devices->value, cfg.host);
        return cfg;
    }

    /// One device entry alone (parse_device_snippet).
    DeviceConfig parse_snippet(const HostConfig& host) {
        YAML::Node root = load_root("device mapping");
        DeviceConfig dev = parse_device(root, "", 0, host);
        dev.snippet = true;
        return dev;
    }

private:
    /// The one document of the text (\p what: what it must hold, for the message when it
    /// is empty).
    YAML::Node load_root(const char* what) {
        check_single_document();
        // Not LoadAll(): yaml-cpp 0.7's LoadAll() loops forever on a stray ',' at the start
        // of a document.
        YAML::Node root;
        try {
            root = YAML::Load(src_.text());
        } catch (const YAML::Exception& e) {
            fail(pos_of(e.mark), "yaml", e.msg);
        }
        if (root.IsNull() && root.Mark().is_null()) {
            fail(Pos{}, "(root)", std::string("expected ") + what + ", got empty document");
        }
        return root;
    }

    /// A `---` after the first document's content, or content after `...`, starts another
    /// document (these markers cannot occur at column 0 inside a document).
    void check_single_document() const {
        bool seen_content = false;
        bool ended = false;
        for (size_t l = 0; l < src_.num_lines(); ++l) {
            std::string_view line(src_.text().data() + src_.line_start(l),
                                  src_.line_end(l) - src_.line_start(l));
            auto marker = [&line](std::string_view m) {
                return line.substr(0, 3) == m && (line.size() == 3 || is_blank_char(line[3]));
            };
            size_t p = line.find_first_not_of(" \t\r");
            if (p == std::string_view::npos || line[p] == '#') {
                continue;
            }
            if (marker("...")) {
                ended = true;
                continue;
            }
            if (ended ? line[0] != '%' : marker("---") && seen_content) {
                fail(Pos{static_cast<int>(l) + 1, 1}, "(root)", "expected a single YAML document");
            }
            if (line[0] == '%' && !seen_content) {
                continue; // a directive
            }
            if (marker("---")) {
                size_t q = line.find_first_not_of(" \t\r", 3);
                seen_content = q != std::string_view::npos && line[q] != '#';
                continue;
            }
            seen_content = true;
        }
    }

    HostConfig parse_host(const YAML::Node& n) {
        HostConfig h;
        h.poll_lcores = {online_cpus_ - 1};
        if (!n.IsDefined() || n.IsNull()) {
            return h;
        }
        const std::string path = "host";
        for (const Entry& e : read_mapping(n, path,
                                           {"poll_lcores", "log_level", "eal_args", "plugin_dir",
                                            "control_socket", "idle_poll_us", "queue_slice_us",
                                            "max_sleep_ms",
                                            "teardown_timeout_ms", "sandbox", "seccomp",
                                            "share_roots", "telemetry", "metrics"})) {
            std::string p = child_path(path, e.key);
            if (e.key == "poll_lcores") {
                h.poll_lcores = parse_poll_lcores(e.value, p);
            } else if (e.key == "log_level") {
                h.log_level = parse_string(e.value, p);
                static constexpr std::string_view kLevels[] = {"err", "warning", "notice", "info",
                                                               "debug"};
                if (std::find(std::begin(kLevels), std::end(kLevels), h.log_level) ==
                    std::end(kLevels)) {
                    fail(e.value, p,
                         "expected one of err, warning, notice, info, debug, got " +
                             quoted(h.log_level));
                }
            } else if (e.key == "eal_args") {
                h.eal_args = parse_string_list(e.value, p);
            } else if (e.key == "plugin_dir") {
                h.plugin_dir = parse_string(e.value, p);
            } else if (e.key == "control_socket") {
                h.control_socket = parse_string(e.value, p);
                check_socket_path(e.value, p, h.control_socket, false);
            } else if (e.key == "idle_poll_us") {
                h.idle_poll_us = static_cast<uint32_t>(parse_uint(e.value, p, 0, kMaxIdlePollUs));
            } else if (e.key == "queue_slice_us") {
                h.queue_slice_us =
                    static_cast<uint32_t>(parse_uint(e.value, p, 0, kMaxQueueSliceUs));
            } else if (e.key == "max_sleep_ms") {
                h.max_sleep_ms =
                    static_cast<uint32_t>(parse_uint(e.value, p, kMinSleepMs, kMaxSleepMs));
            } else if (e.key == "teardown_timeout_ms") {
                h.teardown_timeout_ms =
                    static_cast<uint32_t>(parse_uint(e.value, p, kMinTeardownMs, kMaxTeardownMs));
            } else if (e.key == "sandbox" || e.key == "seccomp") {
                parse_sandbox_key(e, p, &h);
            } else if (e.key == "share_roots") {
                h.share_roots = parse_string_list(e.value, p);
                for (size_t i = 0; i < h.share_roots.size(); ++i) {
                    const std::string& r = h.share_roots[i];
                    if (r.size() < 2 || r[0] != '/') {
                        fail(e.value[i], index_path(p, i),
                             "expected an absolute directory other than \"/\", got " +
                                 quoted(r));
                    }
                }
            } else if (e.key == "telemetry" || e.key == "metrics") {
                parse_telemetry_key(e, p, &h);
            }
        }
        return h;
    }

    /// host.telemetry (bool) and host.metrics ({listen: ADDRESS}), see metrics_server.h.
    void parse_telemetry_key(const Entry& e, const std::string& p, HostConfig* h) {
        if (e.key == "telemetry") {
            std::string v = e.value.IsScalar() ? e.value.Scalar() : "";
            if (v != "true" && v != "false") {
                fail(e.value, p, "expected true or false");
            }
            h->telemetry = v == "true";
            return;
        }
        if (e.value.IsNull()) {
            return;
        }
        for (const Entry& m : read_mapping(e.value, p, {"listen"})) {
            std::string mp = child_path(p, m.key);
            h->metrics_listen = parse_string(m.value, mp);
            MetricsAddress a;
            std::string err;
            if (!parse_metrics_address(h->metrics_listen, &a, &err)) {
                fail(m.value, mp, err + ", got " + quoted(h->metrics_listen));
            }
            if (a.unix_socket) {
                check_socket_path(m.value, mp, a.path, true);
            }
        }
    }

    /// host.sandbox / host.seccomp (the process sandbox, see sandbox.h, seccomp_filter.h).
    void parse_sandbox_key(const Entry& e, const std::string& p, HostConfig* h) {
        std::string v = parse_string(e.value, p);
        if (e.key == "sandbox") {
            if (v == "namespace") {
                h->sandbox = SandboxMode::Namespace;
            } else if (v == "chroot") {
                h->sandbox = SandboxMode::Chroot;
            } else if (v == "none") {
                h->sandbox = SandboxMode::None;
            } else {
                fail(e.value, p, "expected one of namespace, chroot, none, got " + quoted(v));
            }
        } else {
            if (v == "kill") {
                h->seccomp = SeccompMode::Kill;
            } else if (v == "log") {
                h->seccomp = SeccompMode::Log;
            } else if (v == "none") {
                h->seccomp = SeccompMode::None;
            } else {
                fail(e.value, p, "expected one of kill, log, none, got " + quoted(v));
            }
        }
    }

    std::vector<unsigned> parse_poll_lcores(const YAML::Node& n, const std::string& path) {
        if (!n.IsSequence()) {
            fail_type(n, path, "sequence");
        }
        if (n.size() == 0) {
            fail(n, path, "expected at least one CPU");
        }
        std::vector<unsigned> cpus;
        for (size_t i = 0; i < n.size(); ++i) {
            std::string p = index_path(path, i);
            auto cpu = static_cast<unsigned>(parse_uint(n[i], p, 0, UINT32_MAX));
            if (cpu >= online_cpus_) {
                fail(n[i], p,
                     "CPU " + std::to_string(cpu) + " out of range (" +
                         std::to_string(online_cpus_) + " CPUs online: 0.." +
                         std::to_string(online_cpus_ - 1) + ")");
            }
            if (std::find(cpus.begin(), cpus.end(), cpu) != cpus.end()) {
                fail(n[i], p, "duplicate CPU " + std::to_string(cpu));
            }
            cpus.push_back(cpu);
        }
        return cpus;
    }

    std::vector<DeviceConfig> parse_devices(const YAML::Node& n, const HostConfig& host) {
        const std::string path = "devices";
        if (!n.IsSequence()) {
            fail_type(n, path, "sequence");
        }
        if (n.size() == 0 && host.control_socket.empty()) {
            fail(n, path,
                 "expected at least one device (or a host.control_socket, to add them later)");
        }
        std::vector<DeviceConfig> devices;
        std::map<std::string, int> name_lines;
        std::map<std::string, int> socket_lines;
        for (size_t i = 0; i < n.size(); ++i) {
            DeviceConfig dev = parse_device(n[i], index_path(path, i), i, host);
            std::string p = index_path(path, i);
            const YAML::Node item = n[i];
            if (auto [it, fresh] = name_lines.emplace(dev.name, pos_of(item["name"]).line);
                !fresh) {
                fail(item["name"], p + ".name",
                     "duplicate device name " + quoted(dev.name) + " (first at line " +
                         std::to_string(it->second) + ")");
            }
            // A device served on an inherited socket may name its path only by socket_fd.
            const char* skey = item["socket"] ? "socket" : "socket_fd";
            if (auto [it, fresh] = socket_lines.emplace(dev.socket, pos_of(item[skey]).line);
                !fresh) {
                fail(item[skey], p + "." + skey,
                     "duplicate socket " + quoted(dev.socket) + " (first at line " +
                         std::to_string(it->second) + ")");
            }
            devices.push_back(std::move(dev));
        }
        return devices;
    }

    DeviceConfig parse_device(const YAML::Node& n, const std::string& path, size_t index,
                              const HostConfig& host) {
        auto entries = read_mapping(n, path,
                                    {"name", "type", "socket", "socket_fd", "lcore",
                                     "queue_size_max", "socket_mode", "socket_group", "qos",
                                     "config"});
        DeviceConfig dev;
        std::string fd_path; // the path socket_fd is bound to
        Pos pos = pos_of(n);
        dev.line = pos.line;
        dev.column = pos.column;
        dev.index = index;
        for (std::string_view required : {"name", "type", "socket"}) {
            if (required == "socket" && find_entry(entries, "socket_fd") != nullptr) {
                continue; // the inherited socket's path
            }
            if (find_entry(entries, required) == nullptr) {
                fail(n, child_path(path, required), "missing required key");
            }
        }
        for (const Entry& e : entries) {
            std::string p = child_path(path, e.key);
            if (e.key == "name") {
                dev.name = parse_string(e.value, p);
                if (!valid_name(dev.name, kMaxDeviceName, true)) {
                    fail(e.value, p,
                         "invalid device name " + quoted(dev.name) +
                             " (expected 1-63 characters of A-Z a-z 0-9 _ . -)");
                }
            } else if (e.key == "type") {
                dev.type = parse_string(e.value, p);
                Pos tp = pos_of(e.value);
                dev.type_line = tp.line;
                dev.type_column = tp.column;
                if (!valid_name(dev.type, std::string::npos, false)) {
                    fail(e.value, p,
                         "invalid plugin name " + quoted(dev.type) +
                             " (expected characters a-z 0-9 _ -)");
                }
            } else if (e.key == "socket") {
                dev.socket = parse_string(e.value, p);
                check_socket_path(e.value, p, dev.socket, true);
            } else if (e.key == "socket_fd") {
                uint64_t fd = parse_uint(e.value, p, 0, 1U << 30);
                std::string why;
                if (!inspect_listen_fd(static_cast<int>(fd), &fd_path, &why)) {
                    fail(e.value, p, why);
                }
                dev.socket_fd = static_cast<int>(fd);
            } else if (e.key == "lcore") {
                dev.lcores = parse_device_lcores(e.value, p, host);
            } else if (e.key == "queue_size_max") {
                uint64_t v = parse_uint(e.value, p);
                if (v == 0 || v > kMaxQueueSize || (v & (v - 1)) != 0) {
                    fail(e.value, p,
                         "expected a power of two in 1.." + std::to_string(kMaxQueueSize) +
                             ", got " + e.value.Scalar());
                }
                dev.queue_size_max = static_cast<uint16_t>(v);
            } else if (e.key == "socket_mode") {
                dev.socket_mode = parse_socket_mode(e.value, p);
            } else if (e.key == "socket_group") {
                dev.socket_group = parse_string(e.value, p);
                dev.socket_gid = resolve_group(e.value, p, dev.socket_group);
                dev.has_socket_group = true;
            } else if (e.key == "qos") {
                dev.qos = parse_qos(e.value, p);
            } else if (e.key == "config") {
                bool flow = n.Style() == YAML::EmitterStyle::Flow;
                dev.config_text = ConfigTextExtractor(src_, e.key_node, e.value, flow, p).extract();
            }
        }
        if (dev.socket_fd >= 0) {
            const Entry* s = find_entry(entries, "socket");
            if (s != nullptr && dev.socket != fd_path) {
                fail(s->value, child_path(path, "socket"),
                     quoted(dev.socket) + " is not the path socket_fd " +
                         std::to_string(dev.socket_fd) + " is bound to (" + quoted(fd_path) +
                         "); give one of them only");
            }
            if (dev.has_socket_group || find_entry(entries, "socket_mode") != nullptr) {
                const Entry* a = find_entry(entries, dev.has_socket_group ? "socket_group"
                                                                          : "socket_mode");
                fail(a->value, child_path(path, a->key),
                     "not allowed with socket_fd: whoever created the inherited socket set its "
                     "access");
            }
            dev.socket = fd_path;
        }
        if (dev.lcores.empty()) {
            dev.lcores = {host.poll_lcores[index % host.poll_lcores.size()]};
        }
        dev.origin = origin_;
        return dev;
    }

    /// `qos: {iops: N, bandwidth: RATE, burst_ms: N}` (every key optional; 0 = unlimited).
    static QosConfig parse_qos(const YAML::Node& n, const std::string& path) {
        QosConfig q;
        if (n.IsNull()) {
            return q;
        }
        for (const Entry& e : read_mapping(n, path, {"iops", "bandwidth", "burst_ms"})) {
            std::string p = child_path(path, e.key);
            if (e.key == "iops") {
                q.iops = parse_uint(e.value, p, 0, QosConfig::kMaxIops);
            } else if (e.key == "burst_ms") {
                q.burst_ms = static_cast<uint32_t>(
                    parse_uint(e.value, p, QosConfig::kMinBurstMs, QosConfig::kMaxBurstMs));
            } else {
                if (!e.value.IsScalar()) {
                    fail_type(e.value, p, "byte rate such as \"100MiB\"");
                }
                std::string why;
                if (!parse_byte_rate(e.value.Scalar(), &q.bandwidth, &why)) {
                    fail(e.value, p, why + ", got " + quoted(e.value.Scalar()));
                }
                std::string range = qos_check(QosConfig{0, q.bandwidth, q.burst_ms});
                if (!range.empty()) {
                    fail(e.value, p, range.substr(range.find(": ") + 2));
                }
            }
        }
        return q;
    }

    /// An octal permission string such as 0660 (or 660): only read/write bits for the
    /// owner and the group; others never get access to a socket that serves guest memory.
    static uint32_t parse_socket_mode(const YAML::Node& n, const std::string& path) {
        if (!n.IsScalar()) {
            fail_type(n, path, "octal mode such as 0600");
        }
        std::string v = n.Scalar();
        std::string digits = v.size() > 1 && v[0] == '0' && (v[1] == 'o' || v[1] == 'O')
                                 ? v.substr(2)
                                 : v;
        auto octal_digit = [](char c) { return c >= '0' && c <= '7'; };
        if (digits.empty() || digits.size() > 4 ||
            !std::all_of(digits.begin(), digits.end(), octal_digit)) {
            fail(n, path, "expected an octal mode such as 0600, got " + quoted(v));
        }
        uint32_t mode = static_cast<uint32_t>(std::stoul(digits, nullptr, 8));
        if ((mode & ~0660U) != 0) {
            fail(n, path,
                 "mode " + v + " allows more than read/write for owner and group (expected a "
                               "subset of 0660: others must not reach a device socket)");
        }
        if ((mode & 0600U) != 0600U) {
            fail(n, path, "mode " + v + " lacks read/write for the owner (expected 06x0)");
        }
        return mode;
    }

    /// A group name or a numeric gid; a name must exist on this host.
    static uint32_t resolve_group(const YAML::Node& n, const std::string& path,
                                  const std::string& name) {
        uint64_t gid = 0;
        if (yaml_messages::parse_decimal(name, &gid) == yaml_messages::Decimal::Ok) {
            if (gid >= UINT32_MAX) {
                fail(n, path, "gid out of range: " + name);
            }
            return static_cast<uint32_t>(gid);
        }
        if (name.empty()) {
            fail(n, path, "expected a group name or gid, got \"\"");
        }
        if (auto gid_of = group_cache().find(name); gid_of != group_cache().end()) {
            return gid_of->second; // read before the sandbox hid /etc/group
        }
        std::vector<char> buf(16384);
        struct group gr {};
        struct group* res = nullptr;
        int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res);
        if (rc != 0 || res == nullptr) {
            fail(n, path, "unknown group " + quoted(name));
        }
        return static_cast<uint32_t>(res->gr_gid);
    }

    std::vector<unsigned> parse_device_lcores(const YAML::Node& n, const std::string& path,
                                              const HostConfig& host) {
        auto one = [&](const YAML::Node& item, const std::string& p) {
            auto cpu = static_cast<unsigned>(parse_uint(item, p, 0, UINT32_MAX));
            if (std::find(host.poll_lcores.begin(), host.poll_lcores.end(), cpu) ==
                host.poll_lcores.end()) {
                fail(item, p,
                     "CPU " + std::to_string(cpu) + " is not in host.poll_lcores " +
                         cpu_list_text(host.poll_lcores));
            }
            return cpu;
        };
        if (n.IsScalar()) {
            return {one(n, path)};
        }
        if (!n.IsSequence()) {
            fail_type(n, path, "unsigned integer or sequence");
        }
        if (n.size() == 0) {
            fail(n, path, "expected at least one CPU");
        }
        std::vector<unsigned> cpus;
        for (size_t i = 0; i < n.size(); ++i) {
            std::string p = index_path(path, i);
            unsigned cpu = one(n[i], p);
            if (std::find(cpus.begin(), cpus.end(), cpu) != cpus.end()) {
                fail(n[i], p, "duplicate CPU " + std::to_string(cpu));
            }
            cpus.push_back(cpu);
        }
        return cpus;
    }

    /// [A-Za-z0-9_.-] (device names) or [a-z0-9_-] (plugin names), 1..max_len.
    static bool valid_name(const std::string& s, size_t max_len, bool device) {
        if (s.empty() || s.size() > max_len) {
            return false;
        }
        return std::all_of(s.begin(), s.end(), [device](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                   (device && ((c >= 'A' && c <= 'Z') || c == '.'));
        });
    }

    SourceText src_;
    std::string origin_;
    unsigned online_cpus_;
};

} // namespace

std::map<std::string, uint32_t>& group_cache() {
    static std::map<std::string, uint32_t> cache;
    return cache;
}

void remember_groups() {
    auto& cache = group_cache();
    setgrent();
    while (struct group* g = getgrent()) {
        cache.emplace(g->gr_name, static_cast<uint32_t>(g->gr_gid));
    }
    endgrent();
}

/// Runs \p parse (a ConfigParser call); a failure becomes "origin:line:column: key: message"
/// in \p err.
template <typename Parse>
auto run_parser(const std::string& origin, ConfigError* err, Parse parse)
    -> std::optional<decltype(parse())> {
    return yaml::run(origin, "yaml", err != nullptr ? &err->message : nullptr, parse);
}

std::optional<Config> parse_config(const std::string& text, const std::string& origin,
                                   unsigned online_cpus, ConfigError* err) {
    return run_parser(origin, err, [&] {
        Config cfg = ConfigParser(text, origin, online_cpus).parse();
        cfg.path = origin;
        return cfg;
    });
}

std::optional<Config> load_config(const std::string& path, unsigned online_cpus, ConfigError* err) {
    return load_config_at(AT_FDCWD, path, path, online_cpus, err);
}

std::optional<Config> load_config_at(int dirfd, const std::string& name, const std::string& path,
                                     unsigned online_cpus, ConfigError* err) {
    std::string text;
    int read_errno = 0;
    auto fd = UniqueFd::from_syscall(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        read_errno = fd.error();
    } else {
        char buf[16384];
        for (;;) {
            ssize_t n = ::read(fd->get(), buf, sizeof(buf));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                read_errno = errno;
                break;
            }
            if (n == 0) {
                break;
            }
            text.append(buf, static_cast<size_t>(n));
        }
    }
    if (read_errno != 0) {
        if (err != nullptr) {
            err->message = path + ": cannot read: " + std::strerror(read_errno);
        }
        return std::nullopt;
    }
    return parse_config(text, path, online_cpus, err);
}

std::optional<DeviceConfig> parse_device_snippet(const std::string& text,
                                                 const std::string& origin,
                                                 const HostConfig& host, unsigned online_cpus,
                                                 ConfigError* err) {
    return run_parser(origin, err, [&] {
        return ConfigParser(text, origin, online_cpus).parse_snippet(host);
    });
}

std::string device_error(const DeviceConfig& dev, const std::string& key,
                         const std::string& message) {
    Pos pos{dev.line, dev.column};
    if (key == "type" && dev.type_line > 0) {
        pos = Pos{dev.type_line, dev.type_column};
    }
    std::string path = dev.snippet ? "" : index_path("devices", dev.index);
    if (!key.empty()) {
        path = child_path(path, key);
    }
    if (path.empty()) {
        path = "(root)";
    }
    return yaml::format_error(dev.origin, pos, path, message);
}

std::string device_error(const Config& cfg, const DeviceConfig& dev, const std::string& key,
                         const std::string& message) {
    DeviceConfig at = dev;
    at.origin = cfg.path;
    return device_error(at, key, message);
}

} // namespace vdh
