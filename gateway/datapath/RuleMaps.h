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
struct gw_config6;

namespace gw {

class BpfObjects;

// Not thread-safe (BpfDatapath serializes). `objects` must outlive this.
class RuleMaps {
public:
  explicit RuleMaps(const BpfObjects& objects) : objects_(objects) {}

  // Defaults an empty config (SNAT port range) and sets GW_CFG_FIB_REDIRECT per `fibRedirect`.
  Status initConfig(bool fibRedirect);
  Status setUplink(int ifindex, const IpAddress& addr, bool fibRedirect);
  // gw_config6.uplink_addr; an unset address (family 0) clears it.
  Status setUplinkAddress6(const IpAddress& addr);
  // By the address's family: gw_config.hairpin_addr or gw_config6.hairpin_addr.
  Status setHairpinAddress(const IpAddress& addr);
  // gw_config6 as read back (unset: all zero in the map).
  struct Config6 {
    IpAddress uplinkAddr;
    IpAddress hairpinAddr;
  };
  Result<Config6> config6() const;
  // Confines the socket hooks to one namespace (0 = they act on nothing).
  Status setNetnsCookie(uint64_t cookie);

  // See Datapath::addEndpoint (gw_endpoint_v4 or _v6 by family). Replaces; deleting an absent one is not an error.
  Status addEndpoint(const IpAddress& addr, int hostIfindex, std::array<uint8_t, 6> peerMac,
                     std::array<uint8_t, 6> hostMac);
  Status deleteEndpoint(const IpAddress& addr);
  Result<std::vector<EndpointEntry>> listEndpoints() const; // by address

  Status addLocalAddress(const IpAddress& addr);
  Status deleteLocalAddress(const IpAddress& addr);
  Result<std::vector<IpAddress>> listLocalAddresses() const; // ascending

  Status addExpose(const ExposeEntry& entry);
  Status deleteExpose(const ExposeKey& key); // ENOENT
  Result<std::vector<ExposeEntry>> listExposes() const; // by proto, port, family, address
  Result<std::set<uint32_t>> exposedRuleIds() const;   // non-zero rule ids in the expose map

  Status addMasquerade(const IpPrefix& source, int outIfindex, bool endpointIndependent);
  Status deleteMasquerade(const IpPrefix& source);
  Result<std::vector<MasqueradeEntry>> listMasquerades() const; // by prefix

private:
  Status writeConfig(const std::function<void(gw_config&)>& change);
  Status writeConfig6(const std::function<void(gw_config6&)>& change);

  const BpfObjects& objects_;
};

} // namespace gw
