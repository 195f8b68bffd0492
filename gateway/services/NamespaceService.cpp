// SPDX-License-Identifier: MIT
#include "gateway/services/NamespaceService.h"

#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "base/Failpoint.h"
#include "base/Log.h"
#include "base/Names.h"
#include "gateway/services/AddressPlan.h"
#include "gateway/services/RepairLog.h"

namespace gw {
namespace {

const IpAddress kLoopback6 = IpAddress::parse("::1").value_or(IpAddress{});

} // namespace

// Free in its own family: no bridge pool, point-to-point namespace or host address overlaps it.
Status NamespaceService::checkSubnetFree(const IpPrefix& subnet, std::string_view what) {
  bool v6 = subnet.addr.family == AF_INET6;
  std::string which = std::string(what) + " " + subnet.network().str();
  for (const auto& b : ctx_.state.bridges) {
    std::optional<IpPrefix> pool = v6 ? b.gateway6 : std::optional<IpPrefix>(b.gateway);
    if (pool && pool->overlaps(subnet)) {
      return conflict(which + " overlaps bridge " + b.name + " (" + pool->network().str() + ")");
    }
  }
  for (const auto& n : ctx_.state.namespaces) {
    std::optional<IpPrefix> address = v6 ? n.address6 : std::optional<IpPrefix>(n.address);
    if (n.wiring == Wiring::PointToPoint && address && address->overlaps(subnet)) {
      return conflict(which + " overlaps namespace " + n.name + " (" +
                      address->network().str() + ")");
    }
  }
  auto addresses = topology_.hostAddresses(v6 ? AF_INET6 : AF_INET);
  if (!addresses) {
    return std::unexpected(addresses.error());
  }
  for (const auto& a : *addresses) {
    if (a.prefix.overlaps(subnet)) {
      return conflict(which + " overlaps " + a.prefix.str() + " on " + a.link);
    }
  }
  return {};
}

Result<api::NamespaceAdded> NamespaceService::add(const api::NamespaceAddRequest& request) {
  State& state = ctx_.state;
  const std::string& name = request.name;
  if (auto r = validateNamespaceName(name); !r) {
    return std::unexpected(r.error());
  }
  if (state.findNamespace(name) != nullptr) {
    return conflict("namespace " + name + " is already managed by gatewayd");
  }
  if (topology_.namespaceExists(name)) {
    return conflict("namespace " + name + " already exists (made outside gatewayd)");
  }
  NamespaceRecord rec;
  rec.name = name;
  rec.hostLink = hostLinkName(name);
  if (topology_.link(rec.hostLink)) {
    return conflict("link " + rec.hostLink + " already exists in the gateway host");
  }
  const std::optional<IpPrefix>& subnet = request.subnet;

  std::optional<BridgeRecord> newBridge;
  if (subnet && !request.bridge) {
    rec.wiring = Wiring::PointToPoint;
    auto pair = pointToPointAddresses(*subnet);
    if (!pair) {
      return std::unexpected(pair.error());
    }
    if (auto r = checkSubnetFree(*subnet, "--subnet"); !r) {
      return std::unexpected(r.error());
    }
    rec.hostAddress = pair->first;
    rec.address = pair->second;
  } else {
    rec.wiring = Wiring::Bridge;
    rec.bridge = request.bridge.value_or(kDefaultBridge);
    if (auto r = validateIfName(rec.bridge); !r) {
      return within(r.error(), "--bridge");
    }
    const BridgeRecord* bridge = state.findBridge(rec.bridge);
    if (bridge != nullptr) {
      if (subnet && subnet->network() != bridge->gateway.network()) {
        return conflict("bridge " + rec.bridge + " already has subnet " +
                        bridge->gateway.network().str());
      }
    } else {
      IpPrefix gateway;
      if (subnet) {
        auto pair = pointToPointAddresses(*subnet);
        if (!pair) {
          return std::unexpected(pair.error());
        }
        gateway = pair->first;
      } else if (rec.bridge == kDefaultBridge) {
        gateway = IpPrefix::parse(kDefaultBridgeGateway).value_or(IpPrefix{});
      } else {
        return invalid("bridge " + rec.bridge + " is new: give --subnet CIDR for it");
      }
      if (auto r = checkSubnetFree(gateway.network(), "bridge subnet"); !r) {
        return std::unexpected(r.error());
      }
      newBridge = BridgeRecord{rec.bridge, gateway};
      bridge = &*newBridge;
    }
    std::set<IpAddress> used;
    for (const auto& n : state.namespaces) {
      if (n.wiring == Wiring::Bridge && n.bridge == rec.bridge) {
        used.insert(n.address.addr);
      }
    }
    auto address = allocateAddress(bridge->gateway, used);
    if (!address) {
      return std::unexpected(address.error());
    }
    rec.address = *address;
    rec.hostAddress = bridge->gateway;
  }

  // The IPv6 side, where there is a pool: --subnet6, or the default bridge's ULA pool.
  std::optional<BridgeRecord> grownBridge; // an existing bridge this add gives its IPv6 pool
  if (auto r = planIpv6(request, rec, newBridge, grownBridge); !r) {
    return std::unexpected(r.error());
  }

  // The intent first: a crash from here on leaves a pending record that the next start rolls
  // back, never a namespace or link that no state names.
  rec.pending = true;
  if (newBridge) {
    newBridge->pending = true;
    state.bridges.push_back(*newBridge);
  }
  if (grownBridge) {
    *state.findBridge(grownBridge->name) = *grownBridge;
  }
  state.namespaces.push_back(rec);
  auto forget = [&] {
    std::erase_if(state.namespaces, [&](const auto& n) { return n.name == rec.name; });
    if (newBridge) {
      std::erase_if(state.bridges, [&](const auto& b) { return b.name == newBridge->name; });
    }
    if (grownBridge) {
      state.findBridge(grownBridge->name)->gateway6.reset();
    }
  };
  if (auto r = ctx_.store.commit(state); !r) {
    forget();
    return fail(ErrorKind::Internal, "ns add " + rec.name + ": saving state: " + r.error().str());
  }
  // A failure undoes the kernel's part first, then commits the pending records away: a crash
  // in between still leaves a record for the next start to roll back.
  Rollback rollback;
  bool datapathTouched = false;
  auto abandon = [&](const Error& e, const std::string& what) {
    forget(); // in memory first: undoDatapath keeps only what a recorded namespace needs
    if (datapathTouched) {
      undoDatapath(rec); // before the Rollback takes the veth it needs
    }
    rollback.undo();
    (void)syncLocalAddresses(); // the address of a bridge this add made is gone again
    (void)ctx_.store.commit(state); // if this fails too, the next start rolls it back
    return fail(e.kind, "ns add " + rec.name + ": " + what + e.str() + " (rolled back)");
  };
  if (newBridge || grownBridge) {
    if (auto r = topology_.ensureBridge(newBridge ? *newBridge : *grownBridge, &rollback); !r) {
      return abandon(r.error(), "");
    }
  }
  if (auto r = topology_.wireNamespace(rec, &rollback); !r) {
    return abandon(r.error(), "");
  }
  datapathTouched = true;
  if (auto r = applyToDatapath(rec); !r) {
    return abandon(r.error(), "data path: ");
  }
  crashpoint("ns-add-before-commit"); // tests: a crash with everything made, nothing committed
  (void)syncLocalAddresses();
  rec.pending = false;
  *state.findNamespace(rec.name) = rec;
  if (newBridge) {
    newBridge->pending = false;
    *state.findBridge(newBridge->name) = *newBridge;
  }
  if (auto r = ctx_.store.commit(state); !r) {
    return abandon(Error{0, r.error().str(), false, ErrorKind::Internal}, "saving state: ");
  }
  rollback.commit();
  log::info("ns add ", rec.name, " address ", rec.address.str(),
            rec.address6 ? " and " + rec.address6->str() : std::string(), " via ", rec.hostLink);
  api::NamespaceAdded added{.name = rec.name,
                            .address = rec.address.addr,
                            .prefix = rec.address,
                            .gateway = rec.hostAddress.addr,
                            .link = rec.hostLink};
  if (rec.address6) {
    added.address6 = rec.address6->addr;
    added.prefix6 = rec.address6;
    added.gateway6 = rec.hostAddress6->addr;
  }
  return added;
}

Status NamespaceService::planIpv6(const api::NamespaceAddRequest& request, NamespaceRecord& rec,
                                  std::optional<BridgeRecord>& newBridge,
                                  std::optional<BridgeRecord>& grownBridge) {
  const std::optional<IpPrefix>& subnet6 = request.subnet6;
  if (request.noIpv6) {
    if (subnet6) {
      return invalid("--subnet6 and --no-ipv6 exclude each other");
    }
    return {};
  }
  if (subnet6) {
    if (auto r = checkSubnet6(*subnet6); !r) {
      return r;
    }
  }
  if (rec.wiring == Wiring::PointToPoint) {
    if (!subnet6) {
      return {}; // a point-to-point namespace has IPv6 only with --subnet6
    }
    auto pair = pointToPointAddresses6(*subnet6);
    if (!pair) {
      return std::unexpected(pair.error());
    }
    if (auto r = checkSubnetFree(*subnet6, "--subnet6"); !r) {
      return r;
    }
    rec.hostAddress6 = pair->first;
    rec.address6 = pair->second;
    return {};
  }
  BridgeRecord* bridge = newBridge ? &*newBridge : nullptr;
  if (bridge == nullptr) {
    grownBridge = *ctx_.state.findBridge(rec.bridge);
    bridge = &*grownBridge;
  }
  if (bridge->gateway6) {
    grownBridge.reset(); // it has its pool already
    if (subnet6 && subnet6->network() != bridge->gateway6->network()) {
      return conflict("bridge " + rec.bridge + " already has IPv6 subnet " +
                      bridge->gateway6->network().str());
    }
  } else {
    if (subnet6) {
      auto pair = pointToPointAddresses6(*subnet6);
      if (!pair) {
        return std::unexpected(pair.error());
      }
      bridge->gateway6 = pair->first;
    } else if (rec.bridge == kDefaultBridge) {
      bridge->gateway6 = IpPrefix::parse(kDefaultBridgeGateway6).value_or(IpPrefix{});
    } else {
      grownBridge.reset(); // a named bridge has IPv6 only with --subnet6
      return {};
    }
    const char* what = subnet6 ? "--subnet6" : "the default IPv6 pool";
    if (auto r = checkSubnetFree(bridge->gateway6->network(), what); !r) {
      if (!subnet6) {
        return conflict(r.error().message + " (give --subnet6 CIDR or --no-ipv6)");
      }
      return r;
    }
  }
  std::set<IpAddress> used;
  for (const auto& n : ctx_.state.namespaces) {
    if (n.wiring == Wiring::Bridge && n.bridge == rec.bridge && n.address6) {
      used.insert(n.address6->addr);
    }
  }
  auto address = allocateAddress6(*bridge->gateway6, used);
  if (!address) {
    return std::unexpected(address.error());
  }
  rec.address6 = *address;
  rec.hostAddress6 = bridge->gateway6;
  return {};
}

Result<api::NamespaceDeleted> NamespaceService::remove(const std::string& name) {
  State& state = ctx_.state;
  if (auto r = validateNamespaceName(name); !r) {
    return std::unexpected(r.error());
  }
  auto it = std::ranges::find(state.namespaces, name, &NamespaceRecord::name);
  if (it == state.namespaces.end()) {
    return notFound("namespace " + name + " is not managed by gatewayd");
  }
  NamespaceRecord rec = *it;
  if (Datapath* dp = ctx_.datapath.dp; dp != nullptr) {
    for (const auto& addr : addressesOf(rec)) {
      (void)dp->deleteEndpoint(addr);
    }
    if (auto link = topology_.link(rec.hostLink); link) {
      (void)dp->detachEndpoint(link->index);
    }
  }
  if (auto r = topology_.unwireNamespace(rec); !r) {
    return within(r.error(), "ns del " + name);
  }
  state.namespaces.erase(it);
  if (rec.wiring == Wiring::Bridge &&
      std::ranges::none_of(state.namespaces,
                           [&](const auto& n) { return n.bridge == rec.bridge; })) {
    // The bridge was made for its namespaces; the last one takes it along.
    (void)topology_.removeBridge(rec.bridge);
    std::erase_if(state.bridges, [&](const auto& b) { return b.name == rec.bridge; });
  }
  for (const auto& subnet : subnetsOf(rec)) {
    if (ctx_.datapath && !masqueradeNeeded(subnet)) {
      (void)ctx_.datapath.dp->deleteMasquerade(subnet);
    }
  }
  if (auto r = ctx_.store.commit(state); !r) {
    return std::unexpected(r.error());
  }
  (void)syncLocalAddresses(); // the bridge's address, if it went
  log::info("ns del ", name);
  return api::NamespaceDeleted{.name = name, .deleted = true};
}

std::vector<api::NamespaceInfo> NamespaceService::list() {
  std::vector<api::NamespaceInfo> out;
  for (const auto& n : ctx_.state.namespaces) {
    std::string health = "up";
    auto link = topology_.link(n.hostLink);
    if (!topology_.namespaceExists(n.name)) {
      health = "missing: namespace";
    } else if (!link) {
      health = "missing: link " + n.hostLink;
    } else if (!link->up) {
      health = "down";
    }
    out.push_back({.name = n.name,
                   .address = n.address.addr,
                   .prefix = n.address,
                   .gateway = n.hostAddress.addr,
                   .link = n.hostLink,
                   .wiring = n.wiring,
                   .bridge = n.bridge,
                   .state = health});
    if (n.address6 && n.hostAddress6) {
      out.back().address6 = n.address6->addr;
      out.back().prefix6 = n.address6;
      out.back().gateway6 = n.hostAddress6->addr;
    }
  }
  return out;
}

void NamespaceService::rollBackPending() {
  State& state = ctx_.state;
  bool changed = false;
  for (auto it = state.namespaces.begin(); it != state.namespaces.end();) {
    if (!it->pending) {
      ++it;
      continue;
    }
    NamespaceRecord rec = *it;
    it = state.namespaces.erase(it);
    changed = true;
    undoDatapath(rec);
    if (auto r = topology_.unwireNamespace(rec); !r) {
      log::warn("reconcile: rolling back ns add ", rec.name, ": ", r.error().str());
    }
    log::warn("reconcile: ns add ", rec.name,
              " was cut short by a crash: rolled back (namespace and link removed)");
  }
  for (auto it = state.bridges.begin(); it != state.bridges.end();) {
    const std::string name = it->name;
    bool used = std::ranges::any_of(state.namespaces,
                                    [&](const auto& n) { return n.bridge == name; });
    if (!it->pending || used) {
      it->pending = false;
      ++it;
      continue;
    }
    it = state.bridges.erase(it);
    changed = true;
    (void)topology_.removeBridge(name);
    log::warn("reconcile: bridge ", name, " made by that ns add: removed");
  }
  if (changed) {
    if (auto r = ctx_.store.commit(state); !r) {
      log::warn("reconcile: saving the rolled back state: ", r.error().str(),
                " (the next start rolls back again)");
    }
  }
}

Status NamespaceService::reconcile() {
  rollBackPending();
  // The endpoint map before this start wrote to it: what it lacked is logged as restored.
  std::optional<std::map<IpAddress, EndpointEntry>> before;
  if (Datapath* dp = ctx_.datapath.dp; dp != nullptr && dp->adopted()) {
    if (auto entries = dp->listEndpoints(); entries) {
      before.emplace();
      for (const auto& e : *entries) {
        before->emplace(e.addr, e);
      }
    }
  }
  for (const auto& bridge : ctx_.state.bridges) {
    if (auto r = topology_.ensureBridge(bridge, nullptr); !r) {
      return within(r.error(), "reconcile bridge " + bridge.name);
    }
  }
  for (const auto& ns : ctx_.state.namespaces) {
    if (auto r = topology_.wireNamespace(ns, nullptr); !r) {
      log::warn("reconcile namespace ", ns.name, " failed: ", r.error().str());
      continue;
    }
    if (auto r = applyToDatapath(ns); !r) {
      log::warn("data path for namespace ", ns.name, ": ", r.error().str());
    }
    log::info("reconciled namespace ", ns.name, " address ", ns.address.str());
  }
  removeStrays(before);
  return {};
}

void NamespaceService::removeStrays(
    const std::optional<std::map<IpAddress, EndpointEntry>>& before) {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return;
  }
  std::set<IpAddress> addresses;
  std::set<int> links;
  for (const auto& ns : ctx_.state.namespaces) {
    for (const auto& addr : addressesOf(ns)) {
      addresses.insert(addr);
    }
    if (auto link = topology_.link(ns.hostLink); link) {
      links.insert(link->index);
    }
  }
  if (otherEndpointAddresses_) {
    addresses.merge(otherEndpointAddresses_());
  }
  auto describe = [](const EndpointEntry& e) {
    return e.addr.str() + " via ifindex " + std::to_string(e.hostIfindex);
  };
  if (auto entries = dp->listEndpoints(); !entries) {
    log::warn("reconcile: endpoint map not read (entries no state names stay): ",
              entries.error().str());
  } else {
    RepairLog restored("endpoint entries of the state restored");
    RepairLog removed("endpoint entries without state removed");
    for (const auto& e : *entries) {
      if (addresses.contains(e.addr)) {
        if (!before) {
          continue;
        }
        if (auto was = before->find(e.addr); was == before->end() || was->second != e) {
          restored.add("endpoint entry ", describe(e),
                       was == before->end() ? " restored" : " rewritten", ": the state has it");
        }
        continue;
      }
      // A namespace whose state was lost, or that a crash cut short: nothing may be sent there.
      if (auto r = dp->deleteEndpoint(e.addr); !r) {
        log::warn("reconcile: endpoint entry ", describe(e), " that no state names not removed: ",
                  r.error().str());
        continue;
      }
      removed.add("removed endpoint entry ", describe(e), ": no managed namespace has it");
    }
    restored.summary();
    removed.summary();
  }
  // The record of endpoint programs names what teardown detaches: one of a link that is gone,
  // or that no managed namespace uses, goes (with its program and clsact, if still there).
  auto attached = dp->listEndpointAttachments();
  if (!attached) {
    log::warn("reconcile: endpoint programs not listed: ", attached.error().str());
    return;
  }
  if (otherEndpointLinks_) {
    links.merge(otherEndpointLinks_());
  }
  RepairLog detached("endpoint programs without state removed");
  for (int ifindex : *attached) {
    if (links.contains(ifindex)) {
      continue;
    }
    if (auto r = dp->detachEndpoint(ifindex); !r) {
      log::warn("reconcile: endpoint program on ifindex ", ifindex, " not removed: ",
                r.error().str());
      continue;
    }
    detached.add("removed the endpoint program of ifindex ", ifindex,
                 ": no managed namespace's link has it");
  }
  detached.summary();
}

