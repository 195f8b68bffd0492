// SPDX-License-Identifier: MIT
// The splice relay: io_uring only reports readiness (poll) and the worker thread splices,
// synchronously, socket -> pooled pipe -> socket. IORING_OP_SPLICE always runs on io-wq
// threads, measured 2.5x slower.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "gateway/proxy/Relay.h"
#include "base/Fd.h"

namespace gw::proxy {

class SpliceRelay final : public Relay {
public:
  explicit SpliceRelay(io_uring& ring) : ring_(ring) {}

  void arm(Connection& c, uint32_t index, int dir) override;
  Flow onSource(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) override;
  Flow onDestination(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) override;
  std::vector<Tag> takeParked() override { return {}; } // a splice waits for nothing but peers
  void dropStale(const io_uring_cqe&) override {}        // a poll carries nothing
  void release(uint32_t index) override;

private:
  // One direction: a POLLIN on the source in flight, or a POLLOUT on the destination while the
  // pipe holds bytes, or neither.
  struct Direction {
    bool readPolled = false;
    bool writePolled = false;
    int32_t pipe = -1; // pool slot, held while bytes move or wait in it
    uint32_t held = 0; // bytes in the pipe, not yet written
  };
  struct Pipe {
    UniqueFd r;
    UniqueFd w;
    uint32_t size = 0; // capacity in bytes
  };

  Direction& direction(uint32_t index, int dir) { return dirs_[index][dir]; }
  Flow relay(Connection& c, uint32_t index, int dir);
  int acquirePipe();
  void releasePipe(int slot, bool empty);

  io_uring& ring_;
  std::vector<std::array<Direction, 2>> dirs_; // by connection index
  std::vector<Pipe> pipes_;
  std::vector<int32_t> freePipes_;
  unsigned bigPipes_ = 0; // open pipes enlarged to kPipeSize
};

} // namespace gw::proxy
