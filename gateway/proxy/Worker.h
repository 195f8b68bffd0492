// SPDX-License-Identifier: MIT
// One proxy thread: its own io_uring, its connections, and the listeners it accepts on. A worker
// enters its target namespace once at thread start, so the backend sockets it creates live there.
// Other threads talk to it only through post() (a locked queue + eventfd read by the ring).
#pragma once

#include <liburing.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/proxy/BufferRing.h"
#include "gateway/proxy/Proxy.h"
#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/proxy/SockAddr.h"
#include "base/Error.h"
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
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> refusedLimit{0};
  std::atomic<uint64_t> backendFailed{0};
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesOut{0};
};

// What a completion is about, packed into user_data: op | dir << 8 | index << 16 | gen << 40.
enum class Op : uint8_t {
  Wake = 1,   // eventfd read: commands were posted
  Tick,       // periodic timeout: idle/connect deadlines, retries
  Accept,     // multishot accept; index = listener slot
  Cancel,     // a cancel request's own completion; index/gen = its connection (or none)
  Connect,
  SendHeader, // PROXY v2 header to the backend
  Recv,       // dir 0: client -> backend, dir 1: backend -> client
  Send,
  PollIn,     // splice mode: the source is readable; the worker splices itself
  PollOut,    // splice mode: the destination can take what the pipe holds
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
  enum class State : uint8_t { Free, Connecting, SendingHeader, Relaying };
  struct Half {
    bool recvPending = false; // or POLLIN in splice mode
    bool sendPending = false; // or POLLOUT
    bool eof = false;
    int32_t buf = -1;         // provided buffer id being sent, or -1
    std::unique_ptr<uint8_t[]> spill; // the unsent tail of a buffer when the reader is slow
    const uint8_t* data = nullptr;
    uint32_t len = 0;         // buffer mode: bytes at data; splice mode: bytes in the pipe
    uint32_t off = 0;
    int32_t pipe = -1;        // splice mode: pool slot
  };
  struct Connection {
    uint32_t gen = 0;
    State state = State::Free;
    bool closing = false;
    uint8_t headerLen = 0;
    uint8_t headerOff = 0;
    bool triedFallback = false;
    uint32_t inflight = 0;
    int64_t since = 0; // ms: connect start, then last activity
    UniqueFd client;
    UniqueFd backend;
    std::shared_ptr<ListenerShared> listener;
    Half half[2];
    std::array<uint8_t, kProxyV2MaxSize> header{};
  };
  struct ListenerSlot {
    std::shared_ptr<ListenerShared> shared;
    int fd = -1; // ours among shared->fds
    uint32_t gen = 0;
    bool armed = false;
    bool rearm = false;   // accept stopped (e.g. EMFILE): arm again on the next tick
    bool removing = false;
    std::function<void()> removed;
  };
  struct Pipe {
    UniqueFd r;
    UniqueFd w;
    uint32_t size = 0; // capacity in bytes
  };

  explicit Worker(const Options& options);
  void run(int netnsFd, std::promise<Status>* ready);
  Status setup(int netnsFd);
  void loop();

  io_uring_sqe* getSqe();
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
  void onRecv(Connection& c, uint32_t index, int dir, const io_uring_cqe* cqe);
  void onSend(Connection& c, uint32_t index, int dir, int res);
  void onPoll(Connection& c, uint32_t index, int dir, int res);

  void sendHeader(Connection& c, uint32_t index);
  void startRelay(Connection& c, uint32_t index);
  void armRecv(Connection& c, uint32_t index, int dir);
  void issueSend(Connection& c, uint32_t index, int dir);
  void spliceRelay(Connection& c, uint32_t index, int dir);
  void releaseData(Half& h);
  void onEof(Connection& c, uint32_t index, int dir);
  void countDelivered(Connection& c, int dir, int bytes);
  void closeConnection(Connection& c, uint32_t index);
  void finalize(Connection& c, uint32_t index);
  void removeSlot(uint32_t slot);
  int acquirePipe();
  void releasePipe(int slot, bool empty);
  void prep(io_uring_sqe* sqe, Op op, Connection& c, uint32_t index, int dir);
  int fdOf(Connection& c, int dir, bool source) const;

  ProxyConfig config_;
  std::atomic<uint64_t>* globalActive_;
  io_uring ring_{};
  bool ringReady_ = false;
  BufferRing buffers_;
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
  std::vector<Pipe> pipes_;
  std::vector<int32_t> freePipes_;
  unsigned bigPipes_ = 0; // open pipes enlarged to kPipeSize
  std::vector<Tag> starved_; // recv got ENOBUFS: retried when buffers come back
  bool stopping_ = false;
};

} // namespace gw::proxy
