// SPDX-License-Identifier: MIT
// The gateway service: owns the state, applies requests to the kernel, answers the API.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "Error.h"
#include "Http.h"
#include "Netlink.h"
#include "State.h"

namespace gw {

struct GatewayConfig {
  std::string uplink;
  std::string netns; // "" = the namespace gatewayd was started in
  std::string socketPath;
  std::string stateDir;
  std::string bpffs;
  std::string xdp = "auto";
};

class Gateway {
public:
  // Opens netlink in the calling thread's namespace (the gateway host), checks the uplink,
  // loads the state and reconciles the kernel with it.
  static Result<std::unique_ptr<Gateway>> start(const GatewayConfig& config);

  http::Response handle(const http::Request& request);
  // Periodic work between requests.
  void tick();

private:
  explicit Gateway(GatewayConfig config, Netlink host);

  Status reconcile();
  Status persist();

  Result<nlohmann::json> addNamespace(const nlohmann::json& body);
  Result<nlohmann::json> deleteNamespace(const std::string& name);
  nlohmann::json listNamespaces();
  nlohmann::json status();
  // Every managed subnet and every address on the gateway host, for overlap checks.
  Status checkSubnetFree(const IpPrefix& subnet, std::string_view what);

  GatewayConfig config_;
  Netlink host_;
  State state_;
  int uplinkIndex_ = 0;
  std::chrono::steady_clock::time_point started_;
};

} // namespace gw
