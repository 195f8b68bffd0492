// SPDX-License-Identifier: MIT
#include "control/ApiServer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace gw {
namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(5);
// Open connections at most: past it new ones wait in the kernel's backlog, never evicting
// one that is still talking. Idle ones are bounded by time (kRequestTimeout).
constexpr size_t kMaxPending = 1024;
constexpr int kBacklog = 4096;

Result<sockaddr_un> socketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return fail("socket path '" + path + "' is empty or longer than " +
                std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

bool someoneListens(const sockaddr_un& addr) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd && ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

http::Response errorResponse(int status, const std::string& message) {
  return {status, "application/json", nlohmann::json{{"error", message}}.dump() + "\n"};
}

// The peer's credentials; uid stays unknown (never root) when the kernel does not say.
PeerCredentials peerCredentials(int fd) {
  PeerCredentials peer;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return peer;
  }
  std::vector<gid_t> groups(32);
  socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  int r = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size);
  if (r != 0 && errno == ERANGE) { // `size` now says how much is needed
    groups.resize(size / sizeof(gid_t));
    r = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size);
  }
  if (r != 0) {
    return peer;
  }
  groups.resize(size / sizeof(gid_t));
  peer = {cred.pid, cred.uid, cred.gid, std::move(groups)};
  return peer;
}

} // namespace

Result<ApiServer> ApiServer::listen(const std::string& path, std::optional<gid_t> group) {
  auto addr = socketAddress(path);
  if (!addr) {
    return std::unexpected(addr.error());
  }
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return fail("create socket directory " + parent.string() + ": " + ec.message());
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // Only a stale socket is replaced: never a file, a directory or a link someone put there.
    if (!S_ISSOCK(st.st_mode)) {
      return conflict("--socket " + path + " exists and is not a socket: refusing to replace it",
                      EEXIST);
    }
    if (someoneListens(*addr)) {
      return fail("another gatewayd is already serving " + path, EADDRINUSE);
    }
    ::unlink(path.c_str());
  }
  ApiServer server;
  server.path_ = path;
  server.group_ = group;
  server.listenFd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!server.listenFd_) {
    return sysError("socket(AF_UNIX)");
  }
  // Created with no access for others, then opened up to exactly 0660.
  mode_t old = ::umask(0177);
  int r = ::bind(server.listenFd_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  int bindErrno = errno;
  ::umask(old);
  if (r != 0) {
    errno = bindErrno;
    return sysError("bind " + path);
  }
  if (::chown(path.c_str(), 0, group.value_or(0)) != 0) {
    return sysError("chown " + path);
  }
  if (::chmod(path.c_str(), 0660) != 0) {
    return sysError("chmod " + path);
  }
  if (::listen(server.listenFd_.get(), kBacklog) != 0) {
    return sysError("listen " + path);
  }
  return server;
}

Result<ApiServer> ApiServer::adopt(int fd, const std::string& path, std::optional<gid_t> group) {
  ApiServer server;
  server.listenFd_.reset(fd);
  server.path_ = path;
  server.group_ = group;
  server.ownsPath_ = false;
  std::string what = "inherited control socket fd " + std::to_string(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return sysError(what);
  }
  int listening = 0;
  socklen_t len = sizeof listening;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  sockaddr_un bound{};
  len = sizeof bound;
  if (!S_ISSOCK(st.st_mode) || listening != 1 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0 ||
      bound.sun_family != AF_UNIX) {
    return invalid(what + " is not a listening unix socket");
  }
  std::string actual(bound.sun_path, ::strnlen(bound.sun_path, sizeof bound.sun_path));
  if (actual != path) {
    return invalid(what + " is bound to '" + actual + "', not --socket " + path);
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return server;
}

void ApiServer::release() {
  drainReplies();
  pending_.clear();
  ownsPath_ = false;
  listenFd_.reset();
  metricsFd_.reset();
}

ApiServer::ApiServer(ApiServer&& other) noexcept
    : listenFd_(std::move(other.listenFd_)), metricsFd_(std::move(other.metricsFd_)),
      path_(std::move(other.path_)), ownsPath_(other.ownsPath_), group_(other.group_) {
  other.path_.clear();
}

ApiServer::~ApiServer() {
  if (listenFd_ && ownsPath_ && !path_.empty()) {
    ::unlink(path_.c_str());
  }
}

bool ApiServer::allowed(const PeerCredentials& peer) const {
  if (peer.uid == 0) {
    return true;
  }
  if (!group_) {
    return false;
  }
  // The groups the process has, not what /etc/group says today: a user added to the group
  // after logging in is not in it yet, one removed keeps it until the process ends.
  return peer.gid == *group_ || std::ranges::find(peer.groups, *group_) != peer.groups.end();
}

namespace {

Result<sockaddr_in> metricsAddress(const std::string& hostPort) {
  size_t colon = hostPort.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : hostPort.substr(0, colon);
  std::string port = colon == std::string::npos ? hostPort : hostPort.substr(colon + 1);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 1 || p > 65535 ||
      ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return fail("--metrics '" + hostPort + "': expected PORT or IPV4:PORT", EINVAL);
  }
  sa.sin_port = htons(static_cast<uint16_t>(p));
  return sa;
}

} // namespace

