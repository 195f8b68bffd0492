// SPDX-License-Identifier: MIT
#include "gateway/proxy/Worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "gateway/proxy/BufferRelay.h"
#include "gateway/proxy/SpliceRelay.h"
#include "base/Log.h"

namespace gw::proxy {
namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 8192;
constexpr uint8_t kListenerCancel = 1; // Op::Cancel with dir 1: an accept's cancel

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
      io_uring_sqe* sqe = getSqe(w.ring_);
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
      io_uring_sqe* sqe = getSqe(w.ring_);
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
  // SpliceRelay's splice(2) to a closed socket raises SIGPIPE (no MSG_NOSIGNAL there): keep it
  // pending on this thread instead of killing a process that did not ignore it.
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
  relay_.reset(); // its buffer ring goes before the ring fd is closed and its number reused
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
    auto relay = std::make_unique<BufferRelay>(ring_);
    if (auto s = relay->init(config_.buffersPerThread, config_.bufferSize); !s) {
      return s;
    }
    relay_ = std::move(relay);
  } else {
    relay_ = std::make_unique<SpliceRelay>(ring_);
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

    for (const Tag& t : relay_->takeParked()) {
      Connection& c = conns_[t.index];
      if (c.state != State::Free && c.gen == t.gen) {
        relay_->arm(c, t.index, t.dir);
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

void Worker::armWake() {
  io_uring_sqe* sqe = getSqe(ring_);
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof wakeValue_, 0);
  io_uring_sqe_set_data64(sqe, packTag({Op::Wake}));
}

void Worker::armTick() {
  io_uring_sqe* sqe = getSqe(ring_);
  io_uring_prep_timeout(sqe, &tickInterval_, 0, 0);
  io_uring_sqe_set_data64(sqe, packTag({Op::Tick}));
}

void Worker::armAccept(uint32_t slot) {
  ListenerSlot& l = listeners_[slot];
  io_uring_sqe* sqe = getSqe(ring_);
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
    relay_->dropStale(*cqe); // cannot happen while in-flight ops are counted
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
  case Op::PollIn:
    onFlow(c, tag.index, tag.dir, relay_->onSource(c, tag.index, tag.dir, *cqe));
    break;
  case Op::Send:
  case Op::PollOut:
    onFlow(c, tag.index, tag.dir, relay_->onDestination(c, tag.index, tag.dir, *cqe));
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
  io_uring_sqe* sqe = getSqe(ring_);
  io_uring_prep_connect(sqe, fd, to.get(), to.length);
  c.tag(sqe, Op::Connect, index, 0);
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
  io_uring_sqe* sqe = getSqe(ring_);
  io_uring_prep_send(sqe, c.backend.get(), c.header.data() + c.headerOff,
                     c.headerLen - c.headerOff, MSG_NOSIGNAL);
  c.tag(sqe, Op::SendHeader, index, 0);
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
  relay_->arm(c, index, 0);
  relay_->arm(c, index, 1);
}

void Worker::onFlow(Connection& c, uint32_t index, int dir, Flow flow) {
  switch (flow) {
  case Flow::Moving:
    return;
  case Flow::SourceEof:
    onEof(c, index, dir);
    return;
  case Flow::SourceFailed:
  case Flow::DestinationFailed:
    // Direction 1 reads the backend, direction 0 writes it: count the failures that are its.
    if ((flow == Flow::SourceFailed) == (dir == 1)) {
      c.listener->backendFailed.fetch_add(1, std::memory_order_relaxed);
    }
    closeConnection(c, index);
    return;
  case Flow::Failed:
    closeConnection(c, index);
    return;
  }
}

void Worker::onEof(Connection& c, uint32_t index, int dir) {
  c.eof[dir] = true;
  // Half-close: the other side learns there is no more data, and may still answer.
  ::shutdown(c.destinationFd(dir), SHUT_WR);
  if (c.eof[0] && c.eof[1]) {
    closeConnection(c, index);
  }
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
    io_uring_sqe* sqe = getSqe(ring_);
    io_uring_prep_cancel_fd(sqe, fd->get(), IORING_ASYNC_CANCEL_ALL);
    c.tag(sqe, Op::Cancel, index, 0);
  }
}

void Worker::finalize(Connection& c, uint32_t index) {
  relay_->release(index);
  c.eof = {};
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
