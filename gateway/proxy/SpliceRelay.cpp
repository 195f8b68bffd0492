// SPDX-License-Identifier: MIT
#include "gateway/proxy/SpliceRelay.h"

#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>

namespace gw::proxy {
namespace {

constexpr size_t kMaxIdlePipes = 64;
// Bigger pipes mean fewer splices per byte. Capacity is charged to the user's pipe quota
// (fs/pipe-user-pages-soft) whether or not it is used; the kernel may refuse: keep the default.
constexpr int kPipeSize = 1 << 20;
// A slow reader leaves its pipe full: only this many pipes per worker are enlarged, so stalled
// connections cannot pin more kernel memory than default pipes would, plus this many MiB.
constexpr unsigned kMaxBigPipes = 16;
// Bytes one direction may move per readiness event before it yields to other connections.
constexpr size_t kSpliceBudget = 1 << 20;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

} // namespace

void SpliceRelay::arm(Connection& c, uint32_t index, int dir) {
  if (index >= dirs_.size()) {
    dirs_.resize(index + 1);
  }
  Direction& d = direction(index, dir);
  if (c.closing || c.eof[dir] || d.readPolled || d.writePolled) {
    return;
  }
  io_uring_sqe* sqe = getSqe(ring_);
  io_uring_prep_poll_add(sqe, c.sourceFd(dir), POLLIN);
  c.tag(sqe, Op::PollIn, index, dir);
  d.readPolled = true;
}

Flow SpliceRelay::onSource(Connection& c, uint32_t index, int dir, const io_uring_cqe& cqe) {
  direction(index, dir).readPolled = false;
  if (c.closing) {
    return Flow::Moving;
  }
  return cqe.res < 0 ? Flow::Failed : relay(c, index, dir);
}

Flow SpliceRelay::onDestination(Connection& c, uint32_t index, int dir,
                                const io_uring_cqe& cqe) {
  direction(index, dir).writePolled = false;
  if (c.closing) {
    return Flow::Moving;
  }
  return cqe.res < 0 ? Flow::Failed : relay(c, index, dir);
}

// Socket -> pipe -> socket while data moves, up to a budget; the pipe is drained before the
// next read, so it holds at most one read and a slow reader stalls the writer (POLLOUT) without
// memory growth.
Flow SpliceRelay::relay(Connection& c, uint32_t index, int dir) {
  Direction& d = direction(index, dir);
  int src = c.sourceFd(dir);
  int dst = c.destinationFd(dir);
  size_t budget = kSpliceBudget;
  bool moved = false;
  while (true) {
    if (d.held > 0) {
      ssize_t n = splice(pipes_[d.pipe].r.get(), nullptr, dst, nullptr, d.held, kSpliceFlags);
      if (n > 0) {
        c.countDelivered(dir, static_cast<uint64_t>(n));
        d.held -= static_cast<uint32_t>(n);
        moved = true;
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        // The reader is slow: the pipe keeps what it holds until the destination drains.
        io_uring_sqe* sqe = getSqe(ring_);
        io_uring_prep_poll_add(sqe, dst, POLLOUT);
        c.tag(sqe, Op::PollOut, index, dir);
        d.writePolled = true;
        break;
      }
      return Flow::DestinationFailed;
    }
    if (budget == 0) {
      // Yield: a poll on a readable socket completes at once, after what else is queued.
      releasePipe(d.pipe, true);
      d.pipe = -1;
      arm(c, index, dir);
      break;
    }
    if (d.pipe < 0) {
      d.pipe = acquirePipe();
      if (d.pipe < 0) {
        return Flow::Failed;
      }
    }
    size_t want = std::min<size_t>(pipes_[d.pipe].size, budget);
    ssize_t n = splice(src, nullptr, pipes_[d.pipe].w.get(), nullptr, want, kSpliceFlags);
    if (n > 0) {
      d.held = static_cast<uint32_t>(n);
      budget -= std::min(budget, static_cast<size_t>(n));
      continue;
    }
    int err = errno;
    if (n < 0 && err == EINTR) {
      continue;
    }
    releasePipe(d.pipe, true); // nothing was read into it
    d.pipe = -1;
    if (n < 0 && err == EAGAIN) {
      arm(c, index, dir);
      break;
    }
    if (moved) {
      c.since = nowMs();
    }
    return n == 0 ? Flow::SourceEof : Flow::SourceFailed;
  }
  if (moved) {
    c.since = nowMs();
  }
  return Flow::Moving;
}

void SpliceRelay::release(uint32_t index) {
  if (index >= dirs_.size()) {
    return; // never relayed: closed while connecting
  }
  for (Direction& d : dirs_[index]) {
    releasePipe(d.pipe, d.held == 0);
    d = Direction{};
  }
}

int SpliceRelay::acquirePipe() {
  if (!freePipes_.empty()) {
    int slot = freePipes_.back();
    freePipes_.pop_back();
    return slot;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return -1;
  }
  int size = -1;
  if (bigPipes_ < kMaxBigPipes) {
    size = fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
    bigPipes_ += size >= kPipeSize ? 1 : 0;
  }
  if (size < 0) {
    size = fcntl(fds[1], F_GETPIPE_SZ); // the default, or less over the quota: it works
  }
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1]), static_cast<uint32_t>(std::max(size, 4096))};
  // Reuse the slot of a pipe closed earlier, if any.
  for (size_t i = 0; i < pipes_.size(); ++i) {
    if (!pipes_[i].r) {
      pipes_[i] = std::move(p);
      return static_cast<int>(i);
    }
  }
  pipes_.push_back(std::move(p));
  return static_cast<int>(pipes_.size() - 1);
}

void SpliceRelay::releasePipe(int slot, bool empty) {
  if (slot < 0) {
    return;
  }
  // A pipe still holding bytes of a dead connection is closed, not reused.
  if (empty && freePipes_.size() < kMaxIdlePipes) {
    freePipes_.push_back(slot);
    return;
  }
  bigPipes_ -= pipes_[slot].size >= static_cast<uint32_t>(kPipeSize) ? 1 : 0;
  pipes_[slot] = Pipe{};
}

} // namespace gw::proxy
