// SPDX-License-Identifier: MIT
#include "base/Names.h"

#include <cctype>
#include <string>

namespace gw {
namespace {

constexpr size_t kIfNameSize = 16; // IFNAMSIZ, with its NUL

} // namespace

Status validateNamespaceName(std::string_view name) {
  auto bad = [&](const char* why) {
    return invalid("invalid namespace name '" + std::string(name) + "': " + why, EINVAL);
  };
  if (name.empty()) {
    return bad("empty");
  }
  if (name.size() > 15) {
    return bad("longer than 15 characters");
  }
  if (name == "." || name == "..") {
    return bad("reserved");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) {
      return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
  }
  return {};
}

Status validateIfName(std::string_view name) {
  auto bad = [&](const char* why) {
    return invalid("invalid interface name '" + std::string(name) + "': " + why, EINVAL);
  };
  if (name.empty()) {
    return bad("empty");
  }
  if (name.size() >= kIfNameSize) {
    return bad("longer than 15 characters");
  }
  if (name == "." || name == "..") {
    return bad("reserved");
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c))) {
      return bad("contains '/', ':' or whitespace");
    }
  }
  return {};
}

} // namespace gw
