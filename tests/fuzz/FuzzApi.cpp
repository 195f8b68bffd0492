// SPDX-License-Identifier: MIT
// Fuzz target: the API's request handling at the JSON level, without a kernel. The input is
// taken (1) as a request body, decoded through the API schema (control/Api.h) as each POST
// endpoint decodes it, and each field through the value parsers, (2) as a state file for fromJson (whatever it accepts must survive
// toJson -> fromJson unchanged), (3) line by line as raw user text for each parser.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "tests/fuzz/FuzzTargets.h"
#include "base/Ip.h"
#include "netns/Namespace.h"
#include "control/Api.h"
#include "control/ApiValues.h"
#include "gateway/State.h"

namespace gw::fuzz {
namespace {

using nlohmann::json;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_api: invariant broken: %s\n", what);
    std::abort();
  }
}

// A field as text: a string, or an unsigned number written as digits.
std::optional<std::string> field(const json& body, const char* key) {
  if (!body.contains(key)) {
    return std::string();
  }
  const json& v = body[key];
  if (v.is_number_unsigned()) {
    return std::to_string(v.get<uint64_t>());
  }
  if (!v.is_string()) {
    return std::nullopt;
  }
  return v.get<std::string>();
}

void parseUserText(std::string_view text) {
  if (auto r = parsePortRange(text, "host port"); r) {
    check(r->first >= 1 && r->first <= r->last, "a parsed range is ordered and non-zero");
    auto again = parsePortRange(r->str(), "host port");
    check(again && again->first == r->first && again->last == r->last, "range round trip");
  }
  if (auto t = parseTarget(text); t) {
    int kinds = (t->addr ? 1 : 0) + (t->ns.empty() ? 0 : 1) + (t->netnsPath.empty() ? 0 : 1);
    check(kinds == 1, "a target is an address, a namespace name or a namespace path");
    check(t->netnsPath.empty() || isNetnsPath(t->netnsPath), "a namespace path is absolute");
    check(!t->addr || t->addr->isV4() || (text.starts_with('[') && t->addr->isV6()),
          "address targets are IPv4 or bracketed IPv6");
  }
  if (auto p = parseProto(text); p) {
    check(protoName(*p) == "tcp" || protoName(*p) == "udp" || protoName(*p) == "icmp",
          "proto is tcp, udp or icmp");
  }
  if (auto a = IpAddress::parse(text); a) {
    auto again = IpAddress::parse(a->str());
    check(again && *again == *a, "address round trip");
  }
  if (auto p = IpPrefix::parse(text); p) {
    auto again = IpPrefix::parse(p->str());
    check(again && *again == *p, "prefix round trip");
    (void)p->network().contains(p->addr);
  }
  (void)validateNamespaceName(text);
}

// A request body through the API schema: what decodes encodes to what decodes the same.
template <class T>
void roundTrip(const json& body, const char* what) {
  auto decoded = api::fromJson<T>(body);
  if (!decoded) {
    check(!decoded.error().message.empty(), "errors say what is wrong");
    check(decoded.error().kind == ErrorKind::Invalid, "a bad request is invalid, not internal");
    return;
  }
  json once = api::toJson(*decoded);
  auto again = api::fromJson<T>(once);
  check(again.has_value(), what);
  check(api::toJson(*again) == once, what);
}

void parseBody(const json& body) {
  roundTrip<api::ExposeRequest>(body, "expose request round trip");
  roundTrip<api::NamespaceAddRequest>(body, "namespace request round trip");
  roundTrip<api::MasqueradeRequest>(body, "masquerade request round trip");
  roundTrip<api::ConntrackQuery>(body, "conntrack query round trip");
  if (!body.is_object()) {
    return;
  }
  for (const char* key : {"hostPort", "target", "proto", "hostIp", "mode", "proxyProtocol",
                          "name", "bridge", "subnet", "source", "outIf"}) {
    if (auto v = field(body, key); v) {
      parseUserText(*v);
    }
  }
}

void parseState(std::string_view text) {
  auto state = fromJson(text, "fuzz");
  if (!state) {
    check(!state.error().message.empty(), "errors say what is wrong");
    return;
  }
  std::string once = toJson(*state);
  auto again = fromJson(once, "fuzz round trip");
  check(again.has_value(), "what fromJson accepted, toJson writes so fromJson accepts it");
  check(toJson(*again) == once, "state round trip");
}

} // namespace

int fuzzApi(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  json body = json::parse(text, nullptr, false);
  if (!body.is_discarded()) {
    parseBody(body);
    if (body.is_array()) {
      for (const auto& item : body) {
        parseBody(item);
      }
    }
  }
  parseState(text);
  while (!text.empty()) {
    size_t nl = text.find('\n');
    parseUserText(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  return 0;
}

} // namespace gw::fuzz
