// SPDX-License-Identifier: MIT
// One proxy thread: its own io_uring, its connections, and the listeners it accepts on. A worker
// enters its target namespace once at thread start, so the backend sockets it creates live there.
// Other threads talk to it only through post() (a locked queue + eventfd read by the ring).
// The worker accepts, connects and dispatches completions; its Relay (Relay.h) moves the bytes.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/proxy/Connection.h"
#include "gateway/proxy/Proxy.h"
#include "gateway/proxy/Relay.h"
#include "gateway/proxy/Ring.h"
#include "gateway/proxy/SockAddr.h"
#include "base/Error.h"
#include "base/Fd.h"

namespace gw::proxy {

class Worker {
public:
  struct Options {
    ProxyConfig config;
    int netnsFd = -1; // entered once by the thread; -1 = stay in the spawning thread's namespace
    std::atomic<uint64_t>* globalActive = nullptr;
  };

  // Spawns the thread and waits until its ring is ready (or failed).
  static Result<std::unique_ptr<Worker>> start(const Options& options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker(); // stops (closing everything) and joins

  void post(std::function<void(Worker&)> command);
  // Asynchronous: the worker starts accepting on the listener's socket `fdIndex`.
  void addListener(std::shared_ptr<ListenerShared> listener, size_t fdIndex);
  // Runs on the worker; `done` is called there once its accept is cancelled.
  void removeListener(uint64_t id, std::function<void()> done);
  // Closes the connections of listener `id` (0 = all).
  void closeConnections(uint64_t id);
  // Closes everything; the thread exits once all completions are in. Then join().
  void requestStop();

private:
  using State = Connection::State;
  struct ListenerSlot {
    std::shared_ptr<ListenerShared> shared;
    int fd = -1; // ours among shared->fds
    uint32_t gen = 0;
    bool armed = false;
    bool rearm = false;   // accept stopped (e.g. EMFILE): arm again on the next tick
    bool removing = false;
    std::function<void()> removed;
  };

  explicit Worker(const Options& options);
  void run(int netnsFd, std::promise<Status>* ready);
  Status setup(int netnsFd);
  void loop();

  void armWake();
  void armTick();
  void armAccept(uint32_t slot);
  void runCommands();
  void onTick();

  void dispatch(const io_uring_cqe* cqe);
  void onAccept(Tag tag, const io_uring_cqe* cqe);
  // A backend socket (made in this thread's namespace) connecting to `to`.
  void connectBackend(Connection& c, uint32_t index, const SockAddr& to);
  void onConnect(Connection& c, uint32_t index, int res);
  void onSendHeader(Connection& c, uint32_t index, int res);
  void onFlow(Connection& c, uint32_t index, int dir, Flow flow);

  void sendHeader(Connection& c, uint32_t index);
  void startRelay(Connection& c, uint32_t index);
  void onEof(Connection& c, uint32_t index, int dir);
  void closeConnection(Connection& c, uint32_t index);
  void finalize(Connection& c, uint32_t index);
  void removeSlot(uint32_t slot);

  ProxyConfig config_;
  std::atomic<uint64_t>* globalActive_;
  io_uring ring_{};
  bool ringReady_ = false;
  std::unique_ptr<Relay> relay_; // config_.relay's; made once the ring is up
  UniqueFd wakeFd_;
  uint64_t wakeValue_ = 0;
  __kernel_timespec tickInterval_{};
  std::mutex mu_;
  std::vector<std::function<void(Worker&)>> commands_;
  std::thread thread_;

  // Owned by the worker thread.
  std::deque<Connection> conns_; // deque: stable addresses for buffers the kernel reads
  std::vector<uint32_t> freeConns_;
  size_t liveConns_ = 0;
  std::vector<ListenerSlot> listeners_;
  bool stopping_ = false;
};

} // namespace gw::proxy
