// SPDX-License-Identifier: MIT
#include "tests/proxy/ProxyTestUtil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <stdexcept>

#include "netns/Namespace.h"

namespace gw::test {

NsServer::NsServer(const std::string& ns, std::function<void(int)> handler)
    : handler_(std::move(handler)) {
  std::promise<std::string> ready;
  auto result = ready.get_future();
  acceptThread_ = std::thread([this, ns, &ready] {
    auto guard = NetnsGuard::enter(ns);
    if (!guard) {
      ready.set_value("enter " + ns + ": " + guard.error().str());
      return;
    }
    listenFd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listenFd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listenFd_.get(), 4096) != 0 ||
        getsockname(listenFd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ready.set_value(std::string("listen: ") + strerror(errno));
      return;
    }
    port_ = ntohs(addr.sin_port);
    ready.set_value("");
    acceptLoop();
  });
  std::string err = result.get();
  if (!err.empty()) {
    acceptThread_.join();
    throw std::runtime_error("NsServer: " + err);
  }
}

void NsServer::acceptLoop() {
  while (!stopping_) {
    int fd = accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return;
    }
    ++accepted_;
    std::lock_guard lock(mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    fds_.push_back(fd);
    handlers_.emplace_back([this, fd] { handler_(fd); });
  }
}

NsServer::~NsServer() {
  stopping_ = true;
  shutdown(listenFd_.get(), SHUT_RDWR); // wakes accept()
  if (acceptThread_.joinable()) {
    acceptThread_.join();
  }
  std::vector<std::thread> handlers;
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) {
      shutdown(fd, SHUT_RDWR);
    }
    handlers.swap(handlers_);
  }
  for (auto& t : handlers) {
    t.join();
  }
  for (int fd : fds_) {
    close(fd);
  }
}

void echoUntilEof(int fd) {
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    if (!sendAll(fd, buf, static_cast<size_t>(n))) {
      break;
    }
  }
  shutdown(fd, SHUT_WR);
}

void discardUntilEof(int fd) {
  static thread_local char buf[1 << 18];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  shutdown(fd, SHUT_WR);
}

UniqueFd connectTcp(const std::string& ip, uint16_t port, std::chrono::milliseconds timeout) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return UniqueFd();
  }
  return fd;
}

bool sendAll(int fd, const void* data, size_t len) {
  const auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool sendAll(int fd, const std::string& data) {
  return sendAll(fd, data.data(), data.size());
}

std::string readAll(int fd, bool* closed) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (closed != nullptr) {
        *closed = n == 0 || errno == ECONNRESET;
      }
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string readN(int fd, size_t want) {
  std::string out;
  char buf[65536];
  while (out.size() < want) {
    ssize_t n = read(fd, buf, std::min(sizeof buf, want - out.size()));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

long vmRssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stol(line.substr(6));
    }
  }
  return -1;
}

} // namespace gw::test
