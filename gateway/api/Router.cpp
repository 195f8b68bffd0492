// SPDX-License-Identifier: MIT
#include "gateway/api/Router.h"

#include "control/Api.h"
#include "control/ApiCodec.h"

namespace gw {

using nlohmann::json;

json Call::query() const { return queryValues; }

Status Call::rootOnly(std::string_view what) const {
  if (caller == Caller::Root) {
    return {};
  }
  return forbidden(std::string(what) + " is for root only (--group members may read, and expose "
                                       "services of namespaces gatewayd manages)");
}

int httpStatus(ErrorKind kind) {
  switch (kind) {
  case ErrorKind::Invalid: return 400;
  case ErrorKind::NotFound: return 404;
  case ErrorKind::Conflict: return 409;
  case ErrorKind::Unavailable: return 503;
  case ErrorKind::Forbidden: return 403;
  case ErrorKind::Internal: return 500;
  }
  return 500;
}

http::Response jsonResponse(int status, const json& body) {
  return {status, "application/json", body.dump() + "\n"};
}

http::Response errorResponse(const Error& error) {
  return jsonResponse(httpStatus(error.kind), api::toJson(api::ErrorBody{error.str()}));
}

void Router::add(std::string method, std::string path, Handler handler) {
  bool hasParam = path.ends_with("{}");
  if (hasParam) {
    path.resize(path.size() - 2);
  }
  routes_.push_back({std::move(method), std::move(path), hasParam, std::move(handler)});
}

bool Router::matches(const Route& route, const std::string& path, std::string& param) {
  if (!route.hasParam) {
    return path == route.path;
  }
  if (!path.starts_with(route.path) || path.size() == route.path.size() ||
      path.find('/', route.path.size()) != std::string::npos) {
    return false;
  }
  param = http::percentDecode(path.substr(route.path.size()));
  return true;
}

http::Response Router::route(const http::Request& request, Caller caller) const {
  const std::string path = request.path();
  bool pathKnown = false;
  for (const auto& r : routes_) {
    std::string param;
    if (!matches(r, path, param)) {
      continue;
    }
    pathKnown = true;
    if (r.method != request.method) {
      continue;
    }
    json body = json::object();
    if (!request.body.empty()) {
      auto parsed = api::parseStrictJson(request.body, "request body");
      if (!parsed) {
        return errorResponse(parsed.error());
      }
      body = std::move(*parsed);
    }
    auto query = request.query();
    if (!query) {
      return errorResponse(invalid(query.error().message).error());
    }
    json queryValues = json::object();
    for (const auto& [key, value] : *query) {
      queryValues[key] = value;
    }
    if (param.find('\0') != std::string::npos) {
      return errorResponse(invalid("the path's name holds a NUL byte").error());
    }
    return r.handler(Call{request, body, param, queryValues, caller});
  }
  if (pathKnown) {
    return jsonResponse(405, api::toJson(api::ErrorBody{"method " + request.method +
                                                        " not allowed on " + path}));
  }
  return jsonResponse(404, api::toJson(api::ErrorBody{"no such endpoint: " + request.method +
                                                      " " + path}));
}

} // namespace gw