Status ApiServer::listenMetrics(const std::string& hostPort) {
  auto sa = metricsAddress(hostPort);
  if (!sa) {
    return std::unexpected(sa.error());
  }
  metricsFd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!metricsFd_) {
    return sysError("socket for --metrics");
  }
  int one = 1;
  ::setsockopt(metricsFd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(metricsFd_.get(), reinterpret_cast<sockaddr*>(&*sa), sizeof *sa) != 0) {
    return sysError("bind --metrics " + hostPort);
  }
  if (::listen(metricsFd_.get(), 16) != 0) {
    return sysError("listen --metrics " + hostPort);
  }
  return {};
}

Status ApiServer::adoptMetrics(int fd, const std::string& hostPort) {
  UniqueFd owned(fd);
  auto sa = metricsAddress(hostPort);
  if (!sa) {
    return std::unexpected(sa.error());
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  int listening = 0;
  socklen_t optLen = sizeof listening;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optLen);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0 || listening != 1 ||
      bound.sin_family != AF_INET || bound.sin_port != sa->sin_port ||
      bound.sin_addr.s_addr != sa->sin_addr.s_addr) {
    return invalid("inherited metrics fd " + std::to_string(fd) +
                   " is not a socket listening on --metrics " + hostPort);
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  metricsFd_ = std::move(owned);
  return {};
}

void ApiServer::accept(int listenFd, bool metricsOnly) {
  while (pending_.size() < kMaxPending) { // full: the rest wait in the kernel's backlog
    UniqueFd fd(::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      return;
    }
    Pending conn;
    conn.metricsOnly = metricsOnly;
    conn.deadline = std::chrono::steady_clock::now() + kRequestTimeout;
    if (!metricsOnly) {
      conn.peer = peerCredentials(fd.get());
    }
    conn.fd = std::move(fd);
    // A refused peer still gets to send its request, so it reads the refusal instead of a
    // reset connection.
    conn.refused = !metricsOnly && !allowed(conn.peer);
    pending_.push_back(std::move(conn));
  }
}

bool ApiServer::respond(Pending& conn, const http::Response& response) {
  // Never a blocking write: a client that does not read its reply must not stall the others.
  conn.reply = http::serialize(response);
  conn.written = 0;
  conn.deadline = std::chrono::steady_clock::now() + kRequestTimeout;
  return flush(conn);
}

bool ApiServer::flush(Pending& conn) {
  while (conn.written < conn.reply.size()) {
    ssize_t n = ::send(conn.fd.get(), conn.reply.data() + conn.written,
                       conn.reply.size() - conn.written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno != EAGAIN; // full: wait for POLLOUT; anything else: the peer is gone
    }
    conn.written += static_cast<size_t>(n);
  }
  return true;
}

void ApiServer::drainReplies() {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  std::erase_if(pending_, [](const Pending& c) { return !c.writing(); });
  while (!pending_.empty() && std::chrono::steady_clock::now() < until) {
    std::vector<pollfd> fds;
    for (const auto& c : pending_) {
      fds.push_back({c.fd.get(), POLLOUT, 0});
    }
    if (::poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) {
      return;
    }
    size_t i = 0;
    std::erase_if(pending_, [&](Pending& c) {
      bool ready = fds[i++].revents != 0;
      return ready && flush(c);
    });
  }
}

