// SPDX-License-Identifier: MIT
// state.json is written when the journal outgrows it and at a clean stop, and read on every
// start: its cost grows with the number of namespaces and exposes. Argument: number of exposes (namespaces = exposes / 10 + 1).
#include <benchmark/benchmark.h>

#include <string>

#include "gateway/State.h"

namespace {

gw::State makeState(int exposes) {
  gw::State state;
  state.bridges.push_back({"gw0", *gw::IpPrefix::parse("10.88.0.1/16")});
  int namespaces = exposes / 10 + 1;
  for (int i = 0; i < namespaces; ++i) {
    gw::NamespaceRecord ns;
    ns.name = "netns" + std::to_string(i);
    ns.bridge = "gw0";
    ns.hostLink = "gw-" + ns.name;
    ns.address = *gw::IpPrefix::parse("10.88." + std::to_string((i + 2) / 256) + "." +
                                      std::to_string((i + 2) % 256) + "/16");
    ns.hostAddress = *gw::IpPrefix::parse("10.88.0.1/16");
    state.namespaces.push_back(ns);
    state.masquerades.push_back({*gw::IpPrefix::parse("10.88.0.0/16"), "", true});
  }
  for (int i = 0; i < exposes; ++i) {
    gw::ExposeRecord e;
    e.id = static_cast<uint32_t>(i + 1);
    e.hostPort = static_cast<uint16_t>(10000 + i);
    e.hostPortEnd = e.hostPort;
    e.targetNs = state.namespaces[static_cast<size_t>(i) % state.namespaces.size()].name;
    e.target = e.targetNs + ":8080";
    e.targetAddr = state.namespaces[static_cast<size_t>(i) % state.namespaces.size()].address.addr;
    e.targetPort = 8080;
    state.exposes.push_back(e);
  }
  state.nextRuleId = static_cast<uint32_t>(exposes + 1);
  return state;
}

void stateToJson(benchmark::State& st) {
  gw::State state = makeState(static_cast<int>(st.range(0)));
  size_t bytes = 0;
  for (auto _ : st) {
    std::string text = gw::toJson(state);
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  st.counters["json_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(stateToJson)->Arg(10)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void stateFromJson(benchmark::State& st) {
  std::string text = gw::toJson(makeState(static_cast<int>(st.range(0))));
  for (auto _ : st) {
    auto state = gw::fromJson(text, "bench");
    if (!state) {
      st.SkipWithError(state.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(state);
  }
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * text.size()));
}
BENCHMARK(stateFromJson)->Arg(10)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

} // namespace
