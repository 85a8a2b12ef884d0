// SPDX-License-Identifier: MIT
// Backing files opened before vdhost enters its sandbox. The sandbox holds only the
// directories plugins name, bound nodev (a block device could not be opened through such a
// bind), so host_paths(), which runs while the host still sees the whole file system, opens
// each disk's backing file and leaves the fd here; create() takes it. A device created
// without one (sandbox: none, or added while running) opens its path itself. Control thread
// only; cold path.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "backing_file.h"

namespace vdh::virtioblk {

/// Leaves \p b for the device whose `config:` block is \p config_text in \p origin. Two
/// devices with the same block (two read-only disks on one image) each get one.
void put_preopened(std::string_view origin, std::string_view config_text, BackingFile b);

/// Takes a backing file put_preopened() left for this block, if any.
std::optional<BackingFile> take_preopened(std::string_view origin, std::string_view config_text);

} // namespace vdh::virtioblk
