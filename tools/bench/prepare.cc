// SPDX-License-Identifier: MIT
// Share preparation on the host and over FUSE, and the target lookups before a run.
#include "bench/prepare.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bench/pattern.h"
#include "bench/workload.h"
#include "vdh/unique_fd.h"

namespace vdh::bench {

namespace {

constexpr uint32_t kChunk = 1024 * 1024;

std::string errstr(const char* what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

Status host_file(int dir_fd, const char* name, uint64_t bytes, std::string* why) {
    auto fd = UniqueFd::from_syscall(::openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        *why = errstr(name, fd.error());
        return Err{fd.error()};
    }
    struct stat st{};
    if (::fstat(fd->get(), &st) < 0) {
        *why = errstr(name, errno);
        return errno_err();
    }
    if (static_cast<uint64_t>(st.st_size) == bytes) {
        return ok();
    }
    if (::ftruncate(fd->get(), 0) < 0) {
        *why = errstr(name, errno);
        return errno_err();
    }
    std::vector<uint8_t> buf(kChunk);
    for (uint64_t off = 0; off < bytes; off += kChunk) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, bytes - off));
        fill_pattern(buf.data(), off, n, 0);
        if (::pwrite(fd->get(), buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
            *why = errstr(name, errno);
            return errno_err();
        }
    }
    return ok();
}

Status host_dir(int dir_fd, const char* name, std::string* why) {
    if (::mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST) {
        *why = errstr(name, errno);
        return errno_err();
    }
    return ok();
}

} // namespace

