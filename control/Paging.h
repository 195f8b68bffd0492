// SPDX-License-Identifier: MIT
// Paged listings. GET /v1/exposes, /v1/conntrack, /v1/namespaces and /v1/masquerade take
// ?limit=N&after=CURSOR and then answer {"items": [...], "next": CURSOR}, "next" absent on the
// last page. A cursor is the key of the last item listed (never a position), so items added
// or removed between two pages neither repeat nor push others out. Without limit and after a
// listing is one array, as it always was.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "control/ApiCodec.h"
#include "control/ApiValues.h"

namespace gw::api {

// The longest page: a larger limit is served as this many (the answer's "next" goes on), so
// one request never holds the daemon for a whole table. ~2 MB of flows; gwctl asks for it.
inline constexpr uint32_t kMaxPageLimit = 5000;

// ?limit=N, N >= 1.
struct PageLimit {
  uint32_t value = 0;
  bool operator==(const PageLimit&) const = default;
};
Result<PageLimit> parsePageLimit(std::string_view text);

// Where a conntrack page ends: the original tuple of its last flow, as
// "PROTO/SRC/SPORT/DST/DPORT" ("tcp/198.18.0.2/40000/198.18.0.1/6000", an IPv6 flow
// "tcp/fd00:88::2/40000/fd00:18::2/80"; PROTO tcp, udp, icmp, icmpv6 or a number). Pages list flows in the order of (proto, src, dst, sport, dport).
struct FlowCursor {
  uint8_t proto = 0;
  IpAddress src;
  uint16_t sport = 0;
  IpAddress dst;
  uint16_t dport = 0;

  std::string str() const;
  bool operator==(const FlowCursor&) const = default;
};
Result<FlowCursor> parseFlowCursor(std::string_view text);

// Where an expose page ends: "PROTO/HOSTIP/PORT" of its last expose ("tcp/*/6000", * for any
// host address; PORT is a range's first). Pages list exposes in this order.
struct ExposeCursor {
  Proto proto = Proto::Tcp;
  std::optional<IpAddress> hostIp;
  uint16_t port = 0;

  std::string str() const;
  auto operator<=>(const ExposeCursor&) const = default;
};
Result<ExposeCursor> parseExposeCursor(std::string_view text);

inline Json toJsonValue(const PageLimit& v) { return v.value; }
inline Json toJsonValue(const FlowCursor& v) { return v.str(); }
inline Json toJsonValue(const ExposeCursor& v) { return v.str(); }
inline Status fromJsonValue(const Json& j, PageLimit& out, std::string_view label) {
  if (j.is_number_unsigned()) {
    return detail::parsed(parsePageLimit(std::to_string(j.get<uint64_t>())), out);
  }
  return detail::parsedText(j, out, label, parsePageLimit, false);
}
inline Status fromJsonValue(const Json& j, FlowCursor& out, std::string_view label) {
  return detail::parsedText(j, out, label, parseFlowCursor, false);
}
inline Status fromJsonValue(const Json& j, ExposeCursor& out, std::string_view label) {
  return detail::parsedText(j, out, label, parseExposeCursor, false);
}

// ?limit=N&after=CURSOR of a listing whose items are keyed by C.
template <class C>
struct ListQuery {
  std::optional<PageLimit> limit{};
  std::optional<C> after{};

  bool paged() const { return limit.has_value() || after.has_value(); }
  // The page's length: the limit asked for, at most kMaxPageLimit (also without a limit).
  size_t pageSize() const { return std::min(limit ? limit->value : kMaxPageLimit, kMaxPageLimit); }
};
template <class C>
constexpr auto fieldsOf(const ListQuery<C>*) {
  using T = ListQuery<C>;
  return std::tuple{Field{"limit", &T::limit, Need::Optional, "limit"},
                    Field{"after", &T::after, Need::Optional, "after"}};
}

// A paged answer: `next` is the cursor to ask the following page with, absent on the last.
template <class T, class C>
struct Page {
  std::vector<T> items{};
  std::optional<C> next{};
};
template <class T, class C>
constexpr auto fieldsOf(const Page<T, C>*) {
  using P = Page<T, C>;
  return std::tuple{Field{"items", &P::items}, Field{"next", &P::next}};
}

} // namespace gw::api
