// SPDX-License-Identifier: MIT
// The data path as the daemon sees it: value types and the interface its services use.
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "gateway/datapath/Conntrack.h"

struct gw_config;

namespace gw {

enum class XdpMode {
  Auto,    // native (driver) XDP; no XDP at all if the driver refuses (tc does the work)
  Native,  // native or fail
  Generic, // skb mode: for testing, no speed gain
  Off,
};

// "auto", "native", "generic", "off".
Result<XdpMode> parseXdpMode(std::string_view text);
std::string_view toString(XdpMode mode);

// How the tc programs are hooked to an interface.
enum class TcHook {
  Auto,   // tcx where the kernel has it (6.6+), else clsact
  Tcx,    // tcx links (pinned like the XDP links) or fail
  Clsact, // a clsact qdisc with a direct-action filter per direction
};

// "auto", "tcx", "clsact".
Result<TcHook> parseTcHook(std::string_view text);
std::string_view toString(TcHook hook);

struct DatapathConfig {
  // Where maps and links are pinned so a restart keeps flows and attachments ("" = no pins).
  // Must be on a bpffs: see ensureBpffs().
  std::string bpffsDir;
  XdpMode xdp = XdpMode::Auto;
  TcHook tc = TcHook::Clsact;
  CtTimeouts timeouts;
  bool fibRedirect = true; // GW_CFG_FIB_REDIRECT: forward with bpf_fib_lookup + redirect
  uint32_t ctEntries = 0;  // conntrack map size (two entries a flow); 0 = GW_CT_MAX_ENTRIES
};

// What an unexpose does to the flows its rule translated.
enum class FlowsOfRule { Remove, Keep };

// What an entry of the expose map is found by. Both families share the map: an entry for "any
// local address" (hostAddr unset) exists once per family, so the family is part of the key.
struct ExposeKey {
  uint8_t proto = 0;      // IPPROTO_TCP / IPPROTO_UDP
  int family = AF_INET;   // AF_INET or AF_INET6: the rule's (its target's) family
  IpAddress hostAddr;     // family 0: any local address of `family`; else of `family`
  uint16_t hostPort = 0;  // host order

  auto operator<=>(const ExposeKey&) const = default;
};

struct ExposeEntry {
  uint8_t proto = 0;     // IPPROTO_TCP / IPPROTO_UDP
  IpAddress hostAddr;    // family 0: any local address (of the target's family)
  uint16_t hostPort = 0; // host order
  IpAddress targetAddr;  // its family is the entry's
  uint16_t targetPort = 0; // host order
  uint32_t ruleId = 0;     // per-rule counters; < GW_RULE_MAX, 0 = no counters

  int family() const { return targetAddr.family; }
  ExposeKey key() const { return {proto, family(), hostAddr, hostPort}; }
  bool operator==(const ExposeEntry&) const = default;
};

// An entry of the masquerade map: sources in `source` leave with the uplink's address.
struct MasqueradeEntry {
  IpPrefix source;
  int outIfindex = 0; // 0 = the uplink
  bool endpointIndependent = false; // filtering: anything to a mapping gets in (GW_MASQ_F_EIF)

  bool operator==(const MasqueradeEntry&) const = default;
};

// An entry of the endpoint map: a managed namespace's address behind its veth.
struct EndpointEntry {
  IpAddress addr;
  int hostIfindex = 0;
  std::array<uint8_t, 6> peerMac{};
  std::array<uint8_t, 6> hostMac{};

  bool operator==(const EndpointEntry&) const = default;
};

struct ReasonCount {
  std::string_view name; // "nat_dnat", "drop_malformed", ...
  uint64_t packets = 0;
};

struct RuleStats {
  uint32_t ruleId = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t connections = 0;
  uint64_t drops = 0;
};

struct DatapathStats {
  std::vector<ReasonCount> reasons; // every enum gw_reason, in enum order
  std::vector<RuleStats> rules;     // rule ids currently in the expose map, ascending
  size_t ctEntries = 0;             // conntrack entries (a flow uses two)
  size_t ctCapacity = 0;            // GW_CT_MAX_ENTRIES
};

// One page of a conntrack listing, in FlowKey order.
struct FlowPage {
  std::vector<Flow> flows;
  bool more = false; // flows follow the last one listed
};

// What one conntrack garbage collection pass did and saw.
struct ConntrackSweep {
  size_t removed = 0;   // flows deleted
  size_t entries = 0;   // entries the walk read (a flow uses two)
  size_t capacity = 0;  // of the map
  size_t snatFlows = 0; // flows left that hold a masquerade/hairpin port
};

// What the daemon's services need of a data path: rules into maps, programs onto links,
// conntrack and counters. BpfDatapath (BpfDatapath.h) is the kernel's; the services' unit
// tests use a fake.
class Datapath {
public:
  virtual ~Datapath() = default;

  // tc ingress + egress and XDP on the uplink; writes the uplink into the config map.
  // Calling it again (or after a restart) replaces the programs in place.
  virtual Status attachUplink(int ifindex, const IpAddress& uplinkAddr) = 0;
  // The uplink's IPv6 address (gw_config6.uplink_addr): the IPv6 masquerade source and where
  // IPv6 exposes on any address answer besides gw_local_v6. Unset (family 0): none, so IPv6
  // masquerade has no source.
  virtual Status setUplinkAddress6(const IpAddress& addr) = 0;
  // The uplink's IPv4 address changed (gw_config.uplink_addr: the masquerade source).
  virtual Status setUplinkAddress(const IpAddress& addr) = 0;
  // The XDP mode the uplink actually got (Auto resolves to Native or Off).
  virtual XdpMode uplinkXdpMode() const = 0;
  // How the tc programs are hooked now (Auto resolves to Tcx or Clsact).
  virtual TcHook tcHook() const { return TcHook::Clsact; }
  // Whether maps were adopted from pins of an earlier run.
  virtual bool adopted() const = 0;

