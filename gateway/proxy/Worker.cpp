// SPDX-License-Identifier: MIT
#include "gateway/proxy/Worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/Log.h"

namespace gw::proxy {
namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 8192;
constexpr uint8_t kListenerCancel = 1; // Op::Cancel with dir 1: an accept's cancel
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

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace

Worker::Worker(const Options& options)
    : config_(options.config), globalActive_(options.globalActive) {
  tickInterval_.tv_sec = 0;
  tickInterval_.tv_nsec = 250 * 1000 * 1000;
}

Result<std::unique_ptr<Worker>> Worker::start(const Options& options) {
  std::unique_ptr<Worker> w(new Worker(options));
  // Blocking on purpose: io_uring completes a read on an O_NONBLOCK file with -EAGAIN instead
  // of waiting for it.
  int efd = eventfd(0, EFD_CLOEXEC);
  if (efd < 0) {
    return sysError("eventfd");
  }
  w->wakeFd_.reset(efd);
  std::promise<Status> ready;
  auto result = ready.get_future();
  int netnsFd = options.netnsFd;
  w->thread_ = std::thread([worker = w.get(), netnsFd, &ready] { worker->run(netnsFd, &ready); });
  Status status = result.get();
  if (!status) {
    w->thread_.join();
    return std::unexpected(status.error());
  }
  return w;
}

Worker::~Worker() {
  if (thread_.joinable()) {
    requestStop();
    thread_.join();
  }
}

void Worker::post(std::function<void(Worker&)> command) {
  {
    std::lock_guard lock(mu_);
    commands_.push_back(std::move(command));
  }
  uint64_t one = 1;
  // Cannot block: the counter would have to reach 2^64-1.
  [[maybe_unused]] ssize_t n = write(wakeFd_.get(), &one, sizeof one);
}

void Worker::addListener(std::shared_ptr<ListenerShared> listener, size_t fdIndex) {
  post([listener = std::move(listener), fdIndex](Worker& w) {
    if (w.stopping_) {
      return;
    }
    uint32_t slot = 0;
    while (slot < w.listeners_.size() && w.listeners_[slot].shared) {
      ++slot;
    }
    if (slot == w.listeners_.size()) {
      w.listeners_.emplace_back();
    }
    w.listeners_[slot].shared = listener;
    w.listeners_[slot].fd = listener->fds[fdIndex].get();
    w.armAccept(slot);
  });
}

void Worker::removeListener(uint64_t id, std::function<void()> done) {
  post([id, done = std::move(done)](Worker& w) mutable {
    for (uint32_t slot = 0; slot < w.listeners_.size(); ++slot) {
      ListenerSlot& l = w.listeners_[slot];
      if (!l.shared || l.shared->id != id || l.removing) {
        continue;
      }
      l.removing = true;
      l.removed = std::move(done);
      if (!l.armed) {
        w.removeSlot(slot);
        return;
      }
      io_uring_sqe* sqe = w.getSqe();
      io_uring_prep_cancel64(sqe, packTag({Op::Accept, 0, slot, l.gen}), 0);
      io_uring_sqe_set_data64(sqe, packTag({Op::Cancel, kListenerCancel, slot, l.gen}));
      return; // removeSlot runs when the accept's last completion arrives
    }
    if (done) {
      done();
    }
  });
}

void Worker::closeConnections(uint64_t id) {
  post([id](Worker& w) {
    for (uint32_t i = 0; i < w.conns_.size(); ++i) {
      Connection& c = w.conns_[i];
      if (c.state != State::Free && (id == 0 || c.listener->id == id)) {
        w.closeConnection(c, i);
      }
    }
  });
}

void Worker::requestStop() {
  post([](Worker& w) {
    w.stopping_ = true;
    for (uint32_t slot = 0; slot < w.listeners_.size(); ++slot) {
      ListenerSlot& l = w.listeners_[slot];
      if (!l.shared || l.removing) {
        continue;
      }
      l.removing = true;
      if (!l.armed) {
        w.removeSlot(slot);
        continue;
      }
      io_uring_sqe* sqe = w.getSqe();
      io_uring_prep_cancel64(sqe, packTag({Op::Accept, 0, slot, l.gen}), 0);
      io_uring_sqe_set_data64(sqe, packTag({Op::Cancel, kListenerCancel, slot, l.gen}));
    }
    for (uint32_t i = 0; i < w.conns_.size(); ++i) {
      if (w.conns_[i].state != State::Free) {
        w.closeConnection(w.conns_[i], i);
      }
    }
  });
}

void Worker::run(int netnsFd, std::promise<Status>* ready) {
  // splice(2) to a closed socket raises SIGPIPE (it cannot pass MSG_NOSIGNAL): keep it pending
  // on this thread instead of killing a process that did not ignore it.
  sigset_t pipeSignal;
  sigemptyset(&pipeSignal);
  sigaddset(&pipeSignal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeSignal, nullptr);
  Status status = setup(netnsFd);
  bool ok = status.has_value();
  ready->set_value(std::move(status)); // `ready` dies with start()'s frame after this
  if (ok) {
    loop();
  }
  buffers_.reset(); // before the ring fd is closed and its number reused
  if (ringReady_) {
    io_uring_queue_exit(&ring_);
  }
}

Status Worker::setup(int netnsFd) {
  // Only this thread moves: sockets it creates belong to the target namespace from now on.
  if (netnsFd >= 0 && setns(netnsFd, CLONE_NEWNET) != 0) {
    return sysError("setns into the target network namespace");
  }
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  params.cq_entries = kCqEntries;
  int ret = io_uring_queue_init_params(kSqEntries, &ring_, &params);
  if (ret == -EINVAL) {
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    ret = io_uring_queue_init_params(kSqEntries, &ring_, &params);
  }
  if (ret < 0) {
    return std::unexpected(Error{-ret, "io_uring_queue_init_params"});
  }
  ringReady_ = true;
  if (config_.relay == RelayMode::Buffers) {
    if (auto s = buffers_.init(&ring_, 0, config_.buffersPerThread, config_.bufferSize); !s) {
      return s;
    }
  }
  armWake();
  armTick();
  ret = io_uring_submit(&ring_);
  if (ret < 0) {
    return std::unexpected(Error{-ret, "io_uring_submit"});
  }
  return {};
}

void Worker::loop() {
  while (true) {
    int ret = io_uring_submit_and_wait(&ring_, 1);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
      log::error("proxy worker stops: io_uring_submit_and_wait: ", std::strerror(-ret));
      return;
    }
    // Reap the whole batch, then advance the CQ once.
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      dispatch(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);

    if (!starved_.empty() && buffers_.available() > 0) {
      std::vector<Tag> retry;
      retry.swap(starved_);
      for (const Tag& t : retry) {
        Connection& c = conns_[t.index];
        if (c.state != State::Free && c.gen == t.gen) {
          armRecv(c, t.index, t.dir);
        }
      }
    }
    bool listening = false;
    for (const ListenerSlot& l : listeners_) {
      listening = listening || static_cast<bool>(l.shared);
    }
    if (stopping_ && liveConns_ == 0 && !listening) {
      return;
    }
  }
}

