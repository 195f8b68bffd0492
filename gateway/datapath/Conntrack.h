// SPDX-License-Identifier: MIT
// Conntrack as userspace sees it: flows paired from the two BPF entries, their state and
// timeouts. Pure functions over the ABI structs, testable without a kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/Error.h"
#include "base/Ip.h"

struct gw_ct_key;
struct gw_ct_entry;

namespace gw {

// RFC 5382 (TCP established >= 2 h 4 min, transitory >= 4 min) and RFC 4787 (UDP >= 2 min).
struct CtTimeouts {
  std::chrono::seconds tcpEstablished{7440};
  std::chrono::seconds tcpTransitory{240}; // FIN/RST seen
  std::chrono::seconds tcpSyn{120};        // handshake not complete
  std::chrono::seconds udp{120};
  std::chrono::seconds icmp{60};
};

// Fails naming the first timeout below its RFC minimum (the daemon's config check; tests
// use tiny timeouts on purpose).
Status checkRfcMinimums(const CtTimeouts& timeouts);

struct FlowTuple {
  IpAddress src;
  IpAddress dst;
  uint16_t sport = 0; // host order; ICMP echo: the id
  uint16_t dport = 0;

  auto operator<=>(const FlowTuple&) const = default;
};

struct FlowCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

struct Flow {
  uint8_t proto = 0;
  FlowTuple orig;  // the first packet as it arrived
  FlowTuple reply; // the reply as it arrives (after NAT: this is what the peer sends)
  std::string_view state; // flowState()
  std::chrono::nanoseconds age{0};  // since the last packet in either direction
  std::chrono::nanoseconds life{0}; // since creation
  FlowCounters origCounters;
  FlowCounters replyCounters;
  uint32_t ruleId = 0;
  uint8_t nat = 0;     // enum gw_nat_kind bits
  bool orphan = false; // only one half found; `reply` is the missing peer's key
};

// A flow's identity, and the order pages list flows in: its protocol and original tuple. Both
// halves of a flow have the same key, and so has an orphan half (its `orig` is the key of the
// original direction, present or not).
struct FlowKey {
  uint8_t proto = 0;
  FlowTuple orig;

  auto operator<=>(const FlowKey&) const = default;
};
inline FlowKey flowKey(const Flow& flow) { return {flow.proto, flow.orig}; }

// Every set field must match (orig tuple); port matches either port of either tuple.
struct FlowFilter {
  std::optional<uint8_t> proto;
  std::optional<IpAddress> src;
  std::optional<IpAddress> dst;
  std::optional<uint16_t> sport;
  std::optional<uint16_t> dport;
  std::optional<uint16_t> port;
  std::optional<uint32_t> ruleId;

  bool matches(const Flow& flow) const;
};

// "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE" for TCP from the gw_ct_tcp_seen
// bits of both directions; "UDP", "ICMP" (ICMPv6 too), "OTHER" otherwise.
std::string_view flowState(uint8_t proto, uint8_t origFlags, uint8_t replyFlags);
std::chrono::seconds flowTimeout(uint8_t proto, std::string_view state,
                                 const CtTimeouts& timeouts);

FlowTuple tupleFromKey(const gw_ct_key& key);
// The key of the flow one entry belongs to, from that entry alone.
FlowKey flowKeyOf(const gw_ct_key& key, const gw_ct_entry& entry);
// Builds a flow from its original-direction half and, when found, its reply half.
Flow makeFlow(const gw_ct_key& origKey, const gw_ct_entry& orig, const gw_ct_entry* reply,
              uint64_t nowNs);

} // namespace gw
