// SPDX-License-Identifier: MIT
#include "control/ApiClient.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "base/Fd.h"

namespace gw {

ApiCall sendApi(const std::string& socketPath, const std::string& method,
                const std::string& target, const std::string& body,
                std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath.empty() || socketPath.size() >= sizeof addr.sun_path) {
    return {fail("socket path '" + socketPath + "' is empty or too long")};
  }
  std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return {sysError("socket(AF_UNIX)")};
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int code = errno;
    if (code == ENOENT || code == ECONNREFUSED) {
      return {fail("gatewayd is not running (no server at " + socketPath + ")", code)};
    }
    return {std::unexpected(Error{code, "connect to " + socketPath})};
  }
  http::Request request;
  request.method = method;
  request.target = target;
  request.body = body;
  if (!body.empty()) {
    request.headers["Content-Type"] = "application/json";
  }
  if (auto written = http::writeAll(fd.get(), http::serialize(request), timeout); !written) {
    return {std::unexpected(written.error())}; // cut short: gatewayd never parsed it whole
  }
  return {http::readResponse(fd.get(), timeout), true};
}

Result<http::Response> callApi(const std::string& socketPath, const std::string& method,
                               const std::string& target, const std::string& body,
                               std::chrono::milliseconds timeout) {
  return sendApi(socketPath, method, target, body, timeout).response;
}

} // namespace gw
