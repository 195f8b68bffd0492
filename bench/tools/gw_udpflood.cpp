// SPDX-License-Identifier: MIT
// gw_udpflood: a UDP packet-rate load tool. iperf3 -l 64 is limited by its own sender (one
// syscall per packet); this one sends batches with sendmmsg and counts with recvmmsg.
//
//   gw_udpflood send --dst IP:PORT [--seconds S] [--size BYTES] [--batch N]
//   gw_udpflood recv --bind IP:PORT [--seconds S] [--idle-ms MS]
//
// IP:PORT is IPv4:PORT or [IPv6]:PORT; `recv --bind [::]:PORT` takes both families.
// Both print one JSON object on stdout. The receiver stops after --seconds, or --idle-ms after
// the last packet once traffic has started, or on SIGINT/SIGTERM; its rate is taken over the
// window from the first to the last packet.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/Fd.h"

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t gStop = 0;

void onSignal(int) { gStop = 1; }

int usage() {
  std::fprintf(stderr,
               "usage: gw_udpflood send --dst IP:PORT [--seconds S] [--size BYTES] [--batch N]\n"
               "       gw_udpflood recv --bind IP:PORT [--seconds S] [--idle-ms MS]\n");
  return 2;
}

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

// IPv4:PORT or [IPv6]:PORT (the brackets keep the port apart from the address's colons).
std::optional<Endpoint> parseEndpoint(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  int port = std::atoi(std::string(text.substr(colon + 1)).c_str());
  if (port <= 0 || port > 65535) {
    return std::nullopt;
  }
  std::string_view host = text.substr(0, colon);
  Endpoint e;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* sa6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
    sa6->sin6_family = AF_INET6;
    sa6->sin6_port = htons(static_cast<uint16_t>(port));
    std::string h(host.substr(1, host.size() - 2));
    if (::inet_pton(AF_INET6, h.c_str(), &sa6->sin6_addr) != 1) {
      return std::nullopt;
    }
    e.len = sizeof(sockaddr_in6);
    return e;
  }
  auto* sa4 = reinterpret_cast<sockaddr_in*>(&e.addr);
  sa4->sin_family = AF_INET;
  sa4->sin_port = htons(static_cast<uint16_t>(port));
  std::string h(host);
  if (::inet_pton(AF_INET, h.c_str(), &sa4->sin_addr) != 1) {
    return std::nullopt;
  }
  e.len = sizeof(sockaddr_in);
  return e;
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
  std::string mode;
  std::string endpoint;
  double seconds = 5.0;
  size_t size = 64;
  unsigned batch = 64;
  int idleMs = 500;
};

