// SPDX-License-Identifier: MIT
// PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2): the binary header a proxy sends
// to the backend first so it learns the real client address. Only what a TCP proxy needs:
// PROXY/LOCAL commands, TCP over IPv4/IPv6, no TLVs written (TLVs are skipped when read).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/Error.h"

namespace gw {

inline constexpr std::array<uint8_t, 12> kProxyV2Signature = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
inline constexpr size_t kProxyV2FixedSize = 16;
inline constexpr size_t kProxyV2MaxSize = kProxyV2FixedSize + 36; // TCP over IPv6

// Writes a PROXY header for a TCP connection from `src` (the client) to `dst` (the address it
// reached); returns the length. IPv4-mapped IPv6 addresses are sent as IPv4; when the families
// still differ, both are sent as IPv6.
Result<size_t> encodeProxyV2(const sockaddr_storage& src, const sockaddr_storage& dst,
                             std::span<uint8_t> out);

struct ProxyV2Header {
  bool local = false;     // LOCAL command: no addresses (health checks)
  sockaddr_storage src{}; // ss_family AF_UNSPEC when the family is not TCP over IPv4/IPv6
  sockaddr_storage dst{};
  size_t length = 0;      // bytes of `in` the header took, TLVs included
};

// Parses a header at the start of `in`. Error code EAGAIN: incomplete, read more; EINVAL: not a
// PROXY v2 header.
Result<ProxyV2Header> decodeProxyV2(std::span<const uint8_t> in);

} // namespace gw
