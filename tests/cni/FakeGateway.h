// SPDX-License-Identifier: MIT
// A gatewayd that keeps owners in a map: port clashes between owners, down, unavailable and
// "no owner support" on demand, and a log of the calls.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cni/Gateway.h"
#include "cni/Plugin.h"

namespace gw::cni::test {

class FakeGateway final : public Gateway {
public:
  std::map<Owner, std::vector<OwnedExpose>> owners;
  std::optional<Fault> failWith; // every call fails so
  std::optional<Owner> failDeleteOf;
  std::vector<std::string> calls; // "add", "delete", "list", "owners", "status"
  std::vector<Owner> deleted;

  GatewayResult<void> addOwnerExposes(const Owner& owner,
                                      const std::vector<OwnedExpose>& exposes) override;
  GatewayResult<void> deleteOwner(const Owner& owner) override;
  GatewayResult<std::vector<OwnedExpose>> listOwner(const Owner& owner) override;
  GatewayResult<std::vector<Owner>> ownersAll(const std::string& network) override;
  GatewayResult<void> status() override;
};

// Runs the plugin with `vars` as its environment against `gateway`, remembering the socket.
struct Harness {
  FakeGateway gateway;
  std::vector<std::string> sockets; // one per connect
  std::map<std::string, std::string> vars;

  Outcome run(std::string_view stdinText);
};

} // namespace gw::cni::test
