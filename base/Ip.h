// SPDX-License-Identifier: MIT
// IPv4/IPv6 addresses and prefixes as plain values.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/Error.h"

namespace gw {

struct IpAddress {
  int family = 0;                  // AF_INET, AF_INET6, or 0 when unset
  std::array<uint8_t, 16> bytes{}; // network order; IPv4 uses the first 4

  // "10.0.0.1" or "fd00::1"; the error message names the text.
  static Result<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint32_t hostOrder);

  uint32_t v4HostOrder() const;
  bool isV4() const;
  bool isV6() const;
  // fe80::/10: each link has its own, so it is nobody's address to reach from elsewhere.
  bool isLinkLocal6() const;
  // Bytes that carry the address: 4 or 16 (0 when unset).
  size_t size() const;
  // Highest valid prefix length: 32 or 128 (0 when unset).
  int maxLength() const;
  std::string str() const;

  auto operator<=>(const IpAddress&) const = default;
};

struct IpPrefix {
  IpAddress addr; // as written: 192.168.1.1/24 keeps the host bits
  int length = 0;

  // "10.88.0.0/16". A bare address is refused: the length is always written.
  static Result<IpPrefix> parse(std::string_view text);

  // The same prefix with host bits cleared.
  IpPrefix network() const;
  bool contains(const IpAddress& other) const;
  bool overlaps(const IpPrefix& other) const;
  std::string str() const;

  auto operator<=>(const IpPrefix&) const = default;
};

} // namespace gw
