// SPDX-License-Identifier: MIT
// What the worker and its relay share about one thread's io_uring: the typed user_data every
// submission carries, and getting an SQE when the submission queue is full.
#pragma once

#include <liburing.h>

#include <cstdint>

namespace gw::proxy {

// What a completion is about, packed into user_data: op | dir << 8 | index << 16 | gen << 40.
enum class Op : uint8_t {
  Wake = 1,   // eventfd read: commands were posted
  Tick,       // periodic timeout: idle/connect deadlines, retries
  Accept,     // multishot accept; index = listener slot
  Cancel,     // a cancel request's own completion; index/gen = its connection (or none)
  Connect,
  SendHeader, // PROXY v2 header to the backend
  Recv,       // BufferRelay; dir 0: client -> backend, dir 1: backend -> client
  Send,       // BufferRelay
  PollIn,     // SpliceRelay: the source is readable; the worker splices itself
  PollOut,    // SpliceRelay: the destination can take what the pipe holds
};

struct Tag {
  Op op;
  uint8_t dir = 0;
  uint32_t index = 0; // 24 bits
  uint32_t gen = 0;   // 24 bits
};

constexpr uint32_t kIndexMask = 0xffffff;

constexpr uint64_t packTag(Tag t) {
  return static_cast<uint64_t>(t.op) | static_cast<uint64_t>(t.dir) << 8 |
         static_cast<uint64_t>(t.index & kIndexMask) << 16 |
         static_cast<uint64_t>(t.gen & kIndexMask) << 40;
}

constexpr Tag unpackTag(uint64_t v) {
  return Tag{static_cast<Op>(v & 0xff), static_cast<uint8_t>((v >> 8) & 0xff),
             static_cast<uint32_t>((v >> 16) & kIndexMask),
             static_cast<uint32_t>((v >> 40) & kIndexMask)};
}

inline io_uring_sqe* getSqe(io_uring& ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  while (sqe == nullptr) {
    // SQ full: push what we have to the kernel and retry.
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

} // namespace gw::proxy
