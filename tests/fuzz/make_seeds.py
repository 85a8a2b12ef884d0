#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ and documents
# their input layouts (which the *_fuzz.cc files decode). Run it after changing a layout;
# the seeds are committed. Usage: python3 tests/fuzz/make_seeds.py [corpus dir]
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data, out):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- virtqueue_fuzz ----------------------------------------------------------------------
# Header: u8 cfg (bit0 packed, bit1 event_idx), u16 size code (split: 1 << (v % 9), packed:
# v % 256 + 1; with bit 15 set: up to 32768), u16 last_avail, u16 last_used, u16 iov_cap-1,
# u16 n + n bytes of the ring region (descriptors at 0, driver area at 16*size, device area
# after it, 4-aligned), u16 n + n bytes of data regions D0 (gpa 0x1000, 4 KiB), D1 (0x2000,
# 4 KiB, adjacent), D2 (0x8000, 8 KiB, after a hole). Then operations, one byte each:
# 0 pop, 1 push_used(u32 len), 2 should_notify, 3 enable_kicks, 4 disable_kicks,
# 5 has_available, 6 guest write to the ring (u32 off, u8 n, bytes), 7 reconnect,
# 8 pop everything, 9 guest write to a data region (u8 region, u32 off, u8 n, bytes).
RING_GPA = 0x100000
D0, D1, D2 = 0x1000, 0x2000, 0x8000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
P_AVAIL, P_USED = 1 << 7, 1 << 15


def vq_input(packed, size_code, size, ring, data=b"", ops=b"", event_idx=False, last_avail=0,
             last_used=0, iov_cap=64):
    cfg = (1 if packed else 0) | (2 if event_idx else 0)
    assert len(ring) <= 0xFFFF and len(data) <= 0xFFFF
    return (struct.pack("<BHHHH", cfg, size_code, last_avail, last_used, iov_cap - 1) +
            struct.pack("<H", len(ring)) + ring + struct.pack("<H", len(data)) + data + ops)


def split_layout(size):
    driver = 16 * size
    device = (driver + 4 + 2 * size + 2 + 3) & ~3
    return driver, device


def split_ring(size, chains, avail_idx=None, used_event=None):
    """chains: list of descriptor lists [(addr, len, flags, next)], placed from slot 0."""
    driver, device = split_layout(size)
    ring = bytearray(device + 4 + 8 * size + 2)
    slot = 0
    heads = []
    for chain in chains:
        heads.append(slot)
        for i, (addr, ln, flags, nxt) in enumerate(chain):
            if nxt is None:
                nxt = slot + 1 if flags & F_NEXT else 0
            struct.pack_into("<QIHH", ring, 16 * slot, addr, ln, flags, nxt)
            slot += 1
    for i, h in enumerate(heads):
        struct.pack_into("<H", ring, driver + 4 + 2 * (i % size), h)
    struct.pack_into("<HH", ring, driver, 0, len(heads) if avail_idx is None else avail_idx)
    if used_event is not None:
        struct.pack_into("<H", ring, driver + 4 + 2 * size, used_event)
    return bytes(ring)


def packed_ring(size, chains, driver_flags=0):
    """chains: list of (id, [(addr, len, flags)]) made available in the first lap."""
    ring = bytearray(16 * size + 4 + 4)
    driver = 16 * size
    pos = 0
    for bid, descs in chains:
        for i, (addr, ln, flags) in enumerate(descs):
            if i + 1 < len(descs):
                flags |= F_NEXT
            struct.pack_into("<QIHH", ring, 16 * pos, addr, ln, bid, flags | P_AVAIL)
            pos += 1
    struct.pack_into("<HH", ring, driver, 0, driver_flags)
    return bytes(ring)


def indirect_table(entries):
    return b"".join(struct.pack("<QIHH", a, l, f, n) for a, l, f, n in entries)


