// SPDX-License-Identifier: MIT
// The control socket: a unix stream socket speaking HTTP/1.1, one request per connection.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "Error.h"
#include "Fd.h"
#include "Http.h"

namespace gw {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class ApiServer {
public:
  using Handler = std::function<http::Response(const http::Request&, const PeerCredentials&)>;

  // Binds `path` (mode 0660, group `group` when set). Refuses when another server answers
  // there; removes a stale socket file otherwise.
  static Result<ApiServer> listen(const std::string& path, std::optional<gid_t> group);

  // Serves until SIGTERM/SIGINT (blocked and read through a signalfd). `onTick` runs between
  // requests at least every `tick`. Returns the signal that stopped it.
  Result<int> serve(const Handler& handler, const std::function<void()>& onTick,
                    std::chrono::milliseconds tick);

  // Whether a peer may use the API: root, or a member of the socket's group.
  bool allowed(const PeerCredentials& peer) const;

  const std::string& path() const { return path_; }
  ~ApiServer();
  ApiServer(ApiServer&&) noexcept;
  ApiServer& operator=(ApiServer&&) = delete;
  ApiServer(const ApiServer&) = delete;

private:
  ApiServer() = default;
  void handleConnection(int fd, const Handler& handler);

  UniqueFd listenFd_;
  std::string path_;
  std::optional<gid_t> group_;
};

} // namespace gw
