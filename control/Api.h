// SPDX-License-Identifier: MIT
// The API between gwctl and gatewayd, both ends: one struct per request and response of every
// endpoint, each with its field list (a field name is spelled here and nowhere else). The
// paths and the JSON are a contract: scripts and `curl --unix-socket` users depend on them;
// tests/control/WireFormatTest pins them. Add fields freely; never rename one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/Ip.h"
#include "control/ApiCodec.h"
#include "control/ApiValues.h"
#include "control/Paging.h"

namespace gw::api {

// Who is asking, from the control socket's peer credentials (ApiServer lets in no one else).
enum class Caller {
  Root,        // uid 0: everything
  GroupMember, // a member of --group: reads, and exposes of managed namespaces (README, API)
};

inline constexpr const char* kStatusPath = "/v1/status";
inline constexpr const char* kNamespacesPath = "/v1/namespaces"; // DELETE: /v1/namespaces/NAME
inline constexpr const char* kExposesPath = "/v1/exposes";
inline constexpr const char* kOwnersPath = "/v1/owners";
inline constexpr const char* kMasqueradePath = "/v1/masquerade";
inline constexpr const char* kConntrackPath = "/v1/conntrack";
inline constexpr const char* kStatsPath = "/v1/stats";
inline constexpr const char* kMetricsPath = "/metrics"; // Prometheus text
inline constexpr const char* kDownPath = "/v1/down";

// The body of every error answer.
struct ErrorBody {
  std::string error{};
};
constexpr auto fieldsOf(const ErrorBody*) {
  using T = ErrorBody;
  return std::tuple{Field{"error", &T::error}};
}

struct UplinkInfo {
  std::string name{};
  int ifindex = 0;
  std::vector<std::string> addresses{};
  // The IPv6 address IPv6 masquerade leaves with and IPv6 exposes answer on; none: no global
  // IPv6 address (IPv6 masquerade has no source, exposes answer on explicit addresses only).
  std::optional<IpAddress> address6{};
};
constexpr auto fieldsOf(const UplinkInfo*) {
  using T = UplinkInfo;
  return std::tuple{Field{"name", &T::name},
                    Field{"ifindex", &T::ifindex},
                    Field{"addresses", &T::addresses},
                    Field{"address6", &T::address6, Need::Optional}};
}

// loaded: xdp and adopted; not loaded: error.
struct DatapathInfo {
  bool loaded = false;
  std::optional<std::string> xdp{};
  std::optional<std::string> tc{}; // how the tc programs are hooked: tcx or clsact
  std::optional<bool> adopted{};
  std::optional<std::string> error{};
};
constexpr auto fieldsOf(const DatapathInfo*) {
  using T = DatapathInfo;
  return std::tuple{Field{"loaded", &T::loaded},
                    Field{"xdp", &T::xdp},
                    Field{"tc", &T::tc},
                    Field{"adopted", &T::adopted},
                    Field{"error", &T::error}};
}

// GET /v1/status
struct StatusInfo {
  std::string version{};
  int pid = 0;
  std::string netns{};
  UplinkInfo uplink{};
  std::string socket{};
  std::string stateDir{};
  std::string bpffs{};
  int64_t uptimeSeconds = 0;
  uint64_t namespaces = 0;
  uint64_t bridges = 0;
  uint64_t exposes = 0;
  DatapathInfo datapath{};
  std::string state{}; // "running", or "degraded" while the eBPF data path is not loaded
  // Why the pins are not in the default --bpffs (then `bpffs` is the fallback), else absent.
  std::optional<std::string> bpffsFallback{};
};
constexpr auto fieldsOf(const StatusInfo*) {
  using T = StatusInfo;
  return std::tuple{Field{"version", &T::version},
                    Field{"pid", &T::pid},
                    Field{"netns", &T::netns},
                    Field{"uplink", &T::uplink},
                    Field{"socket", &T::socket},
                    Field{"stateDir", &T::stateDir},
                    Field{"bpffs", &T::bpffs},
                    Field{"uptimeSeconds", &T::uptimeSeconds},
                    Field{"namespaces", &T::namespaces},
                    Field{"bridges", &T::bridges},
                    Field{"exposes", &T::exposes},
                    Field{"datapath", &T::datapath},
                    Field{"state", &T::state, Need::Optional},
                    Field{"bpffsFallback", &T::bpffsFallback, Need::Optional}};
}

// POST /v1/namespaces
struct NamespaceAddRequest {
  std::string name{};
  std::optional<std::string> bridge{};
  std::optional<IpPrefix> subnet{};
  std::optional<IpPrefix> subnet6{}; // default: fd00:88::/64 on the default bridge
  bool noIpv6 = false;
};
constexpr auto fieldsOf(const NamespaceAddRequest*) {
  using T = NamespaceAddRequest;
  return std::tuple{Field{"name", &T::name, Need::Optional},
                    Field{"bridge", &T::bridge, Need::Optional, "--bridge"},
                    Field{"subnet", &T::subnet, Need::Optional, "--subnet"},
                    Field{"subnet6", &T::subnet6, Need::Optional, "--subnet6"},
                    Field{"noIpv6", &T::noIpv6, Need::Optional, "--no-ipv6"}};
}

// 201 of POST /v1/namespaces
struct NamespaceAdded {
  std::string name{};
  IpAddress address{};
  IpPrefix prefix{};
  IpAddress gateway{};
  std::string link{};
  // The IPv6 side, absent when the namespace has none.
  std::optional<IpAddress> address6{};
  std::optional<IpPrefix> prefix6{};
  std::optional<IpAddress> gateway6{};
};
constexpr auto fieldsOf(const NamespaceAdded*) {
  using T = NamespaceAdded;
  return std::tuple{Field{"name", &T::name},
                    Field{"address", &T::address},
                    Field{"prefix", &T::prefix},
                    Field{"gateway", &T::gateway},
                    Field{"link", &T::link},
                    Field{"address6", &T::address6, Need::Optional},
                    Field{"prefix6", &T::prefix6, Need::Optional},
                    Field{"gateway6", &T::gateway6, Need::Optional}};
}

// GET /v1/namespaces (an array of these; ?limit=&after=NAME: a Page, by name)
struct NamespaceInfo {
  std::string name{};
  IpAddress address{};
  IpPrefix prefix{};
  IpAddress gateway{};
  std::string link{};
  Wiring wiring = Wiring::Bridge;
  std::string bridge{};
  std::string state{};
  std::optional<IpAddress> address6{};
  std::optional<IpPrefix> prefix6{};
  std::optional<IpAddress> gateway6{};
};
constexpr auto fieldsOf(const NamespaceInfo*) {
  using T = NamespaceInfo;
  return std::tuple{Field{"name", &T::name},
                    Field{"address", &T::address},
                    Field{"prefix", &T::prefix},
                    Field{"gateway", &T::gateway},
                    Field{"link", &T::link},
                    Field{"wiring", &T::wiring},
                    Field{"bridge", &T::bridge},
                    Field{"state", &T::state},
                    Field{"address6", &T::address6, Need::Optional},
                    Field{"prefix6", &T::prefix6, Need::Optional},
                    Field{"gateway6", &T::gateway6, Need::Optional}};
}

using NamespaceListQuery = ListQuery<std::string>;
using NamespacePage = Page<NamespaceInfo, std::string>;

// DELETE /v1/namespaces/NAME
struct NamespaceDeleted {
  std::string name{};
  bool deleted = false;
};
constexpr auto fieldsOf(const NamespaceDeleted*) {
  using T = NamespaceDeleted;
  return std::tuple{Field{"name", &T::name},
                    Field{"deleted", &T::deleted}};
}

// POST /v1/exposes (one, or an array of them: a batch, all or nothing)
struct ExposeRequest {
  PortRange hostPort{};
  TargetSpec target{};
  Proto proto = Proto::Tcp;
  std::optional<IpAddress> hostIp{};
  ExposeMode mode = ExposeMode::Auto;
  ProxyProtocol proxyProtocol = ProxyProtocol::None;
  // The families the rule answers on (none given: both); an IPv6 --host-ip (or an IPv4 one)
  // limits it to that family.
  std::optional<IpFamilies> family{};
  // Rules added and removed as a set (GET/DELETE /v1/owners); none: the caller's own.
  std::optional<ExposeOwner> owner{};
};
constexpr auto fieldsOf(const ExposeRequest*) {
  using T = ExposeRequest;
  return std::tuple{Field{"hostPort", &T::hostPort, Need::Required, "host port"},
                    Field{"target", &T::target},
                    Field{"proto", &T::proto, Need::Optional},
                    Field{"hostIp", &T::hostIp, Need::Optional, "--host-ip"},
                    Field{"mode", &T::mode, Need::Optional},
                    Field{"proxyProtocol", &T::proxyProtocol, Need::Optional},
                    Field{"family", &T::family, Need::Optional, "--family"},
                    Field{"owner", &T::owner, Need::Optional, "--owner"}};
}

// How one address family of an expose is served (ExposeAdded/ExposeInfo "families").
struct FamilyServing {
  IpFamilies family = IpFamilies::V4; // V4 or V6
  ServingPath path = ServingPath::None;
  std::string why{};
  std::optional<IpAddress> targetAddr{}; // where that family's clients are sent
  std::optional<Forwarding> forward{};   // eBPF: how they are handed to the target
};
constexpr auto fieldsOf(const FamilyServing*) {
  using T = FamilyServing;
  return std::tuple{Field{"family", &T::family}, Field{"path", &T::path}, Field{"why", &T::why},
                    Field{"targetAddr", &T::targetAddr, Need::Optional},
                    Field{"forward", &T::forward, Need::Optional}};
}

// 201 of POST /v1/exposes
struct ExposeAdded {
  uint32_t id = 0;
  Proto proto = Proto::Tcp;
  PortRange hostPort{};
  std::string target{};
  IpAddress targetAddr{};
  ServingPath path = ServingPath::None; // of the first family served (IPv4 when it is)
  std::string why{};
  IpFamilies family = IpFamilies::V4;     // the families it answers on
  std::vector<FamilyServing> families{}; // one per family of `family`
};
constexpr auto fieldsOf(const ExposeAdded*) {
  using T = ExposeAdded;
  return std::tuple{Field{"id", &T::id},
                    Field{"proto", &T::proto},
                    Field{"hostPort", &T::hostPort},
                    Field{"target", &T::target},
                    Field{"targetAddr", &T::targetAddr},
                    Field{"path", &T::path},
                    Field{"why", &T::why},
                    Field{"family", &T::family, Need::Optional},
                    Field{"families", &T::families, Need::Optional}};
}

// GET /v1/exposes (an array of these; ?limit=&after=: a Page, by ExposeCursor)
struct ExposeInfo {
  uint32_t id = 0;
  Proto proto = Proto::Tcp;
  std::string hostIp{};
  PortRange hostPort{};
  std::string target{};
  IpAddress targetAddr{};
  PortRange targetPort{};
  ExposeMode mode = ExposeMode::Auto;
  ProxyProtocol proxyProtocol = ProxyProtocol::None;
  ServingPath path = ServingPath::None;
  std::string why{};
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t connections = 0;
  uint64_t drops = 0;
  IpFamilies family = IpFamilies::V4;     // the families it answers on
  std::vector<FamilyServing> families{}; // which path serves each, and why
  std::optional<ExposeOwner> owner{};
};
constexpr auto fieldsOf(const ExposeInfo*) {
  using T = ExposeInfo;
  return std::tuple{Field{"id", &T::id},
                    Field{"proto", &T::proto},
                    Field{"hostIp", &T::hostIp},
                    Field{"hostPort", &T::hostPort},
                    Field{"target", &T::target},
                    Field{"targetAddr", &T::targetAddr},
                    Field{"targetPort", &T::targetPort},
                    Field{"mode", &T::mode},
                    Field{"proxyProtocol", &T::proxyProtocol},
                    Field{"path", &T::path},
                    Field{"why", &T::why},
                    Field{"packets", &T::packets},
                    Field{"bytes", &T::bytes},
                    Field{"connections", &T::connections},
                    Field{"drops", &T::drops},
                    Field{"family", &T::family, Need::Optional},
                    Field{"families", &T::families, Need::Optional},
                    Field{"owner", &T::owner, Need::Optional}};
}

using ExposeListQuery = ListQuery<ExposeCursor>;

// GET /v1/owners: every owner with the ids of its exposes (ascending).
struct OwnerInfo {
  ExposeOwner owner{};
  std::vector<uint32_t> ids{};
};
constexpr auto fieldsOf(const OwnerInfo*) {
  using T = OwnerInfo;
  return std::tuple{Field{"owner", &T::owner}, Field{"ids", &T::ids}};
}

// DELETE /v1/owners/OWNER: every expose of the owner gone (none is not an error), their
// conntrack flows with them.
struct OwnerDeleted {
  ExposeOwner owner{};
  uint32_t deleted = 0;
};
constexpr auto fieldsOf(const OwnerDeleted*) {
  using T = OwnerDeleted;
  return std::tuple{Field{"owner", &T::owner}, Field{"deleted", &T::deleted}};
}
using ExposePage = Page<ExposeInfo, ExposeCursor>;

// DELETE /v1/exposes?port=P[-END]&proto=tcp|udp
struct UnexposeQuery {
  PortRange port{};
  Proto proto = Proto::Tcp;
  // Chooses between exposes of one port on different host addresses.
  std::optional<IpAddress> hostIp{};
  // The rule's conntrack flows go on reaching the old target until they expire.
  bool keepFlows = false;
  // Chooses between rules of one port that answer on different families.
  std::optional<IpFamilies> family{};
};
constexpr auto fieldsOf(const UnexposeQuery*) {
  using T = UnexposeQuery;
  return std::tuple{Field{"port", &T::port, Need::Required, "host port"},
                    Field{"proto", &T::proto, Need::Optional},
                    Field{"hostIp", &T::hostIp, Need::Optional, "--host-ip"},
                    Field{"keepFlows", &T::keepFlows, Need::Optional, "--keep-flows"},
                    Field{"family", &T::family, Need::Optional, "--family"}};
}

struct ExposeDeleted {
  uint32_t id = 0;
  PortRange hostPort{};
  Proto proto = Proto::Tcp;
  bool deleted = false;
};
constexpr auto fieldsOf(const ExposeDeleted*) {
  using T = ExposeDeleted;
  return std::tuple{Field{"id", &T::id},
                    Field{"hostPort", &T::hostPort},
                    Field{"proto", &T::proto},
                    Field{"deleted", &T::deleted}};
}

// POST /v1/masquerade
struct MasqueradeRequest {
  IpPrefix source{};
  std::optional<std::string> outIf{};
  Filtering filtering = Filtering::AddressAndPortDependent;
};
constexpr auto fieldsOf(const MasqueradeRequest*) {
  using T = MasqueradeRequest;
  return std::tuple{Field{"source", &T::source, Need::Required, "masquerade source"},
                    Field{"outIf", &T::outIf, Need::Optional, "--out"},
                    Field{"filtering", &T::filtering, Need::Optional, "--filtering"}};
}

struct MasqueradeAdded {
  IpPrefix source{};
  std::string out{};
  Filtering filtering = Filtering::AddressAndPortDependent;
};
constexpr auto fieldsOf(const MasqueradeAdded*) {
  using T = MasqueradeAdded;
  return std::tuple{Field{"source", &T::source},
                    Field{"out", &T::out},
                    Field{"filtering", &T::filtering, Need::Optional}};
}

// GET /v1/masquerade (an array of these; ?limit=&after=CIDR: a Page, by source)
struct MasqueradeInfo {
  IpPrefix source{};
  std::string out{};
  bool automatic = false;
  Filtering filtering = Filtering::AddressAndPortDependent;
};
constexpr auto fieldsOf(const MasqueradeInfo*) {
  using T = MasqueradeInfo;
  return std::tuple{Field{"source", &T::source},
                    Field{"out", &T::out},
                    Field{"automatic", &T::automatic},
                    Field{"filtering", &T::filtering, Need::Optional}};
}

using MasqueradeListQuery = ListQuery<IpPrefix>;
using MasqueradePage = Page<MasqueradeInfo, IpPrefix>;

// DELETE /v1/masquerade?source=CIDR
struct MasqueradeQuery {
  IpPrefix source{};
};
constexpr auto fieldsOf(const MasqueradeQuery*) {
  using T = MasqueradeQuery;
  return std::tuple{Field{"source", &T::source, Need::Required, "masquerade source"}};
}

struct MasqueradeDeleted {
  IpPrefix source{};
  bool deleted = false;
};
constexpr auto fieldsOf(const MasqueradeDeleted*) {
  using T = MasqueradeDeleted;
  return std::tuple{Field{"source", &T::source},
                    Field{"deleted", &T::deleted}};
}

// GET and DELETE /v1/conntrack?proto=&src=&dst=&port=&sport=&dport= (all=1: every flow);
// GET also &limit=&after= (a Page of the flows the filters pick, by FlowCursor).
struct ConntrackQuery {
  std::optional<Proto> proto{};
  std::optional<IpAddress> src{};
  std::optional<IpAddress> dst{};
  std::optional<PortRange> port{};
  std::optional<PortRange> sport{};
  std::optional<PortRange> dport{};
  std::optional<std::string> all{};
  std::optional<PageLimit> limit{};
  std::optional<FlowCursor> after{};

