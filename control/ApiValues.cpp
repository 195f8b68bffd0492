// SPDX-License-Identifier: MIT
#include "control/ApiValues.h"

#include <sys/socket.h>

#include <array>
#include <charconv>

#include "base/Names.h"

namespace gw {
namespace {

Result<uint16_t> parsePort(std::string_view text, std::string_view what) {
  unsigned value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return invalid(std::string(what) + ": '" + std::string(text) + "' is not a port (1-65535)");
  }
  return static_cast<uint16_t>(value);
}

} // namespace

std::string PortRange::str() const {
  return first == last ? std::to_string(first)
                       : std::to_string(first) + "-" + std::to_string(last);
}

Result<PortRange> parsePortRange(std::string_view text, std::string_view what) {
  size_t dash = text.find('-');
  auto first = parsePort(text.substr(0, dash), what);
  if (!first) {
    return std::unexpected(first.error());
  }
  PortRange range{*first, *first};
  if (dash != std::string_view::npos) {
    auto last = parsePort(text.substr(dash + 1), what);
    if (!last) {
      return std::unexpected(last.error());
    }
    if (*last < *first) {
      return invalid(std::string(what) + ": range '" + std::string(text) +
                     "' ends before it starts");
    }
    range.last = *last;
  }
  return range;
}

Result<TargetSpec> parseTarget(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return invalid("target '" + std::string(text) +
                   "': expected NS:PORT, /NETNS/PATH:PORT, IP:PORT or [IPv6]:PORT");
  }
  TargetSpec spec;
  spec.text = std::string(text);
  std::string_view host = text.substr(0, colon);
  auto ports = parsePortRange(text.substr(colon + 1), "target '" + std::string(text) + "'");
  if (!ports) {
    return std::unexpected(ports.error());
  }
  spec.ports = *ports;
  if (isNetnsPath(host)) {
    // Opened and checked to be a network namespace by gatewayd; here only its shape.
    if (host.find('\0') != std::string_view::npos) {
      return invalid("target: namespace path holds a NUL byte");
    }
    if (host.size() > kMaxNetnsPath) {
      return invalid("target: namespace path '" + std::string(host.substr(0, 64)) +
                     "...' is longer than " + std::to_string(kMaxNetnsPath) + " bytes");
    }
    if (host.ends_with('/')) {
      return invalid("target '" + std::string(text) + "': '" + std::string(host) +
                     "' is a directory, not a network namespace file");
    }
    spec.netnsPath = std::string(host);
    return spec;
  }
  if (host.starts_with('[') && host.ends_with(']')) {
    auto addr = IpAddress::parse(host.substr(1, host.size() - 2));
    if (!addr || !addr->isV6()) {
      return invalid("target '" + std::string(text) + "': '" + std::string(host) +
                      "' is not an IPv6 address in brackets");
    }
    spec.addr = *addr;
    return spec;
  }
  if (auto addr = IpAddress::parse(host); addr) {
    if (!addr->isV4()) {
      return invalid("target '" + std::string(text) + "': write an IPv6 target as [" +
                      std::string(host) + "]:PORT");
    }
    spec.addr = *addr;
  } else if (auto valid = validateNamespaceName(host); valid) {
    spec.ns = std::string(host);
  } else {
    return invalid("target '" + std::string(text) + "': '" + std::string(host) +
                    "' is neither an IPv4 address nor a namespace name");
  }
  return spec;
}

namespace {

// An enum's one spelling on the wire, both ways.
template <class E>
struct Spelling {
  E value;
  std::string_view text;
};

template <class E, size_t N>
std::optional<E> valueOf(const std::array<Spelling<E>, N>& table, std::string_view text) {
  for (const auto& s : table) {
    if (s.text == text) {
      return s.value;
    }
  }
  return std::nullopt;
}

template <class E, size_t N>
std::string_view textOf(const std::array<Spelling<E>, N>& table, E value) {
  for (const auto& s : table) {
    if (s.value == value) {
      return s.text;
    }
  }
  return table.front().text;
}

constexpr std::array<Spelling<Proto>, 3> kProtos{
    {{Proto::Tcp, "tcp"}, {Proto::Udp, "udp"}, {Proto::Icmp, "icmp"}}};
constexpr std::array<Spelling<ExposeMode>, 3> kExposeModes{
    {{ExposeMode::Auto, "auto"}, {ExposeMode::Ebpf, "ebpf"}, {ExposeMode::Proxy, "proxy"}}};
constexpr std::array<Spelling<ProxyProtocol>, 2> kProxyProtocols{
    {{ProxyProtocol::None, ""}, {ProxyProtocol::V2, "v2"}}};
constexpr std::array<Spelling<ServingPath>, 3> kServingPaths{
    {{ServingPath::Ebpf, "ebpf"}, {ServingPath::Proxy, "proxy"}, {ServingPath::None, "none"}}};
constexpr std::array<Spelling<Filtering>, 2> kFilterings{
    {{Filtering::AddressAndPortDependent, "address-and-port-dependent"},
     {Filtering::EndpointIndependent, "endpoint-independent"}}};

constexpr std::array<Spelling<IpFamilies>, 3> kIpFamilies{
    {{IpFamilies::Both, "both"}, {IpFamilies::V4, "4"}, {IpFamilies::V6, "6"}}};

constexpr std::array<Spelling<Wiring>, 2> kWirings{
    {{Wiring::Bridge, "bridge"}, {Wiring::PointToPoint, "p2p"}}};

} // namespace