  // tc ingress on the gateway-side end of a namespace link.
  virtual Status attachEndpoint(int ifindex) = 0;
  virtual Status detachEndpoint(int ifindex) = 0;
  // A managed namespace's address behind its veth: packets translated towards it go straight
  // into the namespace (bpf_redirect_peer) with this Ethernet header. Replaces.
  virtual Status addEndpoint(const IpAddress& addr, int hostIfindex,
                             std::array<uint8_t, 6> peerMac, std::array<uint8_t, 6> hostMac) = 0;
  // Absent is not an error.
  virtual Status deleteEndpoint(const IpAddress& addr) = 0;
  // Every entry of both endpoint maps (gw_endpoint_v4/v6; pinned: an earlier run's too).
  virtual Result<std::vector<EndpointEntry>> listEndpoints() = 0;
  // The interfaces recorded as carrying the endpoint program (an earlier run's too; some may
  // be gone with their namespace). The uplink is not one of them.
  virtual Result<std::vector<int>> listEndpointAttachments() = 0;

  // The source of hairpin/host-local translations, by the address's family: IPv4 into
  // gw_config.hairpin_addr, IPv6 into gw_config6.hairpin_addr.
  virtual Status setHairpinAddress(const IpAddress& addr) = 0;
  // The gateway host's own addresses (gw_local_v4 or gw_local_v6, by family).
  virtual Status addLocalAddress(const IpAddress& addr) = 0;
  // Absent is not an error.
  virtual Status deleteLocalAddress(const IpAddress& addr) = 0;
  // Every entry of both local address maps (pinned: an earlier run's too).
  virtual Result<std::vector<IpAddress>> listLocalAddresses() = 0;

  virtual Status addExpose(const ExposeEntry& entry) = 0;
  // Every entry of the expose map (pinned: an earlier run's too).
  virtual Result<std::vector<ExposeEntry>> listExposes() = 0;
  // Also deletes that rule's conntrack flows (both halves), unless `flows` keeps them (they
  // then go on reaching the old target until they expire). Absent: an ENOENT error.
  virtual Status deleteExpose(const ExposeKey& key, FlowsOfRule flows = FlowsOfRule::Remove) = 0;
  // The DNAT flows whose first packet was addressed to any of these ports, in one walk of the
  // conntrack table (a range rule's or a container's ports together: one walk, not one each).
  virtual Status deleteFlowsTo(const std::vector<ExposeKey>& keys) = 0;

  // An IPv4 or IPv6 prefix (both families share the LPM map). outIfindex 0 = the uplink.
  // endpointIndependent: RFC 4787 endpoint-independent filtering for these sources' mappings.
  virtual Status addMasquerade(const IpPrefix& source, int outIfindex,
                               bool endpointIndependent = false) = 0;
  virtual Status deleteMasquerade(const IpPrefix& source) = 0;
  // Every entry of the masquerade map (pinned: an earlier run's too).
  virtual Result<std::vector<MasqueradeEntry>> listMasquerades() = 0;

  // Socket hooks for clients on the gateway host itself (the namespace with `netnsCookie`).
  virtual Status enableHostLocal(uint64_t netnsCookie, const std::string& cgroupPath = {}) = 0;

  virtual Result<std::vector<Flow>> listFlows() = 0;
  // The flows `filter` picks whose key comes after `after`, the first `limit` in FlowKey order.
  // The default sorts listFlows(); BpfDatapath keeps only the page while it walks the map.
  virtual Result<FlowPage> listFlowPage(const FlowFilter& filter,
                                        const std::optional<FlowKey>& after, size_t limit);
  virtual Result<size_t> deleteFlows(const FlowFilter& filter) = 0; // flows deleted
  virtual Result<size_t> flushFlows() = 0;
  // One garbage collection pass: removes flows idle past their state's timeout, and orphan
  // halves (peer gone), and reports what the walk saw, so that upkeep needs no second one.
  virtual Result<ConntrackSweep> sweepConntrack() = 0;
  // The flows one sweep removed.
  Result<size_t> collectGarbage() {
    auto sweep = sweepConntrack();
    if (!sweep) {
      return std::unexpected(sweep.error());
    }
    return sweep->removed;
  }

  // Conntrack entries (a flow uses two), cheap enough for every scrape: reads no entry.
  // Defaults to stats().ctEntries for implementations without a cheaper way.
  virtual Result<size_t> conntrackEntries() {
    auto s = stats();
    if (!s) {
      return std::unexpected(s.error());
    }
    return s->ctEntries;
  }

  virtual Result<DatapathStats> stats() = 0;
  // Zeroes one rule id's counters, so a reused id does not inherit its predecessor's totals.
  virtual Status resetRuleStats(uint32_t ruleId) = 0;

  // Detaches and unpins everything this data path (or an earlier run's pins) made.
  virtual Status teardown() = 0;
};

} // namespace gw
