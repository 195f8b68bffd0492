// SPDX-License-Identifier: MIT
// Builds and removes the wiring of managed namespaces (namespace, veth, bridge, addresses,
// routes, forwarding) through netns/. Every step adopts what exists and records an undo for
// what it created, so one code path serves `ns add` (with rollback) and restart reconciling.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "netns/Netlink.h"
#include "gateway/State.h"

namespace gw {

// Undo steps run in reverse on destruction unless commit() was called.
class Rollback {
public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback();
  void add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  void commit() { undo_.clear(); }

private:
  std::vector<std::function<void()>> undo_;
};

// Test-only fault injection: fails when GATEWAY_FAILPOINTS (comma separated) names `point`.
Status failpoint(std::string_view point);

inline constexpr const char* kDefaultBridge = "gw0";
inline constexpr const char* kDefaultBridgeGateway = "10.88.0.1/16";
inline constexpr const char* kNamespaceLink = "eth0";

// The gateway end's name for namespace `ns`: "gw-NS", shortened with a hash when too long.
std::string hostLinkName(std::string_view ns);

// The first free host address of `gateway`'s subnet (not the network, broadcast, gateway or
// any of `used`), with the subnet's length.
Result<IpPrefix> allocateAddress(const IpPrefix& gateway, const std::set<IpAddress>& used);

// Point-to-point wiring for `subnet`: {gateway end, namespace end} = first and second host.
Result<std::pair<IpPrefix, IpPrefix>> pointToPointAddresses(const IpPrefix& subnet);

// Ensures the bridge exists, is a bridge, carries its address and is up.
Status ensureBridge(Netlink& host, const BridgeRecord& bridge, Rollback* rollback);

// Ensures namespace, veth, addresses, routes and forwarding exist as `rec` says.
Status wireNamespace(Netlink& host, const NamespaceRecord& rec, int bridgeIndex,
                     Rollback* rollback);

// Removes what wireNamespace made (veth and namespace); missing pieces are not errors.
Status unwireNamespace(Netlink& host, const NamespaceRecord& rec);

// Deletes a bridge by name if it exists.
Status removeBridge(Netlink& host, const std::string& name);

} // namespace gw
