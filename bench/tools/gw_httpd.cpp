// SPDX-License-Identifier: MIT
// gw_httpd: the smallest fast HTTP/1.1 server we could write, so that connections/s and
// latency measure the path between client and server, not the server. Answers every request
// with a short "200 OK"; closes after the response when the request says `Connection: close`
// (or is HTTP/1.0), keeps the connection otherwise.
//
//   gw_httpd --port PORT [--bind IP] [--threads N]
//
// --bind takes an IPv4 or IPv6 address; `--bind ::` answers on both families (IPV6_V6ONLY off).
// Each thread runs its own epoll loop; with N > 1 every thread has its own SO_REUSEPORT
// listener so the kernel spreads connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/Fd.h"

namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr std::string_view kCloseResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";
constexpr std::string_view kKeepResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: keep-alive\r\n\r\nok\n";

volatile sig_atomic_t gStop = 0;

void onSignal(int) { gStop = 1; }

struct Options {
  std::string bind = "0.0.0.0";
  int port = 0;
  int threads = 1;
};

bool containsNoCase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  return it != haystack.end();
}

// The request wants the connection closed after the answer.
bool wantsClose(std::string_view head) {
  size_t lineEnd = head.find("\r\n");
  std::string_view requestLine = head.substr(0, lineEnd);
  if (requestLine.ends_with("HTTP/1.0")) {
    return !containsNoCase(head, "\r\nconnection: keep-alive");
  }
  return containsNoCase(head, "\r\nconnection: close");
}

gw::UniqueFd makeListener(const Options& o) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* sa4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* sa6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, o.bind.c_str(), &sa4->sin_addr) == 1) {
    sa4->sin_family = AF_INET;
    sa4->sin_port = htons(static_cast<uint16_t>(o.port));
    len = sizeof *sa4;
  } else if (::inet_pton(AF_INET6, o.bind.c_str(), &sa6->sin6_addr) == 1) {
    sa6->sin6_family = AF_INET6;
    sa6->sin6_port = htons(static_cast<uint16_t>(o.port));
    len = sizeof *sa6;
  } else {
    std::fprintf(stderr, "gw_httpd: --bind '%s': not an IPv4 or IPv6 address\n",
                 o.bind.c_str());
    return {};
  }
  gw::UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    std::perror("gw_httpd: socket");
    return {};
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (ss.ss_family == AF_INET6) {
    int zero = 0; // `::` takes IPv4 as well, whatever net.ipv6.bindv6only says
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    std::perror("gw_httpd: bind");
    return {};
  }
  if (::listen(fd.get(), 4096) != 0) {
    std::perror("gw_httpd: listen");
    return {};
  }
  return fd;
}

class Server {
public:
  explicit Server(gw::UniqueFd listener) : listener_(std::move(listener)) {}

  int run() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) {
      std::perror("gw_httpd: epoll_create1");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener_.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev) != 0) {
      std::perror("gw_httpd: epoll_ctl");
      return 1;
    }
    std::vector<epoll_event> events(256);
    while (gStop == 0) {
      int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 200);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        std::perror("gw_httpd: epoll_wait");
        return 1;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == listener_.get()) {
          acceptAll();
        } else {
          serve(events[i].data.fd);
        }
      }
    }
    for (auto& [fd, buffer] : connections_) {
      ::close(fd);
    }
    return 0;
  }

private:
  void acceptAll() {
    for (;;) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        return; // EAGAIN, or a connection reset before we took it: nothing to do either way
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        ::close(fd);
        continue;
      }
      connections_[fd].clear();
    }
  }

  void drop(int fd) {
    connections_.erase(fd);
    ::close(fd); // also removes it from the epoll set
  }

  void serve(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) {
      return;
    }
    std::string& buffer = it->second;
    char chunk[4096];
    for (;;) {
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer.append(chunk, static_cast<size_t>(n));
        if (buffer.size() > kMaxRequestBytes) {
          drop(fd);
          return;
        }
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        drop(fd);
        return;
      }
      if (errno == EAGAIN) {
        break;
      }
    }
    // Answer every complete request (pipelining allowed); bodies are not expected.
    size_t consumed = 0;
    for (;;) {
      size_t end = buffer.find("\r\n\r\n", consumed);
      if (end == std::string::npos) {
        break;
      }
      std::string_view head(buffer.data() + consumed, end - consumed);
      bool close = wantsClose(head);
      std::string_view reply = close ? kCloseResponse : kKeepResponse;
      // Short answers fit an empty socket buffer; a client that cannot take 100 bytes is
      // dropped rather than buffered for.
      ssize_t w = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      if (w != static_cast<ssize_t>(reply.size()) || close) {
        drop(fd);
        return;
      }
      consumed = end + 4;
    }
    buffer.erase(0, consumed);
  }

  gw::UniqueFd listener_;
  gw::UniqueFd epoll_;
  std::unordered_map<int, std::string> connections_;
};

int usage() {
  std::fprintf(stderr, "usage: gw_httpd --port PORT [--bind IP] [--threads N]\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) {
      return usage();
    }
    const char* v = argv[++i];
    if (a == "--port") {
      o.port = std::atoi(v);
    } else if (a == "--bind") {
      o.bind = v;
    } else if (a == "--threads") {
      o.threads = std::atoi(v);
    } else {
      return usage();
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.threads < 1 || o.threads > 64) {
    return usage();
  }
  struct sigaction sa{};
  sa.sa_handler = onSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // Listeners are made before any thread starts, so a bind error exits with status 1 at once.
  std::vector<gw::UniqueFd> listeners;
  for (int t = 0; t < o.threads; ++t) {
    gw::UniqueFd fd = makeListener(o);
    if (!fd) {
      return 1;
    }
    listeners.push_back(std::move(fd));
  }
  bool v6 = o.bind.find(':') != std::string::npos;
  std::fprintf(stderr, "gw_httpd: listening on %s%s%s:%d with %d thread(s)\n", v6 ? "[" : "",
               o.bind.c_str(), v6 ? "]" : "", o.port, o.threads);
  std::vector<std::thread> threads;
  for (int t = 1; t < o.threads; ++t) {
    threads.emplace_back([fd = std::move(listeners[t])]() mutable {
      Server(std::move(fd)).run();
    });
  }
  int rc = Server(std::move(listeners[0])).run();
  for (auto& t : threads) {
    t.join();
  }
  return rc;
}
