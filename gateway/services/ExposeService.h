// SPDX-License-Identifier: MIT
// Exposed ports: the rules (clashes, ranges, rule ids, all-or-nothing batches), the choice of
// the path that serves each (eBPF or the proxy), and their counters.
#pragma once

#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/Api.h"
#include "gateway/services/Context.h"
#include "gateway/services/HandWiredEndpoints.h"
#include "gateway/services/ProxyControl.h"
#include "gateway/services/Topology.h"

namespace gw {

class ExposeService {
public:
  // Path targets whose namespace went away stop being served (and say why, in the log and the
  // listing); those that came back are served again. At each listing, and from gatewayd's tick.
  void checkPaths();
  ExposeService(ServiceContext& ctx, Topology& topology, ProxyControl& proxy)
      : ctx_(ctx), topology_(topology), proxy_(proxy) {}

  // A GroupMember may publish only targets in namespaces gatewayd manages (unless
  // setGroupMayPublishAny): a server bound to the gateway host's loopback, or in a namespace
  // wired by hand, is published to the uplink by root alone.
  Result<api::ExposeAdded> add(const api::ExposeRequest& request,
                               api::Caller caller = api::Caller::Root);
  // All or nothing, one state commit (10,000 rules in one call, as iptables-restore).
  Result<std::vector<api::ExposeAdded>> addBatch(const std::vector<api::ExposeRequest>& batch,
                                                 api::Caller caller = api::Caller::Root);
  Result<api::ExposeDeleted> remove(const api::UnexposeQuery& query,
                                    api::Caller caller = api::Caller::Root);
  void setGroupMayPublishAny(bool may) { groupMayPublishAny_ = may; }
  // Whether the eBPF path hands an address of a namespace gatewayd did not make its packets
  // straight (HandWiredEndpoints), for the listing's `forward`.
  void setPeered(std::function<bool(const IpAddress&)> peered) { peered_ = std::move(peered); }
  // Counters come from `known` when the caller has read them already.
  // Per expose served by the proxy: its listeners' counters summed.
  std::vector<api::ProxyStatsInfo> proxyStats();
  // The host ends of hand-wired namespaces' links that carry the endpoint program for exposes.
  std::set<int> handWiredLinks() const;
  // The eBPF-served targets in namespaces gatewayd does not manage, and the namespaces the
  // rules name (HandWiredEndpoints gives them the fast path).
  EndpointWants handWiredTargets() const;
  std::vector<api::ExposeInfo> list(const DatapathStats* known = nullptr);
  // Every owner (GET /v1/owners) and the ids of its rules.
  std::vector<api::OwnerInfo> owners() const;
  // Makes `batch` the rules of `owner` (each request's owner is set to it): the owner's rules
  // before go (with their flows), the batch comes, all or nothing (the CNI plugin's ADD,
  // retried too).
  Result<std::vector<api::ExposeAdded>> replaceOwner(const ExposeOwner& owner,
                                                     std::vector<api::ExposeRequest> batch,
                                                     api::Caller caller = api::Caller::Root);
  // Removes every rule of `owner` and their flows, all or none; none there is not an error.
  Result<api::OwnerDeleted> removeOwner(const ExposeOwner& owner,
                                        api::Caller caller = api::Caller::Root);
  // One page, in ExposeCursor order (proto, host address, first port).
  api::ExposePage page(const api::ExposeListQuery& query);

  // Applies every expose of the state (on start), then removes the expose map entries that no
  // state names (pinned by a run that crashed mid-change). Entries restored and removed are
  // logged; failures too, and are not fatal.
  void reconcile();
  // Removes every expose from the data path and the proxy, and stops the proxy.
  void teardown(std::vector<std::string>& problems);

