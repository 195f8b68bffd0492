// SPDX-License-Identifier: MIT
// The buffer relay (the default): recv into a provided buffer the kernel picks once data is
// there, so idle connections hold none, then send from it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "gateway/proxy/BufferRing.h"
#include "gateway/proxy/Relay.h"
#include "base/Error.h"

namespace gw::proxy {

class BufferRelay final : public Relay {
public:
  explicit BufferRelay(io_uring& ring) : ring_(ring) {}
  // Registers `count` buffers of `size` bytes as buffer group 0 of the ring.
  Status init(unsigned count, unsigned size);

  void arm(Connection& c, uint32_t index, int dir) override;
  Flow onSource(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) override;
  Flow onDestination(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) override;
  std::vector<Tag> takeParked() override;
  void dropStale(const io_uring_cqe& cqe) override;
  void release(uint32_t index) override;

private:
  // One direction: a recv in flight, or a send of data[off, len) in flight, or neither.
  struct Direction {
    bool recvPending = false;
    bool sendPending = false;
    int32_t buf = -1; // the provided buffer `data` points into; -1: spill or nothing
    std::unique_ptr<uint8_t[]> spill; // the unsent tail of a buffer when the reader is slow
    const uint8_t* data = nullptr;
    uint32_t len = 0;
    uint32_t off = 0;
  };

  Direction& direction(uint32_t index, int dir) { return dirs_[index][dir]; }
  void send(Connection& c, uint32_t index, int dir);
  void releaseData(Direction& d);

  io_uring& ring_;
  BufferRing buffers_;
  std::vector<std::array<Direction, 2>> dirs_; // by connection index
  std::vector<Tag> starved_; // recv got ENOBUFS: retried when buffers come back
};

} // namespace gw::proxy