io_uring_sqe* Worker::getSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // SQ full: push what we have to the kernel and retry.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Worker::prep(io_uring_sqe* sqe, Op op, Connection& c, uint32_t index, int dir) {
  io_uring_sqe_set_data64(sqe, packTag({op, static_cast<uint8_t>(dir), index, c.gen}));
  ++c.inflight;
}

void Worker::armWake() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof wakeValue_, 0);
  io_uring_sqe_set_data64(sqe, packTag({Op::Wake}));
}

void Worker::armTick() {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_timeout(sqe, &tickInterval_, 0, 0);
  io_uring_sqe_set_data64(sqe, packTag({Op::Tick}));
}

void Worker::armAccept(uint32_t slot) {
  ListenerSlot& l = listeners_[slot];
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_multishot_accept(sqe, l.fd, nullptr, nullptr,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK);
  io_uring_sqe_set_data64(sqe, packTag({Op::Accept, 0, slot, l.gen}));
  l.armed = true;
  l.rearm = false;
}

void Worker::runCommands() {
  std::vector<std::function<void(Worker&)>> commands;
  {
    std::lock_guard lock(mu_);
    commands.swap(commands_);
  }
  for (auto& command : commands) {
    command(*this);
  }
}

void Worker::onTick() {
  armTick();
  int64_t now = nowMs();
  int64_t idleMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.idleTimeout).count();
  int64_t connectMs = config_.connectTimeout.count();
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Connection& c = conns_[i];
    if (c.state == State::Free || c.closing) {
      continue;
    }
    if (c.state == State::Connecting) {
      if (now - c.since > connectMs) {
        c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
        closeConnection(c, i);
      }
    } else if (now - c.since > idleMs) {
      closeConnection(c, i);
    }
  }
  for (uint32_t slot = 0; slot < listeners_.size(); ++slot) {
    ListenerSlot& l = listeners_[slot];
    if (l.shared && l.rearm && !l.armed && !l.removing) {
      armAccept(slot);
    }
  }
}

