// SPDX-License-Identifier: MIT
#include "tests/gateway/Fakes.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "bpf/gw_abi.h"

namespace gw::test {
namespace {

std::unexpected<Error> injected(const std::string& what, int code = EIO) {
  return std::unexpected(Error{code, "injected failure: " + what});
}

}  // namespace

// ---- FakeDatapath

Status FakeDatapath::attachUplink(int, const IpAddress&) {
  return {};
}

Status FakeDatapath::setUplinkAddress6(const IpAddress& addr) {
  uplinkAddr6_ = addr;
  return {};
}

Status FakeDatapath::setUplinkAddress(const IpAddress&) {
  return {};
}

Status FakeDatapath::attachEndpoint(int ifindex) {
  endpointPrograms_.insert(ifindex);
  return {};
}

Status FakeDatapath::detachEndpoint(int ifindex) {
  endpointPrograms_.erase(ifindex);
  return {};
}

Status FakeDatapath::addEndpoint(const IpAddress& addr, int hostIfindex,
                                 std::array<uint8_t, 6> peerMac, std::array<uint8_t, 6> hostMac) {
  if (failAddEndpoint_) {
    return injected("addEndpoint " + addr.str());
  }
  endpoints_[addr] = {hostIfindex, peerMac, hostMac};
  return {};
}

Status FakeDatapath::deleteEndpoint(const IpAddress& addr) {
  endpoints_.erase(addr);
  return {};
}

Result<std::vector<EndpointEntry>> FakeDatapath::listEndpoints() {
  if (failList_) {
    return injected("listEndpoints");
  }
  std::vector<EndpointEntry> out;
  for (const auto& [addr, e] : endpoints_) {
    out.push_back({addr, e.hostIfindex, e.peerMac, e.hostMac});
  }
  return out;
}

Result<std::vector<int>> FakeDatapath::listEndpointAttachments() {
  if (failList_) {
    return injected("listEndpointAttachments");
  }
  return std::vector<int>(endpointPrograms_.begin(), endpointPrograms_.end());
}

Status FakeDatapath::setHairpinAddress(const IpAddress& addr) {
  (addr.isV6() ? hairpin6_ : hairpin_) = addr;
  return {};
}

Status FakeDatapath::addLocalAddress(const IpAddress& addr) {
  localAddresses_.insert(addr);
  return {};
}

Status FakeDatapath::deleteLocalAddress(const IpAddress& addr) {
  localAddresses_.erase(addr);
  return {};
}

Result<std::vector<IpAddress>> FakeDatapath::listLocalAddresses() {
  if (failList_) {
    return injected("listLocalAddresses");
  }
  return std::vector<IpAddress>(localAddresses_.begin(), localAddresses_.end());
}

Status FakeDatapath::addExpose(const ExposeEntry& entry) {
  if (++addExposeCalls_ == failAddExposeAt_) {
    return injected("addExpose port " + std::to_string(entry.hostPort));
  }
  if (entry.hostAddr.family != 0 && entry.hostAddr.family != entry.family()) {
    return std::unexpected(Error{EINVAL, "expose: host address of another family"});
  }
  exposes_[entry.key()] = entry;
  return {};
}

Result<std::vector<ExposeEntry>> FakeDatapath::listExposes() {
  if (failList_) {
    return injected("listExposes");
  }
  std::vector<ExposeEntry> out;
  for (const auto& [key, entry] : exposes_) {
    out.push_back(entry);
  }
  return out;
}

Status FakeDatapath::deleteExpose(const ExposeKey& key, FlowsOfRule flows) {
  ++deleteExposeCalls_;
  deleteExposeFlows_.push_back(flows);
  if (exposes_.erase(key) == 0) {
    return std::unexpected(Error{ENOENT, "expose " + std::to_string(key.hostPort)});
  }
  return {};
}

Status FakeDatapath::deleteFlowsTo(const std::vector<ExposeKey>& keys) {
  flowsDeletedTo_.push_back(keys);
  return {};
}

Status FakeDatapath::addMasquerade(const IpPrefix& source, int outIfindex,
                                   bool endpointIndependent) {
  if (failAddMasquerade_) {
    return injected("addMasquerade " + source.str());
  }
  masquerades_[source] = outIfindex;
  if (endpointIndependent) {
    endpointIndependent_.insert(source);
  } else {
    endpointIndependent_.erase(source);
  }
  return {};
}

Status FakeDatapath::deleteMasquerade(const IpPrefix& source) {
  endpointIndependent_.erase(source);
  masquerades_.erase(source);
  return {};
}

Result<std::vector<MasqueradeEntry>> FakeDatapath::listMasquerades() {
  if (failList_) {
    return injected("listMasquerades");
  }
  std::vector<MasqueradeEntry> out;
  for (const auto& [source, out_ifindex] : masquerades_) {
    out.push_back({source, out_ifindex, endpointIndependent_.contains(source)});
  }
  return out;
}

Status FakeDatapath::enableHostLocal(uint64_t, const std::string&) {
  return {};
}

Result<std::vector<Flow>> FakeDatapath::listFlows() {
  return flows_;
}

Result<size_t> FakeDatapath::deleteFlows(const FlowFilter& filter) {
  deleteFlowsCalls_.push_back(filter);
  return static_cast<size_t>(
      std::erase_if(flows_, [&](const Flow& f) { return filter.matches(f); }));
}

Result<size_t> FakeDatapath::flushFlows() {
  ++flushCalls_;
  size_t n = flows_.size();
  flows_.clear();
  return n;
}

Result<ConntrackSweep> FakeDatapath::sweepConntrack() {
  ConntrackSweep sweep{.entries = ctEntries_, .capacity = ctCapacity_};
  for (const auto& f : flows_) {
    sweep.snatFlows += (f.nat & GW_NAT_SNAT) != 0 ? 1 : 0;
  }
  return sweep;
}

Result<DatapathStats> FakeDatapath::stats() {
  if (failStats_) {
    return injected("stats");
  }
  DatapathStats s;
  s.reasons = reasons_;
  std::set<uint32_t> ids;
  for (const auto& [key, entry] : exposes_) {
    if (entry.ruleId != 0) {
      ids.insert(entry.ruleId);
    }
  }
  for (uint32_t id : ids) {
    RuleStats r = ruleStats_[id];
    r.ruleId = id;
    s.rules.push_back(r);
  }
  s.ctEntries = ctEntries_;
  s.ctCapacity = ctCapacity_;
  return s;
}

Status FakeDatapath::resetRuleStats(uint32_t ruleId) {
  resets_.push_back(ruleId);
  ruleStats_.erase(ruleId);
  return {};
}

Status FakeDatapath::teardown() {
  exposes_.clear();
  masquerades_.clear();
  endpoints_.clear();
  endpointPrograms_.clear();
  localAddresses_.clear();
  return {};
}

size_t FakeDatapath::exposeCount(uint8_t proto, uint16_t first, uint16_t last,
                                 int family) const {
  return static_cast<size_t>(std::ranges::count_if(exposes_, [&](const auto& kv) {
    return kv.first.proto == proto && kv.first.hostPort >= first && kv.first.hostPort <= last &&
           kv.first.family == family;
  }));
}

// ---- FakeTopology

FakeTopology::FakeTopology() {
  addLink("lo");
  addHostAddress("lo", IpPrefix::parse("127.0.0.1/8").value());
  addLink("uplink0");
  addHostAddress("uplink0", IpPrefix::parse("192.0.2.10/24").value());
  addHostAddress("uplink0", IpPrefix::parse("192.0.2.11/24").value());
}

LinkState& FakeTopology::addLink(const std::string& name) {
  int index = nextIndex_++;
  LinkState link{.name = name, .index = index, .up = true, .mac = {}};
  link.mac = {0x02, 0, 0, 0, static_cast<uint8_t>(index >> 8), static_cast<uint8_t>(index)};
  return links_[name] = link;
}

void FakeTopology::addHostAddress(const std::string& link, const IpPrefix& prefix) {
  addresses_.push_back({prefix, link});
}

bool FakeTopology::hasHostAddress(const IpPrefix& prefix) const {
  return std::ranges::any_of(addresses_, [&](const auto& a) { return a.prefix == prefix; });
}

void FakeTopology::dropLink(const std::string& name) {
  links_.erase(name);
  std::erase_if(addresses_, [&](const auto& a) { return a.link == name; });
}

bool FakeTopology::namespaceExists(const std::string& name) {
  return namespaces_.contains(name);
}

Result<LinkState> FakeTopology::link(const std::string& name) {
  auto it = links_.find(name);
  if (it == links_.end()) {
    return notFound("link " + name + " not found");
  }
  return it->second;
}

Result<LinkState> FakeTopology::linkIn(const std::string& ns, const std::string& name) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return notFound("namespace " + ns + " not found");
  }
  auto link = it->second.links.find(name);
  if (link == it->second.links.end()) {
    return notFound("link " + name + " not found in " + ns);
  }
  return link->second;
}

