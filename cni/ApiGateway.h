// SPDX-License-Identifier: MIT
// The Gateway over gatewayd's control socket. Owner routes (proposed; gatewayd does not serve
// them yet, and never answers 404 on them once it does, so a 404 means "no owner support"):
//   PUT    /v1/owners/NETWORK/CONTAINERID/IFNAME  {"exposes":[ExposeRequest...]}  all or nothing,
//          replacing the owner's set; 409 when a host port is taken
//   GET    /v1/owners/NETWORK/CONTAINERID/IFNAME  {"exposes":[ExposeInfo...]} ([] for none)
//   DELETE /v1/owners/NETWORK/CONTAINERID/IFNAME  removes them and their conntrack entries;
//          200 when there were none
//   GET    /v1/owners?network=NETWORK             [{"network","containerId","ifName"}...]
// status() is GET /v1/status, which gatewayd serves today.
#pragma once

#include <chrono>
#include <string>

#include "cni/Gateway.h"

namespace gw::cni {

inline constexpr const char* kOwnersPath = "/v1/owners";

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
