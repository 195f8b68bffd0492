// SPDX-License-Identifier: MIT
// ns per packet of every data-path program on every path (DNAT/SNAT first packet,
// established, reverse; a miss) next to the pass-through programs, measured in one run.
#pragma once

#include "bench/bpf/Loader.h"
#include "bench/bpf/Section.h"

namespace gw::bench {

struct PathOptions {
  int runs = 7;                 // interleaved rounds; figures are medians over them
  uint32_t repeat = 1'000'000;  // BPF_PROG_TEST_RUN repeat for fixed-point paths (even)
  uint32_t firstSamples = 2000; // repeat=1 runs per round for first packets
};

// Expects a freshly loaded `l` (empty conntrack) with setupTopology() done.
Section runPathBench(const BpfLoader& l, const PathOptions& options);

} // namespace gw::bench
