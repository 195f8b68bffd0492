// SPDX-License-Identifier: MIT
// Later fragments the programs held because they came before their first (RFC 4787 REQ-14;
// gw_abi.h): a thread sends each on, translated as its first fragment was, once the first
// came (the programs say so on gw_frag_events; a sweep every kSweepInterval catches a lost
// event), and drops those held longer than GW_FRAG_HOLD_MS. What it does is counted in the
// reason counters (fragment_released, drop_fragment_expired, drop_fragment_unsendable).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "base/Error.h"
#include "base/Fd.h"

struct ring_buffer;

namespace gw {

class BpfObjects;

// `objects` must outlive this. Sends from the network namespace it was started in.
class FragmentRelease {
public:
  static constexpr std::chrono::milliseconds kSweepInterval{100};

  static Result<std::unique_ptr<FragmentRelease>> start(const BpfObjects& objects);
  ~FragmentRelease(); // stops the thread
  FragmentRelease(const FragmentRelease&) = delete;
  FragmentRelease& operator=(const FragmentRelease&) = delete;

  // What one pass did.
  struct Pass {
    uint64_t released = 0;
    uint64_t expired = 0;
    uint64_t unsendable = 0;
  };
  // Sends on what can go, drops what waited too long. The thread runs it on every event and
  // every kSweepInterval.
  Pass sweep();

private:
  // One family's maps (BpfObjects owns them) and raw socket (IPPROTO_RAW, SO_MARK
  // GW_MARK_RELEASED): gw_frag_held/gw_frag_wait/gw_frag_v4 or their IPv6 twins.
  struct Family {
    int domain = 0; // AF_INET, AF_INET6
    int heldFd = -1;
    int waitFd = -1;
    int flowOfFd = -1;
    UniqueFd raw;
  };

  explicit FragmentRelease(const BpfObjects& objects);
  void run();
  template <class HeldKey, class DatagramKey>
  void sweepFamily(Family& family, Pass& pass);
  void count(uint32_t reason, uint64_t n);

  Family v4_;
  Family v6_;
  int ctFd_;
  int reasonMoreFd_;
  ring_buffer* events_ = nullptr;
  UniqueFd stop_;  // eventfd: the destructor's word to the thread
  UniqueFd epoll_; // events_ and stop_
  std::thread thread_;
};

} // namespace gw