def vq_seeds(out):
    req = b"request bytes...".ljust(64, b".")
    data = req  # D0 starts with the request
    # Split, 8 entries: request (readable) + reply (writable) chain, then a 3-segment chain
    # crossing the D0/D1 boundary, then one whose reply crosses into the hole (bad address).
    ring = split_ring(8, [
        [(D0, 64, F_NEXT, None), (D2, 256, F_WRITE, None)],
        [(D0 + 0xF00, 0x200, F_NEXT, None), (D2 + 0x100, 16, F_NEXT | F_WRITE, None),
         (D2 + 0x200, 512, F_WRITE, None)],
        [(D0, 16, F_NEXT, None), (D1 + 0xF00, 0x2000, F_WRITE, None)],
    ])
    write("virtqueue", "split_chains", vq_input(False, 3, 8, ring, data, bytes([0, 1, 0xFF, 0, 0,
          0, 1, 0x10, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 8, 2, 3, 4, 5])), out)
    # Split with an indirect table in D2 (written through a data-region op).
    table = indirect_table([(D0, 64, F_NEXT, 1), (D2 + 0x800, 128, F_WRITE, 0)])
    ring = split_ring(4, [[(D2 + 0x1000, len(table), F_INDIRECT, None)]])
    ops = bytes([9, 2]) + struct.pack("<IB", 0x1000, len(table)) + table + bytes([0, 1, 64, 0, 0,
                                                                                  0, 2, 8])
    write("virtqueue", "split_indirect", vq_input(False, 2, 4, ring, data, ops), out)
    # Split with EVENT_IDX, a non-zero starting index and a reconnect in the middle.
    ring = split_ring(16, [[(D0, 32, 0, None)], [(D1, 32, F_WRITE, None)]], avail_idx=102,
                      used_event=100)
    ring = bytearray(ring)
    driver, _ = split_layout(16)
    struct.pack_into("<HH", ring, driver + 4 + 2 * (100 % 16), 0, 1)
    write("virtqueue", "split_event_idx", vq_input(False, 4, 16, bytes(ring), data,
          bytes([0, 2, 7, 0, 1, 0, 0, 0, 0, 2, 3, 4, 5]), event_idx=True, last_avail=100,
          last_used=100), out)
    # Split: a descriptor loop and an out-of-range next (refused chains).
    ring = split_ring(4, [[(D0, 8, F_NEXT, 1), (D0, 8, F_NEXT, 0)], [(D0, 8, F_NEXT, 9)]])
    write("virtqueue", "split_loop", vq_input(False, 2, 4, ring, data, bytes([8, 2])), out)
    # Packed, 8 entries: two chains, one with an indirect table.
    table = indirect_table([(D0, 64, 0, 0), (D2 + 0x400, 256, F_WRITE, 0)])
    ring = packed_ring(8, [(3, [(D0, 64, 0), (D2, 128, F_WRITE)]),
                           (5, [(D2 + 0x1000, len(table), F_INDIRECT)])])
    ops = bytes([9, 2]) + struct.pack("<IB", 0x1000, len(table)) + table + bytes([0, 0, 1, 0x80,
                                                                                  0, 0, 0, 1, 0,
                                                                                  0, 0, 0, 2, 7,
                                                                                  3, 4, 5])
    write("virtqueue", "packed_chains", vq_input(True, 7, 8, ring, data, ops), out)
    # Packed with event suppression (the driver asks for a notification at a descriptor),
    # a full ring of 3 entries whose used entries wrap.
    ring = packed_ring(3, [(0, [(D0, 16, 0)]), (1, [(D1, 16, F_WRITE), (D1 + 64, 16, F_WRITE)])],
                       driver_flags=2)
    write("virtqueue", "packed_event_idx", vq_input(True, 2, 3, ring, data,
          bytes([0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 3, 4, 7, 8]), event_idx=True,
          last_avail=0x8000, last_used=0x8000), out)


