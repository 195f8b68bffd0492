// SPDX-License-Identifier: MIT
#include "bench/bpf/CtScale.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <time.h>

#include <chrono>
#include <random>

#include "bench/CtFlows.h"
#include "bench/bpf/Topology.h"
#include "gateway/datapath/BpfDatapath.h"
#include "gateway/datapath/ConntrackTable.h"
#include "gateway/datapath/MapDump.h"

namespace gw::bench {
namespace {

using Clock = std::chrono::steady_clock;
using test::kTcpAck;
using test::tcpFrame;

constexpr uint32_t kChunkFlows = 32768; // flows per generated/updated batch
constexpr uint16_t kCport = 40001;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Flow i: client 100.64.0.0 + i / 40000, source port 20000 + i % 40000, to the exposed port.
uint32_t flowClient(uint32_t i) { return htonl(0x64400000u + i / 40000); }
uint16_t flowPort(uint32_t i) { return static_cast<uint16_t>(20000 + i % 40000); }

// Both halves of DNAT flows [begin, end), as the BPF side would have created them.
void makeFlows(const Topology& t, uint32_t begin, uint32_t end, uint64_t seenNs,
               std::vector<gw_ct_key>& keys, std::vector<gw_ct_entry>& values) {
  keys.clear();
  values.clear();
  for (uint32_t i = begin; i < end; ++i) {
    CtPair f = establishedDnatFlow({flowClient(i), flowPort(i)}, {t.uplink, kExposedPort},
                                   {t.ns1, kTargetPort}, kRule, seenNs);
    keys.push_back(f.orig.key);
    values.push_back(f.orig.entry);
    keys.push_back(f.reply.key);
    values.push_back(f.reply.entry);
  }
}

// Inserts flows [begin, end) with bpf_map_update_batch; returns the seconds spent in it.
Result<double> fillBatch(int fd, const Topology& t, uint32_t begin, uint32_t end,
                         uint64_t seenNs) {
  std::vector<gw_ct_key> keys;
  std::vector<gw_ct_entry> values;
  double spent = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  for (uint32_t a = begin; a < end; a += kChunkFlows) {
    makeFlows(t, a, std::min(end, a + kChunkFlows), seenNs, keys, values);
    auto count = static_cast<uint32_t>(keys.size());
    auto start = Clock::now();
    int err = bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts);
    spent += secondsSince(start);
    if (err != 0) {
      return sysError("bpf_map_update_batch");
    }
  }
  return spent;
}

// Entries counted by bpf_map_lookup_batch (chunks of 8192); seconds in `spent`.
Result<size_t> countBatch(int fd, double& spent) {
  constexpr uint32_t kChunk = 8192;
  std::vector<gw_ct_key> keys(kChunk);
  std::vector<gw_ct_entry> values(kChunk);
  uint64_t in = 0, out = 0; // the hash map's cursor is a bucket index
  size_t n = 0;
  bool first = true;
  auto start = Clock::now();
  while (true) {
    uint32_t count = kChunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data(), values.data(),
                                   &count, nullptr);
    if (err != 0 && errno != ENOENT) {
      return sysError("bpf_map_lookup_batch");
    }
    n += count;
    if (err != 0) {
      break;
    }
    in = out;
    first = false;
  }
  spent = secondsSince(start);
  return n;
}

// Entries counted by bpf_map_get_next_key + bpf_map_lookup_elem, one key at a time.
size_t countByKey(int fd, double& spent) {
  gw_ct_key key{}, next{};
  gw_ct_entry value{};
  const gw_ct_key* cursor = nullptr;
  size_t n = 0;
  auto start = Clock::now();
  while (bpf_map_get_next_key(fd, cursor, &next) == 0) {
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) {
      ++n;
    }
    key = next;
    cursor = &key;
  }
  spent = secondsSince(start);
  return n;
}

struct Hot {
  double ingress = 0, xdp = 0, passTc = 0, passXdp = 0;
};

// One flow repeated (ping-pong with a pong entry, see PathBench.cpp): medians over rounds.
Hot measureHot(const BpfLoader& l, const Bytes& in, int runs, uint32_t repeat,
               std::vector<std::string>& failures) {
  std::vector<double> v[4];
  const Prog progs[4] = {Prog::UplinkIngress, Prog::UplinkXdp, Prog::PassTc, Prog::PassXdp};
  for (int r = 0; r < runs; ++r) {
    for (int p = 0; p < 4; ++p) {
      uint64_t before = l.reason(GW_REASON_NAT_DNAT);
      auto res = l.run(progs[p], in, repeat);
      if (!res || res->out != in) {
        failures.push_back(std::string("hot lookup: ") + progName(progs[p]) + " failed");
        continue;
      }
      if (p < 2 && l.reason(GW_REASON_NAT_DNAT) - before != repeat) {
        failures.push_back(std::string("hot lookup: ") + progName(progs[p]) +
                           " did not translate every run");
      }
      v[p].push_back(res->durationNs);
    }
  }
  return {median(v[0]), median(v[1]), median(v[2]), median(v[3])};
}

