// SPDX-License-Identifier: MIT
#include "tests/cni/FakeGateway.h"

#include <algorithm>

namespace gw::cni::test {

namespace {
std::unexpected<GatewayError> failed(Fault f) {
  return std::unexpected(GatewayError{f, "fake gatewayd fails so"});
}
bool clash(const OwnedExpose& a, const OwnedExpose& b) {
  return a.hostPort == b.hostPort && a.proto == b.proto && a.target.family == b.target.family &&
         (!a.hostIp || !b.hostIp || *a.hostIp == *b.hostIp);
}
} // namespace

GatewayResult<void> FakeGateway::addOwnerExposes(const Owner& owner,
                                                 const std::vector<OwnedExpose>& exposes) {
  calls.push_back("add");
  if (failWith) {
    return failed(*failWith);
  }
  for (const auto& [other, theirs] : owners) {
    if (other == owner) {
      continue;
    }
    for (const auto& e : exposes) {
      if (std::ranges::any_of(theirs, [&](const OwnedExpose& t) { return clash(e, t); })) {
        return std::unexpected(GatewayError{
            Fault::PortTaken, "host port " + std::to_string(e.hostPort) + " is taken by " +
                                  other.containerId});
      }
    }
  }
  owners[owner] = exposes;
  return {};
}

GatewayResult<void> FakeGateway::deleteOwner(const Owner& owner) {
  calls.push_back("delete");
  if (failWith) {
    return failed(*failWith);
  }
  if (failDeleteOf && *failDeleteOf == owner) {
    return failed(Fault::Internal);
  }
  deleted.push_back(owner);
  owners.erase(owner);
  return {};
}

GatewayResult<std::vector<OwnedExpose>> FakeGateway::listOwner(const Owner& owner) {
  calls.push_back("list");
  if (failWith) {
    return failed(*failWith);
  }
  auto it = owners.find(owner);
  return it == owners.end() ? std::vector<OwnedExpose>{} : it->second;
}

GatewayResult<std::vector<Owner>> FakeGateway::ownersAll(const std::string& network) {
  calls.push_back("owners");
  if (failWith) {
    return failed(*failWith);
  }
  std::vector<Owner> out;
  for (const auto& [owner, exposes] : owners) {
    if (owner.network == network) {
      out.push_back(owner);
    }
  }
  return out;
}

GatewayResult<void> FakeGateway::status() {
  calls.push_back("status");
  if (failWith) {
    return failed(*failWith);
  }
  return {};
}

Outcome Harness::run(std::string_view stdinText) {
  auto env = [this](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional(it->second);
  };
  auto connect = [this](const std::string& socket) -> Gateway& {
    sockets.push_back(socket);
    return gateway;
  };
  return cni::run(stdinText, env, connect);
}

} // namespace gw::cni::test