bool ApiServer::onReadable(Pending& conn, const Handler& handler) {
  char chunk[8192];
  while (true) {
    ssize_t n = ::read(conn.fd.get(), chunk, sizeof chunk);
    if (n < 0) {
      return !(errno == EAGAIN || errno == EINTR);
    }
    if (n == 0) {
      return true; // closed before a whole request: nothing to answer
    }
    conn.buffer.append(chunk, static_cast<size_t>(n));
    http::Request request;
    auto state = http::parseRequest(conn.buffer, request);
    if (!state) {
      int status = state.error().message.find("larger") != std::string::npos ? 413 : 400;
      return respond(conn, errorResponse(status, "bad request: " + state.error().str()));
    }
    if (*state == http::ParseState::Complete) {
      if (conn.refused) {
        return respond(conn, errorResponse(403, "permission denied: uid " +
                                                    std::to_string(conn.peer.uid) +
                                                    " is neither root nor in the socket's group"));
      }
      if (conn.metricsOnly && (request.method != "GET" || request.path() != "/metrics")) {
        return respond(conn, errorResponse(404, "only GET /metrics is served here"));
      }
      return respond(conn, handler(request, conn.peer));
    }
  }
}

Result<int> ApiServer::serve(const Handler& handler, const std::function<void()>& onTick,
                             std::chrono::milliseconds tick) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGUSR2); // upgrade: the caller re-executes the binary
  if (::pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return fail("pthread_sigmask failed");
  }
  UniqueFd sigFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigFd) {
    return sysError("signalfd");
  }
  auto nextTick = std::chrono::steady_clock::now() + tick;
  std::vector<pollfd> fds;
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    // Past their deadline: a request not complete gets a 408 (as far as the socket takes it);
    // a reply not read is dropped. Either way the connection closes.
    std::erase_if(pending_, [&](Pending& c) {
      if (now < c.deadline) {
        return false;
      }
      if (!c.writing()) {
        (void)respond(c, errorResponse(408, "request not complete within " +
                                                std::to_string(kRequestTimeout.count()) + " s"));
      }
      return true;
    });
    if (watchFd_ >= 0 && now >= watchDeadline_) {
      return kWatchExpired;
    }
    auto wake = nextTick;
    if (watchFd_ >= 0) {
      wake = std::min(wake, watchDeadline_);
    }
    for (const auto& c : pending_) {
      wake = std::min(wake, c.deadline);
    }
    fds.clear();
    fds.push_back({sigFd.get(), POLLIN, 0});
    bool room = pending_.size() < kMaxPending && !paused_;
    fds.push_back({room ? listenFd_.get() : -1, POLLIN, 0});
    fds.push_back({room && metricsFd_ ? metricsFd_.get() : -1, POLLIN, 0});
    fds.push_back({watchFd_, POLLIN, 0});
    for (const auto& c : pending_) {
      fds.push_back({c.fd.get(), static_cast<short>(c.writing() ? POLLOUT : POLLIN), 0});
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now);
    int r = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (r < 0 && errno != EINTR) {
      return sysError("poll on the control socket");
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(sigFd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        return static_cast<int>(info.ssi_signo);
      }
    }
    if (fds[3].revents != 0) {
      return kWatchReadable;
    }
    // Pending connections first (their indices match fds[4..]), then new ones.
    std::vector<bool> done(pending_.size(), false);
    for (size_t i = 0; i < pending_.size() && !stopping_; ++i) {
      short revents = fds[4 + i].revents;
      if (pending_[i].writing()) {
        if (revents & (POLLOUT | POLLHUP | POLLERR)) {
          done[i] = flush(pending_[i]);
        }
      } else if (revents & (POLLIN | POLLHUP | POLLERR)) {
        done[i] = onReadable(pending_[i], handler);
      }
    }
    size_t i = 0;
    std::erase_if(pending_, [&](const Pending&) { return done[i++]; });
    if (fds[1].revents & POLLIN) {
      accept(listenFd_.get(), false);
    }
    if (fds[2].revents & POLLIN) {
      accept(metricsFd_.get(), true);
    }
    if (std::chrono::steady_clock::now() >= nextTick) {
      onTick();
      nextTick = std::chrono::steady_clock::now() + tick;
    }
  }
  drainReplies();
  return 0;
}

} // namespace gw
