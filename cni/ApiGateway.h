// SPDX-License-Identifier: MIT
// The Gateway over gatewayd's control socket. An attachment is the expose owner
// "cni/NETWORK/CONTAINERID/IFNAME" (one path segment, percent-encoded); gatewayd's owner routes
// never answer 404, so a 404 means a gatewayd without owner support:
//   PUT    /v1/owners/OWNER  [ExposeRequest...]  all or nothing, replacing the owner's set;
//          409 when a host port is taken
//   DELETE /v1/owners/OWNER  removes them and their conntrack entries; 200 when none
//   GET    /v1/owners        [{"owner","ids"}...]: the network's owners are read from it
//   GET    /v1/exposes       the owner's rules are those naming it
// status() is GET /v1/status.
#pragma once

#include <chrono>
#include <string>

#include "cni/Gateway.h"

namespace gw::cni {

class ApiGateway final : public Gateway {
public:
  explicit ApiGateway(std::string socket,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  GatewayResult<void> addOwnerExposes(const Owner& owner,
                                      const std::vector<OwnedExpose>& exposes) override;
  GatewayResult<void> deleteOwner(const Owner& owner) override;
  GatewayResult<std::vector<OwnedExpose>> listOwner(const Owner& owner) override;
  GatewayResult<std::vector<Owner>> ownersAll(const std::string& network) override;
  GatewayResult<void> status() override;

private:
  std::string socket_;
  std::chrono::milliseconds timeout_;
};

} // namespace gw::cni