Status prepare_host(const std::string& dir, uint64_t file_bytes, std::string* why) {
    auto root = UniqueFd::from_syscall(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
        *why = errstr(dir.c_str(), root.error());
        return Err{root.error()};
    }
    VDH_TRY(host_file(root->get(), kReadFile, file_bytes, why));
    VDH_TRY(host_file(root->get(), kWriteFile, file_bytes, why));
    VDH_TRY(host_dir(root->get(), kListDir, why));
    VDH_TRY(host_dir(root->get(), kCreateDir, why));
    auto list = UniqueFd::from_syscall(
        ::openat(root->get(), kListDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!list) {
        *why = errstr(kListDir, list.error());
        return Err{list.error()};
    }
    char name[16];
    struct stat st{};
    entry_name(kListEntries - 1, name);
    if (::fstatat(list->get(), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        for (uint32_t i = 0; i < kListEntries; i++) {
            entry_name(i, name);
            int fd = ::openat(list->get(), name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) {
                *why = errstr(name, errno);
                return errno_err();
            }
            UniqueFd owned(fd);
        }
    }
    // Leftovers of an interrupted create-unlink run.
    auto cu = UniqueFd::from_syscall(
        ::openat(root->get(), kCreateDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cu) {
        *why = errstr(kCreateDir, cu.error());
        return Err{cu.error()};
    }
    auto dup = cu->dup();
    if (!dup) {
        return Err{dup.error()};
    }
    DIR* d = ::fdopendir(dup->get());
    if (d == nullptr) {
        return errno_err();
    }
    (void)dup->release(); // owned by the DIR stream now
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            stale.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    for (const std::string& n : stale) {
        (void)::unlinkat(cu->get(), n.c_str(), 0);
    }
    return ok();
}

Status prepare_fuse(FuseChannel& ch, uint64_t file_bytes, std::string* why) {
    SetupCalls calls(ch);
    std::vector<uint64_t> owed; // node ids we took one lookup count of
    auto forget_all = [&] {
        for (uint64_t n : owed) {
            (void)ch.forget(n, 1);
        }
        (void)ch.drain_forgets();
    };
    uint32_t chunk = std::min({ch.max_write(), ch.setup_slot().data_cap, kChunk});
    std::vector<uint8_t> buf(chunk);
    auto make_file = [&](const char* name) -> Status {
        auto e = calls.lookup(FUSE_ROOT_ID, name);
        uint64_t node = 0, fh = 0;
        if (e) {
            owed.push_back(e->nodeid);
            if (e->attr.size == file_bytes) {
                return ok();
            }
            node = e->nodeid;
            auto o = calls.open(node, O_RDWR);
            if (!o) {
                *why = errstr(name, o.error());
                return Err{o.error()};
            }
            fh = *o;
            auto st = calls.truncate(node, fh, 0);
            if (!st) {
                *why = errstr(name, st.error());
                return st;
            }
        } else if (e.error() == ENOENT) {
            auto c = calls.create(FUSE_ROOT_ID, name, O_RDWR, &fh);
            if (!c) {
                *why = errstr(name, c.error());
                return Err{c.error()};
            }
            node = c->nodeid;
            owed.push_back(node);
        } else {
            *why = errstr(name, e.error());
            return Err{e.error()};
        }
        for (uint64_t off = 0; off < file_bytes; off += chunk) {
            uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(chunk, file_bytes - off));
            fill_pattern(buf.data(), off, n, 0);
            auto st = calls.write(node, fh, off, buf.data(), n);
            if (!st) {
                *why = errstr(name, st.error());
                return st;
            }
        }
        return calls.release(node, fh);
    };
    auto make_dir = [&](const char* name) -> Result<uint64_t> {
        auto e = calls.lookup(FUSE_ROOT_ID, name);
        if (!e && e.error() == ENOENT) {
            e = calls.mkdir(FUSE_ROOT_ID, name, 0755);
        }
        if (!e) {
            *why = errstr(name, e.error());
            return Err{e.error()};
        }
        owed.push_back(e->nodeid);
        return e->nodeid;
    };

    Status st = make_file(kReadFile);
    if (st) {
        st = make_file(kWriteFile);
    }
    Result<uint64_t> list = st ? make_dir(kListDir) : Result<uint64_t>(Err{st.error()});
    if (list) {
        auto cu = make_dir(kCreateDir);
        if (!cu) {
            st = Err{cu.error()};
        }
    } else if (st) {
        st = Err{list.error()};
    }
    if (st && list) {
        char name[16];
        entry_name(kListEntries - 1, name);
        auto last = calls.lookup(*list, name);
        if (last) {
            owed.push_back(last->nodeid);
        } else {
            for (uint32_t i = 0; i < kListEntries && st; i++) {
                entry_name(i, name);
                uint64_t fh = 0;
                auto c = calls.create(*list, name, O_WRONLY, &fh);
                if (!c) {
                    if (c.error() != EEXIST) {
                        *why = errstr(name, c.error());
                        st = Err{c.error()};
                    }
                    continue;
                }
                st = calls.release(c->nodeid, fh);
                (void)ch.forget(c->nodeid, 1);
            }
        }
    }
    forget_all();
    return st;
}

Result<Targets> find_targets(FuseChannel& ch, std::string* why) {
    SetupCalls calls(ch);
    Targets t;
    auto need = [&](const char* name, bool dir) -> Result<fuse_entry_out> {
        auto e = calls.lookup(FUSE_ROOT_ID, name);
        if (!e) {
            *why = errstr(name, e.error()) +
                   " (prepare the share: run without --no-prepare, or with --share-dir)";
            return Err{e.error()};
        }
        if (S_ISDIR(e->attr.mode) != dir) {
            *why = std::string(name) + ": wrong file type";
            (void)ch.forget(e->nodeid, 1);
            return make_err(EINVAL);
        }
        return e;
    };
    auto r = need(kReadFile, false);
    if (!r) {
        return Err{r.error()};
    }
    t.read_node = r->nodeid;
    t.read_size = r->attr.size;
    t.read_ino = r->attr.ino;
    auto w = need(kWriteFile, false);
    if (!w) {
        return Err{w.error()};
    }
    t.write_node = w->nodeid;
    t.write_size = w->attr.size;
    auto l = need(kListDir, true);
    if (!l) {
        return Err{l.error()};
    }
    t.list_dir = l->nodeid;
    auto c = need(kCreateDir, true);
    if (!c) {
        return Err{c.error()};
    }
    t.create_dir = c->nodeid;
    auto rfh = calls.open(t.read_node, O_RDONLY);
    if (!rfh) {
        *why = errstr("OPEN bench.dat", rfh.error());
        return Err{rfh.error()};
    }
    t.read_fh = *rfh;
    auto wfh = calls.open(t.write_node, O_RDWR);
    if (!wfh) {
        *why = errstr("OPEN bench-wr.dat", wfh.error());
        return Err{wfh.error()};
    }
    t.write_fh = *wfh;
    return t;
}

void release_targets(FuseChannel& ch, const Targets& t) {
    SetupCalls calls(ch);
    (void)calls.release(t.read_node, t.read_fh);
    (void)calls.release(t.write_node, t.write_fh);
    for (uint64_t n : {t.read_node, t.write_node, t.list_dir, t.create_dir}) {
        if (n != 0) {
            (void)ch.forget(n, 1);
        }
    }
    (void)ch.drain_forgets();
}

} // namespace vdh::bench
