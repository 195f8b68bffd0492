// SPDX-License-Identifier: MIT
// The small HTTP/1.1 subset spoken on the control socket: one request per connection,
// Content-Length bodies, bounded sizes. Enough for gwctl and `curl --unix-socket`.
// Hand-written rather than Boost.Beast: the parser is ~200 lines with its limits (16 KiB head,
// 4 MiB body) and fuzz targets; Beast's would bring Asio into gwctl (linked statically for
// its start time) and ask for ApiServer's epoll multiplexing of slow clients to be rebuilt on
// Asio, for no fewer lines.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include "base/Error.h"

namespace gw::http {

inline constexpr size_t kMaxHeaderBytes = 16 * 1024;
inline constexpr size_t kMaxBodyBytes = 32 * 1024 * 1024; // every port of both protocols fits
// What a client takes from its own server: the answer to such a batch, a rule each (~450 B).
inline constexpr size_t kMaxResponseBodyBytes = 256 * 1024 * 1024;

struct Request {
  std::string method;
  std::string target; // path with query
  std::map<std::string, std::string> headers; // lower-cased names
  std::string body;

  std::string path() const;                       // target without the query
  // Decoded ?a=b&c=d. A key given twice, or a NUL or other control byte in a key or value, is
  // refused: which of two filters wins, or where a C string ends, is not for us to guess.
  Result<std::map<std::string, std::string>> query() const;
};

struct Response {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
};

// Outcome of feeding bytes to the parser.
enum class ParseState { Incomplete, Complete };

// Parses a request from `data`; Incomplete while more bytes are needed. Errors name the fault.
Result<ParseState> parseRequest(std::string_view data, Request& out);
Result<ParseState> parseResponse(std::string_view data, Response& out);

std::string serialize(const Response& response);
std::string serialize(const Request& request);
std::string_view reasonPhrase(int status);
std::string percentDecode(std::string_view text);
std::string percentEncode(std::string_view text);

// Reads one full message from `fd` until the parser completes, with a deadline and size caps.
Result<Request> readRequest(int fd, std::chrono::milliseconds timeout);
Result<Response> readResponse(int fd, std::chrono::milliseconds timeout);
Status writeAll(int fd, std::string_view data, std::chrono::milliseconds timeout);

} // namespace gw::http