Status NamespaceService::applyToDatapath(const NamespaceRecord& ns) {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return {};
  }
  auto link = topology_.link(ns.hostLink);
  if (!link) {
    return std::unexpected(link.error());
  }
  if (auto r = dp->attachEndpoint(link->index); !r) {
    return r;
  }
  // A `masquerade add` of the same subnet (its --out, its filtering) wins. Each family's
  // subnet: the IPv6 one leaves with the uplink's IPv6 address (NAT66).
  for (const auto& subnet : subnetsOf(ns)) {
    if (std::ranges::none_of(ctx_.state.masquerades, [&](const MasqueradeRecord& m) {
          return m.source == subnet;
        })) {
      if (auto r = dp->addMasquerade(subnet, 0); !r) {
        return r;
      }
    }
  }
  // Last, so a failure leaves no entry behind: traffic translated towards the namespace then
  // goes straight into its eth0 (bpf_redirect_peer) with these MACs.
  auto peer = topology_.linkIn(ns.name, kNamespaceLink);
  if (!peer) {
    return std::unexpected(peer.error());
  }
  for (const auto& addr : addressesOf(ns)) {
    if (auto r = dp->addEndpoint(addr, link->index, peer->mac, link->mac); !r) {
      return r;
    }
  }
  return {};
}