# ---- fuse_dispatcher_fuzz -------------------------------------------------------------------
# Session header (12 bytes): u8 options (bits 0-1 inode_file_handles never/prefer/mandatory,
# 2 xattr, 3 readonly, 4 writeback, 5 fd_limit 24, 6 no posix locks, 7 no flock), u8 INIT
# minor (0: 38), u32 INIT flags, u32 INIT flags2, u8 max_pages (0: 256), u8 options2 (bit0
# announce_submounts, bit1 entry timeout 0). The harness sends that INIT first.
# Then records: u8 opcode, u8 node, u8 ref2, u8 fh, u8 ctl, u16 payload length,
# [u64 nodeid if node == 0xFE], [u16 out size if ctl bit 2], payload (the arguments after
# fuse_in_header, or with ctl bit 4 the whole message). node/ref2: 0 root, 1.. the n-th id
# earlier replies returned (cyclic), 0xFF id 0. fh: 0xFF keep the payload's, else the n-th
# handle (cyclic). ref2 fills RENAME newdir, LINK oldnodeid, COPY_FILE_RANGE nodeid_out and
# BATCH_FORGET entries. ctl: 1 uid/gid 1000 (else 0), 2 split the request, 4 out size
# follows, 8 hiprio queue, 16 raw, 32 split the reply area, 64 own request ctx, 128 1 MiB
# reply area. The share holds file (4 KiB), dir/, dir/inner and link -> file.
GUEST_FLAGS = 0x7bfffffb  # what a Linux 6.1 guest offers (7.38)
(LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK,
 OPEN, READ, WRITE, STATFS, RELEASE) = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                        18)
(FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR,
 FSYNCDIR, GETLK, SETLK, SETLKW, ACCESS, CREATE, INTERRUPT) = range(20, 37)
DESTROY, BATCH_FORGET, FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = (
    38, 42, 43, 44, 45, 46, 47)
SYNCFS, TMPFILE, STATX = 50, 51, 52
ROOT, KEEP = 0, 0xFF
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_EXCL = 0, 1, 2, 0o100, 0o1000, 0o200
S_IFREG, S_IFDIR, S_IFSOCK, S_IFIFO, S_IFCHR = 0o100000, 0o040000, 0o140000, 0o010000, 0o020000


def session(records, opt=0, minor=38, flags=GUEST_FLAGS, flags2=0, max_pages=0, opt2=0):
    return struct.pack("<BBIIBB", opt, minor, flags, flags2, max_pages, opt2) + b"".join(records)


def rec(opcode, payload=b"", node=ROOT, ref2=ROOT, fh=KEEP, ctl=0, out=None, raw_node=None):
    head = struct.pack("<BBBBBH", opcode, 0xFE if raw_node is not None else node, ref2, fh,
                       ctl | (4 if out is not None else 0), len(payload))
    if raw_node is not None:
        head += struct.pack("<Q", raw_node)
    if out is not None:
        head += struct.pack("<H", out)
    return head + payload


def name(s):
    return s.encode() + b"\0"


def read_in(size, offset=0, fh=0, flags=0, owner=0):
    return struct.pack("<QQIIQII", fh, offset, size, 0, owner, flags, 0)


def write_in(data, offset=0, fh=0, write_flags=0):
    return struct.pack("<QQIIQII", fh, offset, len(data), write_flags, 0, 0, 0) + data


def release_in(flags=0, release_flags=0, owner=0):
    return struct.pack("<QIIQ", 0, flags, release_flags, owner)


def flush_in(owner):
    return struct.pack("<QIIQ", 0, 0, 0, owner)


def open_in(flags):
    return struct.pack("<II", flags, 0)


def create_in(flags, mode, fname=None, umask=0o022):
    return struct.pack("<IIII", flags, mode, umask, 0) + (name(fname) if fname else b"")


def setattr_in(valid, size=0, mode=0, uid=0, gid=0, fh=0):
    return struct.pack("<IIQQQQQQIIIIIIII", valid, 0, fh, size, 0, 0, 0, 0, 0, 0, 0, mode, 0, uid,
                       gid, 0)


def lk_in(owner, start, end, typ, lk_flags=0, pid=1):
    return struct.pack("<QQQQIIII", 0, owner, start, end, typ, pid, lk_flags, 0)


