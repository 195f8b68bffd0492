// SPDX-License-Identifier: MIT
#include "gateway/api/Routes.h"

#include <type_traits>
#include <vector>

#include "control/Api.h"

namespace gw {
namespace {

using nlohmann::json;

// The answer of a handler: its value as JSON with `okStatus`, or its error.
template <class T>
http::Response reply(const Result<T>& r, int okStatus = 200) {
  return r ? jsonResponse(okStatus, api::toJson(*r)) : errorResponse(r.error());
}

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// A request's body or query, decoded into T, refusing what does not fit and any field T does
// not have (a misspelt field must not be ignored). Answers are read leniently by gwctl, so a
// newer daemon may add fields.
template <class T>
Result<T> decode(const json& j, std::string_view what = "request body") {
  if constexpr (IsVector<T>::value) {
    for (size_t i = 0; j.is_array() && i < j.size(); ++i) {
      if (j[i].is_object()) {
        auto known = api::rejectUnknownFields<typename T::value_type>(j[i], "field");
        if (!known) {
          return within(known.error(), std::string(what) + " #" + std::to_string(i + 1));
        }
      }
    }
  } else if (j.is_object()) {
    if (auto known = api::rejectUnknownFields<T>(j, "field"); !known) {
      return std::unexpected(known.error());
    }
  }
  return api::fromJson<T>(j, what);
}

} // namespace

void addApiRoutes(Router& r, ApiEndpoints e) {
  using namespace api;
  r.add("GET", kStatusPath, [e](const Call&) { return jsonResponse(200, toJson(e.status())); });

  r.add("GET", kNamespacesPath,
        [e](const Call&) { return jsonResponse(200, toJson(e.namespaces.list())); });
  r.add("POST", kNamespacesPath, [e](const Call& c) {
    auto request = decode<NamespaceAddRequest>(c.body);
    return reply(request ? e.namespaces.add(*request) : std::unexpected(request.error()), 201);
  });
  r.add("DELETE", std::string(kNamespacesPath) + "/{}",
        [e](const Call& c) { return reply(e.namespaces.remove(c.param)); });

  r.add("GET", kExposesPath,
        [e](const Call&) { return jsonResponse(200, toJson(e.exposes.list())); });
  r.add("POST", kExposesPath, [e](const Call& c) {
    if (c.body.is_array()) {
      auto batch = decode<std::vector<ExposeRequest>>(c.body, "expose");
      return reply(batch ? e.exposes.addBatch(*batch) : std::unexpected(batch.error()), 201);
    }
    auto request = decode<ExposeRequest>(c.body, "an expose");
    return reply(request ? e.exposes.add(*request) : std::unexpected(request.error()), 201);
  });
  r.add("DELETE", kExposesPath, [e](const Call& c) {
    if (!c.query().contains("port")) {
      return errorResponse(invalid("missing the host port to unexpose").error());
    }
    auto query = decode<UnexposeQuery>(c.query(), "query");
    return reply(query ? e.exposes.remove(*query) : std::unexpected(query.error()));
  });

  r.add("GET", kMasqueradePath,
        [e](const Call&) { return jsonResponse(200, toJson(e.masquerades.list())); });
  r.add("POST", kMasqueradePath, [e](const Call& c) {
    auto request = decode<MasqueradeRequest>(c.body);
    return reply(request ? e.masquerades.add(*request) : std::unexpected(request.error()), 201);
  });
  r.add("DELETE", kMasqueradePath, [e](const Call& c) {
    if (!c.query().contains("source")) {
      return errorResponse(invalid("missing the source CIDR").error());
    }
    auto query = decode<MasqueradeQuery>(c.query(), "query");
    return reply(query ? e.masquerades.remove(*query) : std::unexpected(query.error()));
  });

  auto conntrackQuery = [](const Call& c) -> Result<ConntrackQuery> {
    json q = c.query();
    if (auto known = rejectUnknownFields<ConntrackQuery>(q, "conntrack filter"); !known) {
      return std::unexpected(known.error());
    }
    return decode<ConntrackQuery>(q, "query");
  };
  r.add("GET", kConntrackPath, [e, conntrackQuery](const Call& c) {
    auto query = conntrackQuery(c);
    return reply(query ? e.conntrack.list(*query) : std::unexpected(query.error()));
  });
  r.add("DELETE", kConntrackPath, [e, conntrackQuery](const Call& c) {
    auto query = conntrackQuery(c);
    return reply(query ? e.conntrack.remove(*query) : std::unexpected(query.error()));
  });

  r.add("GET", kStatsPath, [e](const Call&) { return reply(e.conntrack.stats(e.state.exposes)); });
  r.add("GET", kMetricsPath, [e](const Call&) {
    return http::Response{200, "text/plain; version=0.0.4", e.metrics.render()};
  });
  r.add("POST", kDownPath, [e](const Call&) {
    auto done = e.down();
    return done ? jsonResponse(200, toJson(DownResult{true})) : errorResponse(done.error());
  });
}

} // namespace gw
