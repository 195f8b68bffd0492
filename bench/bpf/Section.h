// SPDX-License-Identifier: MIT
// What each part of the BPF benchmark hands back: a markdown section, its JSON, and whether
// every program did what it was expected to (verdicts, outputs, counters).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gw::bench {

struct Section {
  std::string markdown;
  nlohmann::json json;
  std::vector<std::string> failures; // empty: every check passed
};

inline double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// "12.3" style, for tables.
inline std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

} // namespace gw::bench
