// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <string>

#include "base/Error.h"
#include "control/Http.h"

namespace gw {

inline constexpr const char* kDefaultSocket = "/run/gateway/gateway.sock";

// Sends one request to gatewayd's control socket and returns its response.
Result<http::Response> callApi(const std::string& socketPath, const std::string& method,
                               const std::string& target, const std::string& body = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));

} // namespace gw
