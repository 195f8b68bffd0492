// SPDX-License-Identifier: MIT
#include "ApiServer.h"

#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace gw {
namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(5);

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
  if (std::filesystem::exists(path, ec)) {
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
  if (::listen(server.listenFd_.get(), 64) != 0) {
    return sysError("listen " + path);
  }
  return server;
}

ApiServer::ApiServer(ApiServer&& other) noexcept
    : listenFd_(std::move(other.listenFd_)), path_(std::move(other.path_)),
      group_(other.group_) {
  other.path_.clear();
}

ApiServer::~ApiServer() {
  if (listenFd_ && !path_.empty()) {
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
  if (peer.gid == *group_) {
    return true;
  }
  // Supplementary groups of the peer's user.
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(peer.uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return false;
  }
  int count = 64;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    return false;
  }
  groups.resize(static_cast<size_t>(count));
  return std::ranges::find(groups, *group_) != groups.end();
}

void ApiServer::handleConnection(int fd, const Handler& handler) {
  PeerCredentials peer;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer = {cred.pid, cred.uid, cred.gid};
  }
  http::Response response;
  if (!allowed(peer)) {
    response = errorResponse(403, "permission denied: uid " + std::to_string(peer.uid) +
                                      " is neither root nor in the socket's group");
  } else {
    auto request = http::readRequest(fd, kRequestTimeout);
    if (!request) {
      int status = request.error().code == ETIMEDOUT ? 408 : 400;
      response = errorResponse(status, "bad request: " + request.error().str());
    } else {
      response = handler(*request, peer);
    }
  }
  (void)http::writeAll(fd, http::serialize(response), kRequestTimeout);
}

Result<int> ApiServer::serve(const Handler& handler, const std::function<void()>& onTick,
                             std::chrono::milliseconds tick) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (::pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return fail("pthread_sigmask failed");
  }
  UniqueFd sigFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigFd) {
    return sysError("signalfd");
  }
  auto nextTick = std::chrono::steady_clock::now() + tick;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        nextTick - std::chrono::steady_clock::now());
    pollfd fds[2] = {{listenFd_.get(), POLLIN, 0}, {sigFd.get(), POLLIN, 0}};
    int r = ::poll(fds, 2, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (r < 0 && errno != EINTR) {
      return sysError("poll on the control socket");
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(sigFd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        return static_cast<int>(info.ssi_signo);
      }
    }
    if (fds[0].revents & POLLIN) {
      UniqueFd conn(::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn) {
        handleConnection(conn.get(), handler);
      }
    }
    if (std::chrono::steady_clock::now() >= nextTick) {
      onTick();
      nextTick = std::chrono::steady_clock::now() + tick;
    }
  }
}

} // namespace gw
