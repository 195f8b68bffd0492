// SPDX-License-Identifier: MIT
#include "control/ApiValues.h"

#include <netinet/in.h>

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
    return invalid("target '" + std::string(text) + "': expected NS:PORT, IP:PORT or [IPv6]:PORT");
  }
  TargetSpec spec;
  spec.text = std::string(text);
  std::string_view host = text.substr(0, colon);
  auto ports = parsePortRange(text.substr(colon + 1), "target '" + std::string(text) + "'");
  if (!ports) {
    return std::unexpected(ports.error());
  }
  spec.ports = *ports;
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

Result<Proto> parseProto(std::string_view text) {
  if (text.empty() || text == "tcp") {
    return Proto::Tcp;
  }
  if (text == "udp") {
    return Proto::Udp;
  }
  if (text == "icmp") {
    return Proto::Icmp;
  }
  return invalid("--proto '" + std::string(text) + "': expected tcp or udp");
}

std::string_view protoName(Proto proto) {
  return protoName(ipProto(proto));
}

std::optional<Proto> protoFromIp(uint8_t ipProto) {
  switch (ipProto) {
  case IPPROTO_TCP: return Proto::Tcp;
  case IPPROTO_UDP: return Proto::Udp;
  case IPPROTO_ICMP: return Proto::Icmp;
  default: return std::nullopt;
  }
}

std::string_view protoName(uint8_t proto) {
  switch (proto) {
  case IPPROTO_TCP: return "tcp";
  case IPPROTO_UDP: return "udp";
  case IPPROTO_ICMP: return "icmp";
  default: return "other";
  }
}

Result<ExposeMode> parseExposeMode(std::string_view text) {
  if (text.empty() || text == "auto") {
    return ExposeMode::Auto;
  }
  if (text == "ebpf") {
    return ExposeMode::Ebpf;
  }
  if (text == "proxy") {
    return ExposeMode::Proxy;
  }
  return invalid("--mode '" + std::string(text) + "': expected auto, ebpf or proxy");
}

std::string_view toString(ExposeMode mode) {
  switch (mode) {
  case ExposeMode::Auto: return "auto";
  case ExposeMode::Ebpf: return "ebpf";
  case ExposeMode::Proxy: return "proxy";
  }
  return "auto";
}

Result<ProxyProtocol> parseProxyProtocol(std::string_view text) {
  if (text.empty()) {
    return ProxyProtocol::None;
  }
  if (text == "v2") {
    return ProxyProtocol::V2;
  }
  return invalid("--proxy-protocol '" + std::string(text) + "': only v2 is supported");
}

std::string_view toString(ProxyProtocol p) {
  return p == ProxyProtocol::V2 ? "v2" : "";
}

Result<ServingPath> parseServingPath(std::string_view text) {
  if (text == "ebpf") {
    return ServingPath::Ebpf;
  }
  if (text == "proxy") {
    return ServingPath::Proxy;
  }
  if (text == "none") {
    return ServingPath::None;
  }
  return invalid("serving path '" + std::string(text) + "': expected ebpf, proxy or none");
}

std::string_view toString(ServingPath path) {
  switch (path) {
  case ServingPath::Ebpf: return "ebpf";
  case ServingPath::Proxy: return "proxy";
  case ServingPath::None: return "none";
  }
  return "none";
}

Result<Wiring> parseWiring(std::string_view text) {
  if (text == "bridge") {
    return Wiring::Bridge;
  }
  if (text == "p2p") {
    return Wiring::PointToPoint;
  }
  return invalid("wiring '" + std::string(text) + "': expected bridge or p2p");
}

std::string_view toString(Wiring wiring) {
  return wiring == Wiring::Bridge ? "bridge" : "p2p";
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