std::vector<IpAddress> NamespaceService::addressesOf(const NamespaceRecord& ns) {
  std::vector<IpAddress> out{ns.address.addr};
  if (ns.address6) {
    out.push_back(ns.address6->addr);
  }
  return out;
}

std::vector<IpPrefix> NamespaceService::subnetsOf(const NamespaceRecord& ns) {
  std::vector<IpPrefix> out{ns.address.network()};
  if (ns.address6) {
    out.push_back(ns.address6->network());
  }
  return out;
}

void NamespaceService::teardown(std::vector<std::string>& problems) {
  for (const auto& ns : ctx_.state.namespaces) {
    if (auto r = topology_.unwireNamespace(ns); !r) {
      problems.push_back("namespace " + ns.name + ": " + r.error().str());
    }
  }
  ctx_.state.namespaces.clear();
  for (const auto& b : ctx_.state.bridges) {
    (void)topology_.removeBridge(b.name);
  }
  ctx_.state.bridges.clear();
}

std::vector<IpPrefix> NamespaceService::subnets() const {
  std::vector<IpPrefix> out;
  for (const auto& n : ctx_.state.namespaces) {
    for (const auto& net : subnetsOf(n)) {
      if (std::ranges::find(out, net) == out.end()) {
        out.push_back(net);
      }
    }
  }
  return out;
}