struct Cold {
  double ingress = 0, xdp = 0; // net of the clock overhead
};

// repeat=1 on a random flow of [0, flows) per packet: the lookup misses the CPU caches as
// real traffic over a big table does. Minus the pass-through programs' repeat=1 figure
// (same clock overhead, their program cost is added back from the hot repeat=N figure).
Cold measureCold(const BpfLoader& l, const Topology& t, uint32_t flows, uint32_t samples,
                 const Hot& hot, std::vector<std::string>& failures) {
  std::vector<double> v[4];
  const Prog progs[4] = {Prog::UplinkIngress, Prog::UplinkXdp, Prog::PassTc, Prog::PassXdp};
  uint64_t before = l.reason(GW_REASON_NAT_DNAT);
  uint64_t translated = 0;
  // One program at a time, each on its own random flows: a flow one program just touched
  // would be warm for the next.
  for (int p = 0; p < 4; ++p) {
    std::mt19937 rng(42 + p);
    std::uniform_int_distribution<uint32_t> pick(0, flows - 1);
    for (uint32_t s = 0; s < samples; ++s) {
      uint32_t i = pick(rng);
      Bytes in = tcpFrame(ip(flowClient(i), t.uplink), flowPort(i), kExposedPort, kTcpAck,
                          kPayload);
      auto res = l.run(progs[p], in, 1);
      if (!res || (p < 2 && res->out != tcpFrame(ip(flowClient(i), t.ns1), flowPort(i),
                                                 kTargetPort, kTcpAck, kPayload))) {
        failures.push_back(std::string("cold lookup: ") + progName(progs[p]) +
                           " did not translate flow " + std::to_string(i));
        return {};
      }
      translated += p < 2;
      v[p].push_back(res->durationNs);
    }
  }
  if (l.reason(GW_REASON_NAT_DNAT) - before != translated) {
    failures.push_back("cold lookup: not every packet was counted as DNAT");
  }
  return {median(v[0]) - median(v[2]) + hot.passTc, median(v[1]) - median(v[3]) + hot.passXdp};
}

// The DNAT bench flow of PathBench (opened by its first packet) plus its pong entry.
Bytes openHotFlow(const BpfLoader& l, const Topology& t, std::vector<std::string>& failures) {
  auto syn = l.run(Prog::UplinkIngress,
                   tcpFrame(ip(t.client, t.uplink), kCport, kExposedPort, test::kTcpSyn,
                            kPayload),
                   1);
  if (!syn) {
    failures.push_back("opening the hot flow: " + syn.error().str());
  }
  gw_ct_key orig = ctKey(t.client, t.uplink, kCport, kExposedPort, kTcp);
  gw_ct_key pong = ctKey(t.client, t.ns1, kCport, kTargetPort, kTcp);
  gw_ct_entry e = ctEntry(orig, orig, GW_CT_DIR_ORIG, GW_NAT_DNAT, kRule);
  if (bpf_map_update_elem(l.mapFd("gw_ct_v4"), &pong, &e, BPF_ANY) != 0) {
    failures.push_back("installing the pong entry failed");
  }
  return tcpFrame(ip(t.client, t.uplink), kCport, kExposedPort, kTcpAck, kPayload);
}

std::string mib(uint64_t bytes) { return fmt(static_cast<double>(bytes) / (1 << 20)); }

