// SPDX-License-Identifier: MIT
// Address allocation for `ns add`: the first free host address of the subnet, scanning past
// the ones in use. Argument: addresses already in use (allocated from the bottom, the worst
// case for a first-free scan).
#include <benchmark/benchmark.h>

#include <set>

#include "gateway/services/AddressPlan.h"

namespace {

void allocateAddress(benchmark::State& st) {
  const gw::IpPrefix gateway = *gw::IpPrefix::parse("10.88.0.1/16");
  std::set<gw::IpAddress> used;
  const uint32_t base = (10u << 24) | (88u << 16);
  for (int64_t i = 0; i < st.range(0); ++i) {
    used.insert(gw::IpAddress::v4(base + 2 + static_cast<uint32_t>(i)));
  }
  for (auto _ : st) {
    auto addr = gw::allocateAddress(gateway, used);
    if (!addr) {
      st.SkipWithError(addr.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(addr);
  }
}
BENCHMARK(allocateAddress)->Arg(0)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);

} // namespace
