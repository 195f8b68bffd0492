// SPDX-License-Identifier: MIT
// gateway-portmap: a chained CNI plugin that publishes runtimeConfig.portMappings through
// gatewayd. Reads stdin and CNI_*, runs the command against gatewayd's API, prints the answer.
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "cni/ApiGateway.h"
#include "cni/Plugin.h"

int main() {
  std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  auto env = [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
  std::unique_ptr<gw::cni::ApiGateway> gateway;
  auto connect = [&](const std::string& socket) -> gw::cni::Gateway& {
    gateway = std::make_unique<gw::cni::ApiGateway>(socket);
    return *gateway;
  };
  auto outcome = gw::cni::run(input, env, connect);
  std::cout << outcome.out << std::flush;
  return outcome.exitCode;
}
