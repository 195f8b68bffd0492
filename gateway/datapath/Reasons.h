// SPDX-License-Identifier: MIT
// The names of enum gw_reason that gwctl stats and the metrics show, made from the one list in
// bpf/gw_abi.h (GW_REASONS), so the enum and its names cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

#include "bpf/gw_abi.h"

namespace gw {

#define GW_REASON_NAME(NAME, name) #name,
inline constexpr std::string_view kReasonNames[] = {GW_REASONS(GW_REASON_NAME)};
#undef GW_REASON_NAME

static_assert(std::size(kReasonNames) == GW_REASON_MAX, "one name per enum gw_reason");
static_assert(
    [] {
      for (size_t i = 0; i < std::size(kReasonNames); ++i) {
        if (kReasonNames[i].empty()) {
          return false;
        }
        for (size_t j = 0; j < i; ++j) {
          if (kReasonNames[i] == kReasonNames[j]) {
            return false;
          }
        }
      }
      return true;
    }(),
    "every reason needs a name of its own (a metrics label value)");

// "" for a number no reason has.
constexpr std::string_view reasonName(uint32_t reason) {
  return reason < std::size(kReasonNames) ? kReasonNames[reason] : std::string_view{};
}

} // namespace gw
