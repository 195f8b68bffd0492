// SPDX-License-Identifier: MIT
// Test-only fault injection: failpoint("x") fails when GATEWAY_FAILPOINTS (comma separated)
// names "x", so tests can prove that a change midway is rolled back.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "base/Error.h"

namespace gw {

// Whether GATEWAY_FAILPOINTS names `point`.
inline bool failpointSet(std::string_view point) {
  const char* env = std::getenv("GATEWAY_FAILPOINTS");
  if (env == nullptr) {
    return false;
  }
  std::string_view list(env);
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == point) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

inline Status failpoint(std::string_view point) {
  if (failpointSet(point)) {
    return fail("failpoint '" + std::string(point) + "' triggered", EIO);
  }
  return {};
}

// Test-only: dies on the spot, as under SIGKILL, when GATEWAY_FAILPOINTS names `point`.
inline void crashpoint(std::string_view point) {
  if (failpointSet(point)) {
    ::_exit(137);
  }
}

// Test-only: holds the calling thread for `duration` when GATEWAY_FAILPOINTS names `point`,
// as a daemon stalled in the middle of a request would.
inline void stallpoint(std::string_view point, std::chrono::milliseconds duration) {
  if (failpointSet(point)) {
    std::this_thread::sleep_for(duration);
  }
}

} // namespace gw
