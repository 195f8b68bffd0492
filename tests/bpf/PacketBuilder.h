// SPDX-License-Identifier: MIT
// Crafts Ethernet/IPv4/IPv6/TCP/UDP/ICMP/ICMPv6 frames with correct checksums, and decodes
// (IPv4) frames while verifying every checksum, for BPF_PROG_TEST_RUN tests and the benchmark
// harness.
#pragma once

#include <array>
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

// ---- IPv6 ----

using Addr6 = std::array<uint8_t, 16>;

// "2001:db8::1" -> the address's bytes.
Addr6 ipv6(const std::string& text);

inline constexpr uint8_t kExtHopByHop = 0;
inline constexpr uint8_t kExtRouting = 43;
inline constexpr uint8_t kExtFragment = 44;
inline constexpr uint8_t kExtDestOptions = 60;

// One extension header: its type and every byte of it but the first (Next Header, which
// ip6Packet fills in from the chain).
struct Ext6 {
  uint8_t type = 0;
  Bytes rest;
};

// Options padded (PadN) to a multiple of 8 bytes with the 2-byte header.
Ext6 hopByHop(const Bytes& options = {});
Ext6 destOptions(const Bytes& options = {});
// A routing header of routingType with these addresses (type 0 layout: 4 reserved bytes,
// then the addresses).
Ext6 routingHeader(uint8_t routingType, uint8_t segmentsLeft, const std::vector<Addr6>& addrs);
// offsetBytes: a multiple of 8.
Ext6 fragmentHeader(uint16_t offsetBytes, bool more, uint32_t id);

// An IPv6 header and its extension headers, in order.
struct Ip6 {
  Addr6 saddr{};
  Addr6 daddr{};
  uint8_t hopLimit = 64;
  std::vector<Ext6> ext;
};

// IPv6 header + extension headers + l4, the last Next Header being `proto`.
Bytes ip6Packet(const Ip6& ip, uint8_t proto, const Bytes& l4);
// Checksums use the RFC 8200 pseudo header (saddr, daddr as given, upper-layer length, proto).
Bytes tcp6Segment(const Ip6& ip, const Tcp& tcp, const Bytes& payload = {});
Bytes udp6Datagram(const Ip6& ip, uint16_t sport, uint16_t dport, const Bytes& payload = {});
// ICMPv6 message of type/code with body (after the 4-byte type/code/checksum).
Bytes icmp6Message(const Ip6& ip, uint8_t type, uint8_t code, const Bytes& body);

inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;

Bytes tcp6Frame(const Ip6& ip, uint16_t sport, uint16_t dport, uint8_t flags,
                const Bytes& payload = {});
Bytes udp6Frame(const Ip6& ip, uint16_t sport, uint16_t dport, const Bytes& payload = {});
// type 128 = request, 129 = reply.
Bytes icmp6EchoFrame(const Ip6& ip, uint8_t type, uint16_t id, uint16_t seq,
                     const Bytes& payload = {});
// An ICMPv6 error (1..4) quoting `quotedIp` (an IPv6 packet) up to quoteLen bytes.
Bytes icmp6ErrorFrame(const Ip6& ip, uint8_t type, uint8_t code, const Bytes& quotedIp,
                      size_t quoteLen = 1232);

// One's complement check of an IPv6 upper-layer checksum: l4 is the whole upper-layer
// packet (its checksum in place), proto its Next Header.
bool l4Checksum6Ok(std::span<const uint8_t> l4, const Addr6& saddr, const Addr6& daddr,
                   uint8_t proto);


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

// A decoded IPv6 frame: the extension-header chain walked as the data path walks it (at
// most 8 headers). l4CsumOk as Decoded's (a later fragment's cannot be checked alone).
struct Decoded6 {
  bool ipv6 = false;       // an IPv6 header and a chain that parses
  bool l4CsumOk = false;
  Addr6 saddr{}, daddr{};
  uint8_t hopLimit = 0;
  std::vector<uint8_t> ext; // the extension headers' types, in order
  uint8_t proto = 0;        // the Next Header ending the chain
  bool fragment = false, laterFragment = false;
  uint32_t fragId = 0;
  uint16_t sport = 0, dport = 0; // host order; ICMPv6 echo: id in sport
  uint8_t icmpType = 0;
};

Decoded6 decode6(const Bytes& frame);

std::string hexDump(const Bytes& bytes);

} // namespace gw::test
