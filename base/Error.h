// SPDX-License-Identifier: MIT
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace gw {

// What kind of failure, for whoever answers the caller: the API maps it to an HTTP status
// (400/404/409/503/403/500) and never looks at errno.
enum class ErrorKind {
  Internal,    // a syscall, a map update, a state write failed: not the caller's fault
  Invalid,     // the request (or a file) says something malformed or impossible
  NotFound,    // it names something that does not exist
  Conflict,    // it clashes with what exists
  Unavailable, // a component it needs is not running (the eBPF data path not loaded)
  Forbidden,   // the caller may not do this (a --group member asking for a root-only act)
};

// An error as a value: its kind, the errno (0 when not from a syscall) and what we were doing.
struct Error {
  int code = 0;
  std::string message;
  bool appendStrerror = true; // false when the message already says it all (fail())
  ErrorKind kind = ErrorKind::Internal;

  std::string str() const {
    if (code == 0 || !appendStrerror) {
      return message;
    }
    return message + ": " + std::strerror(code);
  }
  // The same error with `context` in front of its message.
  Error within(const std::string& context) const {
    Error e = *this;
    e.message = context + ": " + message;
    return e;
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

// `code`: an errno that says the same, for callers that test it (netns/ answers as the
// kernel would); it never decides the HTTP status.
inline std::unexpected<Error> fail(ErrorKind kind, std::string message, int code = 0) {
  return std::unexpected(Error{code, std::move(message), false, kind});
}

inline std::unexpected<Error> invalid(std::string message, int code = 0) {
  return fail(ErrorKind::Invalid, std::move(message), code);
}
inline std::unexpected<Error> notFound(std::string message, int code = 0) {
  return fail(ErrorKind::NotFound, std::move(message), code);
}
inline std::unexpected<Error> conflict(std::string message, int code = 0) {
  return fail(ErrorKind::Conflict, std::move(message), code);
}
inline std::unexpected<Error> unavailable(std::string message, int code = 0) {
  return fail(ErrorKind::Unavailable, std::move(message), code);
}
inline std::unexpected<Error> forbidden(std::string message, int code = 0) {
  return fail(ErrorKind::Forbidden, std::move(message), code);
}

// Passes an error on with `context` in front, keeping its kind and errno.
inline std::unexpected<Error> within(const Error& e, const std::string& context) {
  return std::unexpected(e.within(context));
}

} // namespace gw
