// SPDX-License-Identifier: MIT
#include "gateway/services/AddressPlan.h"

#include <cstdint>
#include <cstdio>

namespace gw {
namespace {

// FNV-1a: a short stable suffix for long names.
uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h = (h ^ c) * 16777619u;
  }
  return h;
}

// `base` plus `n` in the low 64 bits (pools are at most 2^64 addresses apart here).
IpAddress plus(const IpAddress& base, uint64_t n) {
  IpAddress out = base;
  for (int i = 15; i >= 8 && n != 0; --i) {
    uint64_t sum = out.bytes[i] + (n & 0xff);
    out.bytes[i] = static_cast<uint8_t>(sum);
    n = (n >> 8) + (sum >> 8);
  }
  return out;
}

} // namespace

std::string hostLinkName(std::string_view ns) {
  std::string name = "gw-" + std::string(ns);
  if (name.size() <= 15) {
    return name;
  }
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", fnv1a(ns));
  return "gw-" + std::string(ns.substr(0, 7)) + "-" + std::string(suffix, 4);
}

Result<IpPrefix> allocateAddress(const IpPrefix& gateway, const std::set<IpAddress>& used) {
  if (!gateway.addr.isV4()) {
    return invalid("address pools are IPv4 only for now: " + gateway.str());
  }
  if (gateway.length > 30) {
    return invalid("subnet " + gateway.network().str() + " is too small for namespaces");
  }
  uint32_t base = gateway.network().addr.v4HostOrder();
  uint32_t size = gateway.length == 0 ? 0xffffffffu : (1u << (32 - gateway.length));
  for (uint32_t i = 1; i + 1 < size; ++i) {
    IpAddress candidate = IpAddress::v4(base + i);
    if (candidate != gateway.addr && !used.contains(candidate)) {
      return IpPrefix{candidate, gateway.length};
    }
  }
  return conflict("address pool " + gateway.network().str() + " is exhausted", ENOSPC);
}

Status checkSubnet6(const IpPrefix& subnet) {
  if (!subnet.addr.isV6()) {
    return invalid("--subnet6 " + subnet.str() + ": not an IPv6 subnet");
  }
  if (subnet.length > 120 || subnet.length < 8) {
    return invalid("--subnet6 " + subnet.str() +
                   ": the prefix length must be between /8 and /120");
  }
  return {};
}

Result<std::pair<IpPrefix, IpPrefix>> pointToPointAddresses6(const IpPrefix& subnet) {
  if (auto r = checkSubnet6(subnet); !r) {
    return std::unexpected(r.error());
  }
  IpAddress base = subnet.network().addr;
  return std::pair{IpPrefix{plus(base, 1), subnet.length}, IpPrefix{plus(base, 2), subnet.length}};
}

Result<IpPrefix> allocateAddress6(const IpPrefix& gateway, const std::set<IpAddress>& used) {
  if (auto r = checkSubnet6(gateway); !r) {
    return std::unexpected(r.error());
  }
  IpAddress base = gateway.network().addr;
  int hostBits = 128 - gateway.length;
  uint64_t size = hostBits >= 64 ? ~uint64_t{0} : (uint64_t{1} << hostBits);
  for (uint64_t i = 1; i < size; ++i) {
    IpAddress candidate = plus(base, i);
    if (candidate != gateway.addr && !used.contains(candidate)) {
      return IpPrefix{candidate, gateway.length};
    }
  }
  return conflict("address pool " + gateway.network().str() + " is exhausted", ENOSPC);
}

Result<std::pair<IpPrefix, IpPrefix>> pointToPointAddresses(const IpPrefix& subnet) {
  if (!subnet.addr.isV4()) {
    return invalid("--subnet " + subnet.str() + ": only IPv4 subnets are supported for now");
  }
  if (subnet.length > 30 || subnet.length < 8) {
    return invalid("--subnet " + subnet.str() + ": the prefix length must be between /8 and /30");
  }
  uint32_t base = subnet.network().addr.v4HostOrder();
  return std::pair{IpPrefix{IpAddress::v4(base + 1), subnet.length},
                   IpPrefix{IpAddress::v4(base + 2), subnet.length}};
}

} // namespace gw