def fuse_seeds(out):
    # The brief's sequence: LOOKUP, OPEN, READ (then FLUSH, RELEASE, FORGET).
    write("fuse_dispatcher", "lookup_open_read", session([
        rec(LOOKUP, name("file")),
        rec(OPEN, open_in(O_RDONLY), node=1),
        rec(READ, read_in(4096), node=1, fh=0),
        rec(READ, read_in(100, offset=4000), node=1, fh=0, ctl=2 | 32),
        rec(FLUSH, flush_in(7), node=1, fh=0),
        rec(RELEASE, release_in(O_RDONLY), node=1, fh=0),
        rec(FORGET, struct.pack("<Q", 1), node=1),
    ]), out)
    # Same with file handles (inode_file_handles: prefer) and a nested lookup.
    write("fuse_dispatcher", "handles_prefer", session([
        rec(LOOKUP, name("dir")),
        rec(LOOKUP, name("inner"), node=1),
        rec(OPEN, open_in(O_RDONLY), node=2),
        rec(READ, read_in(64), node=2, fh=0),
        rec(GETATTR, struct.pack("<IIQ", 1, 0, 0), node=2, fh=0),
        rec(RELEASE, release_in(), node=2, fh=0),
        rec(LOOKUP, name(".."), node=1),
        rec(BATCH_FORGET, struct.pack("<II", 2, 0) + struct.pack("<QQ", 0, 1) * 2, ref2=1),
    ], opt=1), out)
    # CREATE, WRITE, READ back, attributes, sizes, sync.
    write("fuse_dispatcher", "create_write_read", session([
        rec(CREATE, create_in(O_RDWR | O_CREAT | O_EXCL, S_IFREG | 0o644, "new")),
        rec(WRITE, write_in(b"hello, world\n" * 20), node=1, fh=0),
        rec(READ, read_in(4096), node=1, fh=0),
        rec(FSYNC, struct.pack("<QII", 0, 1, 0), node=1, fh=0),
        rec(SETATTR, setattr_in(1 << 3, size=5), node=1),  # FATTR_SIZE
        rec(SETATTR, setattr_in(1 << 0, mode=0o600), node=1),  # FATTR_MODE
        rec(FALLOCATE, struct.pack("<QQQII", 0, 0, 8192, 0, 0), node=1, fh=0),
        rec(LSEEK, struct.pack("<QQII", 0, 0, 3, 0), node=1, fh=0),  # SEEK_DATA
        rec(WRITE, write_in(b"x" * 100, offset=1 << 20), node=1, fh=0, ctl=2),
        rec(GETATTR, struct.pack("<IIQ", 0, 0, 0), node=1),
        rec(RELEASE, release_in(O_RDWR), node=1, fh=0),
    ]), out)
    # Directories: MKDIR, OPENDIR, READDIRPLUS (learns ids), READDIR, RMDIR.
    write("fuse_dispatcher", "dir_ops", session([
        rec(MKDIR, struct.pack("<II", 0o755, 0o022) + name("sub")),
        rec(OPENDIR, open_in(0), node=1),
        rec(READDIRPLUS, read_in(200), node=1, fh=0),
        rec(FSYNCDIR, struct.pack("<QII", 0, 0, 0), node=1, fh=0),
        rec(RELEASEDIR, release_in(), node=1, fh=0),
        rec(OPENDIR, open_in(0)),
        rec(READDIRPLUS, read_in(4096), fh=1),
        rec(READDIR, read_in(4096), fh=1, ctl=32),
        rec(READDIRPLUS, read_in(4096, offset=2), fh=1),
        rec(RELEASEDIR, release_in(), fh=1),
        rec(RMDIR, name("sub")),
        rec(ACCESS, struct.pack("<II", 7, 0), ctl=1),
        rec(STATFS),
    ]), out)
    # Names: SYMLINK/READLINK, LINK, RENAME, RENAME2 (exchange), UNLINK, MKNOD (socket).
    write("fuse_dispatcher", "names", session([
        rec(LOOKUP, name("file")),
        rec(LOOKUP, name("dir")),
        rec(SYMLINK, name("s") + name("file")),
        rec(READLINK, node=3),
        rec(LINK, struct.pack("<Q", 0) + name("hard"), ref2=1),
        rec(RENAME, struct.pack("<Q", 0) + name("hard") + name("moved"), ref2=2),
        rec(RENAME2, struct.pack("<QII", 0, 2, 0) + name("file") + name("link"), ref2=0),
        rec(MKNOD, struct.pack("<IIII", S_IFSOCK | 0o600, 0, 0o022, 0) + name("sock")),
        rec(MKNOD, struct.pack("<IIII", S_IFREG | 0o600, 0, 0o022, 0) + name("reg"), ctl=1),
        rec(UNLINK, name("s")),
        rec(UNLINK, name("moved"), node=2),
    ]), out)
    # Extended attributes (xattr: true).
    write("fuse_dispatcher", "xattr", session([
        rec(LOOKUP, name("file")),
        rec(SETXATTR, struct.pack("<II", 5, 0) + name("user.k") + b"value", node=1),
        rec(GETXATTR, struct.pack("<II", 0, 0) + name("user.k"), node=1),
        rec(GETXATTR, struct.pack("<II", 64, 0) + name("user.k"), node=1),
        rec(LISTXATTR, struct.pack("<II", 256, 0), node=1),
        rec(LISTXATTR, struct.pack("<II", 0, 0), node=1),
        rec(REMOVEXATTR, name("user.k"), node=1),
        rec(SETXATTR, struct.pack("<II", 3, 0) + name("trusted.t") + b"abc"),
    ], opt=4), out)
    # POSIX and flock locks; SETLKW on the lcore answers EINTR on conflict.
    write("fuse_dispatcher", "locks", session([
        rec(LOOKUP, name("file")),
        rec(OPEN, open_in(O_RDWR), node=1),
        rec(SETLK, lk_in(1, 0, 99, 1), node=1, fh=0),  # F_WRLCK
        rec(GETLK, lk_in(2, 0, 10, 0), node=1, fh=0),  # F_RDLCK
        rec(SETLKW, lk_in(2, 0, 10, 1), node=1, fh=0),
        rec(SETLK, lk_in(3, 0, 0, 1, lk_flags=1), node=1, fh=0),  # flock
        rec(FLUSH, flush_in(1), node=1, fh=0),
        rec(SETLK, lk_in(2, 0, 10, 2), node=1, fh=0),  # F_UNLCK
        rec(RELEASE, release_in(O_RDWR, 2, 3), node=1, fh=0),  # FUSE_RELEASE_FLOCK_UNLOCK
    ]), out)
    # Session life: DESTROY, a second INIT, then use; INTERRUPT, SYNCFS, unknown opcodes.
    init = struct.pack("<IIIII", 7, 38, 131072, GUEST_FLAGS, 0) + bytes(44)
    write("fuse_dispatcher", "reinit", session([
        rec(LOOKUP, name("file")),
        rec(DESTROY),
        rec(LOOKUP, name("file")),
        rec(INIT, init),
        rec(LOOKUP, name("dir")),
        rec(INTERRUPT, struct.pack("<Q", 0)),
        rec(SYNCFS, struct.pack("<Q", 0)),
        rec(STATX, bytes(16)),
        rec(GETATTR, struct.pack("<IIQ", 0, 0, 0), raw_node=12345),
        rec(INIT, init),
    ]), out)
    # TMPFILE and COPY_FILE_RANGE between two handles.
    write("fuse_dispatcher", "tmpfile_copy", session([
        rec(TMPFILE, create_in(O_RDWR, S_IFREG | 0o600)),
        rec(LOOKUP, name("file")),
        rec(OPEN, open_in(O_RDONLY), node=2),
        rec(COPY_FILE_RANGE, struct.pack("<QQQQQQQ", 0, 0, 0, 0, 0, 4096, 0), node=2, ref2=1, fh=1),
        rec(READ, read_in(4096), node=1, fh=0),
        rec(SETATTR, setattr_in(1 << 3, size=0, fh=0) , node=1, fh=0),
        rec(RELEASE, release_in(), node=2, fh=1),
        rec(RELEASE, release_in(), node=1, fh=0),
    ]), out)
    # Read-only share, small fd budget, small max_pages and small reply buffers.
    write("fuse_dispatcher", "readonly_limits", session([
        rec(LOOKUP, name("file")),
        rec(OPEN, open_in(O_RDWR | O_TRUNC), node=1),
        rec(OPEN, open_in(O_RDONLY), node=1),
        rec(READ, read_in(1 << 20), node=1, fh=0, ctl=128),
        rec(READ, read_in(4096), node=1, fh=0, out=40),
        rec(GETATTR, struct.pack("<IIQ", 0, 0, 0), node=1, out=16),
        rec(CREATE, create_in(O_RDWR | O_CREAT, S_IFREG | 0o644, "x")),
    ], opt=8 | 32, max_pages=4), out)
    # Special files under a created name: CREATE without O_EXCL on a FIFO once blocked the
    # lcore (regression); a device node cannot be opened on the nodev scratch tmpfs.
    write("fuse_dispatcher", "special_files", session([
        rec(MKNOD, struct.pack("<IIII", S_IFIFO | 0o666, 0, 0o022, 0) + name("fifo")),
        rec(CREATE, create_in(O_RDONLY | O_CREAT, S_IFREG | 0o644, "fifo")),
        rec(CREATE, create_in(O_WRONLY | O_CREAT | O_TRUNC, S_IFREG | 0o644, "fifo")),
        rec(OPEN, open_in(O_RDONLY), node=1),
        rec(MKNOD, struct.pack("<IIII", S_IFCHR | 0o666, (1 << 8) | 3, 0o022, 0) + name("null")),
        rec(CREATE, create_in(O_RDWR | O_CREAT, S_IFREG | 0o644, "null")),
        rec(OPEN, open_in(O_RDWR), node=2),
    ]), out)
    # Framing errors, sent raw: short header, len larger than the message, a name without
    # its NUL, extension length past the end, hiprio queue with a normal request.
    hdr = lambda ln, op, ext=0: struct.pack("<IIQQIIIHH", ln, op, 99, 1, 0, 0, 1, ext, 0)
    write("fuse_dispatcher", "malformed", session([
        rec(0, hdr(40, LOOKUP)[:20], ctl=16),
        rec(0, hdr(400, LOOKUP) + b"file\0", ctl=16),
        rec(0, hdr(44, LOOKUP) + b"file", ctl=16),
        rec(0, hdr(45, LOOKUP, ext=4) + b"file\0", ctl=16),
        rec(LOOKUP, name("file"), ctl=8),
        rec(FORGET, struct.pack("<Q", 1 << 63), raw_node=1),
        rec(READ, read_in(4096), fh=KEEP, raw_node=0),
    ]), out)


