// SPDX-License-Identifier: MIT
#include "gateway/datapath/Conntrack.h"

#include <arpa/inet.h>
#include <linux/types.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "bpf/gw_abi.h"

namespace gw {
namespace {

std::chrono::nanoseconds since(uint64_t nowNs, uint64_t thenNs) {
  return std::chrono::nanoseconds(nowNs > thenNs ? nowNs - thenNs : 0);
}

IpAddress addrFromKey(const union gw_addr& a, uint8_t family) {
  IpAddress out;
  out.family = family == GW_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(out.bytes.data(), a.bytes, out.family == AF_INET ? 4 : 16);
  return out;
}

} // namespace

Status checkRfcMinimums(const CtTimeouts& t) {
  using std::chrono::minutes;
  if (t.tcpEstablished < minutes(124)) {
    return fail("TCP established timeout below RFC 5382's 2 h 4 min");
  }
  if (t.tcpTransitory < minutes(4)) {
    return fail("TCP transitory timeout below RFC 5382's 4 min");
  }
  if (t.udp < minutes(2)) {
    return fail("UDP timeout below RFC 4787's 2 min");
  }
  return {};
}

bool FlowFilter::matches(const Flow& flow) const {
  if (proto && *proto != flow.proto) {
    return false;
  }
  if (src && *src != flow.orig.src) {
    return false;
  }
  if (dst && *dst != flow.orig.dst) {
    return false;
  }
  if (sport && *sport != flow.orig.sport) {
    return false;
  }
  if (dport && *dport != flow.orig.dport) {
    return false;
  }
  if (port && *port != flow.orig.sport && *port != flow.orig.dport &&
      *port != flow.reply.sport && *port != flow.reply.dport) {
    return false;
  }
  if (ruleId && *ruleId != flow.ruleId) {
    return false;
  }
  return true;
}

std::string_view flowState(uint8_t proto, uint8_t origFlags, uint8_t replyFlags) {
  switch (proto) {
  case IPPROTO_UDP:
    return "UDP";
  case IPPROTO_ICMP:
  case IPPROTO_ICMPV6:
    return "ICMP";
  case IPPROTO_TCP:
    break;
  default:
    return "OTHER";
  }
  uint8_t both = origFlags | replyFlags;
  if (both & GW_CT_SEEN_RST) {
    return "CLOSE";
  }
  if ((origFlags & GW_CT_SEEN_FIN) && (replyFlags & GW_CT_SEEN_FIN)) {
    return "CLOSE";
  }
  if (both & GW_CT_SEEN_FIN) {
    return "FIN_WAIT";
  }
  // A reply that is not a bare SYN-ACK, plus an ACK from the originator: handshake done. A
  // flow picked up mid-stream (ACKs both ways, no SYN seen) counts as established too.
  bool replied = (replyFlags & (GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK)) != 0;
  if (replied && (origFlags & GW_CT_SEEN_ACK)) {
    return "ESTABLISHED";
  }
  if (replyFlags & GW_CT_SEEN_SYNACK) {
    return "SYN_RECV";
  }
  return "SYN_SENT";
}

std::chrono::seconds flowTimeout(uint8_t proto, std::string_view state, const CtTimeouts& t) {
  switch (proto) {
  case IPPROTO_TCP:
    if (state == "ESTABLISHED") {
      return t.tcpEstablished;
    }
    if (state == "SYN_SENT" || state == "SYN_RECV") {
      return t.tcpSyn;
    }
    return t.tcpTransitory;
  case IPPROTO_UDP:
    return t.udp;
  case IPPROTO_ICMP:
  case IPPROTO_ICMPV6:
    return t.icmp;
  default:
    return t.udp;
  }
}

FlowTuple tupleFromKey(const gw_ct_key& key) {
  FlowTuple t;
  t.src = addrFromKey(key.saddr, key.family);
  t.dst = addrFromKey(key.daddr, key.family);
  t.sport = ntohs(key.sport);
  t.dport = ntohs(key.dport);
  return t;
}

FlowKey flowKeyOf(const gw_ct_key& key, const gw_ct_entry& entry) {
  return {key.proto, tupleFromKey(entry.dir == GW_CT_DIR_ORIG ? key : entry.peer)};
}

Flow makeFlow(const gw_ct_key& key, const gw_ct_entry& entry, const gw_ct_entry* peer,
              uint64_t nowNs) {
  // Present the flow from its original direction whichever half we were handed.
  bool isOrig = entry.dir == GW_CT_DIR_ORIG;
  const gw_ct_entry* orig = isOrig ? &entry : peer;
  const gw_ct_entry* reply = isOrig ? peer : &entry;
  Flow flow;
  flow.proto = key.proto;
  flow.orig = tupleFromKey(isOrig ? key : entry.peer);
  flow.reply = tupleFromKey(isOrig ? entry.peer : key);
  flow.orphan = peer == nullptr;
  uint8_t origFlags = orig != nullptr ? orig->tcp_flags : 0;
  uint8_t replyFlags = reply != nullptr ? reply->tcp_flags : 0;
  flow.state = flowState(key.proto, origFlags, replyFlags);
  uint64_t lastSeen = entry.last_seen_ns;
  uint64_t created = entry.created_ns;
  if (peer != nullptr) {
    lastSeen = std::max<uint64_t>(lastSeen, peer->last_seen_ns);
    created = std::min<uint64_t>(created, peer->created_ns);
  }
  flow.age = since(nowNs, lastSeen);
  flow.life = since(nowNs, created);
  if (orig != nullptr) {
    flow.origCounters = {orig->packets, orig->bytes};
  }
  if (reply != nullptr) {
    flow.replyCounters = {reply->packets, reply->bytes};
  }
  flow.ruleId = entry.rule_id != 0 || peer == nullptr ? entry.rule_id : peer->rule_id;
  flow.nat = entry.nat | (peer != nullptr ? peer->nat : 0);
  return flow;
}

} // namespace gw