void Worker::dispatch(const io_uring_cqe* cqe) {
  Tag tag = unpackTag(cqe->user_data);
  switch (tag.op) {
  case Op::Wake:
    armWake();
    runCommands();
    return;
  case Op::Tick:
    onTick();
    return;
  case Op::Accept:
    onAccept(tag, cqe);
    return;
  case Op::Cancel:
    if (tag.dir == kListenerCancel) {
      return;
    }
    break;
  default:
    break;
  }

  if (tag.index >= conns_.size()) {
    return;
  }
  Connection& c = conns_[tag.index];
  if (c.state == State::Free || c.gen != tag.gen) {
    // Cannot happen while in-flight ops are counted; never leak a buffer if it does.
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      buffers_.taken();
      buffers_.recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  --c.inflight;
  int res = cqe->res;
  switch (tag.op) {
  case Op::Connect:
    onConnect(c, tag.index, res);
    break;
  case Op::SendHeader:
    onSendHeader(c, tag.index, res);
    break;
  case Op::Recv:
    onRecv(c, tag.index, tag.dir, cqe);
    break;
  case Op::Send:
    onSend(c, tag.index, tag.dir, res);
    break;
  case Op::PollIn:
    c.half[tag.dir].recvPending = false;
    onPoll(c, tag.index, tag.dir, res);
    break;
  case Op::PollOut:
    c.half[tag.dir].sendPending = false;
    onPoll(c, tag.index, tag.dir, res);
    break;
  case Op::Cancel:
  case Op::Wake:
  case Op::Tick:
  case Op::Accept:
    break;
  }
  if (c.state != State::Free && c.closing && c.inflight == 0) {
    finalize(c, tag.index);
  }
}

void Worker::onAccept(Tag tag, const io_uring_cqe* cqe) {
  int res = cqe->res;
  if (tag.index >= listeners_.size() || listeners_[tag.index].gen != tag.gen ||
      !listeners_[tag.index].shared) {
    if (res >= 0) {
      close(res);
    }
    return;
  }
  UniqueFd client(res >= 0 ? res : -1);
  ListenerSlot& slot = listeners_[tag.index];
  std::shared_ptr<ListenerShared> listener = slot.shared;
  bool closingDown = slot.removing || stopping_; // removeSlot below clears `removing`
  if (!(cqe->flags & IORING_CQE_F_MORE)) {
    // Multishot ended: cancelled, or an error such as EMFILE. Arm again, calmly, on the tick.
    slot.armed = false;
    if (slot.removing) {
      removeSlot(tag.index);
    } else if (res >= 0) {
      armAccept(tag.index);
    } else {
      slot.rearm = true;
    }
  }
  if (!client || closingDown) {
    return;
  }

  // Limits: over either one, the connection is accepted and closed at once.
  uint64_t global = globalActive_->fetch_add(1, std::memory_order_relaxed);
  uint64_t mine = listener->active.fetch_add(1, std::memory_order_relaxed);
  unsigned perListener = listener->spec.maxConnections;
  if (global >= config_.maxConnections || (perListener != 0 && mine >= perListener)) {
    globalActive_->fetch_sub(1, std::memory_order_relaxed);
    listener->active.fetch_sub(1, std::memory_order_relaxed);
    listener->refusedLimit.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  listener->accepted.fetch_add(1, std::memory_order_relaxed);

  uint32_t index = 0;
  if (!freeConns_.empty()) {
    index = freeConns_.back();
    freeConns_.pop_back();
  } else {
    index = static_cast<uint32_t>(conns_.size());
    conns_.emplace_back();
  }
  ++liveConns_;
  Connection& c = conns_[index];
  c.state = State::Connecting;
  c.closing = false;
  c.inflight = 0;
  c.since = nowMs();
  c.headerLen = 0;
  c.headerOff = 0;
  c.triedFallback = false;
  c.client = std::move(client);
  c.listener = listener;
  setNoDelay(c.client.get());

  if (listener->spec.proxyProtocolV2) {
    sockaddr_storage peer{};
    sockaddr_storage local{};
    socklen_t peerLen = sizeof peer;
    socklen_t localLen = sizeof local;
    if (getpeername(c.client.get(), reinterpret_cast<sockaddr*>(&peer), &peerLen) != 0 ||
        getsockname(c.client.get(), reinterpret_cast<sockaddr*>(&local), &localLen) != 0) {
      closeConnection(c, index); // the client is already gone
      return;
    }
    auto len = encodeProxyV2(peer, local, c.header);
    if (!len) {
      closeConnection(c, index);
      return;
    }
    c.headerLen = static_cast<uint8_t>(*len);
  }
  connectBackend(c, index, listener->target);
}

void Worker::connectBackend(Connection& c, uint32_t index, const SockAddr& to) {
  // This thread entered the target namespace at start: the socket is created there.
  int fd = socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c, index);
    return;
  }
  c.backend.reset(fd);
  setNoDelay(fd);
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_connect(sqe, fd, to.get(), to.length);
  prep(sqe, Op::Connect, c, index, 0);
}

