// SPDX-License-Identifier: MIT
#include "control/Paging.h"

#include <charconv>
#include <limits>

namespace gw::api {
namespace {

// The text split at '/', exactly `n` parts.
std::optional<std::vector<std::string_view>> splitSlashes(std::string_view text, size_t n) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t slash = text.find('/');
    parts.push_back(text.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    text.remove_prefix(slash + 1);
  }
  if (parts.size() != n) {
    return std::nullopt;
  }
  return parts;
}

template <class I>
std::optional<I> number(std::string_view text, I min, I max) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || value < min ||
      value > max) {
    return std::nullopt;
  }
  return static_cast<I>(value);
}

// "tcp", "udp", "icmp", "icmpv6" or an IP protocol number.
std::optional<uint8_t> ipProtocol(std::string_view text) {
  if (auto named = parseProto(text); named && !text.empty()) {
    return ipProto(*named);
  }
  if (text == protoName(kIcmpv6)) {
    return kIcmpv6;
  }
  return number<uint8_t>(text, 0, 255);
}

std::string protoText(uint8_t proto) {
  std::string_view name = protoName(proto);
  return name == "other" ? std::to_string(proto) : std::string(name);
}

} // namespace

Result<PageLimit> parsePageLimit(std::string_view text) {
  auto n = number<uint32_t>(text, 1, std::numeric_limits<uint32_t>::max());
  if (!n) {
    return invalid("limit: '" + std::string(text) + "' is not a whole number of 1 or more");
  }
  return PageLimit{*n};
}

std::string FlowCursor::str() const {
  return protoText(proto) + "/" + src.str() + "/" + std::to_string(sport) + "/" + dst.str() +
         "/" + std::to_string(dport);
}

Result<FlowCursor> parseFlowCursor(std::string_view text) {
  auto bad = [&] {
    return invalid("after: '" + std::string(text) +
                   "' is not a conntrack cursor (PROTO/SRC/SPORT/DST/DPORT, the \"next\" of "
                   "the page before)");
  };
  auto parts = splitSlashes(text, 5);
  if (!parts) {
    return bad();
  }
  auto proto = ipProtocol((*parts)[0]);
  auto src = IpAddress::parse((*parts)[1]);
  auto sport = number<uint16_t>((*parts)[2], 0, 65535);
  auto dst = IpAddress::parse((*parts)[3]);
  auto dport = number<uint16_t>((*parts)[4], 0, 65535);
  if (!proto || !src || !sport || !dst || !dport) {
    return bad();
  }
  return FlowCursor{*proto, *src, *sport, *dst, *dport};
}

std::string ExposeCursor::str() const {
  return std::string(protoName(proto)) + "/" + (hostIp ? hostIp->str() : "*") + "/" +
         std::to_string(port);
}

Result<ExposeCursor> parseExposeCursor(std::string_view text) {
  auto bad = [&] {
    return invalid("after: '" + std::string(text) +
                   "' is not an expose cursor (PROTO/HOSTIP/PORT, the \"next\" of the page "
                   "before)");
  };
  auto parts = splitSlashes(text, 3);
  if (!parts || (*parts)[0].empty()) {
    return bad();
  }
  auto proto = parseProto((*parts)[0]);
  auto port = number<uint16_t>((*parts)[2], 1, 65535);
  if (!proto || !port) {
    return bad();
  }
  ExposeCursor cursor{*proto, std::nullopt, *port};
  if ((*parts)[1] != "*") {
    auto addr = IpAddress::parse((*parts)[1]);
    if (!addr) {
      return bad();
    }
    cursor.hostIp = *addr;
  }
  return cursor;
}

} // namespace gw::api
