// SPDX-License-Identifier: MIT
// What gateway-portmap asks of gatewayd: exposes grouped under an owner (one CNI attachment),
// added all or nothing, listed, and deleted together. An interface, so the plugin's logic is
// tested against a fake (tests/cni) and the API client lives apart (ApiGateway).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "base/Ip.h"
#include "control/ApiValues.h"

namespace gw::cni {

// One CNI attachment. The network name is part of it: GC lists only one network's
// attachments, and one container may be on several networks.
struct Owner {
  std::string network;     // the config's "name"
  std::string containerId; // CNI_CONTAINERID
  std::string ifName;      // CNI_IFNAME

  auto operator<=>(const Owner&) const = default;
};

// One host port forwarded to one container address (one family: the target's).
struct OwnedExpose {
  std::optional<IpAddress> hostIp; // absent: every host address of the target's family
  uint16_t hostPort = 0;
  Proto proto = Proto::Tcp;
  IpAddress target;
  uint16_t targetPort = 0;

  auto operator<=>(const OwnedExpose&) const = default;
};

enum class Fault {
  PortTaken,   // another owner (or a plain expose) holds the host port: nothing was made
  Rejected,    // gatewayd refused the request as invalid: nothing was made
  Unreachable, // no answer on the socket (not running, refused, timed out)
  Unavailable, // gatewayd answers but cannot serve (the data path is not loaded)
  Unsupported, // this gatewayd has no owner routes
  Internal,    // anything else; the request may have been applied
};

struct GatewayError {
  Fault fault = Fault::Internal;
  std::string message;
};

template <class T>
using GatewayResult = std::expected<T, GatewayError>;

class Gateway {
public:
  virtual ~Gateway() = default;
  // Makes `exposes` the owner's exposes, replacing any it had, in one all-or-nothing request
  // (an ADD retried after a lost answer gets the same result).
  virtual GatewayResult<void> addOwnerExposes(const Owner& owner,
                                              const std::vector<OwnedExpose>& exposes) = 0;
  // Removes the owner's exposes and flushes their conntrack entries (UDP included).
  // Succeeds when the owner has none.
  virtual GatewayResult<void> deleteOwner(const Owner& owner) = 0;
  // The owner's exposes (empty when it has none).
  virtual GatewayResult<std::vector<OwnedExpose>> listOwner(const Owner& owner) = 0;
  // Every owner of `network` that has exposes.
  virtual GatewayResult<std::vector<Owner>> ownersAll(const std::string& network) = 0;
  // Reachable and its data path loaded.
  virtual GatewayResult<void> status() = 0;
};

} // namespace gw::cni
