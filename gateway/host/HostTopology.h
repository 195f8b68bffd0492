// SPDX-License-Identifier: MIT
// The Topology of the gateway host, through netlink (netns/) and the wiring of Wiring.h.
#pragma once

#include <string>

#include "gateway/host/Wiring.h"
#include "gateway/services/Topology.h"
#include "netns/Netlink.h"

namespace gw {

class HostTopology final : public Topology {
public:
  // `host`: a netlink socket in the gateway host's namespace; `uplink`: the uplink's name, whose
  // IPv4 GSO size (BIG TCP) the links we make follow.
  HostTopology(Netlink& host, std::string uplink) : host_(host), uplink_(std::move(uplink)) {}

  bool namespaceExists(const std::string& name) override;
  Result<LinkState> link(const std::string& name) override;
  Result<LinkState> linkIn(const std::string& ns, const std::string& name) override;
  Result<std::vector<HostAddress>> hostAddresses(int family) override;
  Result<NamespaceId> namespaceId(const std::string& nameOrPath) override;
  Result<std::vector<IpPrefix>> namespaceAddresses(const std::string& ns, int family) override;
  Result<std::vector<std::string>> namespaceNames() override;
  Result<PeeredNamespace> peeredNamespace(const std::string& ns) override;
  Result<std::map<int, int>> hostVeths() override;
  Status ensureBridge(const BridgeRecord& bridge, Rollback* rollback) override;
  Status wireNamespace(const NamespaceRecord& ns, Rollback* rollback) override;
  Status unwireNamespace(const NamespaceRecord& ns) override;
  Status removeBridge(const std::string& name) override;
  Result<bool> portInUse(Proto proto, uint16_t port,
                         const std::optional<IpAddress>& hostIp) override;

private:
  LinkSizing sizing();

  Netlink& host_;
  std::string uplink_;
};

} // namespace gw
