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

template <class DatagramKey>
std::array<uint8_t, sizeof(DatagramKey)> idOf(const DatagramKey& key) {
  std::array<uint8_t, sizeof(DatagramKey)> id;
  std::memcpy(id.data(), &key, sizeof(key));
  return id;
}

bool isEmpty(int fd, size_t keySize) {
  std::vector<uint8_t> key(keySize);
  return bpf_map_get_next_key(fd, nullptr, key.data()) != 0;
}

// Where a family's header keeps its addresses, how long they are, and the shortest fragment.
struct Layout {
  size_t saddr, daddr, addrLen, minLen;
};
constexpr Layout kLayout4{12, 16, 4, 20};
constexpr Layout kLayout6{8, 24, 16, 48}; // the header and a fragment header at least

Result<UniqueFd> rawSocket(int domain) {
  int raw = ::socket(domain, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) {
    return sysError(domain == AF_INET6 ? "IPv6 raw socket for held fragments"
                                       : "raw socket for held fragments");
  }
  UniqueFd fd(raw);
  uint32_t mark = GW_MARK_RELEASED;
  if (::setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    return sysError("SO_MARK on the raw socket for held fragments");
  }
  return fd;
}

} // namespace

FragmentRelease::FragmentRelease(const BpfObjects& objects)
    : ctFd_(objects.mapFd("gw_ct_v4")), reasonMoreFd_(objects.mapFd("gw_stats_reason_more")) {
  v4_.domain = AF_INET;
  v4_.heldFd = objects.mapFd("gw_frag_held");
  v4_.waitFd = objects.mapFd("gw_frag_wait");
  v4_.flowOfFd = objects.mapFd("gw_frag_v4");
  v6_.domain = AF_INET6;
  v6_.heldFd = objects.mapFd("gw_frag_held6");
  v6_.waitFd = objects.mapFd("gw_frag_wait6");
  v6_.flowOfFd = objects.mapFd("gw_frag_v6");
}

Result<std::unique_ptr<FragmentRelease>> FragmentRelease::start(const BpfObjects& objects) {
  std::unique_ptr<FragmentRelease> release(new FragmentRelease(objects));
  for (Family* family : {&release->v4_, &release->v6_}) {
    auto raw = rawSocket(family->domain);
    if (!raw) {
      return std::unexpected(raw.error());
    }
    family->raw = std::move(*raw);
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
  sweepFamily<gw_frag_held_key, gw_frag_key>(v4_, pass);
  sweepFamily<gw_frag_held6_key, gw_frag6_key>(v6_, pass);
  count(GW_REASON_FRAGMENT_RELEASED, pass.released);
  count(GW_REASON_DROP_FRAGMENT_EXPIRED, pass.expired);
  count(GW_REASON_DROP_FRAGMENT_UNSENDABLE, pass.unsendable);
  if (pass.released + pass.expired + pass.unsendable > 0) {
    log::debug("held fragments: ", pass.released, " released, ", pass.expired, " expired, ",
               pass.unsendable, " unsendable");
  }
  return pass;
}

template <class HeldKey, class DatagramKey>
void FragmentRelease::sweepFamily(Family& family, Pass& pass) {
  const Layout& at = family.domain == AF_INET6 ? kLayout6 : kLayout4;
  if (isEmpty(family.heldFd, sizeof(HeldKey)) && isEmpty(family.waitFd, sizeof(DatagramKey))) {
    return; // the usual case: a map walk (2 MiB of values) only when something is held
  }
  auto held = dumpMap<HeldKey, gw_frag_held>(family.heldFd);
  if (!held) {
    log::warn("held fragments: ", held.error().str());
    return;
  }
  std::set<std::array<uint8_t, sizeof(DatagramKey)>> stillHeld;
  uint64_t now = monotonicNs();
  for (auto& [key, copy] : *held) {
    gw_ct_key flow{};
    if (bpf_map_lookup_elem(family.flowOfFd, &key.datagram, &flow) != 0) { // no first yet
      if (now - copy.held_ns < GW_FRAG_HOLD_MS * 1'000'000ull) {
        stillHeld.insert(idOf(key.datagram));
      } else if (bpf_map_delete_elem(family.heldFd, &key) == 0) {
        ++pass.expired;
      }
      continue;
    }
    // Taking it out is the claim: whoever deletes it (another gatewayd during an upgrade)
    // sends it.
    gw_frag_held fragment{};
    if (bpf_map_lookup_and_delete_elem(family.heldFd, &key, &fragment) != 0 ||
        fragment.len < at.minLen || fragment.len > sizeof(fragment.packet)) {
      continue;
    }
    // As tc_later_fragment would have: the first's flow rewrites the addresses (a later
    // fragment has no ports, IPv6 no header checksum); a first that was not ours (proto 0)
    // or a flow gone leaves it.
    gw_ct_entry entry{};
    if (flow.proto != 0 && bpf_map_lookup_elem(ctFd_, &flow, &entry) == 0) {
      std::memcpy(fragment.packet + at.saddr, entry.new_saddr.bytes, at.addrLen);
      std::memcpy(fragment.packet + at.daddr, entry.new_daddr.bytes, at.addrLen);
    }
    sockaddr_storage to{};
    socklen_t toLen = 0;
    if (family.domain == AF_INET6) {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&to);
      sin6->sin6_family = AF_INET6;
      std::memcpy(&sin6->sin6_addr, fragment.packet + at.daddr, 16);
      toLen = sizeof(*sin6);
    } else {
      auto* sin = reinterpret_cast<sockaddr_in*>(&to);
      sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, fragment.packet + at.daddr, 4);
      toLen = sizeof(*sin);
    }
    // IPPROTO_RAW: the header goes as written (IPv4: the kernel fills in its checksum and
    // keeps the id and offset; IPv6: the fragment header is ours, untouched).
    if (::sendto(family.raw.get(), fragment.packet, fragment.len, 0,
                 reinterpret_cast<sockaddr*>(&to), toLen) == static_cast<ssize_t>(fragment.len)) {
      ++pass.released;
    } else if (pass.unsendable++ == 0) {
      log::warn("held fragment: sendto: ", std::strerror(errno));
    }
  }
  // A datagram with nothing held any more stops waiting (a new fragment of it waits anew).
  if (auto waiting = dumpMap<DatagramKey, gw_frag_wait>(family.waitFd); waiting) {
    for (const auto& [key, wait] : *waiting) {
      if (!stillHeld.contains(idOf(key))) {
        bpf_map_delete_elem(family.waitFd, &key);
      }
    }
  }
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
