// SPDX-License-Identifier: MIT
#include "control/Http.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

namespace gw::http {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool validToken(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '!' || c == '#' || c == '$' ||
           c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '.' || c == '^' ||
           c == '`' || c == '|' || c == '~';
  });
}

// Splits the head into the start line and lower-cased headers; finds the body length.
Result<ParseState> parseHead(std::string_view data, std::string& startLine,
                             std::map<std::string, std::string>& headers, std::string& body,
                             size_t maxBody) {
  size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() > kMaxHeaderBytes) {
      return fail("request head larger than " + std::to_string(kMaxHeaderBytes) + " bytes");
    }
    return ParseState::Incomplete;
  }
  if (end > kMaxHeaderBytes) {
    return fail("request head larger than " + std::to_string(kMaxHeaderBytes) + " bytes");
  }
  std::string_view head = data.substr(0, end);
  size_t lineEnd = head.find("\r\n");
  startLine = std::string(head.substr(0, lineEnd));
  headers.clear();
  while (lineEnd != std::string_view::npos) {
    head.remove_prefix(lineEnd + 2);
    lineEnd = head.find("\r\n");
    std::string_view line = head.substr(0, lineEnd);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !validToken(line.substr(0, colon))) {
      return fail("malformed header line");
    }
    std::string name = lower(line.substr(0, colon));
    // Two Content-Lengths are how requests get smuggled past a proxy: one is the most.
    if (name == "content-length" && headers.contains(name)) {
      return fail("duplicate Content-Length header");
    }
    headers[std::move(name)] = std::string(trim(line.substr(colon + 1)));
  }
  size_t length = 0;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    const auto& v = it->second;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), length);
    if (ec != std::errc() || p != v.data() + v.size()) {
      return fail("bad Content-Length '" + v + "'");
    }
    if (length > maxBody) {
      return fail("body larger than " + std::to_string(maxBody) + " bytes");
    }
  }
  if (headers.contains("transfer-encoding")) {
    return fail("Transfer-Encoding is not supported: send Content-Length");
  }
  std::string_view rest = data.substr(end + 4);
  if (rest.size() < length) {
    return ParseState::Incomplete;
  }
  body = std::string(rest.substr(0, length));
  return ParseState::Complete;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

template <class Message>
Result<Message> readMessage(int fd, std::chrono::milliseconds timeout,
                            Result<ParseState> (*parse)(std::string_view, Message&)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string buffer;
  static thread_local char chunk[65536]; // big answers (a batch of every port) in fewer reads
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail("timed out reading the message", ETIMEDOUT);
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sysError("poll");
    }
    if (r == 0) {
      continue;
    }
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return sysError("read");
    }
    if (n == 0) {
      return fail(buffer.empty() ? "connection closed before a message"
                                 : "connection closed in the middle of a message");
    }
    buffer.append(chunk, static_cast<size_t>(n));
    Message message;
    auto state = parse(buffer, message);
    if (!state) {
      return std::unexpected(state.error());
    }
    if (*state == ParseState::Complete) {
      return message;
    }
  }
}

} // namespace

std::string Request::path() const {
  return target.substr(0, target.find('?'));
}

Result<std::map<std::string, std::string>> Request::query() const {
  std::map<std::string, std::string> out;
  size_t q = target.find('?');
  if (q == std::string::npos) {
    return out;
  }
  auto hasControl = [](std::string_view s) {
    return std::ranges::any_of(s, [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  };
  std::string_view rest = std::string_view(target).substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    if (!pair.empty()) {
      std::string key = percentDecode(pair.substr(0, eq));
      std::string value =
          eq == std::string_view::npos ? std::string() : percentDecode(pair.substr(eq + 1));
      if (hasControl(key) || hasControl(value)) {
        return fail("query parameter '" + percentEncode(key) + "' holds a control byte", EINVAL);
      }
      if (!out.emplace(key, std::move(value)).second) {
        return fail("query parameter '" + key + "' is given twice", EINVAL);
      }
    }
    if (amp == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(amp + 1);
  }
  return out;
}

Result<ParseState> parseRequest(std::string_view data, Request& out) {
  std::string startLine;
  auto state = parseHead(data, startLine, out.headers, out.body, kMaxBodyBytes);
  if (!state || *state == ParseState::Incomplete) {
    return state;
  }
  size_t sp1 = startLine.find(' ');
  size_t sp2 = startLine.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) {
    return fail("malformed request line");
  }
  out.method = startLine.substr(0, sp1);
  out.target = startLine.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string version = startLine.substr(sp2 + 1);
  if (!validToken(out.method) || out.target.empty() || out.target[0] != '/' ||
      !version.starts_with("HTTP/1.")) {
    return fail("malformed request line");
  }
  return ParseState::Complete;
}

Result<ParseState> parseResponse(std::string_view data, Response& out) {
  std::string startLine;
  std::map<std::string, std::string> headers;
  auto state = parseHead(data, startLine, headers, out.body, kMaxResponseBodyBytes);
  if (!state || *state == ParseState::Incomplete) {
    return state;
  }
  if (!startLine.starts_with("HTTP/1.") || startLine.size() < 12) {
    return fail("malformed status line");
  }
  auto [p, ec] = std::from_chars(startLine.data() + 9, startLine.data() + 12, out.status);
  if (ec != std::errc()) {
    return fail("malformed status line");
  }
  if (auto it = headers.find("content-type"); it != headers.end()) {
    out.contentType = it->second;
  }
  return ParseState::Complete;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

std::string serialize(const Response& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " +
                    std::string(reasonPhrase(r.status)) + "\r\n";
  out += "Content-Type: " + r.contentType + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

std::string serialize(const Request& r) {
  std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: gateway\r\n";
  for (const auto& [k, v] : r.headers) {
    if (k != "content-length") { // written below, from the body
      out += k + ": " + v + "\r\n";
    }
  }
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

std::string percentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hexValue(text[i + 1]) >= 0 && hexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2])));
      i += 2;
    } else if (text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string percentEncode(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

Result<Request> readRequest(int fd, std::chrono::milliseconds timeout) {
  return readMessage<Request>(fd, timeout, parseRequest);
}

Result<Response> readResponse(int fd, std::chrono::milliseconds timeout) {
  return readMessage<Response>(fd, timeout, parseResponse);
}

Status writeAll(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!data.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail("timed out writing", ETIMEDOUT);
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return sysError("send");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

} // namespace gw::http
