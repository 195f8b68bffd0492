// SPDX-License-Identifier: MIT
#include "tests/support/TestSupport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gw::test {
namespace {

std::vector<char*> toArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) {
    out.push_back(const_cast<char*>(a.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

int decodeStatus(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

std::string toBase36(unsigned long v) {
  const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string s;
  do {
    s.insert(s.begin(), digits[v % 36]);
    v /= 36;
  } while (v != 0);
  return s;
}

} // namespace

CommandResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int outPipe[2];
  int errPipe[2];
  if (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  auto args = toArgv(argv);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(outPipe[1], 1);
    dup2(errPipe[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execvp(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  close(outPipe[1]);
  close(errPipe[1]);
  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
  int open = 2;
  bool timedOut = false;
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open;
        } else {
          (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
  }
  if (timedOut) {
    kill(-pid, SIGKILL);
    result.err += "\n[test support: timed out after " + std::to_string(timeout.count()) + " ms]";
  }
  for (auto& f : fds) {
    if (f.fd >= 0) {
      close(f.fd);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.status = timedOut ? 124 : decodeStatus(status);
  return result;
}

CommandResult sh(const std::string& script, std::chrono::milliseconds timeout) {
  return run({"/bin/sh", "-c", script}, timeout);
}

CommandResult shIn(const std::string& ns, const std::string& script,
                   std::chrono::milliseconds timeout) {
  return run({"ip", "netns", "exec", ns, "/bin/sh", "-c", script}, timeout);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Child Child::spawn(const std::vector<std::string>& argv, const std::string& logPath) {
  auto args = toArgv(argv);
  pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    setpgid(0, 0);
    int out = open(logPath.empty() ? "/dev/null" : logPath.c_str(),
                   O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, 1);
    dup2(out, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execvp(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  Child c;
  c.pid_ = pid;
  return c;
}

Child::Child(Child&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) {
      stop();
    }
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
  }
  return *this;
}

Child::~Child() {
  if (pid_ > 0) {
    stop();
  }
}

bool Child::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decodeStatus(status);
    pid_ = -1;
    return false;
  }
  return true;
}

int Child::stop(int sig, std::chrono::milliseconds timeout) {
  if (!running()) {
    return status_;
  }
  // Signal the process group: the child and anything it started (ip netns exec ... server).
  kill(-pid_, sig);
  kill(pid_, sig);
  if (!waitFor([this] { return !running(); }, timeout)) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = decodeStatus(status);
    pid_ = -1;
  }
  return status_;
}

const std::string& prefix() {
  static const std::string p = "gwt" + toBase36(static_cast<unsigned long>(getpid())) + "-";
  return p;
}

void sweepLeftovers() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    std::string name = entry.path().filename();
    auto dash = name.find('-');
    if (!name.starts_with("gwt") || dash == std::string::npos || dash < 4) {
      continue;
    }
    std::string id = name.substr(3, dash - 3);
    char* end = nullptr;
    unsigned long pid = std::strtoul(id.c_str(), &end, 36);
    if (end == nullptr || *end != '\0' || pid == 0) {
      continue;
    }
    if (static_cast<pid_t>(pid) == getpid() || kill(static_cast<pid_t>(pid), 0) == 0 ||
        errno != ESRCH) {
      continue;
    }
    run({"ip", "netns", "del", name});
  }
}

TestNamespace::TestNamespace(std::string name) : name_(std::move(name)) {
  run({"ip", "netns", "del", name_});
  auto r = run({"ip", "netns", "add", name_});
  if (!r.ok()) {
    throw std::runtime_error("ip netns add " + name_ + ": " + r.err);
  }
  run({"ip", "-n", name_, "link", "set", "lo", "up"});
}

TestNamespace::~TestNamespace() {
  run({"ip", "netns", "del", name_});
}

CommandResult TestNamespace::sh(const std::string& script,
                                std::chrono::milliseconds timeout) const {
  return shIn(name_, script, timeout);
}

} // namespace gw::test
