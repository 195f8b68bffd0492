// SPDX-License-Identifier: MIT
#include "gateway/services/ExposeService.h"

#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "base/Failpoint.h"
#include "base/Log.h"
#include "bpf/gw_abi.h"
#include "gateway/services/Paging.h"
#include "gateway/services/RepairLog.h"

namespace gw {
namespace {

// Where the proxy connects for NS:PORT targets, from inside NS (see addOne).
const IpAddress kNamespaceLoopback = IpAddress::v4(0x7f000001);
const IpAddress kLoopback6 = IpAddress::parse("::1").value_or(IpAddress{});

std::string hostIpOf(const ExposeRecord& e) {
  return e.hostIp ? e.hostIp->str() : "*";
}

} // namespace

std::optional<IpAddress> ExposeService::ebpfTarget(const ExposeRecord& e, int family) {
  if (family == AF_INET6) {
    return e.targetAddr.isV6() ? std::optional(e.targetAddr) : e.targetAddr6;
  }
  return e.targetAddr.isV4() ? std::optional(e.targetAddr) : std::nullopt;
}

ExposeService::Serving ExposeService::servingPath(const ExposeRecord& e, int family) const {
  std::string name = family == AF_INET6 ? "IPv6" : "IPv4";
  if (!includes(e.family, family)) {
    return {ServingPath::None, "--family " + std::string(toString(e.family)) + ": not on " + name};
  }
  if (auto it = unresolved_.find(e.id); e.id != 0 && it != unresolved_.end()) {
    return {ServingPath::None, it->second, ErrorKind::Unavailable};
  }
  // A namespace target not resolved yet (NS:PORT) has its IPv4 address. DNAT to [::1] goes
  // nowhere (the kernel drops it as martian): the proxy serves such a target.
  auto target = ebpfTarget(e, family);
  bool hasTarget = (target && *target != kLoopback6) ||
                   (family == AF_INET && !e.netns().empty() && !e.targetAddr.isV6());
  std::string proxyWhy;
  if (e.mode == ExposeMode::Proxy) {
    proxyWhy = "--mode proxy";
  } else if (e.proxyProtocol != ProxyProtocol::None) {
    proxyWhy = "--proxy-protocol needs a proxy";
  } else if (!hasTarget) {
    std::string why = "the target has no " + name + " address (eBPF translates within a family)";
    if (e.mode == ExposeMode::Ebpf) {
      return {ServingPath::None, "--mode ebpf but " + why};
    }
    proxyWhy = "auto, " + why;
  } else if (ctx_.datapath) {
    return {ServingPath::Ebpf,
            "eBPF data path: tc DNAT, cgroup hooks for the gateway host's own clients"};
  } else if (e.mode == ExposeMode::Ebpf) {
    return {ServingPath::None,
            "--mode ebpf but the eBPF data path is not loaded: " + ctx_.datapath.error,
            ErrorKind::Unavailable};
  } else {
    proxyWhy = "auto, the eBPF data path is not loaded (" + ctx_.datapath.error + ")";
  }
  if (e.proto != Proto::Tcp) {
    return {ServingPath::None, "the proxy serves TCP only: --proto udp needs the eBPF data path"};
  }
  // The proxy listens on --host-ip, else on 0.0.0.0: IPv6 clients only at an IPv6 --host-ip.
  if (family == AF_INET6 && !(e.hostIp && e.hostIp->isV6())) {
    return {ServingPath::None, "the io_uring proxy would serve it (" + proxyWhy +
                                   ") but listens on IPv6 only at an IPv6 --host-ip"};
  }
  return {ServingPath::Proxy, "io_uring proxy: " + proxyWhy};
}

ExposeService::Serving ExposeService::servingPath(const ExposeRecord& e) const {
  Serving v4 = servingPath(e, AF_INET);
  if (v4.path != ServingPath::None || !includes(e.family, AF_INET6)) {
    return v4;
  }
  Serving v6 = servingPath(e, AF_INET6);
  return v6.path != ServingPath::None || !includes(e.family, AF_INET) ? v6 : v4;
}

std::vector<api::FamilyServing> ExposeService::familiesOf(const ExposeRecord& e) const {
  std::vector<api::FamilyServing> out;
  for (int family : {AF_INET, AF_INET6}) {
    if (!includes(e.family, family)) {
      continue;
    }
    Serving s = servingPath(e, family);
    api::FamilyServing f{.family = family == AF_INET6 ? IpFamilies::V6 : IpFamilies::V4,
                         .path = s.path,
                         .why = s.why};
    if (s.path == ServingPath::Ebpf) {
      f.targetAddr = ebpfTarget(e, family);
      bool peer = targetIsManaged(e) || (f.targetAddr && peered_ && peered_(*f.targetAddr));
      f.forward = peer ? Forwarding::Peer : Forwarding::Route;
    } else if (s.path == ServingPath::Proxy) {
      f.targetAddr = e.targetAddr;
    }
    out.push_back(std::move(f));
  }
  return out;
}

bool ExposeService::proxied(const ExposeRecord& e) const {
  return servingPath(e, AF_INET).path == ServingPath::Proxy ||
         servingPath(e, AF_INET6).path == ServingPath::Proxy;
}

Result<ExposeService::Resolved> ExposeService::resolveTarget(const TargetSpec& target) {
  if (target.addr) {
    return Resolved{*target.addr, std::nullopt};
  }
  if (const auto* managed = ctx_.state.findNamespace(target.ns); managed != nullptr) {
    return Resolved{managed->address.addr,
                    managed->address6 ? std::optional(managed->address6->addr) : std::nullopt};
  }
  if (!target.ns.empty() && !topology_.namespaceExists(target.ns)) {
    return notFound("target namespace " + target.ns + " does not exist");
  }
  return resolveHandWired(target.netns());
}

Result<ExposeService::Resolved> ExposeService::resolveHandWired(const std::string& netns) {
  auto pick = [&](int family) -> Result<std::optional<IpAddress>> {
    auto theirs = topology_.namespaceAddresses(netns, family);
    if (!theirs) {
      return std::unexpected(theirs.error());
    }
    auto ours = topology_.hostAddresses(family);
    if (!ours) {
      return std::unexpected(ours.error());
    }
    auto unusable = [](const IpAddress& a) {
      return a.isV4() ? a.bytes[0] == 127 : a == kLoopback6 || a.isLinkLocal6();
    };
    std::optional<IpAddress> fallback;
    for (const auto& a : *theirs) {
      if (unusable(a.addr)) {
        continue;
      }
      for (const auto& o : *ours) {
        if (!unusable(o.prefix.addr) && o.prefix.network().contains(a.addr)) {
          return a.addr;
        }
      }
      if (!fallback) {
        fallback = a.addr;
      }
    }
    return fallback;
  };
  auto v4 = pick(AF_INET);
  if (!v4) {
    return std::unexpected(v4.error());
  }
  auto v6 = pick(AF_INET6);
  if (!v6) {
    return std::unexpected(v6.error());
  }
  if (*v4) {
    return Resolved{**v4, *v6};
  }
  if (*v6) {
    return Resolved{**v6, std::nullopt};
  }
  return notFound("target namespace " + netns + " has no IPv4 or IPv6 address");
}

Status ExposeService::resolvePath(ExposeRecord& e) {
  auto id = topology_.namespaceId(e.targetNetnsPath);
  if (!id) {
    return std::unexpected(id.error());
  }
  // A process's path names whatever process has that PID now: not the namespace it was.
  if (e.targetNetnsPath.starts_with("/proc/") && e.targetNetnsCookie != 0 &&
      id->cookie != e.targetNetnsCookie) {
    return fail(ErrorKind::NotFound, e.targetNetnsPath +
                                         " is another namespace now (its process is gone, "
                                         "the PID taken again)");
  }
  if (e.targetAddr != kNamespaceLoopback) { // the proxy connects from inside: nothing to find
    auto found = resolveHandWired(e.targetNetnsPath);
    if (!found) {
      return std::unexpected(found.error());
    }
    e.targetAddr = found->addr;
    e.targetAddr6 = includes(e.family, AF_INET6) ? found->addr6 : std::nullopt;
  }
  pathIds_[e.id] = *id;
  return {};
}

void ExposeService::checkPaths() {
  for (auto& e : ctx_.state.exposes) {
    if (e.targetNetnsPath.empty()) {
      continue;
    }
    if (auto it = unresolved_.find(e.id); it != unresolved_.end()) {
      std::string why = it->second;
      ExposeRecord again = e;
      if (!resolvePath(again)) {
        continue;
      }
      unresolved_.erase(it); // servingPath answers for it again
      if (auto r = apply(again); !r) {
        unresolved_[e.id] = why;
        continue;
      }
      e = again;
      log::info("expose ", e.hostPorts().str(), " -> ", e.target, ": served again (",
                e.targetAddr.str(), ")");
      continue;
    }
    auto id = topology_.namespaceId(e.targetNetnsPath);
    auto known = pathIds_.find(e.id);
    if (id && known != pathIds_.end() && *id == known->second) {
      continue;
    }
    std::string why = "target namespace " + e.targetNetnsPath +
                      (id ? " is another namespace now" : " is gone (" + id.error().str() + ")") +
                      ": not served";
    (void)unapply(e);
    unresolved_[e.id] = why;
    pathIds_.erase(e.id);
    log::warn("expose ", e.hostPorts().str(), " -> ", e.target, ": ", why);
  }
}

void ExposeService::forget(uint32_t id) {
  pathIds_.erase(id);
  unresolved_.erase(id);
}

// Whether rules a and b answer on a common family (a path serves it for both): only then do
// they compete for a host port (IPv4 and IPv6 entries are separate keys in every map).
bool ExposeService::shareAFamily(const ExposeRecord& a, const ExposeRecord& b) const {
  for (int family : {AF_INET, AF_INET6}) {
    if (servingPath(a, family).path != ServingPath::None &&
        servingPath(b, family).path != ServingPath::None) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<void> ExposeService::beginBatch(size_t rules) {
  if (rules <= 1) {
    return nullptr;
  }
  BatchLookups b;
  b.idsUsed.assign(GW_RULE_MAX, false);
  batch_ = std::move(b);
  for (size_t i = 0; i < ctx_.state.exposes.size(); ++i) {
    indexPorts(i);
  }
  if (auto addrs = topology_.hostAddresses(AF_INET); addrs) {
    batch_->hostAddresses = std::move(*addrs);
  }
  return std::shared_ptr<void>(nullptr, [this](void*) { batch_.reset(); });
}

void ExposeService::indexPorts(size_t stateIndex) {
  const ExposeRecord& e = ctx_.state.exposes[stateIndex];
  if (e.proto != Proto::Tcp && e.proto != Proto::Udp) {
    return;
  }
  for (unsigned port = e.hostPort; port <= e.hostPortEnd; ++port) {
    batch_->byPort[BatchLookups::slot(e.proto, port)].push_back(stateIndex);
  }
  if (e.id < GW_RULE_MAX) {
    batch_->idsUsed[e.id] = true;
  }
}

Status ExposeService::checkPortFree(const ExposeRecord& candidate) {
  Proto proto = candidate.proto;
  PortRange ports = candidate.hostPorts();
  const std::optional<IpAddress>& hostIp = candidate.hostIp;
  auto clash = [&](const ExposeRecord& e) -> Status {
    if (e.proto == proto && e.hostPorts().overlaps(ports) &&
        (!e.hostIp || !hostIp || e.hostIp == hostIp) && shareAFamily(e, candidate)) {
      return conflict("host port " + ports.str() + "/" + std::string(protoName(proto)) +
                      " clashes with the expose of " + e.hostPorts().str() + " to " + e.target);
    }
    return {};
  };
  if (batch_ && (proto == Proto::Tcp || proto == Proto::Udp)) {
    for (unsigned port = ports.first; port <= ports.last; ++port) {
      auto it = batch_->byPort.find(BatchLookups::slot(proto, port));
      if (it == batch_->byPort.end()) {
        continue;
      }
      for (size_t i : it->second) {
        if (auto r = clash(ctx_.state.exposes[i]); !r) {
          return r;
        }
      }
    }
  } else {
    for (const auto& e : ctx_.state.exposes) {
      if (auto r = clash(e); !r) {
        return r;
      }
    }
  }
  for (unsigned port = ports.first; port <= ports.last; ++port) {
    auto used = topology_.portInUse(proto, static_cast<uint16_t>(port), hostIp);
    if (!used) {
      return std::unexpected(used.error());
    }
    if (*used && candidate.owner) {
      // A runtime reserves its published ports itself (Podman's conmon holds a socket on
      // each while the container lives, and asks again at `network reload`): the socket is
      // the owner's, not a server the rule would hide.
      log::info("host port ", port, "/", protoName(proto), " of ", candidate.owner->text,
                " is held by a local socket (the runtime's reservation): published over it");
      continue;
    }
    if (*used) {
      return conflict("host port " + std::to_string(port) + "/" +
                      std::string(protoName(proto)) +
                      " is already in use by a local socket on the gateway host");
    }
  }
  return {};
}

uint32_t ExposeService::allocateRuleId() {
  State& state = ctx_.state;
  std::vector<bool> scanned;
  if (!batch_) {
    scanned.assign(GW_RULE_MAX, false);
    for (const auto& e : state.exposes) {
      if (e.id < GW_RULE_MAX) { // state.json holds any uint32
        scanned[e.id] = true;
      }
    }
  }
  const std::vector<bool>& used = batch_ ? batch_->idsUsed : scanned;
  // From a cursor, so ids are not reused soon after an unexpose (their counters are fresh).
  for (uint32_t k = 0; k + 1 < GW_RULE_MAX; ++k) {
    uint32_t id = 1 + (state.nextRuleId - 1 + k) % (GW_RULE_MAX - 1);
    if (!used[id]) {
      state.nextRuleId = id % (GW_RULE_MAX - 1) + 1;
      return id;
    }
  }
  return 0;
}

Status ExposeService::applyProxy(const ExposeRecord& e) {
  std::vector<uint64_t> ids;
  PortRange targets = e.targetPorts();
  for (unsigned i = 0; i < e.hostPorts().size(); ++i) {
    ProxyListenerSpec spec;
    spec.listenAddr = e.hostIp ? e.hostIp->str() : "0.0.0.0";
    spec.listenPort = static_cast<uint16_t>(e.hostPort + i);
    spec.targetNetns = e.netns();
    spec.targetAddr = e.targetAddr.str();
    if (!e.netns().empty() && e.targetAddr == kNamespaceLoopback) {
      spec.fallbackAddr = "::1"; // a server on IPv6 loopback only
    }
    spec.targetPort = static_cast<uint16_t>(targets.first + i);
    spec.proxyProtocolV2 = e.proxyProtocol == ProxyProtocol::V2;
    auto id = proxy_.addListener(spec);
    if (!id) {
      for (auto added : ids) {
        (void)proxy_.removeListener(added, false);
      }
      return std::unexpected(id.error());
    }
    ids.push_back(*id);
  }
  listeners_[e.id] = std::move(ids);
  return {};
}

std::vector<ExposeEntry> ExposeService::entriesOf(const ExposeRecord& e) const {
  std::vector<ExposeEntry> out;
  PortRange targets = e.targetPorts();
  for (int family : {AF_INET, AF_INET6}) {
    auto target = ebpfTarget(e, family);
    if (!target || servingPath(e, family).path != ServingPath::Ebpf) {
      continue;
    }
    // A --host-ip is of one family (add normalises the rule's family to it).
    IpAddress hostAddr = e.hostIp && e.hostIp->family == family ? *e.hostIp : IpAddress{};
    for (unsigned i = 0; i < e.hostPorts().size(); ++i) {
      out.push_back({ipProto(e.proto), hostAddr, static_cast<uint16_t>(e.hostPort + i), *target,
                     static_cast<uint16_t>(targets.first + i), e.id});
    }
  }
  return out;
}

bool ExposeService::targetIsManaged(const ExposeRecord& e) const {
  State& state = ctx_.state;
  return !e.targetNs.empty() ? state.findNamespace(e.targetNs) != nullptr
                             : std::ranges::any_of(state.namespaces, [&](const NamespaceRecord& n) {
                                 return n.address.addr == e.targetAddr;
                               });
}

std::optional<int> ExposeService::handWiredLink(const ExposeRecord& e) const {
  if (batch_ && batch_->hostAddresses) {
    return handWiredLink(e, *batch_->hostAddresses);
  }
  auto addrs = topology_.hostAddresses(AF_INET);
  if (!addrs) {
    return std::nullopt;
  }
  return handWiredLink(e, *addrs);
}

std::optional<int> ExposeService::handWiredLink(const ExposeRecord& e,
                                                const std::vector<HostAddress>& addrs) const {
  if (!ctx_.datapath || servingPath(e, AF_INET).path != ServingPath::Ebpf ||
      targetIsManaged(e)) {
    return std::nullopt;
  }
  for (const auto& a : addrs) {
    // Not the uplink: a target out there is reached through the uplink's own programs.
    if (a.link == ctx_.uplink || a.prefix.addr.bytes[0] == 127 ||
        !a.prefix.network().contains(e.targetAddr)) {
      continue;
    }
    if (auto link = topology_.link(a.link); link) {
      return link->index;
    }
  }
  return std::nullopt;
}

EndpointWants ExposeService::handWiredTargets() const {
  EndpointWants out;
  if (!ctx_.datapath) {
    return out;
  }
  for (const auto& e : ctx_.state.exposes) {
    if (targetIsManaged(e) || unresolved_.contains(e.id)) {
      continue;
    }
    bool any = false;
    for (int family : {AF_INET, AF_INET6}) {
      if (!includes(e.family, family) || servingPath(e, family).path != ServingPath::Ebpf) {
        continue;
      }
      if (auto addr = ebpfTarget(e, family)) {
        out.addresses.insert(*addr);
        any = true;
      }
    }
    if (any && !e.netns().empty()) {
      out.namespaces.insert(e.netns());
    }
  }
  return out;
}

std::set<int> ExposeService::handWiredLinks() const {
  std::set<int> out;
  auto addrs = topology_.hostAddresses(AF_INET); // one dump for every expose
  if (!addrs) {
    return out;
  }
  for (const auto& e : ctx_.state.exposes) {
    if (auto link = handWiredLink(e, *addrs)) {
      out.insert(*link);
    }
  }
  return out;
}

Status ExposeService::apply(const ExposeRecord& e) {
  // The proxy serves the families the eBPF path cannot (an IPv4 client of an IPv6 target).
  if (proxied(e)) {
    if (auto r = applyProxy(e); !r) {
      return r;
    }
  }
  auto entries = entriesOf(e);
  if (entries.empty()) {
    return {};
  }
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto undo = [&](size_t written) {
    for (size_t j = 0; j < written; ++j) {
      (void)(*dp)->deleteExpose(entries[j].key());
    }
    removeListeners(e, false);
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    if (auto r = (*dp)->addExpose(entries[i]); !r) {
      undo(i);
      return r;
    }
  }
  // A namespace wired by hand gets what `ns add` gives its own: the endpoint program on the
  // host end of its link, so that it reaches exposed ports (itself included: hairpin) too.
  if (auto link = handWiredLink(e)) {
    if (auto r = (*dp)->attachEndpoint(*link); !r) {
      undo(entries.size());
      return within(r.error(), "endpoint program on ifindex " + std::to_string(*link) +
                                   ", the host end of target " + e.target + "'s link");
    }
  }
  return {};
}

void ExposeService::removeListeners(const ExposeRecord& e, bool drain) {
  if (auto it = listeners_.find(e.id); it != listeners_.end()) {
    for (auto id : it->second) {
      (void)proxy_.removeListener(id, drain);
    }
    listeners_.erase(it);
  }
}

Status ExposeService::unapply(const ExposeRecord& e, FlowsOfRule flows) {
  removeListeners(e, true);
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return {};
  }
  std::vector<ExposeKey> keys;
  for (const auto& entry : entriesOf(e)) {
    auto r = dp->deleteExpose(entry.key(), FlowsOfRule::Keep);
    if (!r && r.error().code != ENOENT) {
      return r;
    }
    keys.push_back(entry.key());
  }
  if (flows == FlowsOfRule::Remove) {
    if (auto r = dp->deleteFlowsTo(keys); !r) {
      return r;
    }
  }
  // The last expose to a hand-wired namespace takes its endpoint program along.
  auto addrs = topology_.hostAddresses(AF_INET); // one dump for this and every other expose
  if (auto link = addrs ? handWiredLink(e, *addrs) : std::nullopt) {
    bool stillUsed = std::ranges::any_of(ctx_.state.exposes, [&](const ExposeRecord& other) {
      return other.id != e.id && handWiredLink(other, *addrs) == link;
    });
    if (!stillUsed) {
      (void)dp->detachEndpoint(*link);
    }
  }
  return {};
}

Result<std::vector<ExposeRecord>> ExposeService::ownedBy(const ExposeOwner& owner,
                                                        api::Caller caller) const {
  std::vector<ExposeRecord> out;
  for (const auto& e : ctx_.state.exposes) {
    if (e.owner == owner) {
      if (auto r = mayPublish(e, caller); !r) {
        return std::unexpected(r.error());
      }
      out.push_back(e);
    }
  }
  return out;
}

void ExposeService::reapply(const std::vector<ExposeRecord>& records, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (auto again = apply(records[i]); !again) {
      log::warn("owner ", records[i].owner ? records[i].owner->text : std::string("(none)"),
                ": expose ", records[i].id, " not restored: ", again.error().str());
    }
  }
}

Status ExposeService::takeOutOfMaps(const std::vector<ExposeRecord>& records) {
  std::vector<ExposeKey> keys; // one walk of the conntrack table for all their ports
  for (size_t i = 0; i < records.size(); ++i) {
    for (const auto& entry : entriesOf(records[i])) {
      keys.push_back(entry.key());
    }
    if (auto r = unapply(records[i], FlowsOfRule::Keep); !r) {
      reapply(records, i);
      return r;
    }
  }
  if (Datapath* dp = ctx_.datapath.dp; dp != nullptr && !keys.empty()) {
    if (auto r = dp->deleteFlowsTo(keys); !r) {
      reapply(records, records.size());
      return r;
    }
  }
  return {};
}

Status ExposeService::mayPublish(const ExposeRecord& e, api::Caller caller) const {
  if (caller == api::Caller::Root || groupMayPublishAny_ || targetIsManaged(e)) {
    return {};
  }
  return forbidden("target " + e.target +
                   " is not in a namespace gatewayd manages: publishing it to the uplink (a "
                   "server on the gateway host's loopback, or in a namespace wired by hand) is "
                   "for root only, unless gatewayd runs with --group-may-publish-any");
}

Result<api::ExposeAdded> ExposeService::add(const api::ExposeRequest& request,
                                            api::Caller caller) {
  auto added = addOne(request, caller);
  if (!added) {
    return added;
  }
  if (auto saved = ctx_.store.commit(ctx_.state); !saved) {
    ExposeRecord e = ctx_.state.exposes.back();
    ctx_.state.exposes.pop_back();
    (void)unapply(e);
    return std::unexpected(saved.error());
  }
  return added;
}

Result<std::vector<api::ExposeAdded>> ExposeService::addBatch(
    const std::vector<api::ExposeRequest>& batch, api::Caller caller) {
  State& state = ctx_.state;
  size_t before = state.exposes.size();
  auto undo = [&] {
    while (state.exposes.size() > before) {
      (void)unapply(state.exposes.back());
      state.exposes.pop_back();
    }
  };
  std::vector<api::ExposeAdded> out;
  out.reserve(batch.size());
  auto lookups = beginBatch(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto r = addOne(batch[i], caller);
    if (!r) {
      undo();
      return fail(r.error().kind, "expose #" + std::to_string(i + 1) + " of the batch: " +
                                      r.error().str() + " (none of the batch was applied)");
    }
    out.push_back(std::move(*r));
    if (i + 1 == (batch.size() + 1) / 2) {
      crashpoint("expose-batch-midway"); // tests: a crash with half a batch in the maps
    }
  }
  if (auto saved = ctx_.store.commit(state); !saved) {
    undo();
    return std::unexpected(saved.error());
  }
  if (batch_ && !out.empty()) {
    log::info("expose batch: ", out.size(), " rules, ids ", out.front().id, " to ", out.back().id,
              " (each at debug level)");
  }
  return out;
}

Result<api::ExposeAdded> ExposeService::addOne(const api::ExposeRequest& request,
                                               api::Caller caller) {
  const PortRange& ports = request.hostPort;
  TargetSpec spec = request.target;
  if (request.proto == Proto::Icmp) {
    return invalid("--proto 'icmp': expected tcp or udp");
  }
  NamespaceId pathId{};
  if (!spec.netnsPath.empty()) {
    auto id = topology_.namespaceId(spec.netnsPath);
    if (!id) {
      return within(id.error(), "target " + spec.text);
    }
    pathId = *id;
    // A path to a namespace gatewayd manages is that namespace, by its name.
    for (const auto& n : ctx_.state.namespaces) {
      if (auto theirs = topology_.namespaceId(n.name); theirs && *theirs == *id) {
        spec.ns = n.name;
        spec.netnsPath.clear();
        break;
      }
    }
  }
  if (spec.ports.size() != ports.size()) {
    return invalid("host ports " + ports.str() + " and target ports " + spec.ports.str() +
                   " differ in length: ranges map one to one");
  }
  IpFamilies family = request.family.value_or(IpFamilies::Both);
  if (request.hostIp) {
    // An address is of one family: the rule answers there alone.
    IpFamilies only = request.hostIp->isV6() ? IpFamilies::V6 : IpFamilies::V4;
    if (family != IpFamilies::Both && family != only) {
      return invalid("--host-ip " + request.hostIp->str() + " is not of --family " +
                     std::string(toString(family)));
    }
    family = only;
    // Listening on an address the host does not have serves nobody: refused, not accepted.
    auto addrs = topology_.hostAddresses(AF_UNSPEC);
    if (!addrs) {
      return std::unexpected(addrs.error());
    }
    if (std::ranges::none_of(*addrs, [&](const auto& a) { return a.prefix.addr == *request.hostIp; })) {
      return invalid("--host-ip " + request.hostIp->str() +
                     " is not an address of the gateway host");
    }
  }
  if (request.proxyProtocol != ProxyProtocol::None && request.mode == ExposeMode::Ebpf) {
    return invalid("--proxy-protocol v2 needs the proxy: use --mode auto or proxy");
  }
  ExposeRecord e;
  e.proto = request.proto;
  e.hostPort = ports.first;
  e.hostPortEnd = ports.last;
  e.hostIp = request.hostIp;
  e.target = spec.text;
  e.targetNs = spec.ns;
  e.targetNetnsPath = spec.netnsPath;
  e.targetNetnsCookie = e.targetNetnsPath.empty() ? 0 : pathId.cookie;
  e.targetAddr = spec.addr.value_or(IpAddress{});
  e.targetPort = spec.ports.first;
  e.mode = request.mode;
  e.proxyProtocol = request.proxyProtocol;
  e.family = family;
  e.owner = request.owner;
  if (e.mode == ExposeMode::Proxy && e.proto != Proto::Tcp) {
    return invalid("the proxy serves TCP only: --proto udp needs the eBPF data path");
  }
  if (const auto* ns = ctx_.state.findNamespace(spec.ns);
      ns != nullptr && ns->address6 && includes(family, AF_INET6)) {
    e.targetAddr6 = ns->address6->addr; // IPv6 clients go to its IPv6 address
  }
  // A family asked for by name must be served; of both, one at least.
  Serving serving = servingPath(e);
  for (int f : {AF_INET, AF_INET6}) {
    if (!includes(family, f)) {
      continue;
    }
    Serving s = servingPath(e, f);
    bool named = family != IpFamilies::Both && includes(family, f);
    if (s.path == ServingPath::None && (named || serving.path == ServingPath::None)) {
      return fail(s.refusal, s.why);
    }
  }
  if (proxied(e) && !spec.netns().empty()) {
    // The proxy connects from inside the namespace: loopback there reaches servers bound to
    // 127.0.0.1 as well as to 0.0.0.0, and ::1 is tried when 127.0.0.1 refuses.
    if (!spec.ns.empty() && !topology_.namespaceExists(spec.ns)) {
      return notFound("target namespace " + spec.ns + " does not exist");
    }
    e.targetAddr = kNamespaceLoopback;
  } else {
    auto resolved = resolveTarget(spec);
    if (!resolved) {
      return within(resolved.error(), "target " + spec.text);
    }
    e.targetAddr = resolved->addr;
    if (!spec.netns().empty() && !e.targetAddr6 && includes(family, AF_INET6)) {
      e.targetAddr6 = resolved->addr6; // a namespace wired by hand: its IPv6 address too
    }
    // DNAT to the gateway host's own loopback goes nowhere (the kernel drops it as martian).
    if (servingPath(e, AF_INET).path == ServingPath::Ebpf && e.targetAddr.isV4() &&
        e.targetAddr.bytes[0] == 127) {
      return invalid("target " + spec.text +
                     ": the gateway host's loopback cannot be reached through DNAT; use "
                     "--mode proxy, or NS:PORT for a server on a namespace's loopback");
    }
  }
  if (auto r = mayPublish(e, caller); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = checkPortFree(e); !r) {
    return std::unexpected(r.error());
  }
  e.id = allocateRuleId();
  if (e.id == 0) {
    return conflict("no free rule id: too many exposes");
  }
  forget(e.id); // nothing of an earlier rule with this id
  if (Datapath* dp = ctx_.datapath.dp; dp != nullptr) {
    // A reused id starts from zero, not from the counters of the rule that had it before.
    (void)dp->resetRuleStats(e.id);
  }
  if (auto r = apply(e); !r) {
    return within(r.error(), "expose " + ports.str());
  }
  ctx_.state.exposes.push_back(e);
  if (batch_) {
    indexPorts(ctx_.state.exposes.size() - 1);
  }
  if (!e.targetNetnsPath.empty()) {
    pathIds_[e.id] = pathId;
  }
  // A batch says each rule at debug and itself once at info: a line per port of a batch of
  // every port cost 8% of its time.
  log::emit(batch_ ? log::Level::Debug : log::Level::Info, "expose ", protoName(e.proto), " ",
            hostIpOf(e), ":", ports.str(), " -> ", e.target, " (", e.targetAddr.str(), ") rule ",
            e.id, " via ", toString(serving.path));
  return api::ExposeAdded{.id = e.id,
                          .proto = e.proto,
                          .hostPort = ports,
                          .target = spec.text,
                          .targetAddr = e.targetAddr,
                          .path = serving.path,
                          .why = serving.why,
                          .family = e.family,
                          .families = familiesOf(e)};
}

Result<api::ExposeDeleted> ExposeService::remove(const api::UnexposeQuery& query,
                                                 api::Caller caller) {
  State& state = ctx_.state;
  const PortRange& ports = query.port;
  std::string name(protoName(query.proto));
  auto servesAsked = [&](const ExposeRecord& e) {
    if (!query.family) {
      return true;
    }
    for (int f : {AF_INET, AF_INET6}) {
      if (includes(*query.family, f) && servingPath(e, f).path != ServingPath::None) {
        return true;
      }
    }
    return false;
  };
  auto matches = [&](const ExposeRecord& e) {
    return e.proto == query.proto && e.hostPorts() == ports &&
           (!query.hostIp || e.hostIp == query.hostIp) && servesAsked(e);
  };
  auto found = std::ranges::find_if(state.exposes, matches);
  if (found != state.exposes.end() && !query.hostIp) {
    // One port exposed on two host addresses: which one goes is the caller's to say.
    auto other = std::ranges::find_if(std::next(found), state.exposes.end(), matches);
    if (other != state.exposes.end()) {
      if (found->hostIp != other->hostIp) {
        return conflict("host port " + ports.str() + "/" + name + " is exposed on " +
                        hostIpOf(*found) + " and on " + hostIpOf(*other) +
                        ": choose one with --host-ip");
      }
      return conflict("host port " + ports.str() + "/" + name +
                      " has a rule for each family: choose one with --family 4 or 6");
    }
  }
  if (found == state.exposes.end() && query.hostIp) {
    return notFound("nothing is exposed on host port " + query.hostIp->str() + ":" +
                    ports.str() + "/" + name);
  }
  if (found == state.exposes.end()) {
    for (const auto& e : state.exposes) {
      if (e.proto == query.proto && e.hostPorts().overlaps(ports)) {
        return notFound("host port " + ports.str() + "/" + name + " is part of the expose of " +
                        e.hostPorts().str() + ": unexpose that range");
      }
    }
    return notFound("nothing is exposed on host port " + ports.str() + "/" + name);
  }
  ExposeRecord e = *found;
  if (auto r = mayPublish(e, caller); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = unapply(e, query.keepFlows ? FlowsOfRule::Keep : FlowsOfRule::Remove); !r) {
    return std::unexpected(r.error());
  }
  auto at = state.exposes.erase(found);
  if (auto r = ctx_.store.commit(state); !r) {
    // state.json still names it: serve it again, as the error tells the caller nothing changed.
    state.exposes.insert(at, e);
    if (auto again = apply(e); !again) {
      log::warn("unexpose ", name, " ", ports.str(), " not saved, and not restored: ",
                again.error().str());
    }
    return std::unexpected(r.error());
  }
  forget(e.id);
  log::info("unexpose ", name, " ", ports.str());
  return api::ExposeDeleted{.id = e.id, .hostPort = ports, .proto = e.proto, .deleted = true};
}

std::vector<api::OwnerInfo> ExposeService::owners() const {
  std::map<ExposeOwner, std::vector<uint32_t>> byOwner;
  for (const auto& e : ctx_.state.exposes) {
    if (e.owner) {
      byOwner[*e.owner].push_back(e.id);
    }
  }
  std::vector<api::OwnerInfo> out;
  for (auto& [owner, ids] : byOwner) {
    std::ranges::sort(ids);
    out.push_back({.owner = owner, .ids = std::move(ids)});
  }
  return out;
}

Result<std::vector<api::ExposeAdded>> ExposeService::replaceOwner(
    const ExposeOwner& owner, std::vector<api::ExposeRequest> batch, api::Caller caller) {
  State& state = ctx_.state;
  auto owned = ownedBy(owner, caller);
  if (!owned) {
    return std::unexpected(owned.error());
  }
  const std::vector<ExposeRecord>& old = *owned;
  for (auto& request : batch) {
    request.owner = owner;
  }
  // The old rules leave the maps and the state first, so the new ones may take their ports.
  if (auto r = takeOutOfMaps(old); !r) {
    return std::unexpected(r.error());
  }
  std::erase_if(state.exposes, [&](const ExposeRecord& e) { return e.owner == owner; });
  size_t before = state.exposes.size();
  auto undo = [&] {
    while (state.exposes.size() > before) {
      (void)unapply(state.exposes.back());
      state.exposes.pop_back();
    }
    state.exposes.insert(state.exposes.end(), old.begin(), old.end());
    reapply(old, old.size());
  };
  std::vector<api::ExposeAdded> out;
  out.reserve(batch.size());
  auto lookups = beginBatch(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto r = addOne(batch[i], caller);
    if (!r) {
      undo();
      return fail(r.error().kind, "expose #" + std::to_string(i + 1) + " of " + owner.text +
                                      ": " + r.error().str() + " (nothing changed)");
    }
    out.push_back(std::move(*r));
  }
  if (auto saved = ctx_.store.commit(state); !saved) {
    undo();
    return std::unexpected(saved.error());
  }
  log::info("owner ", owner.text, ": ", old.size(), " rule(s) replaced by ", batch.size());
  return out;
}

Result<api::OwnerDeleted> ExposeService::removeOwner(const ExposeOwner& owner,
                                                     api::Caller caller) {
  State& state = ctx_.state;
  auto owned = ownedBy(owner, caller);
  if (!owned) {
    return std::unexpected(owned.error());
  }
  const std::vector<ExposeRecord>& gone = *owned;
  if (gone.empty()) {
    return api::OwnerDeleted{.owner = owner, .deleted = 0}; // again, or never: not an error
  }
  // Out of the maps first (and their flows, UDP too), then out of the state in one commit;
  // a failed commit serves them again, as the error says nothing changed.
  if (auto r = takeOutOfMaps(gone); !r) {
    return std::unexpected(r.error());
  }
  std::erase_if(state.exposes, [&](const ExposeRecord& e) { return e.owner == owner; });
  if (auto r = ctx_.store.commit(state); !r) {
    state.exposes.insert(state.exposes.end(), gone.begin(), gone.end());
    reapply(gone, gone.size());
    return std::unexpected(r.error());
  }
  log::info("unexpose owner ", owner.text, ": ", gone.size(), " rule(s)");
  return api::OwnerDeleted{.owner = owner, .deleted = static_cast<uint32_t>(gone.size())};
}

std::vector<api::ExposeInfo> ExposeService::list(const DatapathStats* known) {
  checkPaths();
  std::vector<const ExposeRecord*> all;
  all.reserve(ctx_.state.exposes.size());
  for (const auto& e : ctx_.state.exposes) {
    all.push_back(&e);
  }
  return infos(all, known);
}

api::ExposePage ExposeService::page(const api::ExposeListQuery& query) {
  checkPaths();
  std::vector<const ExposeRecord*> all;
  all.reserve(ctx_.state.exposes.size());
  for (const auto& e : ctx_.state.exposes) {
    all.push_back(&e);
  }
  // Proto, host address and first port tell exposes apart: two never share a port of an
  // address. Only the page's exposes are described.
  auto records = takePage(std::move(all), query, [](const ExposeRecord* e) {
    return api::ExposeCursor{e->proto, e->hostIp, e->hostPort};
  });
  return {.items = infos(records.items, nullptr), .next = records.next};
}

std::vector<api::ExposeInfo> ExposeService::infos(const std::vector<const ExposeRecord*>& records,
                                                  const DatapathStats* known) {
  std::optional<DatapathStats> read;
  if (known == nullptr && ctx_.datapath) {
    if (auto s = ctx_.datapath.dp->stats(); s) {
      read = std::move(*s);
      known = &*read;
    }
  }
  std::map<uint32_t, RuleStats> counters;
  if (known != nullptr) {
    for (const auto& r : known->rules) {
      counters[r.ruleId] = r;
    }
  }
  std::vector<api::ExposeInfo> out;
  out.reserve(records.size());
  for (const ExposeRecord* record : records) {
    const ExposeRecord& e = *record;
    Serving serving = servingPath(e);
    RuleStats c = counters[e.id];
    if (auto it = listeners_.find(e.id); it != listeners_.end()) {
      for (auto id : it->second) {
        if (auto ls = proxy_.listenerStats(id); ls) {
          c.connections += ls->accepted;
          c.bytes += ls->bytesIn + ls->bytesOut;
          c.drops += ls->refusedLimit + ls->backendFailed;
        }
      }
    }
    out.push_back({.id = e.id,
                   .proto = e.proto,
                   .hostIp = hostIpOf(e),
                   .hostPort = e.hostPorts(),
                   .target = e.target,
                   .targetAddr = e.targetAddr,
                   .targetPort = e.targetPorts(),
                   .mode = e.mode,
                   .proxyProtocol = e.proxyProtocol,
                   .path = serving.path,
                   .why = serving.why,
                   .packets = c.packets,
                   .bytes = c.bytes,
                   .connections = c.connections,
                   .drops = c.drops,
                   .family = e.family,
                   .families = familiesOf(e),
                   .owner = e.owner});
  }
  return out;
}

std::vector<api::ProxyStatsInfo> ExposeService::proxyStats() {
  std::vector<api::ProxyStatsInfo> out;
  for (const auto& e : ctx_.state.exposes) {
    auto it = listeners_.find(e.id);
    if (it == listeners_.end()) {
      continue;
    }
    api::ProxyStatsInfo row{.id = e.id,
                            .rule = std::string(protoName(e.proto)) + " " + e.hostPorts().str() +
                                    " -> " + e.target};
    for (auto id : it->second) {
      if (auto ls = proxy_.listenerStats(id); ls) {
        row.accepted += ls->accepted;
        row.active += ls->active;
        row.refusedLimit += ls->refusedLimit;
        row.backendFailed += ls->backendFailed;
        row.bytesIn += ls->bytesIn;
        row.bytesOut += ls->bytesOut;
      }
    }
    out.push_back(std::move(row));
  }
  return out;
}

void ExposeService::reconcile() {
  using Key = ExposeKey;
  auto keyOf = [](const ExposeEntry& m) { return m.key(); };
  auto describe = [](const ExposeEntry& m) {
    std::string host = m.hostAddr.family != 0 ? m.hostAddr.str()
                       : m.family() == AF_INET6 ? "[::]" : "*";
    return std::string(protoName(m.proto)) + " " + host + ":" + std::to_string(m.hostPort) +
           " -> " + m.targetAddr.str() + ":" + std::to_string(m.targetPort) + " rule " +
           std::to_string(m.ruleId);
  };
  // What the map held before this start wrote anything: what it lacked is logged as restored,
  // and what no state names goes.
  Datapath* dp = ctx_.datapath.dp;
  std::optional<std::map<Key, ExposeEntry>> before;
  if (dp != nullptr) {
    if (auto entries = dp->listExposes(); entries) {
      before.emplace();
      for (const auto& m : *entries) {
        before->emplace(keyOf(m), m);
      }
    } else {
      log::warn("reconcile: expose map not read (entries no state names stay): ",
                entries.error().str());
    }
  }
  std::set<Key> wanted;
  RepairLog restored("expose map entries of the state restored");
  for (auto& e : ctx_.state.exposes) {
    if (!e.targetNetnsPath.empty()) {
      unresolved_.erase(e.id);
      if (auto r = resolvePath(e); !r) {
        unresolved_[e.id] = "target namespace " + e.targetNetnsPath + ": " + r.error().str() +
                            ": not served";
        log::warn("expose ", e.hostPorts().str(), " -> ", e.target, ": ",
                  unresolved_[e.id]);
        continue; // no entries: what the map holds of it goes below
      }
    }
    auto entries = entriesOf(e);
    for (const auto& m : entries) {
      wanted.insert(keyOf(m));
    }
    if (auto r = apply(e); !r) {
      log::warn("expose ", e.hostPort, " -> ", e.target, ": ", r.error().str());
      continue;
    }
    for (const auto& m : entries) {
      if (!before) {
        continue;
      }
      auto was = before->find(keyOf(m));
      // A data path loaded afresh (a reboot) lacks them all: that is no repair.
      if (dp->adopted() && (was == before->end() || was->second != m)) {
        restored.add("expose map entry ", describe(m),
                     was == before->end() ? " restored" : " rewritten", ": the state has it");
      }
    }
  }
  restored.summary();
  if (!before) {
    return;
  }
  RepairLog removed("expose map entries without state removed");
  for (const auto& [key, m] : *before) {
    if (wanted.contains(key)) {
      continue;
    }
    // A change that crashed before its state commit, or state lost since: it must not forward.
    if (auto r = dp->deleteExpose(key); !r && r.error().code != ENOENT) {
      log::warn("reconcile: expose map entry ", describe(m),
                " that no state names not removed: ", r.error().str());
      continue;
    }
    removed.add("removed expose map entry ", describe(m),
                ": no state names it (a change cut short by a crash)");
  }
  removed.summary();
}

void ExposeService::teardown(std::vector<std::string>& problems) {
  for (const auto& e : ctx_.state.exposes) {
    if (auto r = unapply(e); !r) {
      problems.push_back("expose " + std::to_string(e.hostPort) + ": " + r.error().str());
    }
  }
  ctx_.state.exposes.clear();
  pathIds_.clear();
  unresolved_.clear();
  proxy_.stop(false);
}

} // namespace gw