void NamespaceService::undoDatapath(const NamespaceRecord& ns) {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return;
  }
  for (const auto& addr : addressesOf(ns)) {
    (void)dp->deleteEndpoint(addr);
  }
  if (auto link = topology_.link(ns.hostLink); link) {
    (void)dp->detachEndpoint(link->index);
  }
  for (const auto& subnet : subnetsOf(ns)) {
    if (!masqueradeNeeded(subnet)) {
      (void)dp->deleteMasquerade(subnet);
    }
  }
}

bool NamespaceService::masqueradeNeeded(const IpPrefix& subnet) const {
  auto used = subnets();
  return std::ranges::find(used, subnet) != used.end() ||
         std::ranges::find(ctx_.state.masquerades, subnet, &MasqueradeRecord::source) !=
             ctx_.state.masquerades.end();
}

void NamespaceService::syncHairpin6() {
  // The namespaces' IPv6 gateway: the default bridge's, else the first one a bridge or a
  // point-to-point namespace has. It follows them as they come and go.
  IpAddress hairpin;
  if (const BridgeRecord* b = ctx_.state.findBridge(kDefaultBridge); b != nullptr && b->gateway6) {
    hairpin = b->gateway6->addr;
  }
  for (const auto& b : ctx_.state.bridges) {
    if (!hairpin.isV6() && b.gateway6) {
      hairpin = b.gateway6->addr;
    }
  }
  for (const auto& n : ctx_.state.namespaces) {
    if (!hairpin.isV6() && n.hostAddress6) {
      hairpin = n.hostAddress6->addr;
    }
  }
  if (hairpin == hairpin6_ || !hairpin.isV6()) {
    return; // none yet: the map keeps what it had (a restart's, until a namespace has one)
  }
  if (auto r = ctx_.datapath.dp->setHairpinAddress(hairpin); !r) {
    log::warn("IPv6 hairpin address ", hairpin.str(), " not set: ", r.error().str());
    return;
  }
  hairpin6_ = hairpin;
}