Result<std::vector<HostAddress>> FakeTopology::hostAddresses(int family) {
  std::vector<HostAddress> out;
  for (const auto& a : addresses_) {
    if (family == AF_UNSPEC || a.prefix.addr.family == family) {
      out.push_back(a);
    }
  }
  return out;
}

Result<NamespaceId> FakeTopology::namespaceId(const std::string& nameOrPath) {
  auto it = namespaces_.find(nameOrPath);
  if (it == namespaces_.end()) {
    return notFound("namespace " + nameOrPath + " not found");
  }
  const std::string& id = it->second.sameAs.empty() ? nameOrPath : it->second.sameAs;
  return NamespaceId{std::hash<std::string>{}(id)};
}

Result<std::vector<IpPrefix>> FakeTopology::namespaceAddresses(const std::string& ns,
                                                               int family) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    return notFound("namespace " + ns + " not found");
  }
  return family == AF_INET6 ? it->second.addresses6 : it->second.addresses;
}

Result<std::vector<std::string>> FakeTopology::namespaceNames() {
  std::vector<std::string> out;
  for (const auto& [name, ns] : namespaces_) {
    if (!name.starts_with('/')) {
      out.push_back(name);
    }
  }
  return out;
}

Result<PeeredNamespace> FakeTopology::peeredNamespace(const std::string& ns) {
  ++peeredScans_;
  if (!namespaces_.contains(ns)) {
    return notFound("namespace " + ns + " not found");
  }
  auto it = peered_.find(ns);
  return it != peered_.end() ? it->second : PeeredNamespace{};
}