  // The path serving one family of an expose and why (`refusal`: the error kind when an add
  // must refuse it).
  struct Serving {
    ServingPath path = ServingPath::None;
    std::string why;
    ErrorKind refusal = ErrorKind::Invalid;
  };
  Serving servingPath(const ExposeRecord& e, int family) const;
  // The first family served (IPv4 when it is), as the summary `path` of a listing.
  Serving servingPath(const ExposeRecord& e) const;
  // Each family of the rule: its path, why, and where its clients are sent.
  std::vector<api::FamilyServing> familiesOf(const ExposeRecord& e) const;
  // The address the eBPF path sends `family`'s clients to: the target's of that family.
  static std::optional<IpAddress> ebpfTarget(const ExposeRecord& e, int family);

private:
  // Applies one expose to the kernel and adds it to the state; the caller commits.
  Result<api::ExposeAdded> addOne(const api::ExposeRequest& request, api::Caller caller);
  // Whether `caller` may publish (or unpublish) this expose's target.
  Status mayPublish(const ExposeRecord& e, api::Caller caller) const;
  // Whether the target is (in) a namespace gatewayd manages.
  bool targetIsManaged(const ExposeRecord& e) const;
  // The gateway host's link toward an eBPF-served target gatewayd does not manage (a namespace
  // wired by hand): the one with an address on the target's subnet, not the uplink.
  std::optional<int> handWiredLink(const ExposeRecord& e) const;
  // The same against the host's addresses read once by the caller.
  std::optional<int> handWiredLink(const ExposeRecord& e,
                                   const std::vector<HostAddress>& addrs) const;
  Status apply(const ExposeRecord& e);
  Status applyProxy(const ExposeRecord& e);
  // Whether a family of `e` is served by the proxy.
  bool proxied(const ExposeRecord& e) const;
  void removeListeners(const ExposeRecord& e, bool drain);
  // The proxy's listeners close and their connections drain; the data path's flows go too
  // unless `flows` keeps them.
  Status unapply(const ExposeRecord& e, FlowsOfRule flows = FlowsOfRule::Remove);
  // An owner's rules, each one the caller may publish (else the refusal).
  Result<std::vector<ExposeRecord>> ownedBy(const ExposeOwner& owner, api::Caller caller) const;
  // Rules out of the maps, their flows in one walk of the conntrack table; on failure the
  // ones taken out are applied again.
  Status takeOutOfMaps(const std::vector<ExposeRecord>& records);
  void reapply(const std::vector<ExposeRecord>& records, size_t n);
  // The expose map entries of `e` (one per port and family the eBPF path serves).
  std::vector<ExposeEntry> entriesOf(const ExposeRecord& e) const;
  // The API's view of these exposes, with their counters (from `known` if given).
  std::vector<api::ExposeInfo> infos(const std::vector<const ExposeRecord*>& records,
                                     const DatapathStats* known);
  // The target's address: its own, a managed namespace's, or a hand-wired one's (resolveHandWired).
  struct Resolved {
    IpAddress addr;                 // IPv4 when the namespace has one, else IPv6
    std::optional<IpAddress> addr6; // its IPv6 address beside an IPv4 one
  };
  Result<Resolved> resolveTarget(const TargetSpec& target);
  // A namespace wired by hand (a name or a path): its addresses on subnets the gateway host is
  // attached to, else any but loopback and link-local.
  Result<Resolved> resolveHandWired(const std::string& netns);
  // A namespace file's target found again (at start, and at a listing while it is not
  // served): the process may be gone, or the path may name another namespace by now.
  Status resolvePath(ExposeRecord& e);
  void forget(uint32_t id);

  bool shareAFamily(const ExposeRecord& a, const ExposeRecord& b) const;
  // Refuses a host port another rule holds in a family both answer on, or a local socket holds.
  Status checkPortFree(const ExposeRecord& candidate);
  uint32_t allocateRuleId();

  ServiceContext& ctx_;
  Topology& topology_;
  ProxyControl& proxy_;
  std::map<uint32_t, std::vector<uint64_t>> listeners_; // rule id -> proxy listeners
  // Path targets: the namespace the path named when resolved, and why one is not served.
  std::map<uint32_t, NamespaceId> pathIds_;
  std::map<uint32_t, std::string> unresolved_;
  bool groupMayPublishAny_ = false;
  std::function<bool(const IpAddress&)> peered_;

  // While a batch is applied: what each of its rules would otherwise look up again by a scan
  // (the state's exposes on a port, the rule ids in use) or a dump (the host's addresses), so
  // 131,070 rules cost a lookup each, not a pass over all the others.
  struct BatchLookups {
    // (proto, port) -> indexes in state.exposes; as big as the ports in use, not 2 x 65,536.
    std::unordered_map<uint32_t, std::vector<size_t>> byPort;
    static uint32_t slot(Proto proto, unsigned port) {
      return (proto == Proto::Udp ? 1u << 16 : 0u) | port;
    }
    std::vector<bool> idsUsed;
    std::optional<std::vector<HostAddress>> hostAddresses; // IPv4, read once
  };
  std::optional<BatchLookups> batch_;
  // Starts batch_ for the state as it is when a batch has more than one rule; the returned
  // guard ends it.
  [[nodiscard]] std::shared_ptr<void> beginBatch(size_t rules);
  void indexPorts(size_t stateIndex);
};

} // namespace gw