Status NamespaceService::syncLocalAddresses() {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return {};
  }
  syncHairpin6();
  auto addrs = topology_.hostAddresses(AF_UNSPEC);
  if (!addrs) {
    return std::unexpected(addrs.error());
  }
  std::set<IpAddress> host;
  for (const auto& a : *addrs) {
    // Loopback is the socket hooks' (host-local access), link-local is no exposed address.
    const auto& b = a.prefix.addr.bytes;
    bool loopback = a.prefix.addr.isV4() ? b[0] == 127 : a.prefix.addr == kLoopback6;
    if (loopback || a.prefix.addr.isLinkLocal6()) {
      continue;
    }
    host.insert(a.prefix.addr);
    if (auto r = dp->addLocalAddress(a.prefix.addr); !r) {
      return r;
    }
  }
  // An address the host no longer has (a bridge gone with its last namespace, or rolled back
  // after a crash) must not take exposes meant for the host's own addresses.
  auto mapped = dp->listLocalAddresses();
  if (!mapped) {
    log::warn("local address map not read (addresses the host lost stay): ",
              mapped.error().str());
    return {};
  }
  for (const auto& addr : *mapped) {
    if (host.contains(addr)) {
      continue;
    }
    if (auto r = dp->deleteLocalAddress(addr); !r) {
      log::warn("local address ", addr.str(), " the host lost not removed: ", r.error().str());
      continue;
    }
    log::info("local address ", addr.str(), " is no longer the gateway host's: removed");
  }
  return {};
}

} // namespace gw
