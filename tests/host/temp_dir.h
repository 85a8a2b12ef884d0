// SPDX-License-Identifier: MIT
// Test helper: a temporary directory under /tmp (mode 0700, from mkdtemp) removed with
// everything in it at destruction. Used by the host's unit tests and by vdhost_process.h.
#pragma once

#include <cstdlib>
#include <string>

namespace vdh::testing {

/// A temporary directory removed (recursively) at destruction.
class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/vdh-test-XXXXXX";
        char* p = mkdtemp(tmpl);
        path_ = p != nullptr ? p : "";
    }
    ~TempDir() {
        if (!path_.empty()) {
            std::string cmd = "rm -rf '" + path_ + "'";
            [[maybe_unused]] int rc = std::system(cmd.c_str());
        }
    }
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

} // namespace vdh::testing