Result<Proto> parseProto(std::string_view text) {
  if (auto p = valueOf(kProtos, text.empty() ? "tcp" : text)) {
    return *p;
  }
  return invalid("--proto '" + std::string(text) + "': expected tcp or udp");
}

std::string_view protoName(Proto proto) {
  return textOf(kProtos, proto);
}

std::string_view protoName(uint8_t proto) {
  for (const auto& s : kProtos) {
    if (ipProto(s.value) == proto) {
      return s.text;
    }
  }
  return proto == kIcmpv6 ? "icmpv6" : "other";
}

Result<ExposeMode> parseExposeMode(std::string_view text) {
  if (auto m = valueOf(kExposeModes, text.empty() ? "auto" : text)) {
    return *m;
  }
  return invalid("--mode '" + std::string(text) + "': expected auto, ebpf or proxy");
}

std::string_view toString(ExposeMode mode) {
  return textOf(kExposeModes, mode);
}

Result<ProxyProtocol> parseProxyProtocol(std::string_view text) {
  if (auto p = valueOf(kProxyProtocols, text)) {
    return *p;
  }
  return invalid("--proxy-protocol '" + std::string(text) + "': only v2 is supported");
}

std::string_view toString(ProxyProtocol p) {
  return textOf(kProxyProtocols, p);
}

constexpr std::array<Spelling<Forwarding>, 2> kForwardings{
    {{Forwarding::Peer, "peer"}, {Forwarding::Route, "route"}}};

Result<Forwarding> parseForwarding(std::string_view text) {
  if (auto f = valueOf(kForwardings, text)) {
    return *f;
  }
  return invalid("forwarding '" + std::string(text) + "': expected peer or route");
}

std::string_view toString(Forwarding forwarding) {
  return textOf(kForwardings, forwarding);
}

Result<ServingPath> parseServingPath(std::string_view text) {
  if (auto p = valueOf(kServingPaths, text)) {
    return *p;
  }
  return invalid("serving path '" + std::string(text) + "': expected ebpf, proxy or none");
}

std::string_view toString(ServingPath path) {
  return textOf(kServingPaths, path);
}

Result<Filtering> parseFiltering(std::string_view text) {
  if (auto f = valueOf(kFilterings, text)) {
    return *f;
  }
  return invalid("--filtering '" + std::string(text) +
                 "': expected address-and-port-dependent or endpoint-independent");
}

std::string_view toString(Filtering filtering) {
  return textOf(kFilterings, filtering);
}

Result<IpFamilies> parseIpFamilies(std::string_view text) {
  if (auto f = valueOf(kIpFamilies, text.empty() ? "both" : text)) {
    return *f;
  }
  return invalid("--family '" + std::string(text) + "': expected 4, 6 or both");
}

std::string_view toString(IpFamilies families) {
  return textOf(kIpFamilies, families);
}

Result<ExposeOwner> parseExposeOwner(std::string_view text) {
  constexpr size_t kMax = 253;
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("._:/@+=-").find(c) != std::string_view::npos;
  };
  if (text.empty() || text.size() > kMax) {
    return invalid("owner '" + std::string(text.substr(0, kMax)) + "': expected 1 to " +
                   std::to_string(kMax) + " characters");
  }
  if (text.front() == '-') {
    return invalid("owner '" + std::string(text) + "': must not start with '-'");
  }
  for (char c : text) {
    if (!allowed(c)) {
      return invalid("owner '" + std::string(text) +
                     "': only letters, digits and ._:/@+=- are allowed");
    }
  }
  return ExposeOwner{std::string(text)};
}

bool includes(IpFamilies families, int family) {
  switch (families) {
  case IpFamilies::Both:
    return family == AF_INET || family == AF_INET6;
  case IpFamilies::V4:
    return family == AF_INET;
  case IpFamilies::V6:
    return family == AF_INET6;
  }
  return false;
}

Result<Wiring> parseWiring(std::string_view text) {
  if (auto w = valueOf(kWirings, text)) {
    return *w;
  }
  return invalid("wiring '" + std::string(text) + "': expected bridge or p2p");
}

std::string_view toString(Wiring wiring) {
  return textOf(kWirings, wiring);
}

std::string NatKind::str() const {
  return std::string(dnat ? "dnat" : "") + (dnat && snat ? "+" : "") + (snat ? "snat" : "");
}

Result<NatKind> parseNatKind(std::string_view text) {
  for (uint8_t bits = 0; bits < 4; ++bits) {
    if (NatKind::fromBits(bits).str() == text) {
      return NatKind::fromBits(bits);
    }
  }
  return invalid("nat '" + std::string(text) + "': expected dnat, snat, dnat+snat or empty");
}

} // namespace gw
