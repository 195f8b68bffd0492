// SPDX-License-Identifier: MIT
// One proxied connection as its worker and its relay see it, and the listener it came from.
#pragma once

#include <liburing.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "gateway/proxy/Proxy.h"
#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/proxy/Ring.h"
#include "gateway/proxy/SockAddr.h"
#include "base/Fd.h"

namespace gw::proxy {

// What every worker of a listener's namespace shares about it; counters are updated by workers
// and read by Proxy::listenerStats.
struct ListenerShared {
  uint64_t id = 0;
  ProxyListenerSpec spec;
  std::vector<UniqueFd> fds; // one SO_REUSEPORT socket per worker: the kernel spreads clients
  SockAddr target;
  std::optional<SockAddr> fallback; // spec.fallbackAddr, parsed
  uint16_t boundPort = 0;
  std::string address; // bound, as formatSockAddr prints it: the key at an upgrade
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> refusedLimit{0};
  std::atomic<uint64_t> backendFailed{0};
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesOut{0};
};

// Owned by the worker; a relay reads the fds and flags and keeps `since` and `inflight` true.
// Direction `dir` 0 reads the client and writes the backend; 1 the reverse.
struct Connection {
  enum class State : uint8_t { Free, Connecting, SendingHeader, Relaying };

  uint32_t gen = 0;
  State state = State::Free;
  bool closing = false;
  uint8_t headerLen = 0;
  uint8_t headerOff = 0;
  bool triedFallback = false;
  std::array<bool, 2> eof{}; // per direction: the source sent FIN, the destination was shut
  uint32_t inflight = 0;
  int64_t since = 0; // ms: connect start, then last activity
  UniqueFd client;
  UniqueFd backend;
  std::shared_ptr<ListenerShared> listener;
  std::array<uint8_t, kProxyV2MaxSize> header{};

  int sourceFd(int dir) const { return dir == 0 ? client.get() : backend.get(); }
  int destinationFd(int dir) const { return dir == 0 ? backend.get() : client.get(); }

  // Tags `sqe` as op `op` on direction `dir` of this connection (at `index`), counted in flight
  // until its completion is dispatched.
  void tag(io_uring_sqe* sqe, Op op, uint32_t index, int dir) {
    io_uring_sqe_set_data64(sqe, packTag({op, static_cast<uint8_t>(dir), index, gen}));
    ++inflight;
  }

  void countDelivered(int dir, uint64_t bytes) {
    auto& counter = dir == 0 ? listener->bytesIn : listener->bytesOut;
    counter.fetch_add(bytes, std::memory_order_relaxed);
  }
};

inline int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace gw::proxy
