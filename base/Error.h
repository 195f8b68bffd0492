// SPDX-License-Identifier: MIT
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace gw {

// An error as a value: the errno (0 when not from a syscall) and what we were doing.
struct Error {
  int code = 0;
  std::string message;
  bool appendStrerror = true; // false when the message already says it all (fail())

  std::string str() const {
    if (code == 0 || !appendStrerror) {
      return message;
    }
    return message + ": " + std::strerror(code);
  }
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

// Call on the line right after the failing syscall, before errno can change.
inline std::unexpected<Error> sysError(std::string context) {
  int code = errno;
  return std::unexpected(Error{code, std::move(context)});
}

inline std::unexpected<Error> fail(std::string message, int code = 0) {
  return std::unexpected(Error{code, std::move(message), false});
}

} // namespace gw
