// SPDX-License-Identifier: MIT
// Unicast routes in the main table over rtnetlink.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "netns/Netlink.h"

namespace gw {

struct RouteSpec {
  std::optional<IpPrefix> dst;         // nullopt: the default route
  std::optional<IpAddress> gateway;    // nullopt: directly connected (link scope)
  int ifindex = 0;                     // 0: let the kernel pick from the gateway
  bool onlink = false;                 // gateway is on the link even if no prefix covers it
  int family = AF_INET;                // used only when neither dst nor gateway says
};

struct RouteInfo {
  std::optional<IpPrefix> dst; // nullopt: the default route
  std::optional<IpAddress> gateway;
  int ifindex = 0;
};

Status addRoute(Netlink& nl, const RouteSpec& spec);
Status deleteRoute(Netlink& nl, const RouteSpec& spec);
// Unicast routes of the main table (not cloned/cache entries).
Result<std::vector<RouteInfo>> listRoutes(Netlink& nl, int family = AF_INET);

} // namespace gw
