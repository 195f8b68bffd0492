// SPDX-License-Identifier: MIT
// The clock BPF programs stamp maps with (bpf_ktime_get_ns, CLOCK_MONOTONIC), read in userspace.
#pragma once

#include <time.h>

#include <cstdint>

namespace gw {

inline uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace gw
