// SPDX-License-Identifier: MIT
// The control socket: a unix stream socket speaking HTTP/1.1, one request per connection.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"
#include "control/Http.h"

namespace gw {

// Who is at the other end of a connection, as the kernel says: the process's credentials and
// its supplementary groups as they were when it connected (SO_PEERCRED, SO_PEERGROUPS).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1); // unknown until read: never taken for root
  gid_t gid = static_cast<gid_t>(-1);
  std::vector<gid_t> groups{};
};

class ApiServer {
public:
  using Handler = std::function<http::Response(const http::Request&, const PeerCredentials&)>;

  // Binds `path` (mode 0660, group `group` when set). Refuses when another server answers
  // there; removes a stale socket file otherwise.
  static Result<ApiServer> listen(const std::string& path, std::optional<gid_t> group);
  // Upgrade: serves on `fd`, a listening socket inherited from the gatewayd this one replaces,
  // checked to be bound to `path`. The path is not ours to unlink until claimPath().
  static Result<ApiServer> adopt(int fd, const std::string& path, std::optional<gid_t> group);
  // From now on the socket path is ours: removed when this server goes.
  void claimPath() { ownsPath_ = true; }

  // Also serves GET /metrics (only that) on a TCP address, e.g. 127.0.0.1:9108.
  Status listenMetrics(const std::string& hostPort);
  // Upgrade: the same on an inherited socket, checked to be bound to `hostPort`.
  Status adoptMetrics(int fd, const std::string& hostPort);

  // Upgrade: the listening sockets to hand over (-1: none).
  int listenFd() const { return listenFd_.get(); }
  int metricsFd() const { return metricsFd_ ? metricsFd_.get() : -1; }
  // Handed over: writes out replies in progress, then closes our copies of the listening
  // sockets. Never unlinks the path: the new process serves on it.
  void release();

  // serve() returns these (besides signal numbers and 0) for watch().
  static constexpr int kWatchReadable = -1; // the watched fd is readable or closed
  static constexpr int kWatchExpired = -2;  // its deadline passed first
  // Makes serve() return when `fd` is readable or hung up, or `deadline` passes. -1: none.
  void watch(int fd, std::chrono::steady_clock::time_point deadline) {
    watchFd_ = fd;
    watchDeadline_ = deadline;
  }
  // While paused, new connections wait in the backlog (for the process taking over).
  void pauseAccepting(bool paused) { paused_ = paused; }

  // Serves until SIGTERM/SIGINT/SIGUSR2 (blocked and read through a signalfd) or stop(). Requests are
  // read from many connections at once, each bounded in size and time, so a slow or hostile
  // client cannot wedge the daemon. `onTick` runs at least every `tick`. Returns the signal
  // that stopped it (0 after stop()).
  Result<int> serve(const Handler& handler, const std::function<void()>& onTick,
                    std::chrono::milliseconds tick);
  // Makes serve() return after the current request (from within a handler).
  void stop() { stopping_ = true; }

  // Whether a peer may use the API: root, or a member of the socket's group.
  bool allowed(const PeerCredentials& peer) const;

  const std::string& path() const { return path_; }
  ~ApiServer();
  ApiServer(ApiServer&&) noexcept;
  ApiServer& operator=(ApiServer&&) = delete;
  ApiServer(const ApiServer&) = delete;

private:
  // A connection: reading its request, then writing its reply, each within a deadline.
  struct Pending {
    UniqueFd fd;
    std::string buffer;
    std::chrono::steady_clock::time_point deadline;
    PeerCredentials peer;
    bool metricsOnly = false;
    bool refused = false; // answered 403 once its request is read
    std::string reply;    // being written: the serialized response
    size_t written = 0;
    bool writing() const { return !reply.empty(); }
  };

  ApiServer() = default;
  void accept(int listenFd, bool metricsOnly);
  // Reads what is there; true when the connection is done (answered or dropped).
  bool onReadable(Pending& conn, const Handler& handler);
  // Queues the reply and writes what the socket takes now; true when the connection is done.
  bool respond(Pending& conn, const http::Response& response);
  // Writes more of the reply without blocking; true when it is all out or the peer is gone.
  bool flush(Pending& conn);
  // At stop: a last bounded wait for replies still being written (`gwctl down`'s own).
  void drainReplies();

  UniqueFd listenFd_;
  UniqueFd metricsFd_;
  std::vector<Pending> pending_;
  bool stopping_ = false;
  std::string path_;
  bool ownsPath_ = true;
  std::optional<gid_t> group_;
  int watchFd_ = -1;
  std::chrono::steady_clock::time_point watchDeadline_{};
  bool paused_ = false;
};

} // namespace gw
