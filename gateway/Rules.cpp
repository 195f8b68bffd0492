// SPDX-License-Identifier: MIT
#include "gateway/Rules.h"

#include <netinet/in.h>

#include <charconv>

#include "netns/Namespace.h"

namespace gw {
namespace {

Result<uint16_t> parsePort(std::string_view text, std::string_view what) {
  unsigned value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return fail(std::string(what) + ": '" + std::string(text) + "' is not a port (1-65535)",
                EINVAL);
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
      return fail(std::string(what) + ": range '" + std::string(text) + "' ends before it starts",
                  EINVAL);
    }
    range.last = *last;
  }
  return range;
}

Result<TargetSpec> parseTarget(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return fail("target '" + std::string(text) + "': expected NS:PORT, IP:PORT or [IPv6]:PORT",
                EINVAL);
  }
  TargetSpec spec;
  std::string_view host = text.substr(0, colon);
  auto ports = parsePortRange(text.substr(colon + 1), "target '" + std::string(text) + "'");
  if (!ports) {
    return std::unexpected(ports.error());
  }
  spec.ports = *ports;
  if (host.starts_with('[') && host.ends_with(']')) {
    auto addr = IpAddress::parse(host.substr(1, host.size() - 2));
    if (!addr || !addr->isV6()) {
      return fail("target '" + std::string(text) + "': '" + std::string(host) +
                      "' is not an IPv6 address in brackets",
                  EINVAL);
    }
    spec.addr = *addr;
    return spec;
  }
  if (auto addr = IpAddress::parse(host); addr) {
    if (!addr->isV4()) {
      return fail("target '" + std::string(text) + "': write an IPv6 target as [" +
                      std::string(host) + "]:PORT",
                  EINVAL);
    }
    spec.addr = *addr;
  } else if (auto valid = validateNamespaceName(host); valid) {
    spec.ns = std::string(host);
  } else {
    return fail("target '" + std::string(text) + "': '" + std::string(host) +
                    "' is neither an IPv4 address nor a namespace name",
                EINVAL);
  }
  return spec;
}

Result<uint8_t> parseProto(std::string_view text) {
  if (text.empty() || text == "tcp") {
    return static_cast<uint8_t>(IPPROTO_TCP);
  }
  if (text == "udp") {
    return static_cast<uint8_t>(IPPROTO_UDP);
  }
  return fail("--proto '" + std::string(text) + "': expected tcp or udp", EINVAL);
}

std::string_view protoName(uint8_t proto) {
  switch (proto) {
  case IPPROTO_TCP: return "tcp";
  case IPPROTO_UDP: return "udp";
  case IPPROTO_ICMP: return "icmp";
  default: return "other";
  }
}

} // namespace gw
