// SPDX-License-Identifier: MIT
#include "gateway/proxy/ProxyProtocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gw {
namespace {

constexpr uint8_t kVersionProxy = 0x21; // version 2, PROXY
constexpr uint8_t kVersionLocal = 0x20; // version 2, LOCAL
constexpr uint8_t kTcp4 = 0x11;
constexpr uint8_t kTcp6 = 0x21;
constexpr size_t kTcp4Len = 12;
constexpr size_t kTcp6Len = 36;

// Turns ::ffff:a.b.c.d into a.b.c.d so an IPv4 client on a dual-stack listener stays IPv4.
sockaddr_storage unmap(const sockaddr_storage& addr) {
  if (addr.ss_family != AF_INET6) {
    return addr;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
  if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
    return addr;
  }
  sockaddr_storage out{};
  auto* in4 = reinterpret_cast<sockaddr_in*>(&out);
  in4->sin_family = AF_INET;
  in4->sin_port = in6->sin6_port;
  std::memcpy(&in4->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
  return out;
}

sockaddr_in6 toV6(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    return *reinterpret_cast<const sockaddr_in6*>(&addr);
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&addr);
  sockaddr_in6 out{};
  out.sin6_family = AF_INET6;
  out.sin6_port = in4->sin_port;
  out.sin6_addr.s6_addr[10] = 0xff;
  out.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&out.sin6_addr.s6_addr[12], &in4->sin_addr, 4);
  return out;
}

bool isInet(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET || addr.ss_family == AF_INET6;
}

} // namespace

Result<size_t> encodeProxyV2(const sockaddr_storage& src, const sockaddr_storage& dst,
                             std::span<uint8_t> out) {
  if (!isInet(src) || !isInet(dst)) {
    return fail("PROXY v2: only TCP over IPv4/IPv6 is encoded", EAFNOSUPPORT);
  }
  sockaddr_storage s = unmap(src);
  sockaddr_storage d = unmap(dst);
  bool v4 = s.ss_family == AF_INET && d.ss_family == AF_INET;
  size_t addrLen = v4 ? kTcp4Len : kTcp6Len;
  if (out.size() < kProxyV2FixedSize + addrLen) {
    return fail("PROXY v2: output buffer too small", ENOSPC);
  }
  uint8_t* p = out.data();
  std::memcpy(p, kProxyV2Signature.data(), kProxyV2Signature.size());
  p[12] = kVersionProxy;
  p[13] = v4 ? kTcp4 : kTcp6;
  p[14] = static_cast<uint8_t>(addrLen >> 8);
  p[15] = static_cast<uint8_t>(addrLen & 0xff);
  p += kProxyV2FixedSize;
  if (v4) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&s);
    const auto* d4 = reinterpret_cast<const sockaddr_in*>(&d);
    std::memcpy(p, &s4->sin_addr, 4);
    std::memcpy(p + 4, &d4->sin_addr, 4);
    std::memcpy(p + 8, &s4->sin_port, 2); // already network order
    std::memcpy(p + 10, &d4->sin_port, 2);
  } else {
    sockaddr_in6 s6 = toV6(s);
    sockaddr_in6 d6 = toV6(d);
    std::memcpy(p, &s6.sin6_addr, 16);
    std::memcpy(p + 16, &d6.sin6_addr, 16);
    std::memcpy(p + 32, &s6.sin6_port, 2);
    std::memcpy(p + 34, &d6.sin6_port, 2);
  }
  return kProxyV2FixedSize + addrLen;
}

Result<ProxyV2Header> decodeProxyV2(std::span<const uint8_t> in) {
  size_t have = std::min(in.size(), kProxyV2Signature.size());
  if (std::memcmp(in.data(), kProxyV2Signature.data(), have) != 0) {
    return fail("PROXY v2: bad signature", EINVAL);
  }
  if (in.size() < kProxyV2FixedSize) {
    return fail("PROXY v2: incomplete header", EAGAIN);
  }
  uint8_t version = in[12];
  uint8_t family = in[13];
  size_t len = static_cast<size_t>(in[14]) << 8 | in[15];
  if (version != kVersionProxy && version != kVersionLocal) {
    return fail("PROXY v2: bad version/command byte", EINVAL);
  }
  if (in.size() < kProxyV2FixedSize + len) {
    return fail("PROXY v2: incomplete address block", EAGAIN);
  }
  ProxyV2Header h;
  h.length = kProxyV2FixedSize + len;
  h.local = version == kVersionLocal;
  const uint8_t* p = in.data() + kProxyV2FixedSize;
  if (h.local) {
    return h; // addresses, if any, must be ignored
  }
  if (family == kTcp4) {
    if (len < kTcp4Len) {
      return fail("PROXY v2: short IPv4 address block", EINVAL);
    }
    auto* s4 = reinterpret_cast<sockaddr_in*>(&h.src);
    auto* d4 = reinterpret_cast<sockaddr_in*>(&h.dst);
    s4->sin_family = AF_INET;
    d4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, p, 4);
    std::memcpy(&d4->sin_addr, p + 4, 4);
    std::memcpy(&s4->sin_port, p + 8, 2);
    std::memcpy(&d4->sin_port, p + 10, 2);
  } else if (family == kTcp6) {
    if (len < kTcp6Len) {
      return fail("PROXY v2: short IPv6 address block", EINVAL);
    }
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&h.src);
    auto* d6 = reinterpret_cast<sockaddr_in6*>(&h.dst);
    s6->sin6_family = AF_INET6;
    d6->sin6_family = AF_INET6;
    std::memcpy(&s6->sin6_addr, p, 16);
    std::memcpy(&d6->sin6_addr, p + 16, 16);
    std::memcpy(&s6->sin6_port, p + 32, 2);
    std::memcpy(&d6->sin6_port, p + 34, 2);
  }
  // Other families (UDP, UNIX, UNSPEC) keep AF_UNSPEC: the receiver uses the real peer.
  return h;
}

} // namespace gw
