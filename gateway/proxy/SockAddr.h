// SPDX-License-Identifier: MIT
// Numeric socket addresses: parse "ip" + port, print "ip:port" / "[ip6]:port".
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "base/Error.h"

namespace gw {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;
};

// Parses a numeric IPv4 or IPv6 address (no names: the proxy must not block on DNS).
Result<SockAddr> parseSockAddr(const std::string& ip, uint16_t port);
std::string formatSockAddr(const sockaddr_storage& addr);

} // namespace gw
