// SPDX-License-Identifier: MIT
// Output of run results (table, CSV, JSON lines) and CPU time readers.
#include "bench/report.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace vdh::bench {

namespace {

std::string now_iso() {
    char buf[32];
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

struct Field {
    std::string name;
    std::string value;
    bool quoted;
};

std::string fmt(double v, int prec = 3) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
    return buf;
}

std::vector<Field> fields(const RunResult& r) {
    double per_op_cpu = (r.backend_cpu_s >= 0 && r.ops > 0) ? r.backend_cpu_s / r.ops * 1e6 : -1;
    double client_per_op = r.ops > 0 ? r.client_cpu_s / r.ops * 1e6 : 0;
    return {
        {"time", now_iso(), true},
        {"label", r.label, true},
        {"target", r.target, true},
        {"mode", r.mode, true},
        {"workload", r.workload, true},
        {"queues", std::to_string(r.queues), false},
        {"threads", std::to_string(r.threads), false},
        {"queue_depth", std::to_string(r.queue_depth), false},
        {"queue_size", std::to_string(r.queue_size), false},
        {"poll", r.poll ? "1" : "0", false},
        {"verify", r.verify ? "1" : "0", false},
        {"indirect", r.indirect ? "1" : "0", false},
        {"segment_size", std::to_string(r.segment_size), false},
        {"io_bytes", std::to_string(r.io_bytes), false},
        {"duration_req_s", fmt(r.duration_req_s), false},
        {"ops_req", std::to_string(r.ops_req), false},
        {"rep", std::to_string(r.rep), false},
        {"elapsed_s", fmt(r.elapsed_s, 4), false},
        {"ops", std::to_string(r.ops), false},
        {"requests", std::to_string(r.requests), false},
        {"bytes", std::to_string(r.bytes), false},
        {"entries", std::to_string(r.entries), false},
        {"ops_s", fmt(r.ops_per_s(), 1), false},
        {"req_s", fmt(r.req_per_s(), 1), false},
        {"mb_s", fmt(r.mb_per_s(), 2), false},
        {"lat_mean_us", fmt(r.hist.mean_ns() / 1000.0), false},
        {"lat_min_us", fmt(us(r.hist.min_ns())), false},
        {"lat_p50_us", fmt(us(r.hist.percentile_ns(0.50))), false},
        {"lat_p99_us", fmt(us(r.hist.percentile_ns(0.99))), false},
        {"lat_p999_us", fmt(us(r.hist.percentile_ns(0.999))), false},
        {"lat_max_us", fmt(us(r.hist.max_ns())), false},
        {"err_errno", std::to_string(r.err_errno), false},
        {"err_proto", std::to_string(r.err_proto), false},
        {"err_verify", std::to_string(r.err_verify), false},
        {"timed_out", r.timed_out ? "1" : "0", false},
        {"backend_cpu_s", fmt(r.backend_cpu_s, 6), false},
        {"backend_cpu_us_per_op", fmt(per_op_cpu, 3), false},
        {"client_cpu_s", fmt(r.client_cpu_s, 3), false},
        {"client_cpu_us_per_op", fmt(client_per_op, 3), false},
        {"backend_wait_s", fmt(r.backend_wait_s, 6), false},
        {"client_wait_s", fmt(r.client_wait_s, 6), false},
    };
}

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            o += buf;
        } else {
            o += c;
        }
    }
    return o;
}

std::string csv_escape(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) {
        return s;
    }
    std::string o = "\"";
    for (char c : s) {
        if (c == '"') {
            o += '"';
        }
        o += c;
    }
    return o + "\"";
}

} // namespace

namespace {

/// CPU seconds of one process from /proc/PID/stat (clock-tick resolution, 10 ms at 100 Hz).
double one_process_cpu_ticks(pid_t pid) noexcept {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
        return -1;
    }
    char buf[2048];
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    buf[n] = 0;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    char* p = std::strrchr(buf, ')');
    if (p == nullptr) {
        return -1;
    }
    unsigned long utime = 0, stime = 0;
    // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                    &stime) != 2) {
        return -1;
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// CPU seconds of one process (all its threads, live and exited, io_uring workers
/// included) from its process CPU-time clock: nanosecond resolution, which a short run
/// needs (a 0.3 s run of a backend using a quarter of a core is 75 ms of CPU, 10 ms ticks
/// would be a 13% error). /proc/PID/stat if the clock cannot be read.
double one_process_cpu(pid_t pid) noexcept {
    clockid_t clk;
    timespec ts{};
    if (::clock_getcpuclockid(pid, &clk) == 0 && ::clock_gettime(clk, &ts) == 0) {
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    }
    return one_process_cpu_ticks(pid);
}

/// Children of every thread of \p pid (from /proc/PID/task/TID/children).
std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/task", static_cast<int>(pid));
    DIR* d = ::opendir(path);
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        std::string cpath = std::string(path) + "/" + e->d_name + "/children";
        std::ifstream in(cpath);
        long c;
        while (in >> c) {
            out.push_back(static_cast<pid_t>(c));
        }
    }
    ::closedir(d);
    return out;
}

