// SPDX-License-Identifier: MIT
// Conntrack at scale: map memory at the default size and at 1M flows, per-packet cost of an
// established lookup with the table nearly empty vs full (hot: one flow repeated; cold: a
// random flow per packet), userspace map operations single vs batched, full-table
// iteration, and gatewayd's own conntrack GC over a full default-size table.
#pragma once

#include "bench/bpf/Loader.h"
#include "bench/bpf/Section.h"

namespace gw::bench {

struct CtScaleOptions {
  uint32_t flows = 1'000'000;   // two entries each
  int runs = 7;
  uint32_t repeat = 1'000'000;
  uint32_t coldSamples = 20000; // repeat=1 packets on random flows, per table state
  uint32_t smallFlows = 1000;   // the "nearly empty" table
  uint32_t singleOps = 100000;  // entries for the one-syscall-per-entry comparison
  uint32_t gcFlows = 120000;    // Datapath::collectGarbage on the default-size map (0: skip)
};

// `defaultLoader`: the compiled-size maps, for their memory figure.
Section runCtScale(const BpfLoader& defaultLoader, const CtScaleOptions& options);

} // namespace gw::bench
