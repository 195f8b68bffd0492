// SPDX-License-Identifier: MIT
// Synthetic conntrack flows, built as the data path's ct_create (bpf/lib/conntrack.h) builds an
// exposed port's flow and then marked established both ways: the full tables of gw_bpf_bench's
// conntrack-at-scale section and of gw_ctfill (bench/ctfull.py). Header-only on the ABI alone,
// so the load tools that use it link nothing of the project.
#pragma once

#include <linux/types.h>
#include <netinet/in.h>

#include <cstdint>

#include "bpf/gw_abi.h"

namespace gw::bench {

// One end of a tuple: IPv4 address in network order, port in host order.
struct CtEndpoint {
  uint32_t addr = 0;
  uint16_t port = 0;
};

struct CtHalf {
  gw_ct_key key;
  gw_ct_entry entry;
};

// Both entries of one flow; insert both or neither (gatewayd's GC deletes a lone half).
struct CtPair {
  CtHalf orig;
  CtHalf reply;
};

inline gw_ct_key ctTuple(CtEndpoint src, CtEndpoint dst, uint8_t proto) {
  gw_ct_key k{}; // zeroed: keys are compared and hashed as bytes, padding included
  k.saddr.v4 = src.addr;
  k.daddr.v4 = dst.addr;
  k.sport = htons(src.port);
  k.dport = htons(dst.port);
  k.proto = proto;
  k.family = GW_AF_INET;
  return k;
}

// ct_reverse for TCP/UDP: the tuple of a packet going the other way.
inline gw_ct_key ctReversed(const gw_ct_key& k) {
  gw_ct_key r{};
  r.saddr = k.daddr;
  r.daddr = k.saddr;
  r.sport = k.dport;
  r.dport = k.sport;
  r.proto = k.proto;
  r.family = k.family;
  return r;
}

inline gw_ct_entry ctRewrite(const gw_ct_key& to, const gw_ct_key& peer, uint8_t dir,
                             uint32_t ruleId, uint64_t nowNs) {
  gw_ct_entry e{};
  e.new_saddr = to.saddr;
  e.new_daddr = to.daddr;
  e.new_sport = to.sport;
  e.new_dport = to.dport;
  e.dir = dir;
  e.nat = GW_NAT_DNAT;
  e.rule_id = ruleId;
  e.created_ns = nowNs;
  e.last_seen_ns = nowNs;
  e.peer = peer;
  return e;
}

// A TCP flow client -> exposed, translated to client -> target (ct_create's orig/xlat), with
// the handshake seen both ways: flowState() (gateway/datapath/Conntrack.cpp) calls it
// ESTABLISHED, so GC keeps it for the established timeout after `seenNs`. `seenNs` is on the
// clock the data path stamps with, bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC_COARSE).
inline CtPair establishedDnatFlow(CtEndpoint client, CtEndpoint exposed, CtEndpoint target,
                                  uint32_t ruleId, uint64_t seenNs) {
  gw_ct_key orig = ctTuple(client, exposed, IPPROTO_TCP);
  gw_ct_key xlat = ctTuple(client, target, IPPROTO_TCP);
  gw_ct_key reply = ctReversed(xlat);
  CtPair p{{orig, ctRewrite(xlat, reply, GW_CT_DIR_ORIG, ruleId, seenNs)},
           {reply, ctRewrite(ctReversed(orig), orig, GW_CT_DIR_REPLY, ruleId, seenNs)}};
  p.orig.entry.tcp_flags = GW_CT_SEEN_SYN | GW_CT_SEEN_ACK;
  p.reply.entry.tcp_flags = GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK;
  return p;
}

} // namespace gw::bench
