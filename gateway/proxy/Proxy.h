// SPDX-License-Identifier: MIT
// The io_uring TCP proxy: the fallback where the eBPF path cannot serve, e.g. a server bound to
// 127.0.0.1 inside its namespace. Listening sockets live in the caller's namespace; connections
// to a target are made from sockets created inside the target's namespace by worker threads that
// entered it once (setns on that thread only), so no setns per connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/Error.h"

namespace gw {

enum class RelayMode {
  Buffers, // recv into a provided buffer ring, send from it (default: measured faster here)
  Splice,  // socket -> pooled pipe -> socket: splice(2) on the worker when io_uring says ready
};

struct ProxyConfig {
  unsigned threads = 0; // per target namespace; 0 = std::thread::hardware_concurrency()
  unsigned maxConnections = 100000; // all listeners together
  std::chrono::seconds idleTimeout{300};
  std::chrono::seconds drainTimeout{5};
  std::chrono::milliseconds connectTimeout{5000};
  RelayMode relay = RelayMode::Buffers;
  unsigned bufferSize = 32 * 1024; // one provided buffer
  unsigned buffersPerThread = 256; // power of two; memory is touched only as it is used
  // Listening sockets handed over by the gatewayd this one replaces (SIGUSR2), keyed by
  // their bound address as formatSockAddr prints it ("0.0.0.0:6000"): addListener adopts
  // them instead of binding, so not one connection is refused during the switch.
  std::map<std::string, std::vector<int>> inheritedListeners;
};

// One listener's sockets (its SO_REUSEPORT group) as handed over at an upgrade.
struct ListenerFds {
  std::string address; // formatSockAddr of the bound address
  std::vector<int> fds;
};

// Checks that an inherited fd is a listening TCP socket bound to `address`.
Status checkInheritedListener(int fd, const std::string& address);

struct ProxyListenerSpec {
  std::string listenAddr = "0.0.0.0"; // numeric IPv4/IPv6
  uint16_t listenPort = 0;            // 0 = pick one (see boundPort)
  std::string targetNetns;            // a name under /run/netns or a path; "" = the gateway's
  std::string targetAddr;             // numeric, as seen inside targetNetns
  // Tried once when targetAddr refuses: ::1 behind 127.0.0.1, so a server listening on
  // IPv6 loopback only is reached too. "" = none.
  std::string fallbackAddr;
  uint16_t targetPort = 0;
  unsigned maxConnections = 0; // 0 = global limit only
  bool proxyProtocolV2 = false;
};

struct ProxyListenerStats {
  uint64_t accepted = 0;      // connections taken into service
  uint64_t active = 0;        // open now
  uint64_t refusedLimit = 0;  // accepted then closed at once: a connection limit was reached
  uint64_t backendFailed = 0; // connect refused/timed out, or the backend reset mid-stream
  uint64_t bytesIn = 0;       // client -> backend, bytes delivered
  uint64_t bytesOut = 0;      // backend -> client, bytes delivered
};

class Proxy {
public:
  // Starts the proxy; "" targets are reached from the namespace of the calling thread.
  static Result<std::unique_ptr<Proxy>> start(const ProxyConfig& config);
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;
  // Stops without draining.
  ~Proxy();

  // Binds and listens now, in the calling thread's namespace; the error names addr:port
  // (EADDRINUSE included). Returns the listener id.
  Result<uint64_t> addListener(const ProxyListenerSpec& spec);
  // Stops accepting at once (the port is free on return). With `drain`, open connections may
  // finish for up to drainTimeout; the rest are closed. Blocks until done.
  Status removeListener(uint64_t id, bool drain = true);
  Result<ProxyListenerStats> listenerStats(uint64_t id);
  Result<uint16_t> boundPort(uint64_t id);
  size_t activeConnections();
  // removeListener for every listener, then the threads exit. Idempotent.
  void stop(bool drain = true);

  // Upgrade: every listener's sockets (valid until releaseListeners or stop).
  std::vector<ListenerFds> listenerFds();
  // Upgrade handed over: stops accepting and closes our copies of the listening sockets
  // (close only: the new process accepts on the same sockets), keeps connections relaying.
  void releaseListeners();
  // Closes the inherited sockets no listener adopted and returns their addresses.
  std::vector<std::string> closeUnadopted();

private:
  struct Impl;
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace gw
