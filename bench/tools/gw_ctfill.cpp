// SPDX-License-Identifier: MIT
// gw_ctfill: fills a running gatewayd's conntrack map with synthetic established flows, so that
// new connections can be measured against a full table (bench/ctfull.py, issue 13 section 3).
//
//   gw_ctfill PINNED_MAP_PATH FLOWS [--first N] [--check | --delete]
//
// PINNED_MAP_PATH is gatewayd's pinned gw_ct_v4 (--bpffs DIR: DIR/gw_ct_v4). Flow i, for i from
// --first (0) on, FLOWS of them, is a TCP flow from 100.64.0.0/10 (shared address space; 1,000
// flows per client address, source ports 20000-20999) to 192.0.2.1:443, DNATed to
// 192.0.2.2:8443 (both TEST-NET-1): no lab address is in any of its tuples, so lab traffic never
// matches one, and with rule id GW_RULE_MAX - 1, which no expose gets, no unexpose deletes one.
//   (default)  inserts both entries of each flow (bpf_map_update_batch, BPF_ANY), stamped now
//              on the data path's clock, handshake seen both ways: gatewayd's GC sees them
//              ESTABLISHED and keeps them for its established timeout (7440 s by default)
//   --check    counts the flows that still have both entries, one, or none (an LRU map evicts
//              silently when full)
//   --delete   deletes both entries of each flow (bpf_map_delete_batch; missing ones counted)
// Prints one JSON object on stdout. Exit: 0 done, 1 failed (message on stderr), 2 usage.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"
#include "bench/CtFlows.h"

namespace {

using Clock = std::chrono::steady_clock;
using gw::bench::CtEndpoint;
using gw::bench::CtPair;

constexpr uint64_t kChunkFlows = 32768;        // flows per batch call (64k entries, ~10 MB)
constexpr uint32_t kClientBase = 0x64400000u;  // 100.64.0.0, host order
constexpr uint64_t kClients = 1u << 22;        // addresses in 100.64.0.0/10
constexpr uint32_t kFlowsPerClient = 1000;
constexpr uint16_t kFirstSport = 20000;
constexpr uint32_t kExposedAddr = 0xc0000201u; // 192.0.2.1, host order
constexpr uint32_t kTargetAddr = 0xc0000202u;  // 192.0.2.2
constexpr uint16_t kExposedPort = 443;
constexpr uint16_t kTargetPort = 8443;
constexpr uint32_t kRuleId = GW_RULE_MAX - 1;

enum class Op { Insert, Check, Delete };

struct Options {
  std::string path;
  uint64_t first = 0;
  uint64_t flows = 0;
  Op op = Op::Insert;
};

int usage() {
  std::fprintf(stderr, "usage: gw_ctfill PINNED_MAP_PATH FLOWS [--first N] [--check | --delete]\n"
                       "  PINNED_MAP_PATH: gatewayd's pinned conntrack map, BPFFS_DIR/gw_ct_v4\n");
  return 2;
}

bool parseCount(std::string_view text, uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parseArgs(int argc, char** argv, Options& o) {
  std::vector<std::string_view> positional;
  bool opSet = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--first") {
      if (i + 1 >= argc || !parseCount(argv[++i], o.first)) {
        return false;
      }
    } else if (a == "--check" || a == "--delete") {
      if (opSet) {
        return false;
      }
      o.op = a == "--check" ? Op::Check : Op::Delete;
      opSet = true;
    } else if (a.starts_with("-")) {
      return false;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2 || !parseCount(positional[1], o.flows) || o.flows == 0) {
    return false;
  }
  o.path = positional[0];
  return true;
}

// The clock the data path stamps entries with: bpf_ktime_get_coarse_ns() is
// ktime_get_coarse_ns(), i.e. CLOCK_MONOTONIC_COARSE. GC ages them against CLOCK_MONOTONIC
// (base/Clock.h), which is the same clock at a finer resolution.
uint64_t coarseNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

CtPair syntheticFlow(uint64_t i, uint64_t nowNs) {
  CtEndpoint client{htonl(kClientBase + static_cast<uint32_t>(i / kFlowsPerClient)),
                    static_cast<uint16_t>(kFirstSport + i % kFlowsPerClient)};
  return gw::bench::establishedDnatFlow(client, {htonl(kExposedAddr), kExposedPort},
                                        {htonl(kTargetAddr), kTargetPort}, kRuleId, nowNs);
}

// Both entries of flows [begin, end).
void buildChunk(uint64_t begin, uint64_t end, uint64_t nowNs, std::vector<gw_ct_key>& keys,
                std::vector<gw_ct_entry>& values) {
  keys.clear();
  values.clear();
  for (uint64_t i = begin; i < end; ++i) {
    CtPair f = syntheticFlow(i, nowNs);
    keys.push_back(f.orig.key);
    values.push_back(f.orig.entry);
    keys.push_back(f.reply.key);
    values.push_back(f.reply.entry);
  }
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::unexpected<gw::Error> errnoError(int err, std::string context) {
  return std::unexpected(gw::Error{err, std::move(context)});
}

struct MapInfo {
  uint32_t maxEntries = 0;
  uint64_t memlock = 0; // the kernel's charge for the map (fdinfo), what `bpftool map` shows
};

// Refuses anything but gatewayd's conntrack map: an LRU hash with this build's key and value.
gw::Result<MapInfo> inspectMap(int fd, const std::string& path) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    return gw::sysError("bpf_obj_get_info_by_fd " + path);
  }
  if (info.type != BPF_MAP_TYPE_LRU_HASH || info.key_size != sizeof(gw_ct_key) ||
      info.value_size != sizeof(gw_ct_entry)) {
    return gw::fail(path + " is not gatewayd's conntrack map: type " + std::to_string(info.type) +
                    ", key " + std::to_string(info.key_size) + " B, value " +
                    std::to_string(info.value_size) + " B (want LRU hash, " +
                    std::to_string(sizeof(gw_ct_key)) + " B, " +
                    std::to_string(sizeof(gw_ct_entry)) + " B)");
  }
  MapInfo out{.maxEntries = info.max_entries};
  std::ifstream fdinfo("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(fdinfo, line)) {
    size_t value = line.find_first_not_of(" \t", 8);
    if (line.starts_with("memlock:") && value != std::string::npos) {
      parseCount(std::string_view(line).substr(value), out.memlock);
    }
  }
  return out;
}

