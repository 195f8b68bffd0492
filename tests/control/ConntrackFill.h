// SPDX-License-Identifier: MIT
// Fills gatewayd's pinned conntrack map (gw_ct_v4 under its --bpffs) straight from a test, as
// fast as the kernel takes it, with flows as the data path makes them: established TCP from a
// client through an exposed port to a namespace, both halves each, pointing at each other.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "bpf/gw_abi.h"

namespace gw::test {

// A flow's key as gwctl shows it: "tcp/SRC/SPORT/DST/DPORT" of its original direction.
inline std::string flowText(const std::string& proto, const std::string& src, unsigned sport,
                            const std::string& dst, unsigned dport) {
  return proto + "/" + src + "/" + std::to_string(sport) + "/" + dst + "/" + std::to_string(dport);
}

inline std::string v4Text(uint32_t networkOrder) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &networkOrder, text, sizeof text);
  return text;
}

inline std::string flowText(const gw_ct_key& orig) {
  std::string proto = orig.proto == IPPROTO_TCP ? "tcp" : orig.proto == IPPROTO_UDP ? "udp" : "?";
  return flowText(proto, v4Text(orig.saddr.v4), ntohs(orig.sport), v4Text(orig.daddr.v4),
                  ntohs(orig.dport));
}

// Client i (from `first`) is 100.64.0.0 + i, port 40000, to UPLINK:6000, served by
// 10.88.0.2:8080.
inline void makeTestFlow(uint32_t i, uint32_t uplinkNetworkOrder, gw_ct_key& orig,
                     gw_ct_entry& origEntry, gw_ct_key& reply, gw_ct_entry& replyEntry) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
                 static_cast<uint64_t>(ts.tv_nsec);
  uint32_t client = htonl(0x64400000u + i);
  uint32_t server = htonl(0x0a580002u); // 10.88.0.2
  orig = {};
  orig.saddr.v4 = client;
  orig.daddr.v4 = uplinkNetworkOrder;
  orig.sport = htons(40000);
  orig.dport = htons(6000);
  orig.proto = IPPROTO_TCP;
  orig.family = GW_AF_INET;
  reply = {};
  reply.saddr.v4 = server;
  reply.daddr.v4 = client;
  reply.sport = htons(8080);
  reply.dport = htons(40000);
  reply.proto = IPPROTO_TCP;
  reply.family = GW_AF_INET;
  origEntry = {};
  origEntry.new_saddr.v4 = client;
  origEntry.new_daddr.v4 = server;
  origEntry.new_sport = orig.sport;
  origEntry.new_dport = htons(8080);
  origEntry.dir = GW_CT_DIR_ORIG;
  origEntry.nat = GW_NAT_DNAT;
  origEntry.tcp_flags = GW_CT_SEEN_SYN | GW_CT_SEEN_ACK;
  origEntry.created_ns = origEntry.last_seen_ns = now;
  origEntry.packets = 3;
  origEntry.bytes = 180;
  origEntry.peer = reply;
  replyEntry = origEntry;
  replyEntry.new_saddr.v4 = uplinkNetworkOrder;
  replyEntry.new_daddr.v4 = client;
  replyEntry.new_sport = htons(6000);
  replyEntry.new_dport = orig.sport;
  replyEntry.dir = GW_CT_DIR_REPLY;
  replyEntry.tcp_flags = GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK;
  replyEntry.packets = 2;
  replyEntry.bytes = 120;
  replyEntry.peer = orig;
}

// Writes flows [first, first + count) into the map at `pin`, in batches. The thread stays on
// one CPU meanwhile: an LRU map hands out free entries through per-CPU lists, and inserts
// moving between CPUs evict (one half of a flow each) before the map is full.
// Returns "" or what failed.
inline std::string fillConntrack(const std::string& pin, const std::string& uplink,
                                 uint32_t first, uint32_t count) {
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    return "bpf_obj_get " + pin + ": " + std::strerror(errno);
  }
  in_addr up{};
  inet_pton(AF_INET, uplink.c_str(), &up);
  cpu_set_t before;
  sched_getaffinity(0, sizeof before, &before);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  sched_setaffinity(0, sizeof one, &one);
  constexpr uint32_t kChunk = 8192; // flows a batch
  std::vector<gw_ct_key> keys(2 * kChunk);
  std::vector<gw_ct_entry> values(2 * kChunk);
  std::string error;
  for (uint32_t done = 0; done < count && error.empty();) {
    uint32_t n = std::min(kChunk, count - done);
    for (uint32_t j = 0; j < n; ++j) {
      makeTestFlow(first + done + j, up.s_addr, keys[2 * j], values[2 * j], keys[2 * j + 1],
               values[2 * j + 1]);
    }
    uint32_t entries = 2 * n;
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &entries, nullptr) != 0) {
      error = std::string("bpf_map_update_batch: ") + std::strerror(errno);
    }
    done += n;
  }
  sched_setaffinity(0, sizeof before, &before);
  close(fd);
  return error;
}

// What the map at `pin` holds: its entries, and the flows a listing must show (flowText of
// each original half, and of each reply half whose original half is gone).
struct MapContent {
  size_t entries = 0;
  std::set<std::string> flows;
};

inline MapContent readConntrack(const std::string& pin) {
  MapContent out;
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    return out;
  }
  std::vector<std::pair<gw_ct_key, gw_ct_entry>> rows;
  constexpr uint32_t kChunk = 8192;
  std::vector<gw_ct_key> keys(kChunk);
  std::vector<gw_ct_entry> values(kChunk);
  uint64_t in = 0;
  uint64_t outBatch = 0;
  bool first = true;
  while (true) {
    uint32_t n = kChunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &outBatch, keys.data(),
                                   values.data(), &n, nullptr);
    for (uint32_t i = 0; i < n; ++i) {
      rows.emplace_back(keys[i], values[i]);
    }
    if (err != 0) {
      break; // ENOENT: done
    }
    in = outBatch;
    first = false;
  }
  std::set<std::string> present;
  for (const auto& [key, entry] : rows) {
    present.insert(std::string(reinterpret_cast<const char*>(&key), sizeof key));
  }
  for (const auto& [key, entry] : rows) {
    if (entry.dir == GW_CT_DIR_ORIG) {
      out.flows.insert(flowText(key));
    } else if (!present.contains(
                   std::string(reinterpret_cast<const char*>(&entry.peer), sizeof entry.peer))) {
      out.flows.insert(flowText(entry.peer));
    }
  }
  out.entries = rows.size();
  close(fd);
  return out;
}

} // namespace gw::test
