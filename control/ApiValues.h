// SPDX-License-Identifier: MIT
// The values of the API, parsed once where they come in (a request, state.json, the journal):
// protocols, port ranges, targets, modes. Each enum has one spelling on the wire, here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/Error.h"
#include "base/Ip.h"

namespace gw {

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  unsigned size() const { return static_cast<unsigned>(last - first) + 1; }
  bool overlaps(const PortRange& o) const { return first <= o.last && o.first <= last; }
  // The range shifted to start at `start`, as long as this one.
  PortRange startingAt(uint16_t start) const {
    return {start, static_cast<uint16_t>(start + (last - first))};
  }
  std::string str() const;

  bool operator==(const PortRange&) const = default;
};

// "6000" or "6000-6009"; `what` names the field in errors.
Result<PortRange> parsePortRange(std::string_view text, std::string_view what);

// "NS:PORT[-END]" (a named namespace), "/PATH:PORT[-END]" (a network namespace file:
// /proc/PID/ns/net, a bind mount of one), "IPv4:PORT[-END]" or "[IPv6]:PORT[-END]".
struct TargetSpec {
  std::string text; // as the user wrote it
  std::string ns;
  std::string netnsPath; // absolute; "" unless the target is a namespace file
  std::optional<IpAddress> addr;
  PortRange ports;

  // The namespace to open: its name or its path; "" for an address.
  const std::string& netns() const { return ns.empty() ? netnsPath : ns; }

  bool operator==(const TargetSpec&) const = default;
};
Result<TargetSpec> parseTarget(std::string_view text);
// Whether a target's namespace is a path (it starts with '/'), not a name.
inline bool isNetnsPath(std::string_view netns) { return netns.starts_with('/'); }
constexpr size_t kMaxNetnsPath = 1024; // longer is no namespace file we expect

enum class Proto : uint8_t { Tcp = 6, Udp = 17, Icmp = 1 }; // the IPPROTO_ numbers

// "tcp" (or "") / "udp" / "icmp"; the error names --proto.
Result<Proto> parseProto(std::string_view text);
std::string_view protoName(Proto proto);
inline uint8_t ipProto(Proto proto) { return static_cast<uint8_t>(proto); }
constexpr uint8_t kIcmpv6 = 58; // IPPROTO_ICMPV6: conntrack lists IPv6 echo flows with it
// "tcp", "udp", "icmp", "icmpv6", "other": for a number read from a map.
std::string_view protoName(uint8_t ipProto);

// Which path an expose asks for.
enum class ExposeMode { Auto, Ebpf, Proxy };
Result<ExposeMode> parseExposeMode(std::string_view text); // "" = auto
std::string_view toString(ExposeMode mode);

enum class ProxyProtocol { None, V2 };
Result<ProxyProtocol> parseProxyProtocol(std::string_view text); // "" = none
std::string_view toString(ProxyProtocol p);                      // "" or "v2"

// Which address families an expose answers on: both by default, as Docker's -p does.
enum class IpFamilies { Both, V4, V6 };
Result<IpFamilies> parseIpFamilies(std::string_view text); // "both" (or "") / "4" / "6"
std::string_view toString(IpFamilies families);              // "both", "4", "6"
// Whether `families` holds `family` (AF_INET or AF_INET6).
bool includes(IpFamilies families, int family);

// Who owns an expose, for those that add and remove rules as a set (the CNI plugin:
// "cni/CONTAINERID/IFNAME"): 1-253 characters of [A-Za-z0-9._:/@+=-], not starting with '-'.
struct ExposeOwner {
  std::string text;
  bool operator==(const ExposeOwner&) const = default;
  auto operator<=>(const ExposeOwner&) const = default;
  // The CNI plugin's owners, "cni/NETWORK/CONTAINERID/IFNAME": attachments of network
  // namespaces, which no reboot keeps (gatewayd drops them at its first start after one).
  static constexpr std::string_view kCniPrefix = "cni/";
  bool isCniAttachment() const { return text.starts_with(kCniPrefix); }
};
Result<ExposeOwner> parseExposeOwner(std::string_view text);

// Which path serves an expose.
enum class ServingPath { Ebpf, Proxy, None };
Result<ServingPath> parseServingPath(std::string_view text);
std::string_view toString(ServingPath path);

// How the eBPF path hands a target its packets: `peer`, straight into the target namespace's
// eth0 (bpf_redirect_peer on a veth whose other end is the gateway host's); `route`, through
// the gateway host's routing (a FIB lookup, a bridge), slower.
enum class Forwarding { Peer, Route };
Result<Forwarding> parseForwarding(std::string_view text);
std::string_view toString(Forwarding forwarding);

// How a managed namespace is wired to the gateway host.
// Which inbound packets a masquerade mapping lets through (RFC 4787 REQ-8): only replies from
// the endpoint the source sent to (the default), or anything sent to its external endpoint.
enum class Filtering { AddressAndPortDependent, EndpointIndependent };
// "address-and-port-dependent" / "endpoint-independent"
Result<Filtering> parseFiltering(std::string_view text);
std::string_view toString(Filtering filtering);

enum class Wiring { Bridge, PointToPoint };
Result<Wiring> parseWiring(std::string_view text); // "bridge" / "p2p"
std::string_view toString(Wiring wiring);

// What a flow's translation does (enum gw_nat_kind bits): "dnat", "snat", "dnat+snat" or "".
struct NatKind {
  bool dnat = false;
  bool snat = false;

  static NatKind fromBits(uint8_t bits) { return {(bits & 1) != 0, (bits & 2) != 0}; }
  std::string str() const;
  bool operator==(const NatKind&) const = default;
};
Result<NatKind> parseNatKind(std::string_view text);

} // namespace gw
