// SPDX-License-Identifier: MIT
// JSON <-> the API's structs, driven by one field list per struct (Api.h): a field name is
// spelled once and serves both directions. Decoding never throws: a wrong field is an
// ErrorKind::Invalid naming it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "control/ApiValues.h"

namespace gw::api {

using Json = nlohmann::json;

enum class Need { Required, Optional };

// One field of struct T: its JSON name, its member, whether a request must carry it, and how
// errors call it ("host port", "--subnet"; default: field 'name').
template <class T, class M>
struct Field {
  const char* name;
  M T::*member;
  Need need = Need::Required;
  const char* label = nullptr;
};

// A struct with a field list: `constexpr auto fieldsOf(const T*)` found by ADL.
template <class T>
concept Record = requires { fieldsOf(static_cast<const T*>(nullptr)); };

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// ---- values -> JSON

inline Json toJsonValue(const std::string& v) { return v; }
inline Json toJsonValue(bool v) { return v; }
inline Json toJsonValue(double v) { return v; }
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
Json toJsonValue(I v) {
  return v;
}
inline Json toJsonValue(const IpAddress& v) { return v.str(); }
inline Json toJsonValue(const IpPrefix& v) { return v.str(); }
inline Json toJsonValue(const PortRange& v) { return v.str(); }
inline Json toJsonValue(const TargetSpec& v) { return v.text; }
inline Json toJsonValue(Proto v) { return std::string(protoName(v)); }
inline Json toJsonValue(ExposeMode v) { return std::string(toString(v)); }
inline Json toJsonValue(ProxyProtocol v) { return std::string(toString(v)); }
inline Json toJsonValue(ServingPath v) { return std::string(toString(v)); }
inline Json toJsonValue(Forwarding v) { return std::string(toString(v)); }
inline Json toJsonValue(Wiring v) { return std::string(toString(v)); }
inline Json toJsonValue(Filtering v) { return std::string(toString(v)); }
inline Json toJsonValue(IpFamilies v) { return std::string(toString(v)); }
inline Json toJsonValue(const ExposeOwner& v) { return v.text; }
inline Json toJsonValue(NatKind v) { return v.str(); }
template <class V>
Json toJsonValue(const std::vector<V>& v);
template <class V>
Json toJsonValue(const std::map<std::string, V>& v);
template <Record T>
Json toJsonValue(const T& v);

template <class V>
Json toJsonValue(const std::vector<V>& v) {
  Json out = Json::array();
  for (const auto& x : v) {
    out.push_back(toJsonValue(x));
  }
  return out;
}

template <class V>
Json toJsonValue(const std::map<std::string, V>& v) {
  Json out = Json::object();
  for (const auto& [k, x] : v) {
    out[k] = toJsonValue(x);
  }
  return out;
}

template <Record T>
Json toJsonValue(const T& v) {
  Json out = Json::object();
  std::apply(
      [&](const auto&... f) {
        auto one = [&](const auto& field) {
          const auto& m = v.*(field.member);
          if constexpr (IsOptional<std::remove_cvref_t<decltype(m)>>::value) {
            if (m) {
              out[field.name] = toJsonValue(*m);
            }
          } else {
            out[field.name] = toJsonValue(m);
          }
        };
        (one(f), ...);
      },
      fieldsOf(static_cast<const T*>(nullptr)));
  return out;
}

template <class T>
Json toJson(const T& v) {
  return toJsonValue(v);
}

// ---- text -> JSON

// A request body as JSON, refusing what a JSON parser takes silently: a key given twice in one
// object (which of the two wins is not for us to guess) and a NUL byte in a key or string.
// Two linear passes, a SAX check then the plain parse: nlohmann's parse with a callback is
// quadratic in an array's length (5.5 s for a batch of 65,535 exposes, 0.16 s without).
namespace detail {
struct StrictJsonCheck final : nlohmann::json_sax<Json> {
  std::vector<std::vector<std::string>> keys; // the keys seen, per open object
  std::string problem;
  bool stringOk(const std::string& s, const char* what) {
    if (s.find('\0') != std::string::npos) {
      problem = std::string("a ") + what + " holds a NUL byte";
      return false;
    }
    return true;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t& val) override { return stringOk(val, "string"); }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys.emplace_back();
    return true;
  }
  bool key(string_t& val) override {
    if (!stringOk(val, "key")) {
      return false;
    }
    if (std::ranges::find(keys.back(), val) != keys.back().end()) {
      problem = "key '" + val + "' is given twice in one object";
      return false;
    }
    keys.back().push_back(val);
    return true;
  }
  bool end_object() override {
    keys.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }
};
} // namespace detail