struct Inserted {
  double seconds = 0;        // the whole fill, generation included
  double syscallSeconds = 0; // in bpf_map_update_batch alone
  uint64_t stampNs = 0;
};

gw::Result<Inserted> insertFlows(int fd, uint64_t first, uint64_t flows) {
  Inserted out;
  out.stampNs = coarseNowNs();
  std::vector<gw_ct_key> keys;
  std::vector<gw_ct_entry> values;
  keys.reserve(2 * kChunkFlows);
  values.reserve(2 * kChunkFlows);
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  auto start = Clock::now();
  for (uint64_t a = first; a < first + flows; a += kChunkFlows) {
    buildChunk(a, std::min(first + flows, a + kChunkFlows), out.stampNs, keys, values);
    auto count = static_cast<uint32_t>(keys.size());
    auto call = Clock::now();
    int rc = bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts);
    int err = errno;
    out.syscallSeconds += secondsSince(call);
    if (rc != 0) {
      return errnoError(err, "bpf_map_update_batch, chunk from flow " + std::to_string(a) +
                                 ": " + std::to_string(count) + " of " +
                                 std::to_string(keys.size()) + " entries in");
    }
  }
  out.seconds = secondsSince(start);
  return out;
}

struct Presence {
  uint64_t both = 0, one = 0, none = 0;
  double seconds = 0;
};

// Point lookups from userspace do not mark LRU entries as used: checking moves nothing.
gw::Result<Presence> checkFlows(int fd, uint64_t first, uint64_t flows) {
  Presence out;
  gw_ct_entry value{};
  auto present = [&](const gw_ct_key& key) -> gw::Result<bool> {
    if (bpf_map_lookup_elem(fd, &key, &value) == 0) {
      return true;
    }
    if (errno == ENOENT) {
      return false;
    }
    return gw::sysError("bpf_map_lookup_elem");
  };
  auto start = Clock::now();
  for (uint64_t i = first; i < first + flows; ++i) {
    CtPair f = syntheticFlow(i, 0);
    auto o = present(f.orig.key);
    if (!o) {
      return std::unexpected(o.error());
    }
    auto r = present(f.reply.key);
    if (!r) {
      return std::unexpected(r.error());
    }
    int n = static_cast<int>(*o) + static_cast<int>(*r);
    (n == 2 ? out.both : n == 1 ? out.one : out.none)++;
  }
  out.seconds = secondsSince(start);
  return out;
}