Status FakeTopology::ensureBridge(const BridgeRecord& bridge, Rollback* rollback) {
  if (failEnsureBridge_) {
    return injected("ensureBridge " + bridge.name);
  }
  if (auto it = bridges_.find(bridge.name); it != bridges_.end()) {
    if (bridge.gateway6 && !it->second.gateway6) {
      // An existing bridge gets its IPv6 pool; a rollback takes the address again.
      addHostAddress(bridge.name, *bridge.gateway6);
      it->second.gateway6 = bridge.gateway6;
      if (rollback != nullptr) {
        rollback->add([this, name = bridge.name, prefix = *bridge.gateway6] {
          std::erase_if(addresses_, [&](const auto& a) { return a.prefix == prefix; });
          bridges_.at(name).gateway6.reset();
        });
      }
    }
    return {};
  }
  addLink(bridge.name);
  addHostAddress(bridge.name, bridge.gateway);
  if (bridge.gateway6) {
    addHostAddress(bridge.name, *bridge.gateway6);
  }
  bridges_[bridge.name] = bridge;
  if (rollback != nullptr) {
    rollback->add([this, name = bridge.name] {
      dropLink(name);
      bridges_.erase(name);
    });
  }
  return {};
}

Status FakeTopology::wireNamespace(const NamespaceRecord& ns, Rollback* rollback) {
  ++wireCalls_;
  if (ns.wiring == Wiring::Bridge && !bridges_.contains(ns.bridge)) {
    return notFound("bridge " + ns.bridge + " not found");
  }
  bool madeNamespace = !namespaces_.contains(ns.name);
  FakeNamespace& inside = namespaces_[ns.name];
  LinkState peer{.name = "eth0", .index = 2, .up = true, .mac = {0x02, 0xee, 0, 0, 0, 2}};
  inside.links["eth0"] = peer;
  bool madeLink = !links_.contains(ns.hostLink);
  if (madeLink) {
    addLink(ns.hostLink);
  }
  if (rollback != nullptr) {
    rollback->add([this, name = ns.name, link = ns.hostLink, madeNamespace, madeLink] {
      if (madeLink) {
        dropLink(link);
      }
      if (madeNamespace) {
        namespaces_.erase(name);
      }
    });
  }
  if (failWireAfterLink_) {
    return injected("wire " + ns.name + ": address");
  }
  inside.addresses.push_back(ns.address);
  if (ns.address6) {
    inside.addresses6.push_back(*ns.address6);
  }
  if (ns.wiring == Wiring::PointToPoint) {
    addHostAddress(ns.hostLink, ns.hostAddress);
    if (ns.hostAddress6) {
      addHostAddress(ns.hostLink, *ns.hostAddress6);
    }
  }
  wired_[ns.name] = ns;
  if (rollback != nullptr) {
    rollback->add([this, name = ns.name] { wired_.erase(name); });
  }
  return {};
}