/// Seconds the live threads of one process have spent runnable but waiting for a CPU
/// (the second field of /proc/PID/task/TID/schedstat); -1 if unreadable.
double one_process_wait(pid_t pid) noexcept {
    try {
        char path[64];
        std::snprintf(path, sizeof(path), "/proc/%d/task", static_cast<int>(pid));
        DIR* d = ::opendir(path);
        if (d == nullptr) {
            return -1;
        }
        uint64_t total_ns = 0;
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') {
                continue;
            }
            std::ifstream in(std::string(path) + "/" + e->d_name + "/schedstat");
            uint64_t on_cpu = 0, waiting = 0;
            if (in >> on_cpu >> waiting) {
                total_ns += waiting;
            }
        }
        ::closedir(d);
        return static_cast<double>(total_ns) / 1e9;
    } catch (...) {
        return -1;
    }
}

/// \p one summed over process \p pid and its live descendants; -1 if \p pid is unreadable.
double tree_sum(pid_t pid, double (*one)(pid_t) noexcept) noexcept {
    try {
        double total = one(pid);
        if (total < 0) {
            return -1;
        }
        std::vector<pid_t> todo = children_of(pid);
        for (size_t i = 0; i < todo.size() && i < 256; i++) {
            double c = one(todo[i]);
            if (c >= 0) {
                total += c;
            }
            for (pid_t g : children_of(todo[i])) {
                todo.push_back(g);
            }
        }
        return total;
    } catch (...) {
        return -1;
    }
}

} // namespace

double process_cpu_seconds(pid_t pid) noexcept { return tree_sum(pid, one_process_cpu); }

double process_wait_seconds(pid_t pid) noexcept { return tree_sum(pid, one_process_wait); }

double self_cpu_seconds() noexcept {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto tv = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

void print_table_header() {
    std::printf("%-10s %-16s %3s %3s %4s %11s %9s %9s %9s %9s %10s %8s %6s\n", "label",
                "workload", "qs", "thr", "qd", "ops/s", "MB/s", "p50us", "p99us", "p99.9us",
                "cpu_us/op", "errors", "secs");
}

void print_table_row(const RunResult& r) {
    double per_op_cpu = (r.backend_cpu_s >= 0 && r.ops > 0) ? r.backend_cpu_s / r.ops * 1e6 : -1;
    char cpu[32];
    if (per_op_cpu >= 0) {
        std::snprintf(cpu, sizeof(cpu), "%.2f", per_op_cpu);
    } else {
        std::snprintf(cpu, sizeof(cpu), "-");
    }
    std::printf("%-10s %-16s %3u %3u %4u %11.0f %9.1f %9.2f %9.2f %9.2f %10s %8llu %6.2f\n",
                r.label.c_str(), r.workload.c_str(), r.queues, r.threads, r.queue_depth,
                r.ops_per_s(), r.mb_per_s(), us(r.hist.percentile_ns(0.5)),
                us(r.hist.percentile_ns(0.99)), us(r.hist.percentile_ns(0.999)), cpu,
                static_cast<unsigned long long>(r.errors()), r.elapsed_s);
    std::fflush(stdout);
}

bool append_csv(const std::string& path, const RunResult& r) {
    struct stat st{};
    bool fresh = ::stat(path.c_str(), &st) != 0 || st.st_size == 0;
    std::ofstream out(path, std::ios::app);
    if (!out) {
        return false;
    }
    auto fs = fields(r);
    std::ostringstream line;
    if (fresh) {
        for (size_t i = 0; i < fs.size(); i++) {
            line << (i ? "," : "") << fs[i].name;
        }
        line << '\n';
    }
    for (size_t i = 0; i < fs.size(); i++) {
        line << (i ? "," : "") << csv_escape(fs[i].value);
    }
    line << '\n';
    out << line.str();
    return static_cast<bool>(out);
}

bool append_json(const std::string& path, const RunResult& r) {
    std::ofstream out(path, std::ios::app);
    if (!out) {
        return false;
    }
    auto fs = fields(r);
    std::ostringstream line;
    line << '{';
    for (size_t i = 0; i < fs.size(); i++) {
        line << (i ? "," : "") << '"' << fs[i].name << "\":";
        if (fs[i].quoted) {
            line << '"' << json_escape(fs[i].value) << '"';
        } else {
            line << fs[i].value;
        }
    }
    line << "}\n";
    out << line.str();
    return static_cast<bool>(out);
}

} // namespace vdh::bench
