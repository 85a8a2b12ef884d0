// SPDX-License-Identifier: MIT
// Memory quarantine: keeps the address range of a guest memory mapping reserved after
// rte_vhost unmaps it, for as long as abandoned requests (teardown gave up on them) may
// still write into their buffers there. rte_vhost unmaps guest memory itself, with no hook,
// when a frontend disconnects or changes its memory table, so vdhost links with
// --wrap=munmap (munmap_wrap.cc) and this registry answers the wrapper: a quarantined range
// is replaced by an anonymous placeholder instead of being unmapped. The guest's memory is
// released all the same; a late write lands in the placeholder, never in a mapping that
// later reuses the addresses (another guest's memory, say). Cold path; any thread.
#pragma once

#include <cstddef>

namespace vdh {

/// Starts quarantining the mapping [\p addr, \p addr + \p len).
void quarantine_add(void* addr, size_t len);

/// Ends the quarantine of [\p addr, ...): if the range was already handed to munmap, its
/// placeholder is unmapped now; otherwise its owner's later munmap is a real one.
void quarantine_release(void* addr, size_t len);

/// For the munmap wrapper: if [\p addr, \p addr + \p len) is quarantined, replaces it with a
/// placeholder and returns true (munmap must then report success); false otherwise.
bool quarantine_intercept_munmap(void* addr, size_t len);

} // namespace vdh
