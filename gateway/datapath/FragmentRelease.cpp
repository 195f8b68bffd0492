// SPDX-License-Identifier: MIT
#include "gateway/datapath/FragmentRelease.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "base/Clock.h"
#include "base/Log.h"
#include "bpf/gw_abi.h"
#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/MapDump.h"

namespace gw {
namespace {

using DatagramId = std::array<uint8_t, sizeof(gw_frag_key)>;

DatagramId idOf(const gw_frag_key& key) {
  DatagramId id;
  std::memcpy(id.data(), &key, sizeof(key));
  return id;
}

bool isEmpty(int fd) {
  uint8_t key[sizeof(gw_frag_held_key)];
  return bpf_map_get_next_key(fd, nullptr, key) != 0;
}

constexpr size_t kIpSaddr = 12;
constexpr size_t kIpDaddr = 16;

} // namespace

FragmentRelease::FragmentRelease(const BpfObjects& objects)
    : heldFd_(objects.mapFd("gw_frag_held")), waitFd_(objects.mapFd("gw_frag_wait")),
      flowOfFd_(objects.mapFd("gw_frag_v4")), ctFd_(objects.mapFd("gw_ct_v4")),
      reasonMoreFd_(objects.mapFd("gw_stats_reason_more")) {}

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
  Pass pass;
  if (isEmpty(heldFd_) && isEmpty(waitFd_)) {
    return pass; // the usual case: a map walk (2 MiB of values) only when something is held
  }
  auto held = dumpMap<gw_frag_held_key, gw_frag_held>(heldFd_);
  if (!held) {
    log::warn("held fragments: ", held.error().str());
    return pass;
  }
  std::set<DatagramId> stillHeld;
  uint64_t now = monotonicNs();
  for (auto& [key, copy] : *held) {
    gw_ct_key flow{};
    if (bpf_map_lookup_elem(flowOfFd_, &key.datagram, &flow) != 0) { // its first has not come
      if (now - copy.held_ns < GW_FRAG_HOLD_MS * 1'000'000ull) {
        stillHeld.insert(idOf(key.datagram));
      } else if (bpf_map_delete_elem(heldFd_, &key) == 0) {
        ++pass.expired;
      }
      continue;
    }
    // Taking it out is the claim: whoever deletes it (another gatewayd during an upgrade)
    // sends it.
    gw_frag_held fragment{};
    if (bpf_map_lookup_and_delete_elem(heldFd_, &key, &fragment) != 0 || fragment.len < 20 ||
        fragment.len > sizeof(fragment.packet)) {
      continue;
    }
    // As tc_later_fragment would have: the first's flow rewrites the addresses (a later
    // fragment has no ports); a first that was not ours (proto 0) or a flow gone leaves it.
    gw_ct_entry entry{};
    if (flow.proto != 0 && bpf_map_lookup_elem(ctFd_, &flow, &entry) == 0) {
      std::memcpy(fragment.packet + kIpSaddr, &entry.new_saddr.v4, 4);
      std::memcpy(fragment.packet + kIpDaddr, &entry.new_daddr.v4, 4);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, fragment.packet + kIpDaddr, 4);
    // The kernel fills in the header checksum (IPPROTO_RAW) and keeps the id and offset.
    if (::sendto(raw_.get(), fragment.packet, fragment.len, 0,
                 reinterpret_cast<sockaddr*>(&to),
                 sizeof(to)) == static_cast<ssize_t>(fragment.len)) {
      ++pass.released;
    } else if (pass.unsendable++ == 0) {
      log::warn("held fragment: sendto: ", std::strerror(errno));
    }
  }
  // A datagram with nothing held any more stops waiting (a new fragment of it waits anew).
  if (auto waiting = dumpMap<gw_frag_key, gw_frag_wait>(waitFd_); waiting) {
    for (const auto& [key, wait] : *waiting) {
      if (!stillHeld.contains(idOf(key))) {
        bpf_map_delete_elem(waitFd_, &key);
      }
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
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return;
  }
  std::vector<uint64_t> perCpu(static_cast<size_t>(ncpus));
  uint32_t slot = reason - GW_REASON_SLOTS;
  if (bpf_map_lookup_elem(reasonMoreFd_, &slot, perCpu.data()) == 0) {
    perCpu[0] += n;
    (void)bpf_map_update_elem(reasonMoreFd_, &slot, perCpu.data(), BPF_ANY);
  }
}

} // namespace gw
