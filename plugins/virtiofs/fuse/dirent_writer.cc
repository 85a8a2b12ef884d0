// SPDX-License-Identifier: MIT
// Encoding of READDIR / READDIRPLUS records into guest memory (see dirent_writer.h).
#include "fuse/dirent_writer.h"

#include "fuse/fuse_wire.h"

namespace vdh::virtiofs {

bool DirentWriter::add(std::string_view name, uint64_t ino, uint32_t type, uint64_t off,
                       const fuse_entry_out* entry) noexcept {
    const size_t head = plus_ ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    const size_t rec = plus_ ? fuse_direntplus_size(name.size()) : fuse_dirent_size(name.size());
    if (name.size() > UINT32_MAX || rec > budget_ - written_) {
        return false;
    }
    if (plus_) {
        fuse_entry_out e{};
        if (entry != nullptr) {
            e = *entry;
        }
        out_->write(&e, sizeof(e));
    }
    fuse_dirent d{};
    d.ino = ino;
    d.off = off;
    d.namelen = static_cast<uint32_t>(name.size());
    d.type = type;
    out_->write(&d, FUSE_NAME_OFFSET);
    out_->write(name.data(), name.size());
    out_->zero(rec - head - name.size());
    written_ += rec;
    ++count_;
    return true;
}

} // namespace vdh::virtiofs