# ---- config_fuzz / share_profile_fuzz -------------------------------------------------------
# Inputs are YAML text: whole config files, or a device's `config:` block.
def yaml_seeds(out):
    configs = os.path.join(REPO, "configs")
    for f in sorted(os.listdir(configs)):
        if not f.endswith(".yaml"):
            continue
        with open(os.path.join(configs, f), "rb") as fh:
            text = fh.read()
        write("config", f, text, out)
        # Each device's config: block, flow or block style, as the share profile sees it.
        lines = text.decode().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)config:\s*(.*)$", line)
            if not m:
                continue
            if m.group(2):
                block = m.group(2) + "\n"
            else:
                ind = len(m.group(1))
                body = []
                for nxt in lines[i + 1:]:
                    if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= ind:
                        break
                    body.append(nxt)
                block = "\n".join(body) + "\n"
            write("share_profile", f"{f[:-5]}_{i + 1}.yaml", block.encode(), out)
    write("config", "errors.yaml", b"host:\n  poll_lcores: [0, 99]\n  bogus: 1\n"
          b"devices:\n  - name: a\n    type: virtiofs\n    socket: rel.sock\n", out)
    write("config", "anchors.yaml", b"host: &h {log_level: debug}\ndevices:\n"
          b"  - {name: a, type: echo, socket: /tmp/a.sock, config: *h}\n", out)
    write("share_profile", "all_keys.yaml", b"shared_dir: /srv/share\ntag: t\ncache: always\n"
          b"writeback: true\nxattr: true\nreadonly: false\nannounce_submounts: false\n"
          b"inode_file_handles: prefer\nfd_limit: 1024\nmax_pages: 64\nposix_locks: false\n"
          b"flock: true\nentry_timeout_ms: 10\nattr_timeout_ms: 20\nbackend: passthrough\n"
          b"allow_mmap: true\nreaddirplus: false\npreserve_noatime: true\nannounce_tag: true\n"
          b"request_queues: 2\n", out)
    write("share_profile", "errors.yaml", b"shared_dir: relative\nfd_limit: 0x10\n"
          b"max_pages: 257\ncache: sometimes\n", out)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    vq_seeds(out)
    fuse_seeds(out)
    yaml_seeds(out)


if __name__ == "__main__":
    main()