void Worker::onConnect(Connection& c, uint32_t index, int res) {
  if (c.closing) {
    return;
  }
  if (res < 0 && c.listener->fallback && !c.triedFallback) {
    c.triedFallback = true;
    connectBackend(c, index, *c.listener->fallback);
    return;
  }
  if (res < 0) {
    c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c, index);
    return;
  }
  c.since = nowMs();
  if (c.headerLen > 0) {
    c.state = State::SendingHeader;
    sendHeader(c, index);
  } else {
    startRelay(c, index);
  }
}

void Worker::sendHeader(Connection& c, uint32_t index) {
  io_uring_sqe* sqe = getSqe();
  io_uring_prep_send(sqe, c.backend.get(), c.header.data() + c.headerOff,
                     c.headerLen - c.headerOff, MSG_NOSIGNAL);
  prep(sqe, Op::SendHeader, c, index, 0);
}

void Worker::onSendHeader(Connection& c, uint32_t index, int res) {
  if (c.closing) {
    return;
  }
  if (res <= 0) {
    c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
    closeConnection(c, index);
    return;
  }
  c.headerOff = static_cast<uint8_t>(c.headerOff + res);
  if (c.headerOff < c.headerLen) {
    sendHeader(c, index);
  } else {
    startRelay(c, index);
  }
}

void Worker::startRelay(Connection& c, uint32_t index) {
  c.state = State::Relaying;
  armRecv(c, index, 0);
  armRecv(c, index, 1);
}

int Worker::fdOf(Connection& c, int dir, bool source) const {
  // dir 0 reads the client and writes the backend; dir 1 the reverse.
  bool client = (dir == 0) == source;
  return client ? c.client.get() : c.backend.get();
}

