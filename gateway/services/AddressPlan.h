// SPDX-License-Identifier: MIT
// Where a managed namespace goes: its link name and its addresses, from the pools in the
// state. Pure functions: no kernel.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "base/Error.h"
#include "base/Ip.h"

namespace gw {

inline constexpr const char* kDefaultBridge = "gw0";
inline constexpr const char* kDefaultBridgeGateway = "10.88.0.1/16";
inline constexpr const char* kDefaultBridgeGateway6 = "fd00:88::1/64"; // a ULA pool
inline constexpr const char* kNamespaceLink = "eth0";

// The gateway end's name for namespace `ns`: "gw-NS", shortened with a hash when too long.
std::string hostLinkName(std::string_view ns);

// The first free host address of `gateway`'s subnet (not the network, broadcast, gateway or
// any of `used`), with the subnet's length.
Result<IpPrefix> allocateAddress(const IpPrefix& gateway, const std::set<IpAddress>& used);

// Point-to-point wiring for `subnet`: {gateway end, namespace end} = first and second host.
Result<std::pair<IpPrefix, IpPrefix>> pointToPointAddresses(const IpPrefix& subnet);

// The IPv6 side, for `--subnet6`: an IPv6 subnet from /8 to /120 (an IPv4 one, or a longer
// prefix, is refused naming the option).
Status checkSubnet6(const IpPrefix& subnet);
// Gateway end and first namespace end of an IPv6 subnet: network + 1 and network + 2.
Result<std::pair<IpPrefix, IpPrefix>> pointToPointAddresses6(const IpPrefix& subnet);
// The first free address of `gateway`'s IPv6 subnet from network + 1 up (not the gateway or
// any of `used`), with the subnet's length.
Result<IpPrefix> allocateAddress6(const IpPrefix& gateway, const std::set<IpAddress>& used);

} // namespace gw
