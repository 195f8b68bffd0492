// SPDX-License-Identifier: MIT
// How a worker moves bytes once a connection is up (gatewayd --proxy-relay): BufferRelay (recv
// into provided buffers, send from them) or SpliceRelay (splice through a pooled pipe when
// io_uring reports readiness). The worker owns the ring, accepts, connects and dispatches every
// completion; the relay owns each direction's state and the ops that move its bytes.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

#include "gateway/proxy/Connection.h"
#include "gateway/proxy/Ring.h"

namespace gw::proxy {

// How a relay step ended; the worker half-closes, closes and counts backend failures.
enum class Flow : uint8_t {
  Moving,            // nothing for the worker to do
  SourceEof,         // the source sent FIN: shut the destination for writing
  SourceFailed,      // reading the source failed: close
  DestinationFailed, // writing the destination failed: close
  Failed,            // no buffer, no pipe, a poll error: close, neither peer to blame
};

// Backpressure, in both relays: a direction has at most one read or one write in flight, never
// both, so data read but not yet written is bounded by one buffer (or one pipe) per direction.
class Relay {
public:
  Relay() = default;
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  virtual ~Relay() = default;

  // Reads direction `dir` of the connection at `index` once data is there, unless it is
  // closing, at EOF, or has an op in flight.
  virtual void arm(Connection& c, uint32_t index, int dir) = 0;
  // The op on `dir`'s source (Op::Recv, Op::PollIn) or destination (Op::Send, Op::PollOut)
  // completed; the worker has already counted it out of c.inflight.
  virtual Flow onSource(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) = 0;
  virtual Flow onDestination(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) = 0;
  // After each batch of completions: directions parked for want of a resource that may go on
  // now. The worker arms those whose connection is still the same.
  virtual std::vector<Tag> takeParked() = 0;
  // A completion whose connection is gone: give back whatever it carries.
  virtual void dropStale(const io_uring_cqe& cqe) = 0;
  // The connection at `index` is finalized: its directions' resources go back to the pools.
  virtual void release(uint32_t index) = 0;
};

} // namespace gw::proxy