// Backpressure: a direction has at most one read or one write in flight, never both, so data
// read but not yet written is bounded by one buffer (or one pipe) per direction.
void Worker::armRecv(Connection& c, uint32_t index, int dir) {
  Half& h = c.half[dir];
  if (c.closing || h.eof || h.recvPending || h.sendPending) {
    return;
  }
  io_uring_sqe* sqe = getSqe();
  if (config_.relay == RelayMode::Buffers) {
    // No buffer is picked until data is there: idle connections hold none.
    io_uring_prep_recv(sqe, fdOf(c, dir, true), nullptr, buffers_.size(), 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers_.group();
    prep(sqe, Op::Recv, c, index, dir);
  } else {
    io_uring_prep_poll_add(sqe, fdOf(c, dir, true), POLLIN);
    prep(sqe, Op::PollIn, c, index, dir);
  }
  h.recvPending = true;
}

void Worker::onRecv(Connection& c, uint32_t index, int dir, const io_uring_cqe* cqe) {
  Half& h = c.half[dir];
  h.recvPending = false;
  int res = cqe->res;
  int buf = -1;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    buf = static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    buffers_.taken();
  }
  if (c.closing || res <= 0) {
    if (buf >= 0) {
      buffers_.recycle(static_cast<uint16_t>(buf));
    }
    if (c.closing) {
      return;
    }
    if (res == -ENOBUFS) {
      starved_.push_back({Op::Recv, static_cast<uint8_t>(dir), index, c.gen});
    } else if (res == 0) {
      onEof(c, index, dir);
    } else {
      if (dir == 1) {
        c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
      }
      closeConnection(c, index);
    }
    return;
  }
  if (buf < 0) {
    closeConnection(c, index);
    return;
  }
  c.since = nowMs();
  h.buf = buf;
  h.data = buffers_.data(static_cast<uint16_t>(buf));
  h.len = static_cast<uint32_t>(res);
  h.off = 0;
  issueSend(c, index, dir);
}

void Worker::issueSend(Connection& c, uint32_t index, int dir) {
  Half& h = c.half[dir];
  io_uring_sqe* sqe = getSqe();
  // No MSG_WAITALL: a short send tells us the reader is slow (see onSend).
  io_uring_prep_send(sqe, fdOf(c, dir, false), h.data + h.off, h.len - h.off, MSG_NOSIGNAL);
  prep(sqe, Op::Send, c, index, dir);
  h.sendPending = true;
}

void Worker::onSend(Connection& c, uint32_t index, int dir, int res) {
  Half& h = c.half[dir];
  h.sendPending = false;
  if (c.closing) {
    releaseData(h);
    return;
  }
  if (res <= 0) {
    releaseData(h);
    if (dir == 0) {
      c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
    }
    closeConnection(c, index);
    return;
  }
  countDelivered(c, dir, res);
  c.since = nowMs();
  h.off += static_cast<uint32_t>(res);
  if (h.off < h.len) {
    if (h.buf >= 0) {
      // Slow reader: copy the tail out so one stalled peer cannot pin the shared pool.
      uint32_t rest = h.len - h.off;
      if (!h.spill) {
        h.spill = std::make_unique_for_overwrite<uint8_t[]>(buffers_.size());
      }
      std::memcpy(h.spill.get(), h.data + h.off, rest);
      buffers_.recycle(static_cast<uint16_t>(h.buf));
      h.buf = -1;
      h.data = h.spill.get();
      h.len = rest;
      h.off = 0;
    }
    issueSend(c, index, dir);
    return;
  }
  releaseData(h);
  armRecv(c, index, dir);
}

void Worker::releaseData(Half& h) {
  if (h.buf >= 0) {
    buffers_.recycle(static_cast<uint16_t>(h.buf));
    h.buf = -1;
  }
  h.spill.reset();
  h.data = nullptr;
  h.len = 0;
  h.off = 0;
}

void Worker::onPoll(Connection& c, uint32_t index, int dir, int res) {
  if (c.closing) {
    return;
  }
  if (res < 0) {
    closeConnection(c, index);
    return;
  }
  spliceRelay(c, index, dir);
}

