// SPDX-License-Identifier: MIT
// Test-only fault injection: failpoint("x") fails when GATEWAY_FAILPOINTS (comma separated)
// names "x", so tests can prove that a change midway is rolled back.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

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

} // namespace gw
