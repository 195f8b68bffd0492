// SPDX-License-Identifier: MIT
// The API's routes: a table of (method, path) -> handler. A path ending in "{}" takes one
// more segment (the name in DELETE /v1/namespaces/NAME). The error kind alone decides the
// HTTP status of an error.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "control/Api.h"
#include "control/Http.h"

namespace gw {

using api::Caller;

// One request as a handler gets it: the body already parsed, the path's parameter decoded.
struct Call {
  const http::Request& request;
  const nlohmann::json& body;  // {} when the request has none
  const std::string& param;    // the segment matched by "{}", percent-decoded
  const nlohmann::json& queryValues; // ?a=b&c=d as a JSON object of strings
  Caller caller = Caller::Root;
  nlohmann::json query() const;
  // A Forbidden error unless root asks: for acts that rewire the host or stop the daemon.
  Status rootOnly(std::string_view what) const;
};

int httpStatus(ErrorKind kind);
http::Response jsonResponse(int status, const nlohmann::json& body);
http::Response errorResponse(const Error& error);

class Router {
public:
  using Handler = std::function<http::Response(const Call&)>;

  void add(std::string method, std::string path, Handler handler);
  // 404 for an unknown path, 405 for a known path and another method, 400 for a body that
  // is not JSON.
  http::Response route(const http::Request& request, Caller caller = Caller::Root) const;

private:
  struct Route {
    std::string method;
    std::string path;
    bool hasParam = false;
    Handler handler;
  };
  // Whether `path` matches `route`; sets `param`.
  static bool matches(const Route& route, const std::string& path, std::string& param);

  std::vector<Route> routes_;
};

} // namespace gw