// The splice relay: io_uring only reports readiness and this thread splices, synchronously:
// IORING_OP_SPLICE always runs on io-wq threads, measured 2.5x slower. Socket -> pipe -> socket
// while data moves, up to a budget; the pipe is drained before the next read, so it holds at
// most one read and a slow reader stalls the writer (POLLOUT) without memory growth.
void Worker::spliceRelay(Connection& c, uint32_t index, int dir) {
  Half& h = c.half[dir];
  int src = fdOf(c, dir, true);
  int dst = fdOf(c, dir, false);
  size_t budget = kSpliceBudget;
  bool moved = false;
  while (true) {
    if (h.len > 0) {
      ssize_t n = splice(pipes_[h.pipe].r.get(), nullptr, dst, nullptr, h.len, kSpliceFlags);
      if (n > 0) {
        countDelivered(c, dir, static_cast<int>(n));
        h.len -= static_cast<uint32_t>(n);
        moved = true;
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        // The reader is slow: the pipe keeps what it holds until the destination drains.
        io_uring_sqe* sqe = getSqe();
        io_uring_prep_poll_add(sqe, dst, POLLOUT);
        prep(sqe, Op::PollOut, c, index, dir);
        h.sendPending = true;
        break;
      }
      if (dir == 0) {
        c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
      }
      closeConnection(c, index);
      return; // c may be finalized
    }
    if (budget == 0) {
      // Yield: a poll on a readable socket completes at once, after what else is queued.
      releasePipe(h.pipe, true);
      h.pipe = -1;
      armRecv(c, index, dir);
      break;
    }
    if (h.pipe < 0) {
      h.pipe = acquirePipe();
      if (h.pipe < 0) {
        closeConnection(c, index);
        return;
      }
    }
    size_t want = std::min<size_t>(pipes_[h.pipe].size, budget);
    ssize_t n = splice(src, nullptr, pipes_[h.pipe].w.get(), nullptr, want, kSpliceFlags);
    if (n > 0) {
      h.len = static_cast<uint32_t>(n);
      budget -= std::min(budget, static_cast<size_t>(n));
      continue;
    }
    int err = errno;
    if (n < 0 && err == EINTR) {
      continue;
    }
    releasePipe(h.pipe, true); // nothing was read into it
    h.pipe = -1;
    if (n < 0 && err == EAGAIN) {
      armRecv(c, index, dir);
      break;
    }
    if (moved) {
      c.since = nowMs();
    }
    if (n == 0) {
      onEof(c, index, dir);
    } else {
      if (dir == 1) {
        c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
      }
      closeConnection(c, index);
    }
    return;
  }
  if (moved) {
    c.since = nowMs();
  }
}

int Worker::acquirePipe() {
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

void Worker::releasePipe(int slot, bool empty) {
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

void Worker::onEof(Connection& c, uint32_t index, int dir) {
  c.half[dir].eof = true;
  // Half-close: the other side learns there is no more data, and may still answer.
  ::shutdown(fdOf(c, dir, false), SHUT_WR);
  if (c.half[0].eof && c.half[1].eof) {
    closeConnection(c, index);
  }
}

void Worker::countDelivered(Connection& c, int dir, int bytes) {
  auto& counter = dir == 0 ? c.listener->bytesIn : c.listener->bytesOut;
  counter.fetch_add(static_cast<uint64_t>(bytes), std::memory_order_relaxed);
}

void Worker::closeConnection(Connection& c, uint32_t index) {
  if (c.state == State::Free || c.closing) {
    return;
  }
  c.closing = true;
  if (c.inflight == 0) {
    finalize(c, index);
    return;
  }
  // shutdown() wakes pending recv/send at once; the cancels catch the rest (connect, polls).
  // The cancels count as in flight so the fds are not closed (and their numbers reused) first.
  for (UniqueFd* fd : {&c.client, &c.backend}) {
    if (!*fd) {
      continue;
    }
    ::shutdown(fd->get(), SHUT_RDWR);
    io_uring_sqe* sqe = getSqe();
    io_uring_prep_cancel_fd(sqe, fd->get(), IORING_ASYNC_CANCEL_ALL);
    prep(sqe, Op::Cancel, c, index, 0);
  }
}

void Worker::finalize(Connection& c, uint32_t index) {
  for (Half& h : c.half) {
    releasePipe(h.pipe, h.len == 0); // splice mode: len is what the pipe holds
    releaseData(h);
    h = Half{};
  }
  c.client.reset();
  c.backend.reset();
  c.listener->active.fetch_sub(1, std::memory_order_relaxed);
  globalActive_->fetch_sub(1, std::memory_order_relaxed);
  c.listener.reset();
  c.state = State::Free;
  c.closing = false;
  c.gen = (c.gen + 1) & kIndexMask;
  freeConns_.push_back(index);
  --liveConns_;
}

void Worker::removeSlot(uint32_t slot) {
  ListenerSlot& l = listeners_[slot];
  std::function<void()> done = std::move(l.removed);
  l.shared.reset();
  l.fd = -1;
  l.removed = nullptr;
  l.gen = (l.gen + 1) & kIndexMask;
  l.armed = false;
  l.rearm = false;
  l.removing = false;
  if (done) {
    done();
  }
}

} // namespace gw::proxy