inline Result<Json> parseStrictJson(std::string_view text, std::string_view what) {
  detail::StrictJsonCheck check;
  bool valid = Json::sax_parse(text, &check);
  if (!check.problem.empty()) {
    return invalid(std::string(what) + ": " + check.problem);
  }
  Json out = valid ? Json::parse(text, nullptr, false) : Json(Json::value_t::discarded);
  if (out.is_discarded()) {
    return invalid(std::string(what) + " is not valid JSON");
  }
  return out;
}

// ---- JSON -> values (`label` names the field in errors)

namespace detail {
inline std::unexpected<Error> mustBe(std::string_view label, const char* what) {
  return invalid(std::string(label) + " must be " + what);
}
template <class T>
Status parsed(Result<T> r, T& out) {
  if (!r) {
    return std::unexpected(r.error());
  }
  out = std::move(*r);
  return {};
}
inline Result<std::string> text(const Json& j, std::string_view label) {
  if (!j.is_string()) {
    return detail::mustBe(label, "a string");
  }
  return j.get<std::string>();
}
} // namespace detail

inline Status fromJsonValue(const Json& j, std::string& out, std::string_view label) {
  return detail::parsed(detail::text(j, label), out);
}
inline Status fromJsonValue(const Json& j, bool& out, std::string_view label) {
  // A query string's values are text: ?keepFlows=true.
  if (j.is_string() && (j == "true" || j == "false")) {
    out = j == "true";
    return {};
  }
  if (!j.is_boolean()) {
    return detail::mustBe(label, "true or false");
  }
  out = j.get<bool>();
  return {};
}
inline Status fromJsonValue(const Json& j, double& out, std::string_view label) {
  if (!j.is_number()) {
    return detail::mustBe(label, "a number");
  }
  out = j.get<double>();
  return {};
}
// nlohmann's get<T>() would truncate 70000 to a port and cast 1e10 or -1 with undefined
// behaviour: the range is checked first.
template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
Status fromJsonValue(const Json& j, I& out, std::string_view label) {
  if constexpr (std::is_signed_v<I>) {
    if (!j.is_number_integer() || j.get<int64_t>() < std::numeric_limits<I>::min() ||
        j.get<int64_t>() > std::numeric_limits<I>::max()) {
      return detail::mustBe(label, "an integer");
    }
    out = static_cast<I>(j.get<int64_t>());
  } else {
    if (!j.is_number_unsigned() || j.get<uint64_t>() > std::numeric_limits<I>::max()) {
      return invalid(std::string(label) + " must be an integer from 0 to " +
                     std::to_string(std::numeric_limits<I>::max()));
    }
    out = static_cast<I>(j.get<uint64_t>());
  }
  return {};
}
namespace detail {
// A string parsed by `parse` into `out`. The IP parsers do not name the field, so their
// message gets the label in front; ApiValues.h's parsers name their flag (--proto) already.
template <class T, class Parse>
Status parsedText(const Json& j, T& out, std::string_view label, Parse parse, bool addLabel) {
  auto t = text(j, label);
  if (!t) {
    return std::unexpected(t.error());
  }
  auto v = parse(*t);
  if (!v) {
    return addLabel ? invalid(std::string(label) + ": " + v.error().message)
                    : std::unexpected(v.error());
  }
  out = std::move(*v);
  return {};
}
} // namespace detail

inline Status fromJsonValue(const Json& j, IpAddress& out, std::string_view label) {
  return detail::parsedText(j, out, label, IpAddress::parse, true);
}
inline Status fromJsonValue(const Json& j, IpPrefix& out, std::string_view label) {
  return detail::parsedText(j, out, label, IpPrefix::parse, true);
}
// A port range is "6000", "6000-6009", or a JSON number.
inline Status fromJsonValue(const Json& j, PortRange& out, std::string_view label) {
  if (j.is_number_unsigned()) {
    return detail::parsed(parsePortRange(std::to_string(j.get<uint64_t>()), label), out);
  }
  return detail::parsedText(
      j, out, label, [&](std::string_view t) { return parsePortRange(t, label); }, false);
}
#define GW_API_PARSED_FROM_JSON(Type, parse)                                                      \
  inline Status fromJsonValue(const Json& j, Type& out, std::string_view label) {             \
    return detail::parsedText(j, out, label, parse, false);                                   \
  }
