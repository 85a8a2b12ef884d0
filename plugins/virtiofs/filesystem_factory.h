// SPDX-License-Identifier: MIT
// Builds the filesystem backend a share profile asks for (passthrough or null).
#pragma once

#include <memory>
#include <string>

#include "filesystem.h"
#include "share_profile.h"

namespace vdh::virtiofs {

/// Creates the backend. Returns nullptr and sets \p err (a message naming the share) on
/// failure, e.g. shared_dir cannot be opened.
std::unique_ptr<Filesystem> make_filesystem(const ShareProfile& profile, std::string* err);

} // namespace vdh::virtiofs
