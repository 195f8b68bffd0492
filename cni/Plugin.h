// SPDX-License-Identifier: MIT
// gateway-portmap's commands: stdin and the environment in, what to print and the exit
// code out. The gateway comes from `connect` (the API client, or a fake in tests).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cni/Cni.h"
#include "cni/Gateway.h"

namespace gw::cni {

struct Outcome {
  int exitCode = 0;
  std::string out; // for stdout: the result, the version answer or the error JSON
};

// The gateway behind the config's "socket"; called at most once per run.
using Connect = std::function<Gateway&(const std::string& socket)>;

Outcome run(std::string_view stdinText, const EnvLookup& env, const Connect& connect);

} // namespace gw::cni
