// SPDX-License-Identifier: MIT
// The rules the BPF programs read, written into their maps: exposed ports, masquerade
// prefixes, local addresses, managed endpoints and the one-entry config map.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "gateway/datapath/Datapath.h"

struct gw_config;

namespace gw {

class BpfObjects;

// Not thread-safe (BpfDatapath serializes). `objects` must outlive this.
class RuleMaps {
public:
  explicit RuleMaps(const BpfObjects& objects) : objects_(objects) {}

  // Defaults an empty config (SNAT port range) and sets GW_CFG_FIB_REDIRECT per `fibRedirect`.
  Status initConfig(bool fibRedirect);
  Status setUplink(int ifindex, const IpAddress& addr, bool fibRedirect);
  Status setHairpinAddress(const IpAddress& addr);
  // Confines the socket hooks to one namespace (0 = they act on nothing).
  Status setNetnsCookie(uint64_t cookie);

  // See Datapath::addEndpoint. Replaces; deleting an absent one is not an error.
  Status addEndpoint(const IpAddress& addr, int hostIfindex, std::array<uint8_t, 6> peerMac,
                     std::array<uint8_t, 6> hostMac);
  Status deleteEndpoint(const IpAddress& addr);
  Result<std::vector<EndpointEntry>> listEndpoints() const; // by address

  Status addLocalAddress(const IpAddress& addr);
  Status deleteLocalAddress(const IpAddress& addr);
  Result<std::vector<IpAddress>> listLocalAddresses() const; // ascending

  Status addExpose(const ExposeEntry& entry);
  Status deleteExpose(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort); // ENOENT
  Result<std::vector<ExposeEntry>> listExposes() const; // by proto, port, address
  Result<std::set<uint32_t>> exposedRuleIds() const;   // non-zero rule ids in the expose map

  Status addMasquerade(const IpPrefix& source, int outIfindex, bool endpointIndependent);
  Status deleteMasquerade(const IpPrefix& source);
  Result<std::vector<MasqueradeEntry>> listMasquerades() const; // by prefix

private:
  Status writeConfig(const std::function<void(gw_config&)>& change);

  const BpfObjects& objects_;
};

} // namespace gw