Status FakeTopology::unwireNamespace(const NamespaceRecord& ns) {
  ++unwireCalls_;
  dropLink(ns.hostLink);
  namespaces_.erase(ns.name);
  wired_.erase(ns.name);
  return {};
}

Status FakeTopology::removeBridge(const std::string& name) {
  ++removeBridgeCalls_;
  dropLink(name);
  bridges_.erase(name);
  return {};
}

Result<bool> FakeTopology::portInUse(Proto proto, uint16_t port, const std::optional<IpAddress>&) {
  return portsInUse_.contains({proto, port});
}

// ---- FakeProxy

Result<uint64_t> FakeProxy::addListener(const ProxyListenerSpec& spec) {
  if (++addListenerCalls_ == failAddListenerAt_) {
    return injected("listen " + spec.listenAddr + ":" + std::to_string(spec.listenPort),
                    EADDRINUSE);
  }
  uint64_t id = nextId_++;
  listeners_[id] = spec;
  return id;
}

Status FakeProxy::removeListener(uint64_t id, bool) {
  if (listeners_.erase(id) == 0) {
    return notFound("listener " + std::to_string(id));
  }
  return {};
}

Result<ProxyListenerStats> FakeProxy::listenerStats(uint64_t id) {
  if (!listeners_.contains(id)) {
    return notFound("listener " + std::to_string(id));
  }
  return stats_[id];
}

void FakeProxy::stop(bool) {
  ++stops_;
  listeners_.clear();
}

std::optional<uint64_t> FakeProxy::listenerOn(uint16_t port) const {
  for (const auto& [id, spec] : listeners_) {
    if (spec.listenPort == port) {
      return id;
    }
  }
  return std::nullopt;
}

// ---- FakeStateSink

Status FakeStateSink::commit(const State& state) {
  if (failNext_) {
    failNext_ = false;
    return injected("commit state.journal", ENOSPC);
  }
  ++commits_;
  committed_ = state;
  return {};
}

}  // namespace gw::test