// gatewayd's collectGarbage over `flows` flows in its own (default-size) map: nothing
// expired (a pure scan), then everything expired (scan + delete every half).
nlohmann::json measureGc(uint32_t flows, std::string& md, std::vector<std::string>& failures) {
  DatapathConfig cfg;
  cfg.xdp = XdpMode::Off;
  cfg.fibRedirect = false;
  auto dp = BpfDatapath::open(cfg); // loads and writes config; attaches nothing
  if (!dp) {
    failures.push_back("Datapath::open: " + dp.error().str());
    return {};
  }
  CtTimeouts shortTimeouts;
  shortTimeouts.tcpEstablished = shortTimeouts.tcpTransitory = shortTimeouts.tcpSyn =
      shortTimeouts.udp = shortTimeouts.icmp = std::chrono::seconds(5);
  (*dp)->setTimeouts(shortTimeouts);
  int fd = (*dp)->mapFd("gw_ct_v4");
  Topology t;
  nlohmann::json j;
  const char* names[2] = {"nothing expired", "everything expired"};
  for (int expired = 0; expired < 2; ++expired) {
    uint64_t seen = monotonicNs() - (expired ? 60'000'000'000ULL : 0);
    if (auto ok = fillBatch(fd, t, 0, flows, seen); !ok) {
      failures.push_back("GC fill: " + ok.error().str());
      return {};
    }
    auto start = Clock::now();
    auto deleted = (*dp)->collectGarbage();
    double s = secondsSince(start);
    if (!deleted || *deleted != (expired ? flows : 0u)) {
      failures.push_back(std::string("GC (") + names[expired] + ") deleted " +
                         (deleted ? std::to_string(*deleted) : deleted.error().str()));
    }
    md += "| `Datapath::collectGarbage`, " + std::to_string(flows) + " flows, " +
          names[expired] + " | " + fmt(s * 1000) + " ms | " + fmt(s * 1e9 / flows) +
          " ns/flow |\n";
    j[expired ? "gc_all_expired_s" : "gc_none_expired_s"] = s;
  }
  j["gc_flows"] = flows;
  return j;
}

} // namespace

