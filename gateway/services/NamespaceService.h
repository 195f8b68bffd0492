// SPDX-License-Identifier: MIT
// Managed namespaces: `ns add` (wiring, address, masquerade, endpoint, with rollback), `ns del`,
// `ns list`, and re-applying them on start.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "control/Api.h"
#include "gateway/services/Context.h"
#include "gateway/services/Topology.h"

namespace gw {

class NamespaceService {
public:
  NamespaceService(ServiceContext& ctx, Topology& topology) : ctx_(ctx), topology_(topology) {}

  Result<api::NamespaceAdded> add(const api::NamespaceAddRequest& request);
  Result<api::NamespaceDeleted> remove(const std::string& name);
  std::vector<api::NamespaceInfo> list();

  // Rolls back what an `ns add` cut short by a crash left (its pending records), then wires
  // what the state names (adopting what exists) and gives it to the data path, and removes
  // endpoint entries and endpoint programs that no managed namespace accounts for.
  Status reconcile();
  // The data path's part of a namespace: endpoint program, masquerade, endpoint entry.
  Status applyToDatapath(const NamespaceRecord& ns);
  // Unwires every namespace and bridge; problems are appended.
  void teardown(std::vector<std::string>& problems);
  // The subnets of managed namespaces: masqueraded for as long as a namespace uses them.
  std::vector<IpPrefix> subnets() const;
  // Gives the data path every address of the gateway host, of both families (so DNAT answers
  // on all of them), and takes away those the host no longer has; and sets the IPv6 hairpin
  // source to the namespaces' IPv6 gateway.
  Status syncLocalAddresses();
  // The endpoint addresses of namespaces gatewayd did not make (HandWiredEndpoints): the stray
  // sweep leaves them.
  void setOtherEndpointAddresses(std::function<std::set<IpAddress>()> addresses) {
    otherEndpointAddresses_ = std::move(addresses);
  }
  // Links outside the managed namespaces that carry the endpoint program on purpose (the
  // host ends of hand-wired namespaces with exposes): the stray sweep leaves them.
  void setOtherEndpointLinks(std::function<std::set<int>()> links) {
    otherEndpointLinks_ = std::move(links);
  }

private:
  void rollBackPending();
  // Endpoint entries and programs of no managed namespace go; `before` (the endpoint map
  // before this start wrote to it, when adopted) tells which of the others were restored.
  void removeStrays(const std::optional<std::map<IpAddress, EndpointEntry>>& before);
  // Every managed subnet and every address on the gateway host, for overlap checks.
  Status checkSubnetFree(const IpPrefix& subnet, std::string_view what);
  // Plans `rec`'s IPv6 side: on a new bridge (whose pool it sets), on an existing one (that,
  // without a pool yet, is copied to `grownBridge` with one), or point-to-point.
  Status planIpv6(const api::NamespaceAddRequest& request, NamespaceRecord& rec,
                  std::optional<BridgeRecord>& newBridge,
                  std::optional<BridgeRecord>& grownBridge);
  // Whether a managed namespace or a `masquerade add` of the state needs `subnet` masqueraded.
  bool masqueradeNeeded(const IpPrefix& subnet) const;
  // Undoes applyToDatapath for `ns`, which the state does not hold (a failed `ns add`).
  void undoDatapath(const NamespaceRecord& ns);
  void syncHairpin6();
  // A namespace's addresses (endpoint entries) and subnets (masqueraded), IPv4 then IPv6.
  static std::vector<IpAddress> addressesOf(const NamespaceRecord& ns);
  static std::vector<IpPrefix> subnetsOf(const NamespaceRecord& ns);

  ServiceContext& ctx_;
  Topology& topology_;
  std::function<std::set<int>()> otherEndpointLinks_;
  std::function<std::set<IpAddress>()> otherEndpointAddresses_;
  IpAddress hairpin6_; // the IPv6 hairpin address set last
};

} // namespace gw
