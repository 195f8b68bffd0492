// SPDX-License-Identifier: MIT
// Crafts Ethernet/IPv4/TCP/UDP/ICMP frames with correct checksums, and decodes frames while
// verifying every checksum, for BPF_PROG_TEST_RUN tests and the benchmark harness.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace gw::test {

using Bytes = std::vector<uint8_t>;

// "10.0.0.1" -> the address in network order.
uint32_t ipv4(const std::string& text);
std::string ipv4Text(uint32_t addrNet);

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

// An IPv4 header; addresses in network order, the rest in host order.
struct Ip4 {
  uint32_t saddr = 0;
  uint32_t daddr = 0;
  uint8_t ttl = 64;
  uint16_t id = 0x1234;
  uint16_t fragOffset = 0; // in bytes, a multiple of 8
  bool moreFragments = false;
  bool dontFragment = false;
  Bytes options;           // padded to a multiple of 4 by the builder
};

// A TCP header's fields (host order) for frames that need exact sequence numbers.
struct Tcp {
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;
};

// The sequence number tcpFrame()/tcpSegment() put in every segment, and its ACK number.
inline constexpr uint32_t kTcpDefaultSeq = 0x01020304;
inline constexpr uint32_t kTcpDefaultAck = 0x05060000;

// One-call frames (Ethernet + IPv4 + L4), checksums correct.
Bytes tcpFrame(const Ip4& ip, uint16_t sport, uint16_t dport, uint8_t flags,
               const Bytes& payload = {});
// zeroCsum: send with checksum 0 ("none").
Bytes udpFrame(const Ip4& ip, uint16_t sport, uint16_t dport, const Bytes& payload = {},
               bool zeroCsum = false);
// type 8 = request, 0 = reply.
Bytes icmpEchoFrame(const Ip4& ip, uint8_t type, uint16_t id, uint16_t seq,
                    const Bytes& payload = {});
// An ICMP error quoting `quotedIp` (an IPv4 packet, without Ethernet; truncated to quoteLen).
Bytes icmpErrorFrame(const Ip4& ip, uint8_t type, uint8_t code, const Bytes& quotedIp,
                     size_t quoteLen = 576);

// Building blocks.
Bytes tcpSegment(const Ip4& ip, uint16_t sport, uint16_t dport, uint8_t flags,
                 const Bytes& payload);
Bytes tcpSegment(const Ip4& ip, const Tcp& tcp, const Bytes& payload = {});
Bytes udpDatagram(const Ip4& ip, uint16_t sport, uint16_t dport, const Bytes& payload,
                  bool zeroCsum);
// IPv4 header (+ options) + l4, for protocol `proto`; header checksum computed.
Bytes ipPacket(const Ip4& ip, uint8_t proto, const Bytes& l4);
Bytes ethFrame(const Bytes& l3, uint16_t ethertype = 0x0800);
// The frame with its Ethernet source and destination swapped (an answer's).
Bytes swapMacs(Bytes frame);
// Splits an L4 payload (already checksummed) into IP fragments of at most fragSize bytes
// (a multiple of 8); returns frames.
std::vector<Bytes> fragmentFrames(const Ip4& ip, uint8_t proto, const Bytes& l4,
                                  size_t fragSize);
// Strips the Ethernet header.
Bytes l3Of(const Bytes& frame);

uint16_t inetChecksum(std::span<const uint8_t> data, uint32_t initial = 0);

// A decoded frame. Checksum flags are true when the checksum verifies (or is legitimately
// absent: UDP zero, or a fragment whose L4 checksum cannot be checked alone).
struct Decoded {
  bool ipv4 = false;
  bool ipCsumOk = false;
  bool l4CsumOk = false;
  uint32_t saddr = 0, daddr = 0;
  uint8_t proto = 0, ttl = 0;
  uint16_t sport = 0, dport = 0; // host order; ICMP echo: id in sport
  uint16_t l4Csum = 0;           // raw value as on the wire (network order bytes as uint16)
  uint8_t icmpType = 0, icmpCode = 0;
  bool fragment = false;
  // ICMP errors: the quoted header.
  bool hasInner = false;
  bool innerIpCsumOk = false;
  bool innerL4CsumOk = true;     // true when absent/unverifiable as well
  uint32_t innerSaddr = 0, innerDaddr = 0;
  uint16_t innerSport = 0, innerDport = 0;
  uint8_t innerProto = 0;
  bool allCsumOk() const { return ipCsumOk && l4CsumOk && (!hasInner || innerIpCsumOk); }
};

Decoded decode(const Bytes& frame);

std::string hexDump(const Bytes& bytes);

} // namespace gw::test