Section runCtScale(const BpfLoader& defaultLoader, const CtScaleOptions& o) {
  Section s;
  Topology t;
  uint32_t repeat = (o.repeat + 1) & ~1u;
  uint32_t small = std::min(o.smallFlows, o.flows);
  uint32_t singles = std::min(o.singleOps, o.flows - small);
  uint32_t entries = 2 * o.flows;
  // LRU halves are handed out through per-CPU free lists: leave slack so a full fill evicts
  // nothing.
  uint32_t maxEntries = entries + std::max(entries / 20, 16384u);

  auto defaultMem = defaultLoader.mapMemlock("gw_ct_v4");
  auto big = BpfLoader::load(maxEntries);
  if (!big) {
    s.failures.push_back("loading with a " + std::to_string(maxEntries) +
                         "-entry conntrack map: " + big.error().str());
    return s;
  }
  const BpfLoader& l = **big;
  if (auto ok = setupTopology(l, t); !ok) {
    s.failures.push_back(ok.error().str());
    return s;
  }
  int fd = l.mapFd("gw_ct_v4");
  auto bigMemEmpty = l.mapMemlock("gw_ct_v4");
  Bytes hotFrame = openHotFlow(l, t, s.failures);
  uint64_t now = monotonicNs();

  // Nearly empty: the hot flow, then `small` flows for the cold figure.
  Hot hotEmpty = measureHot(l, hotFrame, o.runs, repeat, s.failures);
  auto smallFill = fillBatch(fd, t, 0, small, now);
  if (!smallFill) {
    s.failures.push_back(smallFill.error().str());
    return s;
  }
  Cold coldEmpty = measureCold(l, t, small, o.coldSamples, hotEmpty, s.failures);

  // Userspace map operations one syscall per entry, on flows [small, small + singles).
  std::vector<gw_ct_key> keys;
  std::vector<gw_ct_entry> values;
  makeFlows(t, small, small + singles, now, keys, values);
  size_t nSingle = keys.size();
  auto start = Clock::now();
  for (size_t i = 0; i < nSingle; ++i) {
    bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY);
  }
  double updateElemS = secondsSince(start);
  start = Clock::now();
  gw_ct_entry scratch{};
  size_t found = 0;
  for (size_t i = 0; i < nSingle; ++i) {
    found += bpf_map_lookup_elem(fd, &keys[i], &scratch) == 0;
  }
  double lookupElemS = secondsSince(start);
  if (found != nSingle) {
    s.failures.push_back("single lookups found " + std::to_string(found) + " of " +
                         std::to_string(nSingle));
  }
  // Half deleted one by one, half in one batch.
  size_t half = nSingle / 2;
  start = Clock::now();
  for (size_t i = 0; i < half; ++i) {
    bpf_map_delete_elem(fd, &keys[i]);
  }
  double deleteElemS = secondsSince(start);
  auto delCount = static_cast<uint32_t>(nSingle - half);
  start = Clock::now();
  int delErr = bpf_map_delete_batch(fd, keys.data() + half, &delCount, nullptr);
  double deleteBatchS = secondsSince(start);
  if (delErr != 0 || delCount != nSingle - half) {
    s.failures.push_back("bpf_map_delete_batch deleted " + std::to_string(delCount));
  }

  // Full: every flow, with bpf_map_update_batch.
  auto fill = fillBatch(fd, t, small, o.flows, now);
  if (!fill) {
    s.failures.push_back(fill.error().str());
    return s;
  }
  double lookupBatchS = 0, byKeyS = 0;
  auto counted = countBatch(fd, lookupBatchS);
  size_t byKey = countByKey(fd, byKeyS);
  start = Clock::now();
  auto dumped = gw::dumpMap<gw_ct_key, gw_ct_entry>(fd);
  double dumpS = secondsSince(start);
  size_t want = entries + 3; // + the hot flow's two halves and its pong entry
  if (!counted || *counted != want || byKey != want || !dumped || dumped->size() != want) {
    s.failures.push_back("table holds " + (counted ? std::to_string(*counted) : "?") + " / " +
                         std::to_string(byKey) + " entries, expected " +
                         std::to_string(want) + " (evictions?)");
  }
  dumped = {};
  // The entry count stats() reports: the kernel's element count, and the walk kernels before
  // 6.6 fall back to.
  ConntrackTable table(l.objects());
  start = Clock::now();
  auto kernelCount = table.count();
  double countS = secondsSince(start);
  start = Clock::now();
  auto walkCount = table.countByWalking();
  double walkCountS = secondsSince(start);
  if (!kernelCount || *kernelCount != want || !walkCount || *walkCount != want) {
    s.failures.push_back("ConntrackTable counts " +
                         (kernelCount ? std::to_string(*kernelCount) : kernelCount.error().str()) +
                         " / " +
                         (walkCount ? std::to_string(*walkCount) : walkCount.error().str()) +
                         " entries, expected " + std::to_string(want));
  }
  auto bigMemFull = l.mapMemlock("gw_ct_v4");
  Hot hotFull = measureHot(l, hotFrame, o.runs, repeat, s.failures);
  Cold coldFull = measureCold(l, t, o.flows, o.coldSamples, hotFull, s.failures);

  // Report.
  uint64_t dm = defaultMem.value_or(0), be = bigMemEmpty.value_or(0), bf = bigMemFull.value_or(0);
  std::string& md = s.markdown;
  md += "### Memory (`gw_ct_v4`, LRU hash, preallocated: the same empty or full)\n\n"
        "| table | max_entries | flows it holds | memlock (fdinfo) | bytes/entry |\n"
        "|---|---:|---:|---:|---:|\n";
  md += "| default (`GW_CT_MAX_ENTRIES`) | " + std::to_string(defaultLoader.ctMaxEntries()) +
        " | " + std::to_string(defaultLoader.ctMaxEntries() / 2) + " | " + mib(dm) + " MiB | " +
        fmt(static_cast<double>(dm) / defaultLoader.ctMaxEntries(), 0) + " |\n";
  md += "| bench, empty | " + std::to_string(maxEntries) + " | " +
        std::to_string(maxEntries / 2) + " | " + mib(be) + " MiB | " +
        fmt(static_cast<double>(be) / maxEntries, 0) + " |\n";
  md += "| bench, " + std::to_string(o.flows) + " flows loaded | " + std::to_string(maxEntries) +
        " | " + std::to_string(maxEntries / 2) + " | " + mib(bf) + " MiB | " +
        fmt(static_cast<double>(bf) / maxEntries, 0) + " |\n\n";

  md += "### Established DNAT lookup, table nearly empty vs full (ns/packet)\n\n"
        "| table | `gw_uplink_ingress` hot | XDP hot | `gw_uplink_ingress` cold | XDP cold | "
        "`gw_pass_tc` | `gw_pass_xdp` |\n|---|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& name, const Hot& h, const Cold& c) {
    md += "| " + name + " | " + fmt(h.ingress) + " | " + fmt(h.xdp) + " | " + fmt(c.ingress) +
          " | " + fmt(c.xdp) + " | " + fmt(h.passTc) + " | " + fmt(h.passXdp) + " |\n";
  };
  row("nearly empty (hot: 1 flow; cold: random of " + std::to_string(small) + ")", hotEmpty,
      coldEmpty);
  row(std::to_string(o.flows) + " flows (cold: random of all)", hotFull, coldFull);
  md += "\nhot = one flow, repeat=" + std::to_string(repeat) + " (fixed point), median of " +
        std::to_string(o.runs) + " rounds; cold = repeat=1 on a random flow per packet, " +
        std::to_string(o.coldSamples) + " packets, median, minus the pass-through programs' "
        "repeat=1 median, plus their repeat=N figure (removes the clock read).\n\n";

  auto perEntry = [](double sec, size_t n) { return fmt(n ? sec * 1e9 / n : 0) + " ns/entry"; };
  md += "### Userspace map operations on `gw_ct_v4`\n\n| operation | time | per entry |\n"
        "|---|---:|---:|\n";
  md += "| `bpf_map_update_elem` × " + std::to_string(nSingle) + " | " +
        fmt(updateElemS * 1000) + " ms | " + perEntry(updateElemS, nSingle) + " |\n";
  md += "| `bpf_map_lookup_elem` × " + std::to_string(nSingle) + " | " +
        fmt(lookupElemS * 1000) + " ms | " + perEntry(lookupElemS, nSingle) + " |\n";
  md += "| `bpf_map_delete_elem` × " + std::to_string(half) + " | " + fmt(deleteElemS * 1000) +
        " ms | " + perEntry(deleteElemS, half) + " |\n";
  md += "| `bpf_map_delete_batch` of " + std::to_string(nSingle - half) + " | " +
        fmt(deleteBatchS * 1000) + " ms | " + perEntry(deleteBatchS, nSingle - half) + " |\n";
  double fillS = smallFill.value_or(0) + fill.value_or(0);
  md += "| `bpf_map_update_batch` fill, " + std::to_string(entries) + " entries (chunks of " +
        std::to_string(2 * kChunkFlows) + ") | " + fmt(fillS * 1000) + " ms | " +
        perEntry(fillS, entries) + " |\n";
  md += "| full-table read: `bpf_map_lookup_batch` (chunks of 8192), " + std::to_string(want) +
        " entries | " + fmt(lookupBatchS * 1000) + " ms | " + perEntry(lookupBatchS, want) +
        " |\n";
  md += "| full-table read: `gw::dumpMap` (GC's reader, lookup_batch chunks of 1024) | " +
        fmt(dumpS * 1000) + " ms | " + perEntry(dumpS, want) + " |\n";
  md += "| full-table read: `bpf_map_get_next_key` + `bpf_map_lookup_elem` | " +
        fmt(byKeyS * 1000) + " ms | " + perEntry(byKeyS, want) + " |\n";
  md += "| entry count: `ConntrackTable::count` (the kernel's element count, one bpf_map "
        "iterator read) | " +
        fmt(countS * 1000, 3) + " ms | - (per map, not per entry) |\n";
  md += "| entry count without the kfunc: `ConntrackTable::countByWalking` (lookup_batch, "
        "nothing kept) | " +
        fmt(walkCountS * 1000) + " ms | " + perEntry(walkCountS, want) + " |\n";

  nlohmann::json gc;
  if (o.gcFlows) {
    md += "\n### Conntrack GC (gatewayd's `Datapath::collectGarbage`, default-size map)\n\n"
          "| run | time | per flow |\n|---|---:|---:|\n";
    gc = measureGc(o.gcFlows, md, s.failures);
  }

  s.json = {{"flows", o.flows},
            {"max_entries", maxEntries},
            {"memlock_default_bytes", dm},
            {"default_max_entries", defaultLoader.ctMaxEntries()},
            {"memlock_bench_empty_bytes", be},
            {"memlock_bench_full_bytes", bf},
            {"hot_empty", {{"uplink_ingress", hotEmpty.ingress}, {"xdp", hotEmpty.xdp},
                           {"pass_tc", hotEmpty.passTc}, {"pass_xdp", hotEmpty.passXdp}}},
            {"hot_full", {{"uplink_ingress", hotFull.ingress}, {"xdp", hotFull.xdp},
                          {"pass_tc", hotFull.passTc}, {"pass_xdp", hotFull.passXdp}}},
            {"cold_small", {{"flows", small}, {"uplink_ingress", coldEmpty.ingress},
                            {"xdp", coldEmpty.xdp}}},
            {"cold_full", {{"uplink_ingress", coldFull.ingress}, {"xdp", coldFull.xdp}}},
            {"update_elem_ns", nSingle ? updateElemS * 1e9 / nSingle : 0},
            {"lookup_elem_ns", nSingle ? lookupElemS * 1e9 / nSingle : 0},
            {"delete_elem_ns", half ? deleteElemS * 1e9 / half : 0},
            {"delete_batch_ns", nSingle - half ? deleteBatchS * 1e9 / (nSingle - half) : 0},
            {"update_batch_ns", fillS * 1e9 / entries},
            {"update_batch_total_s", fillS},
            {"lookup_batch_total_s", lookupBatchS},
            {"dump_map_total_s", dumpS},
            {"get_next_key_total_s", byKeyS},
            {"count_kernel_s", countS},
            {"count_walk_s", walkCountS},
            {"gc", gc}};
  return s;
}

} // namespace gw::bench
