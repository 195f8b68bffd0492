// SPDX-License-Identifier: MIT
#include "gateway/api/Routes.h"

#include <type_traits>
#include <vector>

#include "base/Failpoint.h"
#include "control/Api.h"
#include "gateway/services/Paging.h"

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
Result<T> decode(const json& j, std::string_view what, std::string_view unknown = "field") {
  if constexpr (IsVector<T>::value) {
    for (size_t i = 0; j.is_array() && i < j.size(); ++i) {
      if (j[i].is_object()) {
        auto known = api::rejectUnknownFields<typename T::value_type>(j[i], unknown);
        if (!known) {
          return within(known.error(), std::string(what) + " #" + std::to_string(i + 1));
        }
      }
    }
  } else if (j.is_object()) {
    if (auto known = api::rejectUnknownFields<T>(j, unknown); !known) {
      return std::unexpected(known.error());
    }
  }
  return api::fromJson<T>(j, what);
}

// The answer to a request that decodes into T and is served by `serve`.
template <class T, class Serve>
http::Response serveDecoded(const json& j, std::string_view what, Serve serve,
                            int okStatus = 200, std::string_view unknown = "field") {
  auto request = decode<T>(j, what, unknown);
  if (!request) {
    return errorResponse(request.error());
  }
  return reply(serve(*request), okStatus);
}

// A listing: one array without ?limit= and ?after= (as it always was), else one page of it.
// Any other query parameter is refused, naming it.
template <class Query, class Whole, class Paged>
http::Response serveListing(const Call& c, Whole whole, Paged paged) {
  auto query = decode<Query>(c.query(), "query", "query parameter");
  if (!query) {
    return errorResponse(query.error());
  }
  return query->paged() ? jsonResponse(200, api::toJson(paged(*query)))
                        : jsonResponse(200, api::toJson(whole()));
}

// A change: tests can stop the daemon, or hold its answer, once the change is made, as a
// crash or a stalled daemon would (gwctl must then find out what happened).
Router::Handler mutation(Router::Handler handler) {
  return [handler = std::move(handler)](const Call& c) {
    http::Response response = handler(c);
    crashpoint("api-crash-after-change");
    stallpoint("api-stall-after-change", std::chrono::seconds(3));
    return response;
  };
}

// A change that answers root alone; a --group member gets 403 before it runs.
Router::Handler rootOnly(std::string_view what, Router::Handler handler) {
  return mutation([what, handler = std::move(handler)](const Call& c) {
    if (auto allowed = c.rootOnly(what); !allowed) {
      return errorResponse(allowed.error());
    }
    return handler(c);
  });
}

} // namespace

void addApiRoutes(Router& r, ApiEndpoints e) {
  using namespace api;
  r.add("GET", kStatusPath, [e](const Call&) { return jsonResponse(200, toJson(e.status())); });

  r.add("GET", kNamespacesPath, [e](const Call& c) {
    return serveListing<NamespaceListQuery>(
        c, [&] { return e.namespaces.list(); },
        [&](const auto& q) {
          return takePage(e.namespaces.list(), q, [](const NamespaceInfo& n) { return n.name; });
        });
  });
  r.add("POST", kNamespacesPath, rootOnly("adding a namespace", [e](const Call& c) {
          return serveDecoded<NamespaceAddRequest>(
              c.body, "request body", [&](const auto& rq) { return e.namespaces.add(rq); }, 201);
        }));
  r.add("DELETE", std::string(kNamespacesPath) + "/{}",
        rootOnly("deleting a namespace",
                 [e](const Call& c) { return reply(e.namespaces.remove(c.param)); }));

  r.add("GET", kExposesPath, [e](const Call& c) {
    return serveListing<ExposeListQuery>(
        c, [&] { return e.exposes.list(); }, [&](const auto& q) { return e.exposes.page(q); });
  });
  r.add("POST", kExposesPath, mutation([e](const Call& c) {
    if (c.body.is_array()) {
      return serveDecoded<std::vector<ExposeRequest>>(
          c.body, "expose",
          [&](const auto& batch) { return e.exposes.addBatch(batch, c.caller); }, 201);
    }
    return serveDecoded<ExposeRequest>(
        c.body, "an expose", [&](const auto& rq) { return e.exposes.add(rq, c.caller); }, 201);
  }));
  r.add("DELETE", kExposesPath, mutation([e](const Call& c) {
    json query = c.query();
    if (!query.contains("port")) {
      return errorResponse(invalid("missing the host port to unexpose").error());
    }
    return serveDecoded<UnexposeQuery>(
        query, "query", [&](const auto& q) { return e.exposes.remove(q, c.caller); });
  }));

  r.add("GET", kOwnersPath, [e](const Call&) { return jsonResponse(200, toJson(e.exposes.owners())); });
  r.add("PUT", std::string(kOwnersPath) + "/{}", mutation([e](const Call& c) {
    auto owner = parseExposeOwner(c.param);
    if (!owner) {
      return errorResponse(owner.error());
    }
    return serveDecoded<std::vector<ExposeRequest>>(
        c.body, "expose",
        [&](const auto& batch) { return e.exposes.replaceOwner(*owner, batch, c.caller); }, 200);
  }));
  r.add("DELETE", std::string(kOwnersPath) + "/{}", mutation([e](const Call& c) {
    auto owner = parseExposeOwner(c.param);
    if (!owner) {
      return errorResponse(owner.error());
    }
    return reply(e.exposes.removeOwner(*owner, c.caller));
  }));

  r.add("GET", kMasqueradePath,
        [e](const Call&) { return jsonResponse(200, toJson(e.masquerades.list())); });
  r.add("POST", kMasqueradePath, rootOnly("adding a masquerade", [e](const Call& c) {
          return serveDecoded<MasqueradeRequest>(
              c.body, "request body", [&](const auto& rq) { return e.masquerades.add(rq); }, 201);
        }));
  r.add("DELETE", kMasqueradePath, rootOnly("deleting a masquerade", [e](const Call& c) {
    json query = c.query();
    if (!query.contains("source")) {
      return errorResponse(invalid("missing the source CIDR").error());
    }
    return serveDecoded<MasqueradeQuery>(query, "query",
                                         [&](const auto& q) { return e.masquerades.remove(q); });
  }));

  r.add("GET", kConntrackPath, [e](const Call& c) {
    auto query = decode<ConntrackQuery>(c.query(), "query", "conntrack filter");
    if (!query) {
      return errorResponse(query.error());
    }
    return query->paging().paged() ? reply(e.conntrack.page(*query))
                                   : reply(e.conntrack.list(*query));
  });
  r.add("DELETE", kConntrackPath, rootOnly("deleting conntrack flows", [e](const Call& c) {
    return serveDecoded<ConntrackQuery>(
        c.query(), "query",
        [&](const auto& q) -> Result<FlowsDeleted> {
          if (q.limit || q.after) {
            return invalid(std::string(q.limit ? "limit" : "after") +
                           ": a conntrack delete takes filters, not pages");
          }
          return e.conntrack.remove(q);
        },
        200, "conntrack filter");
  }));

  r.add("GET", kStatsPath, [e](const Call&) { return reply(e.metrics.stats()); });
  r.add("GET", kMetricsPath, [e](const Call&) {
    return http::Response{200, "text/plain; version=0.0.4", e.metrics.render()};
  });
  r.add("POST", kDownPath, rootOnly("gwctl down", [e](const Call&) {
    auto done = e.down();
    return done ? jsonResponse(200, toJson(DownResult{true})) : errorResponse(done.error());
  }));
}

} // namespace gw
