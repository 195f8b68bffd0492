// SPDX-License-Identifier: MIT
// Test-only fault injection: failpoint("x") fails when GATEWAY_FAILPOINTS (comma separated)
// names "x", so tests can prove that a change midway is rolled back.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "base/Error.h"

namespace gw {

inline Status failpoint(std::string_view point) {
  const char* env = std::getenv("GATEWAY_FAILPOINTS");
  if (env == nullptr) {
    return {};
  }
  std::string_view list(env);
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == point) {
      return fail("failpoint '" + std::string(point) + "' triggered", EIO);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return {};
}

} // namespace gw
