// SPDX-License-Identifier: MIT
// Parsing of what users write for exposes: ports, port ranges, targets, protocols.
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
  std::string str() const;
};

// "6000" or "6000-6009"; `what` names the field in errors.
Result<PortRange> parsePortRange(std::string_view text, std::string_view what);

// "NS:PORT[-END]" (a named namespace), "IPv4:PORT[-END]" or "[IPv6]:PORT[-END]".
struct TargetSpec {
  std::string ns;
  std::optional<IpAddress> addr;
  PortRange ports;
};
Result<TargetSpec> parseTarget(std::string_view text);

// "tcp" or "udp" to IPPROTO_*.
Result<uint8_t> parseProto(std::string_view text);
std::string_view protoName(uint8_t proto);

} // namespace gw