int runSend(const Options& o) {
  auto dst = parseEndpoint(o.endpoint);
  if (!dst) {
    std::fprintf(stderr, "gw_udpflood: --dst '%s': expected IPv4:PORT or [IPv6]:PORT\n",
                 o.endpoint.c_str());
    return 2;
  }
  gw::UniqueFd fd(::socket(dst->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    std::perror("gw_udpflood: socket");
    return 1;
  }
  int sndbuf = 4 << 20;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (::connect(fd.get(), dst->sa(), dst->len) != 0) {
    std::perror("gw_udpflood: connect");
    return 1;
  }
  std::vector<char> payload(o.size, 'x');
  iovec iov{payload.data(), payload.size()};
  std::vector<mmsghdr> msgs(o.batch);
  for (auto& m : msgs) {
    m.msg_hdr = {};
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0;
  uint64_t errors = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(o.seconds));
  while (gStop == 0 && Clock::now() < end) {
    int n = ::sendmmsg(fd.get(), msgs.data(), o.batch, 0);
    if (n < 0) {
      int err = errno;
      // ENOBUFS/ECONNREFUSED (ICMP from a missing receiver) are load, not faults: count them.
      if (err != ENOBUFS && err != EAGAIN && err != ECONNREFUSED && err != EINTR) {
        std::fprintf(stderr, "gw_udpflood: sendmmsg: %s\n", std::strerror(err));
        return 1;
      }
      ++errors;
      continue;
    }
    sent += static_cast<uint64_t>(n);
  }
  double elapsed = secondsSince(start);
  std::printf("{\"mode\":\"send\",\"packets\":%llu,\"seconds\":%.6f,\"pps\":%.1f,"
              "\"payload_bytes\":%zu,\"send_errors\":%llu}\n",
              static_cast<unsigned long long>(sent), elapsed, sent / elapsed, o.size,
              static_cast<unsigned long long>(errors));
  return 0;
}

int runRecv(const Options& o) {
  auto bindAddr = parseEndpoint(o.endpoint);
  if (!bindAddr) {
    std::fprintf(stderr, "gw_udpflood: --bind '%s': expected IPv4:PORT or [IPv6]:PORT\n",
                 o.endpoint.c_str());
    return 2;
  }
  gw::UniqueFd fd(::socket(bindAddr->family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    std::perror("gw_udpflood: socket");
    return 1;
  }
  int one = 1;
  if (bindAddr->family() == AF_INET6) {
    int zero = 0; // [::] takes IPv4 as well, whatever net.ipv6.bindv6only says
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rcvbuf = 8 << 20;
  // SO_RCVBUFFORCE ignores rmem_max (we are root in a throwaway namespace); fall back quietly.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  timeval tv{0, 50 * 1000}; // wake up to check the deadlines
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd.get(), bindAddr->sa(), bindAddr->len) != 0) {
    std::perror("gw_udpflood: bind");
    return 1;
  }
  std::fprintf(stderr, "gw_udpflood: listening on %s\n", o.endpoint.c_str());
  constexpr unsigned kBatch = 64;
  constexpr size_t kSlot = 2048;
  std::vector<char> buffers(kBatch * kSlot);
  std::vector<iovec> iovs(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  for (unsigned i = 0; i < kBatch; ++i) {
    iovs[i] = {buffers.data() + i * kSlot, kSlot};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t received = 0;
  uint64_t bytes = 0;
  auto start = Clock::now();
  Clock::time_point first{};
  Clock::time_point last{};
  while (gStop == 0 && secondsSince(start) < o.seconds) {
    int n = ::recvmmsg(fd.get(), msgs.data(), kBatch, MSG_WAITFORONE, nullptr);
    auto now = Clock::now();
    if (n > 0) {
      if (received == 0) {
        first = now;
      }
      last = now;
      received += static_cast<uint64_t>(n);
      for (int i = 0; i < n; ++i) {
        bytes += msgs[i].msg_len;
      }
      continue;
    }
    int err = errno;
    if (n < 0 && err != EAGAIN && err != EINTR) {
      std::fprintf(stderr, "gw_udpflood: recvmmsg: %s\n", std::strerror(err));
      return 1;
    }
    if (received > 0 && now - last > std::chrono::milliseconds(o.idleMs)) {
      break;
    }
  }
  double window = received > 1 ? std::chrono::duration<double>(last - first).count() : 0.0;
  std::printf("{\"mode\":\"recv\",\"packets\":%llu,\"bytes\":%llu,\"seconds\":%.6f,"
              "\"pps\":%.1f}\n",
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(bytes),
              window, window > 0 ? received / window : 0.0);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  Options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = next();
    if (v == nullptr) {
      return usage();
    }
    if (a == "--dst" || a == "--bind") {
      o.endpoint = v;
    } else if (a == "--seconds") {
      o.seconds = std::atof(v);
    } else if (a == "--size") {
      o.size = static_cast<size_t>(std::atol(v));
    } else if (a == "--batch") {
      o.batch = static_cast<unsigned>(std::atoi(v));
    } else if (a == "--idle-ms") {
      o.idleMs = std::atoi(v);
    } else {
      return usage();
    }
  }
  if (o.endpoint.empty() || o.seconds <= 0 || o.size == 0 || o.size > 65000 || o.batch == 0 ||
      o.batch > 1024) {
    return usage();
  }
  struct sigaction sa{};
  sa.sa_handler = onSignal; // no SA_RESTART: a blocked recvmmsg returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (o.mode == "send") {
    return runSend(o);
  }
  if (o.mode == "recv") {
    return runRecv(o);
  }
  return usage();
}