GW_API_PARSED_FROM_JSON(TargetSpec, parseTarget)
GW_API_PARSED_FROM_JSON(Proto, parseProto)
GW_API_PARSED_FROM_JSON(ExposeMode, parseExposeMode)
GW_API_PARSED_FROM_JSON(ProxyProtocol, parseProxyProtocol)
GW_API_PARSED_FROM_JSON(ServingPath, parseServingPath)
GW_API_PARSED_FROM_JSON(Forwarding, parseForwarding)
GW_API_PARSED_FROM_JSON(Wiring, parseWiring)
GW_API_PARSED_FROM_JSON(Filtering, parseFiltering)
GW_API_PARSED_FROM_JSON(IpFamilies, parseIpFamilies)
GW_API_PARSED_FROM_JSON(ExposeOwner, parseExposeOwner)
GW_API_PARSED_FROM_JSON(NatKind, parseNatKind)
#undef GW_API_PARSED_FROM_JSON

template <class V>
Status fromJsonValue(const Json& j, std::vector<V>& out, std::string_view label);
template <class V>
Status fromJsonValue(const Json& j, std::map<std::string, V>& out, std::string_view label);
template <Record T>
Status fromJsonValue(const Json& j, T& out, std::string_view label);

template <class V>
Status fromJsonValue(const Json& j, std::vector<V>& out, std::string_view label) {
  if (!j.is_array()) {
    return detail::mustBe(label, "an array");
  }
  out.clear();
  for (size_t i = 0; i < j.size(); ++i) {
    V v{};
    if (auto r = fromJsonValue(j[i], v, std::string(label) + " #" + std::to_string(i + 1)); !r) {
      return r;
    }
    out.push_back(std::move(v));
  }
  return {};
}

template <class V>
Status fromJsonValue(const Json& j, std::map<std::string, V>& out, std::string_view label) {
  if (!j.is_object()) {
    return detail::mustBe(label, "an object");
  }
  out.clear();
  for (const auto& [k, x] : j.items()) {
    V v{};
    if (auto r = fromJsonValue(x, v, std::string(label) + "." + k); !r) {
      return r;
    }
    out.emplace(k, std::move(v));
  }
  return {};
}

template <Record T>
Status fromJsonValue(const Json& j, T& out, std::string_view label) {
  if (!j.is_object()) {
    return detail::mustBe(label, "a JSON object");
  }
  Status status;
  std::apply(
      [&](const auto&... f) {
        auto one = [&](const auto& field) -> Status {
          std::string fieldLabel =
              field.label != nullptr ? field.label : std::string("field '") + field.name + "'";
          auto& m = out.*(field.member);
          using M = std::remove_cvref_t<decltype(m)>;
          // A std::optional member is optional whatever its field says.
          bool required = field.need == Need::Required && !IsOptional<M>::value;
          bool present = j.contains(field.name) && !j[field.name].is_null();
          // An optional field given as "" is absent: `gwctl expose --mode ""` means the default.
          bool blank = present && j[field.name].is_string() &&
                       j[field.name].template get_ref<const std::string&>().empty();
          if (!present || (blank && !required)) {
            if (required) {
              return invalid(std::string("missing field '") + field.name + "'");
            }
            return {};
          }
          if constexpr (IsOptional<M>::value) {
            typename M::value_type v{};
            if (auto r = fromJsonValue(j[field.name], v, fieldLabel); !r) {
              return r;
            }
            m = std::move(v);
            return {};
          } else {
            return fromJsonValue(j[field.name], m, fieldLabel);
          }
        };
        ((status = status ? one(f) : status), ...);
      },
      fieldsOf(static_cast<const T*>(nullptr)));
  return status;
}

template <class T>
Result<T> fromJson(const Json& j, std::string_view what = "request body") {
  T out{};
  if (auto r = fromJsonValue(j, out, what); !r) {
    return std::unexpected(r.error());
  }
  return out;
}

// Fails naming the first key of `j` that T has no field for (queries refuse unknown filters).
template <Record T>
Status rejectUnknownFields(const Json& j, std::string_view what) {
  for (const auto& [key, value] : j.items()) {
    bool known = std::apply(
        [&](const auto&... f) { return ((key == f.name) || ...); },
        fieldsOf(static_cast<const T*>(nullptr)));
    if (!known) {
      return invalid("unknown " + std::string(what) + " '" + key + "'");
    }
  }
  return {};
}

} // namespace gw::api
