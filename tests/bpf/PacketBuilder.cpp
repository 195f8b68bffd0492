// SPDX-License-Identifier: MIT
#include "tests/bpf/PacketBuilder.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <stdexcept>

namespace gw::test {

namespace {

constexpr size_t kEthLen = 14;
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

void put16(Bytes& b, size_t off, uint16_t hostValue) {
  b[off] = static_cast<uint8_t>(hostValue >> 8);
  b[off + 1] = static_cast<uint8_t>(hostValue);
}

uint16_t get16(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

uint32_t get32net(std::span<const uint8_t> b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

void putAddr(Bytes& b, size_t off, uint32_t addrNet) { std::memcpy(&b[off], &addrNet, 4); }

// One's complement sum of the IPv4 pseudo header, unfolded.
uint32_t pseudoSum(uint32_t saddrNet, uint32_t daddrNet, uint8_t proto, size_t len) {
  Bytes ph(12, 0);
  putAddr(ph, 0, saddrNet);
  putAddr(ph, 4, daddrNet);
  ph[9] = proto;
  put16(ph, 10, static_cast<uint16_t>(len));
  uint32_t sum = 0;
  for (size_t i = 0; i < ph.size(); i += 2) {
    sum += get16(ph, i);
  }
  return sum;
}

Bytes paddedOptions(const Bytes& options) {
  Bytes o = options;
  while (o.size() % 4 != 0) {
    o.push_back(0); // EOL
  }
  if (o.size() > 40) {
    throw std::invalid_argument("IPv4 options longer than 40 bytes");
  }
  return o;
}

bool l4ChecksumOk(std::span<const uint8_t> l4, uint32_t saddr, uint32_t daddr, uint8_t proto) {
  if (proto == kProtoIcmp) {
    return inetChecksum(l4) == 0;
  }
  return inetChecksum(l4, pseudoSum(saddr, daddr, proto, l4.size())) == 0;
}

} // namespace

uint32_t ipv4(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    throw std::invalid_argument("bad IPv4 address: " + text);
  }
  return a.s_addr;
}

std::string ipv4Text(uint32_t addrNet) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{.s_addr = addrNet};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

uint16_t inetChecksum(std::span<const uint8_t> data, uint32_t initial) {
  uint64_t sum = initial;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) {
    sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  }
  if (i < data.size()) {
    sum += static_cast<uint32_t>(data[i] << 8);
  }
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(~sum);
}

Bytes tcpSegment(const Ip4& ip, uint16_t sport, uint16_t dport, uint8_t flags,
                 const Bytes& payload) {
  return tcpSegment(ip,
                    Tcp{.sport = sport,
                        .dport = dport,
                        .seq = kTcpDefaultSeq,
                        .ack = (flags & kTcpAck) ? kTcpDefaultAck : 0,
                        .flags = flags,
                        .window = 64240},
                    payload);
}

Bytes tcpSegment(const Ip4& ip, const Tcp& tcp, const Bytes& payload) {
  Bytes t(20, 0);
  put16(t, 0, tcp.sport);
  put16(t, 2, tcp.dport);
  put16(t, 4, static_cast<uint16_t>(tcp.seq >> 16));
  put16(t, 6, static_cast<uint16_t>(tcp.seq));
  put16(t, 8, static_cast<uint16_t>(tcp.ack >> 16));
  put16(t, 10, static_cast<uint16_t>(tcp.ack));
  t[12] = 5 << 4;
  t[13] = tcp.flags;
  put16(t, 14, tcp.window);
  t.insert(t.end(), payload.begin(), payload.end());
  put16(t, 16, inetChecksum(t, pseudoSum(ip.saddr, ip.daddr, kProtoTcp, t.size())));
  return t;
}

Bytes udpDatagram(const Ip4& ip, uint16_t sport, uint16_t dport, const Bytes& payload,
                  bool zeroCsum) {
  Bytes u(8, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint16_t>(8 + payload.size()));
  u.insert(u.end(), payload.begin(), payload.end());
  if (!zeroCsum) {
    uint16_t c = inetChecksum(u, pseudoSum(ip.saddr, ip.daddr, kProtoUdp, u.size()));
    put16(u, 6, c == 0 ? 0xffff : c);
  }
  return u;
}

Bytes ipPacket(const Ip4& ip, uint8_t proto, const Bytes& l4) {
  Bytes opts = paddedOptions(ip.options);
  size_t ihl = 20 + opts.size();
  Bytes p(ihl, 0);
  p[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
  put16(p, 2, static_cast<uint16_t>(ihl + l4.size()));
  put16(p, 4, ip.id);
  uint16_t frag = static_cast<uint16_t>(ip.fragOffset / 8);
  if (ip.moreFragments) {
    frag |= 0x2000;
  }
  if (ip.dontFragment) {
    frag |= 0x4000;
  }
  put16(p, 6, frag);
  p[8] = ip.ttl;
  p[9] = proto;
  putAddr(p, 12, ip.saddr);
  putAddr(p, 16, ip.daddr);
  std::copy(opts.begin(), opts.end(), p.begin() + 20);
  put16(p, 10, inetChecksum(p));
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

Bytes ethFrame(const Bytes& l3, uint16_t ethertype) {
  Bytes f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0, 0};
  put16(f, 12, ethertype);
  f.insert(f.end(), l3.begin(), l3.end());
  return f;
}

Bytes swapMacs(Bytes frame) {
  std::swap_ranges(frame.begin(), frame.begin() + 6, frame.begin() + 6);
  return frame;
}

Bytes l3Of(const Bytes& frame) { return Bytes(frame.begin() + kEthLen, frame.end()); }

Bytes tcpFrame(const Ip4& ip, uint16_t sport, uint16_t dport, uint8_t flags,
               const Bytes& payload) {
  return ethFrame(ipPacket(ip, kProtoTcp, tcpSegment(ip, sport, dport, flags, payload)));
}

Bytes udpFrame(const Ip4& ip, uint16_t sport, uint16_t dport, const Bytes& payload,
               bool zeroCsum) {
  return ethFrame(ipPacket(ip, kProtoUdp, udpDatagram(ip, sport, dport, payload, zeroCsum)));
}

Bytes icmpEchoFrame(const Ip4& ip, uint8_t type, uint16_t id, uint16_t seq,
                    const Bytes& payload) {
  Bytes m(8, 0);
  m[0] = type;
  put16(m, 4, id);
  put16(m, 6, seq);
  m.insert(m.end(), payload.begin(), payload.end());
  put16(m, 2, inetChecksum(m));
  return ethFrame(ipPacket(ip, kProtoIcmp, m));
}

Bytes icmpErrorFrame(const Ip4& ip, uint8_t type, uint8_t code, const Bytes& quotedIp,
                     size_t quoteLen) {
  Bytes m(8, 0);
  m[0] = type;
  m[1] = code;
  size_t n = std::min(quoteLen, quotedIp.size());
  m.insert(m.end(), quotedIp.begin(), quotedIp.begin() + static_cast<long>(n));
  put16(m, 2, inetChecksum(m));
  return ethFrame(ipPacket(ip, kProtoIcmp, m));
}

std::vector<Bytes> fragmentFrames(const Ip4& ip, uint8_t proto, const Bytes& l4,
                                  size_t fragSize) {
  if (fragSize == 0 || fragSize % 8 != 0) {
    throw std::invalid_argument("fragment size must be a positive multiple of 8");
  }
  std::vector<Bytes> frames;
  for (size_t off = 0; off < l4.size(); off += fragSize) {
    size_t n = std::min(fragSize, l4.size() - off);
    Ip4 f = ip;
    f.fragOffset = static_cast<uint16_t>(off);
    f.moreFragments = off + n < l4.size();
    Bytes part(l4.begin() + static_cast<long>(off), l4.begin() + static_cast<long>(off + n));
    frames.push_back(ethFrame(ipPacket(f, proto, part)));
  }
  return frames;
}

Decoded decode(const Bytes& frame) {
  Decoded d;
  std::span<const uint8_t> b(frame);
  if (b.size() < kEthLen + 20 || get16(b, 12) != 0x0800) {
    return d;
  }
  auto ip = b.subspan(kEthLen);
  size_t ihl = (ip[0] & 0xf) * 4u;
  size_t totLen = get16(ip, 2);
  if ((ip[0] >> 4) != 4 || ihl < 20 || totLen < ihl || totLen > ip.size()) {
    return d;
  }
  ip = ip.first(totLen);
  d.ipv4 = true;
  d.ipCsumOk = inetChecksum(ip.first(ihl)) == 0;
  d.saddr = get32net(ip, 12);
  d.daddr = get32net(ip, 16);
  d.proto = ip[9];
  d.ttl = ip[8];
  uint16_t frag = get16(ip, 6);
  d.fragment = (frag & 0x3fff) != 0;
  auto l4 = ip.subspan(ihl);
  d.l4CsumOk = true;
  if (frag & 0x1fff) {
    return d; // a later fragment: no L4 header
  }
  if (d.proto == kProtoTcp && l4.size() >= 20) {
    d.sport = get16(l4, 0);
    d.dport = get16(l4, 2);
    d.l4Csum = get16(l4, 16);
  } else if (d.proto == kProtoUdp && l4.size() >= 8) {
    d.sport = get16(l4, 0);
    d.dport = get16(l4, 2);
    d.l4Csum = get16(l4, 6);
  } else if (d.proto == kProtoIcmp && l4.size() >= 8) {
    d.icmpType = l4[0];
    d.icmpCode = l4[1];
    d.l4Csum = get16(l4, 2);
    if (d.icmpType == 0 || d.icmpType == 8) {
      d.sport = get16(l4, 4);
    }
  } else {
    return d;
  }
  if (!d.fragment && !(d.proto == kProtoUdp && d.l4Csum == 0)) {
    d.l4CsumOk = l4ChecksumOk(l4, d.saddr, d.daddr, d.proto);
  }

  bool isError = d.proto == kProtoIcmp &&
                 (d.icmpType == 3 || d.icmpType == 11 || d.icmpType == 12);
  if (!isError || l4.size() < 8 + 20 + 8) {
    return d;
  }
  auto in = l4.subspan(8);
  size_t iihl = (in[0] & 0xf) * 4u;
  if (iihl < 20 || in.size() < iihl + 8) {
    return d;
  }
  d.hasInner = true;
  d.innerIpCsumOk = inetChecksum(in.first(iihl)) == 0;
  d.innerSaddr = get32net(in, 12);
  d.innerDaddr = get32net(in, 16);
  d.innerProto = in[9];
  auto il4 = in.subspan(iihl);
  size_t il4Len = get16(in, 2) - iihl;
  d.innerL4CsumOk = true;
  if (d.innerProto == kProtoIcmp) {
    d.innerSport = get16(il4, 4);
  } else {
    d.innerSport = get16(il4, 0);
    d.innerDport = get16(il4, 2);
  }
  bool complete = il4.size() >= il4Len;
  bool udpNone = d.innerProto == kProtoUdp && get16(il4, 6) == 0;
  if (complete && !udpNone) {
    d.innerL4CsumOk = l4ChecksumOk(il4.first(il4Len), d.innerSaddr, d.innerDaddr,
                                   d.innerProto);
  }
  return d;
}


// ---- IPv6 ----

namespace {

constexpr uint8_t kProtoIcmp6 = 58;

// One's complement sum of the IPv6 pseudo header (RFC 8200 8.1), unfolded.
uint32_t pseudoSum6(const Addr6& saddr, const Addr6& daddr, uint8_t proto, size_t len) {
  Bytes ph(40, 0);
  std::copy(saddr.begin(), saddr.end(), ph.begin());
  std::copy(daddr.begin(), daddr.end(), ph.begin() + 16);
  put16(ph, 32, static_cast<uint16_t>(len >> 16));
  put16(ph, 34, static_cast<uint16_t>(len));
  ph[39] = proto;
  uint32_t sum = 0;
  for (size_t i = 0; i < ph.size(); i += 2) {
    sum += get16(ph, i);
  }
  return sum;
}

// Options after the 2-byte header, padded with PadN (or Pad1) to a multiple of 8.
Ext6 optionsHeader(uint8_t type, const Bytes& options) {
  Bytes rest(1, 0); // length, set below
  rest.insert(rest.end(), options.begin(), options.end());
  size_t pad = (8 - (rest.size() + 1) % 8) % 8;
  if (pad == 1) {
    rest.push_back(0); // Pad1
  } else if (pad > 1) {
    rest.push_back(1); // PadN
    rest.push_back(static_cast<uint8_t>(pad - 2));
    rest.insert(rest.end(), pad - 2, 0);
  }
  if ((rest.size() + 1) / 8 - 1 > 255) {
    throw std::invalid_argument("extension header longer than 2048 bytes");
  }
  rest[0] = static_cast<uint8_t>((rest.size() + 1) / 8 - 1);
  return Ext6{.type = type, .rest = rest};
}

} // namespace

Addr6 ipv6(const std::string& text) {
  Addr6 a{};
  if (inet_pton(AF_INET6, text.c_str(), a.data()) != 1) {
    throw std::invalid_argument("bad IPv6 address: " + text);
  }
  return a;
}

Ext6 hopByHop(const Bytes& options) { return optionsHeader(kExtHopByHop, options); }

Ext6 destOptions(const Bytes& options) { return optionsHeader(kExtDestOptions, options); }

Ext6 routingHeader(uint8_t routingType, uint8_t segmentsLeft, const std::vector<Addr6>& addrs) {
  Bytes rest = {static_cast<uint8_t>(addrs.size() * 2), routingType, segmentsLeft, 0, 0, 0, 0};
  for (const Addr6& a : addrs) {
    rest.insert(rest.end(), a.begin(), a.end());
  }
  return Ext6{.type = kExtRouting, .rest = rest};
}

Ext6 fragmentHeader(uint16_t offsetBytes, bool more, uint32_t id) {
  if (offsetBytes % 8 != 0) {
    throw std::invalid_argument("fragment offset must be a multiple of 8");
  }
  Bytes rest(7, 0);
  put16(rest, 1, static_cast<uint16_t>(offsetBytes | (more ? 1 : 0)));
  put16(rest, 3, static_cast<uint16_t>(id >> 16));
  put16(rest, 5, static_cast<uint16_t>(id));
  return Ext6{.type = kExtFragment, .rest = rest};
}

Bytes ip6Packet(const Ip6& ip, uint8_t proto, const Bytes& l4) {
  Bytes p(40, 0);
  p[0] = 0x60;
  p[6] = ip.ext.empty() ? proto : ip.ext.front().type;
  p[7] = ip.hopLimit;
  std::copy(ip.saddr.begin(), ip.saddr.end(), p.begin() + 8);
  std::copy(ip.daddr.begin(), ip.daddr.end(), p.begin() + 24);
  for (size_t i = 0; i < ip.ext.size(); ++i) {
    p.push_back(i + 1 < ip.ext.size() ? ip.ext[i + 1].type : proto);
    p.insert(p.end(), ip.ext[i].rest.begin(), ip.ext[i].rest.end());
  }
  p.insert(p.end(), l4.begin(), l4.end());
  if (p.size() - 40 > 0xffff) {
    throw std::invalid_argument("IPv6 payload longer than 65535 bytes");
  }
  put16(p, 4, static_cast<uint16_t>(p.size() - 40));
  return p;
}

Bytes tcp6Segment(const Ip6& ip, const Tcp& tcp, const Bytes& payload) {
  Bytes t(20, 0);
  put16(t, 0, tcp.sport);
  put16(t, 2, tcp.dport);
  put16(t, 4, static_cast<uint16_t>(tcp.seq >> 16));
  put16(t, 6, static_cast<uint16_t>(tcp.seq));
  put16(t, 8, static_cast<uint16_t>(tcp.ack >> 16));
  put16(t, 10, static_cast<uint16_t>(tcp.ack));
  t[12] = 5 << 4;
  t[13] = tcp.flags;
  put16(t, 14, tcp.window);
  t.insert(t.end(), payload.begin(), payload.end());
  put16(t, 16, inetChecksum(t, pseudoSum6(ip.saddr, ip.daddr, kProtoTcp, t.size())));
  return t;
}

Bytes udp6Datagram(const Ip6& ip, uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes u(8, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint16_t>(8 + payload.size()));
  u.insert(u.end(), payload.begin(), payload.end());
  // IPv6 UDP always has a checksum (RFC 8200 8.1): 0 is sent as 0xffff.
  uint16_t c = inetChecksum(u, pseudoSum6(ip.saddr, ip.daddr, kProtoUdp, u.size()));
  put16(u, 6, c == 0 ? 0xffff : c);
  return u;
}

Bytes icmp6Message(const Ip6& ip, uint8_t type, uint8_t code, const Bytes& body) {
  Bytes m = {type, code, 0, 0};
  m.insert(m.end(), body.begin(), body.end());
  put16(m, 2, inetChecksum(m, pseudoSum6(ip.saddr, ip.daddr, kProtoIcmp6, m.size())));
  return m;
}

Bytes tcp6Frame(const Ip6& ip, uint16_t sport, uint16_t dport, uint8_t flags,
                const Bytes& payload) {
  Tcp tcp{.sport = sport,
          .dport = dport,
          .seq = kTcpDefaultSeq,
          .ack = (flags & kTcpAck) ? kTcpDefaultAck : 0,
          .flags = flags,
          .window = 64240};
  return ethFrame(ip6Packet(ip, kProtoTcp, tcp6Segment(ip, tcp, payload)), kEtherTypeIpv6);
}

Bytes udp6Frame(const Ip6& ip, uint16_t sport, uint16_t dport, const Bytes& payload) {
  return ethFrame(ip6Packet(ip, kProtoUdp, udp6Datagram(ip, sport, dport, payload)),
                  kEtherTypeIpv6);
}

Bytes icmp6EchoFrame(const Ip6& ip, uint8_t type, uint16_t id, uint16_t seq,
                     const Bytes& payload) {
  Bytes body(4, 0);
  put16(body, 0, id);
  put16(body, 2, seq);
  body.insert(body.end(), payload.begin(), payload.end());
  return ethFrame(ip6Packet(ip, kProtoIcmp6, icmp6Message(ip, type, 0, body)), kEtherTypeIpv6);
}

Bytes icmp6ErrorFrame(const Ip6& ip, uint8_t type, uint8_t code, const Bytes& quotedIp,
                      size_t quoteLen) {
  Bytes body(4, 0); // unused / MTU / pointer
  size_t n = std::min(quoteLen, quotedIp.size());
  body.insert(body.end(), quotedIp.begin(), quotedIp.begin() + static_cast<long>(n));
  return ethFrame(ip6Packet(ip, kProtoIcmp6, icmp6Message(ip, type, code, body)),
                  kEtherTypeIpv6);
}

bool l4Checksum6Ok(std::span<const uint8_t> l4, const Addr6& saddr, const Addr6& daddr,
                   uint8_t proto) {
  return inetChecksum(l4, pseudoSum6(saddr, daddr, proto, l4.size())) == 0;
}

Decoded6 decode6(const Bytes& frame) {
  Decoded6 d;
  std::span<const uint8_t> b(frame);
  if (b.size() < kEthLen + 40 || get16(b, 12) != kEtherTypeIpv6) {
    return d;
  }
  auto ip = b.subspan(kEthLen);
  size_t totLen = 40u + get16(ip, 4);
  if ((ip[0] >> 4) != 6 || totLen > ip.size()) {
    return d;
  }
  ip = ip.first(totLen);
  std::copy(ip.begin() + 8, ip.begin() + 24, d.saddr.begin());
  std::copy(ip.begin() + 24, ip.begin() + 40, d.daddr.begin());
  d.hopLimit = ip[7];
  uint8_t next = ip[6];
  size_t off = 40;
  while (next == kExtHopByHop || next == kExtRouting || next == kExtDestOptions ||
         next == kExtFragment) {
    if (d.ext.size() == 8 || off + 8 > ip.size()) {
      return d;
    }
    d.ext.push_back(next);
    size_t len = next == kExtFragment ? 8 : (ip[off + 1] + 1u) * 8;
    if (next == kExtFragment) {
      uint16_t fo = get16(ip, off + 2);
      d.fragment = (fo & 0xfff9) != 0;
      d.laterFragment = (fo >> 3) != 0;
      d.fragId = static_cast<uint32_t>(get16(ip, off + 4)) << 16 | get16(ip, off + 6);
    }
    next = ip[off];
    off += len;
    if (d.laterFragment) {
      break;
    }
  }
  if (off > ip.size()) {
    return d;
  }
  d.ipv6 = true;
  d.proto = next;
  d.l4CsumOk = true;
  auto l4 = ip.subspan(off);
  if (d.laterFragment) {
    return d;
  }
  if ((d.proto == kProtoTcp && l4.size() >= 20) || (d.proto == kProtoUdp && l4.size() >= 8)) {
    d.sport = get16(l4, 0);
    d.dport = get16(l4, 2);
  } else if (d.proto == kProtoIcmp6 && l4.size() >= 8) {
    d.icmpType = l4[0];
    if (d.icmpType == 128 || d.icmpType == 129) {
      d.sport = get16(l4, 4);
    }
  } else {
    return d;
  }
  if (!d.fragment) {
    d.l4CsumOk = l4Checksum6Ok(l4, d.saddr, d.daddr, d.proto);
  }
  return d;
}

std::string hexDump(const Bytes& bytes) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", bytes[i]);
    s += buf;
    s += (i % 16 == 15) ? '\n' : ' ';
  }
  return s;
}

} // namespace gw::test
