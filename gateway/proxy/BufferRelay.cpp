// SPDX-License-Identifier: MIT
#include "gateway/proxy/BufferRelay.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace gw::proxy {

Status BufferRelay::init(unsigned count, unsigned size) {
  return buffers_.init(&ring_, 0, count, size);
}

void BufferRelay::arm(Connection& c, uint32_t index, int dir) {
  if (index >= dirs_.size()) {
    dirs_.resize(index + 1);
  }
  Direction& d = direction(index, dir);
  if (c.closing || c.eof[dir] || d.recvPending || d.sendPending) {
    return;
  }
  io_uring_sqe* sqe = getSqe(ring_);
  // No buffer is picked until data is there: idle connections hold none.
  io_uring_prep_recv(sqe, c.sourceFd(dir), nullptr, buffers_.size(), 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  c.tag(sqe, Op::Recv, index, dir);
  d.recvPending = true;
}

Flow BufferRelay::onSource(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) {
  Direction& d = direction(index, dir);
  d.recvPending = false;
  int res = cqe.res;
  int buf = -1;
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    buf = static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    buffers_.taken();
  }
  if (c.closing || res <= 0) {
    if (buf >= 0) {
      buffers_.recycle(static_cast<uint16_t>(buf));
    }
    if (c.closing) {
      return Flow::Moving;
    }
    if (res == -ENOBUFS) {
      starved_.push_back({Op::Recv, static_cast<uint8_t>(dir), index, c.gen});
      return Flow::Moving;
    }
    return res == 0 ? Flow::SourceEof : Flow::SourceFailed;
  }
  if (buf < 0) {
    return Flow::Failed;
  }
  c.since = nowMs();
  d.buf = buf;
  d.data = buffers_.data(static_cast<uint16_t>(buf));
  d.len = static_cast<uint32_t>(res);
  d.off = 0;
  send(c, index, dir);
  return Flow::Moving;
}

void BufferRelay::send(Connection& c, uint32_t index, int dir) {
  Direction& d = direction(index, dir);
  io_uring_sqe* sqe = getSqe(ring_);
  // No MSG_WAITALL: a short send tells us the reader is slow (see onDestination).
  io_uring_prep_send(sqe, c.destinationFd(dir), d.data + d.off, d.len - d.off, MSG_NOSIGNAL);
  c.tag(sqe, Op::Send, index, dir);
  d.sendPending = true;
}

Flow BufferRelay::onDestination(Connection& c, uint32_t index, int dir,
                                const io_uring_cqe& cqe) {
  Direction& d = direction(index, dir);
  d.sendPending = false;
  int res = cqe.res;
  if (c.closing) {
    releaseData(d);
    return Flow::Moving;
  }
  if (res <= 0) {
    releaseData(d);
    return Flow::DestinationFailed;
  }
  c.countDelivered(dir, static_cast<uint64_t>(res));
  c.since = nowMs();
  d.off += static_cast<uint32_t>(res);
  if (d.off < d.len) {
    if (d.buf >= 0) {
      // Slow reader: copy the tail out so one stalled peer cannot pin the shared pool.
      uint32_t rest = d.len - d.off;
      if (!d.spill) {
        d.spill = std::make_unique_for_overwrite<uint8_t[]>(buffers_.size());
      }
      std::memcpy(d.spill.get(), d.data + d.off, rest);
      buffers_.recycle(static_cast<uint16_t>(d.buf));
      d.buf = -1;
      d.data = d.spill.get();
      d.len = rest;
      d.off = 0;
    }
    send(c, index, dir);
    return Flow::Moving;
  }
  releaseData(d);
  arm(c, index, dir);
  return Flow::Moving;
}

std::vector<Tag> BufferRelay::takeParked() {
  if (starved_.empty() || buffers_.available() == 0) {
    return {};
  }
  return std::exchange(starved_, {});
}

void BufferRelay::dropStale(const io_uring_cqe& cqe) {
  // Cannot happen while in-flight ops are counted; never leak a buffer if it does.
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    buffers_.taken();
    buffers_.recycle(static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
  }
}

void BufferRelay::release(uint32_t index) {
  if (index >= dirs_.size()) {
    return; // never relayed: closed while connecting
  }
  for (Direction& d : dirs_[index]) {
    releaseData(d);
    d = Direction{};
  }
}

void BufferRelay::releaseData(Direction& d) {
  if (d.buf >= 0) {
    buffers_.recycle(static_cast<uint16_t>(d.buf));
    d.buf = -1;
  }
  d.spill.reset();
  d.data = nullptr;
  d.len = 0;
  d.off = 0;
}

} // namespace gw::proxy
