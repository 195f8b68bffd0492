// SPDX-License-Identifier: MIT
// In-process TCP servers inside a namespace and blocking client helpers for the proxy tests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/Fd.h"

namespace gw::test {

// Listens on 127.0.0.1:0 inside namespace `ns` (on its own thread, which entered it) and runs
// `handler(fd)` on a thread per connection. The destructor shuts every socket and joins.
class NsServer {
public:
  NsServer(const std::string& ns, std::function<void(int)> handler);
  NsServer(const NsServer&) = delete;
  NsServer& operator=(const NsServer&) = delete;
  ~NsServer();
  uint16_t port() const { return port_; }
  size_t accepted() const { return accepted_.load(); }

private:
  void acceptLoop();

  std::function<void(int)> handler_;
  UniqueFd listenFd_;
  uint16_t port_ = 0;
  std::atomic<size_t> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptThread_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> handlers_;
};

// Handlers.
void echoUntilEof(int fd);    // echoes, then closes after the peer's EOF
void discardUntilEof(int fd); // reads and drops everything

// Client side, in the calling thread's namespace. Receive timeout `timeout` on the socket.
UniqueFd connectTcp(const std::string& ip, uint16_t port,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));
bool sendAll(int fd, const void* data, size_t len);
bool sendAll(int fd, const std::string& data);
// Reads until EOF, error or timeout; `closed` says whether EOF/reset was seen.
std::string readAll(int fd, bool* closed = nullptr);
// Reads exactly `n` bytes (or less on EOF/timeout).
std::string readN(int fd, size_t n);

long vmRssKiB();

} // namespace gw::test
