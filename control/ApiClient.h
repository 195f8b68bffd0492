// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <string>

#include "base/Error.h"
#include "control/Http.h"

namespace gw {

inline constexpr const char* kDefaultSocket = "/run/gateway/gateway.sock";

// One request to gatewayd's control socket: its response, or the error and how far the
// request got. Once the whole request is written gatewayd may act on it whether or not an
// answer comes back (a timeout, a crash, a dropped reply): then `sent` is true and only a
// look at the daemon's state can tell what happened.
struct ApiCall {
  Result<http::Response> response;
  bool sent = false;
};
ApiCall sendApi(const std::string& socketPath, const std::string& method,
                const std::string& target, const std::string& body,
                std::chrono::milliseconds timeout);

// Sends one request to gatewayd's control socket and returns its response.
Result<http::Response> callApi(const std::string& socketPath, const std::string& method,
                               const std::string& target, const std::string& body = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));

} // namespace gw
