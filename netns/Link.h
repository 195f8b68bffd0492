// SPDX-License-Identifier: MIT
// Network interfaces over rtnetlink: query, veth pairs, bridges, up/mtu/master, delete.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "base/Names.h"
#include "netns/Netlink.h"

namespace gw {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind; // "veth", "bridge", ... ; empty for links without IFLA_INFO_KIND (lo)
  unsigned mtu = 0;
  bool up = false; // administratively up (IFF_UP)
  int master = 0;  // ifindex of the bridge it is enslaved to, 0 if none
  std::array<uint8_t, 6> mac{};
  // A veth's other end: its ifindex (IFLA_LINK) and, when that end lives in another namespace,
  // the id this namespace knows that one by (IFLA_LINK_NETNSID; see namespaceIdOf).
  int peerIndex = 0;
  int peerNetnsId = -1;
  // The biggest IPv4 GSO packet the stack builds for it and GRO packet it makes (BIG TCP when
  // above 65,536; kernel 6.3+, 0 on older kernels).
  uint32_t gsoIpv4MaxSize = 0;
  uint32_t groIpv4MaxSize = 0;
};

// ENODEV naming the link if it does not exist.
Result<LinkInfo> getLink(Netlink& nl, const std::string& name);
Result<LinkInfo> getLink(Netlink& nl, int index);
Result<std::vector<LinkInfo>> listLinks(Netlink& nl);
// The id under which nl's namespace knows namespace nsFd (RTM_GETNSID), what IFLA_LINK_NETNSID
// of a link whose peer is there says; -1 when it has none.
Result<int> namespaceIdOf(Netlink& nl, int nsFd);

// Creates a veth pair; with peerNsFd >= 0 the peer is born inside that namespace.
Status createVeth(Netlink& nl, const std::string& name, const std::string& peerName,
                  int peerNsFd = -1);
Status createBridge(Netlink& nl, const std::string& name);
Status setLinkUp(Netlink& nl, int index, bool up);
Status setLinkMtu(Netlink& nl, int index, unsigned mtu);
// IPv4 BIG TCP (kernel 6.3+): GSO and GRO packets up to `bytes` (above 65,536 their IPv4
// tot_len is 0). Debian 12's iproute2 cannot set these.
Status setLinkIpv4GsoGroMax(Netlink& nl, int index, uint32_t bytes);
// From linux/if_link.h of 6.3; Debian 12's headers (6.1) lack them.
inline constexpr uint16_t kIflaGsoIpv4MaxSize = 63; // IFLA_GSO_IPV4_MAX_SIZE
inline constexpr uint16_t kIflaGroIpv4MaxSize = 64; // IFLA_GRO_IPV4_MAX_SIZE
// The most a packet is without BIG TCP.
inline constexpr uint32_t kLegacyGsoMaxSize = 65536;
// masterIndex 0 releases the link from its bridge.
Status setLinkMaster(Netlink& nl, int index, int masterIndex);
Status deleteLink(Netlink& nl, int index);

} // namespace gw