  ListQuery<FlowCursor> paging() const { return {limit, after}; }
};
constexpr auto fieldsOf(const ConntrackQuery*) {
  using T = ConntrackQuery;
  return std::tuple{Field{"proto", &T::proto, Need::Optional},
                    Field{"src", &T::src, Need::Optional, "--src"},
                    Field{"dst", &T::dst, Need::Optional, "--dst"},
                    Field{"port", &T::port, Need::Optional, "--port"},
                    Field{"sport", &T::sport, Need::Optional, "--sport"},
                    Field{"dport", &T::dport, Need::Optional, "--dport"},
                    Field{"all", &T::all, Need::Optional},
                    Field{"limit", &T::limit, Need::Optional, "limit"},
                    Field{"after", &T::after, Need::Optional, "after"}};
}

struct FlowTupleInfo {
  IpAddress src{};
  uint16_t sport = 0;
  IpAddress dst{};
  uint16_t dport = 0;
};
constexpr auto fieldsOf(const FlowTupleInfo*) {
  using T = FlowTupleInfo;
  return std::tuple{Field{"src", &T::src},
                    Field{"sport", &T::sport},
                    Field{"dst", &T::dst},
                    Field{"dport", &T::dport}};
}

// GET /v1/conntrack (an array of these)
struct FlowInfo {
  std::string proto{};
  FlowTupleInfo orig{};
  FlowTupleInfo reply{};
  std::string state{};
  double idleSeconds = 0;
  double ageSeconds = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t origPackets = 0;
  uint64_t replyPackets = 0;
  uint32_t rule = 0;
  NatKind nat{};
};
constexpr auto fieldsOf(const FlowInfo*) {
  using T = FlowInfo;
  return std::tuple{Field{"proto", &T::proto},
                    Field{"orig", &T::orig},
                    Field{"reply", &T::reply},
                    Field{"state", &T::state},
                    Field{"idleSeconds", &T::idleSeconds},
                    Field{"ageSeconds", &T::ageSeconds},
                    Field{"packets", &T::packets},
                    Field{"bytes", &T::bytes},
                    Field{"origPackets", &T::origPackets},
                    Field{"replyPackets", &T::replyPackets},
                    Field{"rule", &T::rule},
                    Field{"nat", &T::nat}};
}

using ConntrackPage = Page<FlowInfo, FlowCursor>;

// DELETE /v1/conntrack
struct FlowsDeleted {
  uint64_t deleted = 0;
};
constexpr auto fieldsOf(const FlowsDeleted*) {
  using T = FlowsDeleted;
  return std::tuple{Field{"deleted", &T::deleted}};
}

struct RuleStatsInfo {
  uint32_t id = 0;
  std::string rule{};
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t connections = 0;
  uint64_t drops = 0;
};
constexpr auto fieldsOf(const RuleStatsInfo*) {
  using T = RuleStatsInfo;
  return std::tuple{Field{"id", &T::id},
                    Field{"rule", &T::rule},
                    Field{"packets", &T::packets},
                    Field{"bytes", &T::bytes},
                    Field{"connections", &T::connections},
                    Field{"drops", &T::drops}};
}

struct ConntrackStatsInfo {
  uint64_t entries = 0;
  uint64_t capacity = 0;
  uint64_t pressureSweeps = 0;
};
constexpr auto fieldsOf(const ConntrackStatsInfo*) {
  using T = ConntrackStatsInfo;
  return std::tuple{Field{"entries", &T::entries},
                    Field{"capacity", &T::capacity},
                    Field{"pressureSweeps", &T::pressureSweeps}};
}

// GET /v1/stats
// One expose served by the io_uring proxy (all its listeners, summed).
struct ProxyStatsInfo {
  uint32_t id = 0;
  std::string rule{};
  uint64_t accepted = 0;
  uint64_t active = 0;
  uint64_t refusedLimit = 0;  // closed at once: a connection limit was reached
  uint64_t backendFailed = 0; // connect refused/timed out, or the backend reset mid-stream
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
};
constexpr auto fieldsOf(const ProxyStatsInfo*) {
  using T = ProxyStatsInfo;
  return std::tuple{Field{"id", &T::id},
                    Field{"rule", &T::rule},
                    Field{"accepted", &T::accepted},
                    Field{"active", &T::active},
                    Field{"refusedLimit", &T::refusedLimit},
                    Field{"backendFailed", &T::backendFailed},
                    Field{"bytesIn", &T::bytesIn},
                    Field{"bytesOut", &T::bytesOut}};
}

struct StatsInfo {
  std::map<std::string, uint64_t> reasons{};
  std::vector<RuleStatsInfo> rules{};
  ConntrackStatsInfo conntrack{};
  std::vector<ProxyStatsInfo> proxy{};
  bool datapathLoaded = true; // false: reasons, rules and conntrack are empty (degraded)
};
constexpr auto fieldsOf(const StatsInfo*) {
  using T = StatsInfo;
  return std::tuple{Field{"reasons", &T::reasons},
                    Field{"rules", &T::rules},
                    Field{"conntrack", &T::conntrack},
                    Field{"proxy", &T::proxy, Need::Optional},
                    Field{"datapathLoaded", &T::datapathLoaded, Need::Optional}};
}

// POST /v1/down
struct DownResult {
  bool down = false;
};
constexpr auto fieldsOf(const DownResult*) {
  using T = DownResult;
  return std::tuple{Field{"down", &T::down}};
}

} // namespace gw::api
