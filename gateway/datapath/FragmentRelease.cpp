// SPDX-License-Identifier: MIT
#include "gateway/datapath/FragmentRelease.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "base/Log.h"
#include "bpf/gw_abi.h"
#include "gateway/datapath/BpfObjects.h"

namespace gw {
namespace {

uint64_t monotonicNs() { // bpf_ktime_get_ns()'s clock
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

using DatagramId = std::array<uint8_t, sizeof(gw_frag_key)>;

DatagramId idOf(const gw_frag_key& key) {
  DatagramId id;
  std::memcpy(id.data(), &key, sizeof(key));
  return id;
}

// Every key of a hash map, read before any is deleted (deleting mid-walk restarts the walk).
template <class Key>
std::vector<Key> keysOf(int fd) {
  std::vector<Key> keys;
  Key key{};
  const Key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &key) == 0) {
    keys.push_back(key);
    prev = &keys.back();
  }
  return keys;
}

constexpr size_t kIpSaddr = 12;
constexpr size_t kIpDaddr = 16;

} // namespace

FragmentRelease::FragmentRelease(const BpfObjects& objects) : objects_(objects) {}

Result<std::unique_ptr<FragmentRelease>> FragmentRelease::start(const BpfObjects& objects) {
  std::unique_ptr<FragmentRelease> release(new FragmentRelease(objects));
  int raw = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) {
    return sysError("raw socket for held fragments");
  }
  release->raw_ = UniqueFd(raw);
  uint32_t mark = GW_MARK_RELEASED;
  if (::setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    return sysError("SO_MARK on the raw socket for held fragments");
  }
  auto onEvent = [](void*, void*, size_t) { return 0; }; // an event only wakes the thread
  release->events_ =
      ring_buffer__new(objects.mapFd("gw_frag_events"), onEvent, nullptr, nullptr);
  if (release->events_ == nullptr) {
    return sysError("ring buffer gw_frag_events");
  }
  int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    return sysError("eventfd for the held-fragment thread");
  }
  release->stop_ = UniqueFd(stop);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    return sysError("epoll for the held-fragment thread");
  }
  release->epoll_ = UniqueFd(ep);
  for (int fd : {ring_buffer__epoll_fd(release->events_), stop}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return sysError("epoll_ctl for the held-fragment thread");
    }
  }
  release->thread_ = std::thread([r = release.get()] { r->run(); });
  return release;
}

FragmentRelease::~FragmentRelease() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    thread_.join();
  }
  ring_buffer__free(events_);
}

void FragmentRelease::run() {
  // Signals are the main thread's (a signalfd there): one delivered here would kill.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    epoll_event ev[2];
    int n = ::epoll_wait(epoll_.get(), ev, 2, static_cast<int>(kSweepInterval.count()));
    for (int i = 0; i < n; ++i) {
      if (ev[i].data.fd == stop_.get()) {
        return;
      }
    }
    (void)ring_buffer__consume(events_); // an event only says: look now
    (void)sweep();
  }
}

FragmentRelease::Pass FragmentRelease::sweep() {
  int heldFd = objects_.mapFd("gw_frag_held");
  int waitFd = objects_.mapFd("gw_frag_wait");
  int flowOfFd = objects_.mapFd("gw_frag_v4");
  int ctFd = objects_.mapFd("gw_ct_v4");
  Pass pass;
  std::set<DatagramId> stillHeld;
  uint64_t now = monotonicNs();
  gw_frag_held held{};
  for (const gw_frag_held_key& key : keysOf<gw_frag_held_key>(heldFd)) {
    gw_ct_key flow{};
    bool firstCame = bpf_map_lookup_elem(flowOfFd, &key.datagram, &flow) == 0;
    if (!firstCame) {
      if (bpf_map_lookup_elem(heldFd, &key, &held) != 0) {
        continue; // released or expired meanwhile (another gatewayd during an upgrade)
      }
      if (now - held.held_ns < GW_FRAG_HOLD_MS * 1'000'000ull) {
        stillHeld.insert(idOf(key.datagram));
      } else if (bpf_map_delete_elem(heldFd, &key) == 0) {
        ++pass.expired;
      }
      continue;
    }
    // Taking it out is the claim: whoever deletes it sends it.
    if (bpf_map_lookup_and_delete_elem(heldFd, &key, &held) != 0 || held.len < 20 ||
        held.len > sizeof(held.packet)) {
      continue;
    }
    // As tc_later_fragment would have: the first's flow rewrites the addresses (a later
    // fragment has no ports); a first that was not ours (proto 0) or a flow gone leaves it.
    gw_ct_entry entry{};
    if (flow.proto != 0 && bpf_map_lookup_elem(ctFd, &flow, &entry) == 0) {
      std::memcpy(held.packet + kIpSaddr, &entry.new_saddr.v4, 4);
      std::memcpy(held.packet + kIpDaddr, &entry.new_daddr.v4, 4);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, held.packet + kIpDaddr, 4);
    // The kernel fills in the header checksum (IPPROTO_RAW) and keeps the id and offset.
    if (::sendto(raw_.get(), held.packet, held.len, 0, reinterpret_cast<sockaddr*>(&to),
                 sizeof(to)) == static_cast<ssize_t>(held.len)) {
      ++pass.released;
    } else {
      if (pass.unsendable++ == 0) {
        log::warn("held fragment: sendto: ", std::strerror(errno));
      }
    }
  }
  // A datagram with nothing held any more stops waiting (a new fragment of it waits anew).
  for (const gw_frag_key& key : keysOf<gw_frag_key>(waitFd)) {
    if (!stillHeld.contains(idOf(key))) {
      bpf_map_delete_elem(waitFd, &key);
    }
  }
  count(GW_REASON_FRAGMENT_RELEASED, pass.released);
  count(GW_REASON_DROP_FRAGMENT_EXPIRED, pass.expired);
  count(GW_REASON_DROP_FRAGMENT_UNSENDABLE, pass.unsendable);
  if (pass.released + pass.expired + pass.unsendable > 0) {
    log::debug("held fragments: ", pass.released, " released, ", pass.expired, " expired, ",
               pass.unsendable, " unsendable");
  }
  return pass;
}

// Adds to a reason's counter on CPU 0: only gatewayd counts these reasons, the programs never.
void FragmentRelease::count(uint32_t reason, uint64_t n) {
  static_assert(GW_REASON_FRAGMENT_RELEASED >= GW_REASON_SLOTS);
  if (n == 0) {
    return;
  }
  int fd = objects_.mapFd("gw_stats_reason_more");
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return;
  }
  std::vector<uint64_t> perCpu(static_cast<size_t>(ncpus));
  uint32_t slot = reason - GW_REASON_SLOTS;
  if (bpf_map_lookup_elem(fd, &slot, perCpu.data()) == 0) {
    perCpu[0] += n;
    (void)bpf_map_update_elem(fd, &slot, perCpu.data(), BPF_ANY);
  }
}

} // namespace gw