struct Deleted {
  uint64_t entries = 0, missing = 0;
  double seconds = 0;
};

gw::Result<Deleted> deleteFlows(int fd, uint64_t first, uint64_t flows) {
  Deleted out;
  std::vector<gw_ct_key> keys;
  std::vector<gw_ct_entry> values;
  auto start = Clock::now();
  for (uint64_t a = first; a < first + flows; a += kChunkFlows) {
    buildChunk(a, std::min(first + flows, a + kChunkFlows), 0, keys, values);
    size_t at = 0;
    while (at < keys.size()) {
      auto count = static_cast<uint32_t>(keys.size() - at);
      int rc = bpf_map_delete_batch(fd, keys.data() + at, &count, nullptr);
      int err = errno;
      out.entries += count;
      if (rc == 0) {
        break;
      }
      // The batch stops at the first key that is not there (evicted, or never inserted):
      // count it and go on after it.
      if (err != ENOENT) {
        return errnoError(err, "bpf_map_delete_batch, chunk from flow " + std::to_string(a));
      }
      ++out.missing;
      at += count + 1;
    }
  }
  out.seconds = secondsSince(start);
  return out;
}

int failed(const gw::Error& e) {
  std::fprintf(stderr, "gw_ctfill: %s\n", e.str().c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) {
    return usage();
  }
  if (o.flows > kClients * kFlowsPerClient || o.first > kClients * kFlowsPerClient - o.flows) {
    std::fprintf(stderr, "gw_ctfill: at most %llu flows (100.64.0.0/10 x %u ports)\n",
                 static_cast<unsigned long long>(kClients * kFlowsPerClient), kFlowsPerClient);
    return 2;
  }
  gw::UniqueFd fd(bpf_obj_get(o.path.c_str()));
  if (!fd) {
    return failed(gw::Error{errno, "bpf_obj_get " + o.path + " (is gatewayd running with this "
                                   "--bpffs, and are we root?)"});
  }
  auto map = inspectMap(fd.get(), o.path);
  if (!map) {
    return failed(map.error());
  }
  auto flows = static_cast<unsigned long long>(o.flows);
  auto first = static_cast<unsigned long long>(o.first);
  switch (o.op) {
  case Op::Insert: {
    if (2 * (o.first + o.flows) > map->maxEntries) {
      std::fprintf(stderr, "gw_ctfill: warning: %llu entries do not fit in %u: the LRU map "
                           "will evict\n",
                   2 * (first + flows), map->maxEntries);
    }
    auto r = insertFlows(fd.get(), o.first, o.flows);
    if (!r) {
      return failed(r.error());
    }
    std::printf("{\"op\":\"insert\",\"first\":%llu,\"flows\":%llu,\"entries\":%llu,"
                "\"seconds\":%.6f,\"syscall_seconds\":%.6f,\"stamp_ns\":%llu,"
                "\"map_max_entries\":%u,\"map_memlock_bytes\":%llu}\n",
                first, flows, 2 * flows, r->seconds, r->syscallSeconds,
                static_cast<unsigned long long>(r->stampNs), map->maxEntries,
                static_cast<unsigned long long>(map->memlock));
    return 0;
  }
  case Op::Check: {
    auto r = checkFlows(fd.get(), o.first, o.flows);
    if (!r) {
      return failed(r.error());
    }
    std::printf("{\"op\":\"check\",\"first\":%llu,\"flows\":%llu,\"both\":%llu,\"one\":%llu,"
                "\"none\":%llu,\"seconds\":%.6f,\"map_max_entries\":%u,"
                "\"map_memlock_bytes\":%llu}\n",
                first, flows, static_cast<unsigned long long>(r->both),
                static_cast<unsigned long long>(r->one), static_cast<unsigned long long>(r->none),
                r->seconds, map->maxEntries, static_cast<unsigned long long>(map->memlock));
    return 0;
  }
  case Op::Delete: {
    auto r = deleteFlows(fd.get(), o.first, o.flows);
    if (!r) {
      return failed(r.error());
    }
    std::printf("{\"op\":\"delete\",\"first\":%llu,\"flows\":%llu,\"deleted_entries\":%llu,"
                "\"missing_entries\":%llu,\"seconds\":%.6f}\n",
                first, flows, static_cast<unsigned long long>(r->entries),
                static_cast<unsigned long long>(r->missing), r->seconds);
    return 0;
  }
  }
  return 1;
}
