// SPDX-License-Identifier: MIT
// "{}" placeholders filled in order: g++ 12 has no <format>.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace gw::cni {

template <class... Args>
std::string strformat(std::string_view pattern, const Args&... args) {
  std::ostringstream out;
  auto one = [&](const auto& arg) {
    auto at = pattern.find("{}");
    out << pattern.substr(0, at);
    if (at == std::string_view::npos) {
      pattern = {};
      return;
    }
    if constexpr (std::is_same_v<std::decay_t<decltype(arg)>, uint16_t>) {
      out << static_cast<unsigned>(arg);
    } else {
      out << arg;
    }
    pattern.remove_prefix(at + 2);
  };
  (one(args), ...);
  out << pattern;
  return out.str();
}

} // namespace gw::cni
