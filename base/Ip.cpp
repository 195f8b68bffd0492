// SPDX-License-Identifier: MIT
#include "base/Ip.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

namespace gw {
namespace {

// Clears every bit past `length` (host bits).
std::array<uint8_t, 16> masked(const std::array<uint8_t, 16>& bytes, int length) {
  std::array<uint8_t, 16> out{};
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(length - i * 8, 0, 8);
    auto mask = static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    out[static_cast<size_t>(i)] = bytes[static_cast<size_t>(i)] & mask;
  }
  return out;
}

} // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a terminated string; anything longer than this is not an address.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return fail("invalid IP address '" + std::string(text) + "'", EINVAL);
  }
  std::string copy(text);
  IpAddress out;
  out.family = copy.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(out.family, copy.c_str(), out.bytes.data()) != 1) {
    return fail("invalid IP address '" + copy + "'", EINVAL);
  }
  return out;
}

IpAddress IpAddress::v4(uint32_t hostOrder) {
  IpAddress out;
  out.family = AF_INET;
  out.bytes[0] = static_cast<uint8_t>(hostOrder >> 24);
  out.bytes[1] = static_cast<uint8_t>(hostOrder >> 16);
  out.bytes[2] = static_cast<uint8_t>(hostOrder >> 8);
  out.bytes[3] = static_cast<uint8_t>(hostOrder);
  return out;
}

uint32_t IpAddress::v4HostOrder() const {
  return static_cast<uint32_t>(bytes[0]) << 24 | static_cast<uint32_t>(bytes[1]) << 16 |
         static_cast<uint32_t>(bytes[2]) << 8 | static_cast<uint32_t>(bytes[3]);
}

bool IpAddress::isV4() const {
  return family == AF_INET;
}

bool IpAddress::isV6() const {
  return family == AF_INET6;
}

bool IpAddress::isLinkLocal6() const {
  return isV6() && bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
}

size_t IpAddress::size() const {
  return isV4() ? 4 : isV6() ? 16 : 0;
}

int IpAddress::maxLength() const {
  return static_cast<int>(size() * 8);
}

std::string IpAddress::str() const {
  if (family != AF_INET && family != AF_INET6) {
    return {};
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) {
    return fail("invalid IP prefix '" + std::string(text) + "'", EINVAL);
  }
  // A bare address is refused rather than read as a /32: "masquerade add 10.0.0.0" most
  // likely meant a network, and a silent /32 masquerades nothing.
  if (slash == std::string_view::npos) {
    return fail("'" + std::string(text) + "' has no prefix length: write ADDRESS/LENGTH (e.g. " +
                    std::string(text) + "/" + std::to_string(addr->maxLength()) + ")",
                EINVAL);
  }
  IpPrefix out{*addr, addr->maxLength()};
  auto digits = text.substr(slash + 1);
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, out.length);
  if (digits.empty() || ec != std::errc() || ptr != end || out.length < 0 ||
      out.length > addr->maxLength()) {
    return fail("invalid prefix length in '" + std::string(text) + "'", EINVAL);
  }
  return out;
}

IpPrefix IpPrefix::network() const {
  IpPrefix out = *this;
  out.addr.bytes = masked(addr.bytes, length);
  return out;
}

bool IpPrefix::contains(const IpAddress& other) const {
  return other.family == addr.family &&
         masked(other.bytes, length) == masked(addr.bytes, length);
}

bool IpPrefix::overlaps(const IpPrefix& other) const {
  // Two prefixes overlap exactly when they agree on the shorter one's bits.
  int shorter = std::min(length, other.length);
  return other.addr.family == addr.family &&
         masked(other.addr.bytes, shorter) == masked(addr.bytes, shorter);
}

std::string IpPrefix::str() const {
  return addr.str() + "/" + std::to_string(length);
}

} // namespace gw
