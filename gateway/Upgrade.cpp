// SPDX-License-Identifier: MIT
#include "gateway/Upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gateway/proxy/Proxy.h"

extern char** environ;

namespace gw {
namespace {

Result<int> parseFd(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < 3 || v > INT_MAX) {
    return invalid(std::string(kUpgradeEnv) + ": " + what + " '" + text +
                   "' is not a descriptor number");
  }
  if (::fcntl(static_cast<int>(v), F_GETFD) < 0) {
    return invalid(std::string(kUpgradeEnv) + ": " + what + " fd " + text + " is not open");
  }
  return static_cast<int>(v);
}

} // namespace

Result<std::optional<InheritedFds>> takeInheritedFds() {
  const char* env = std::getenv(kUpgradeEnv);
  if (env == nullptr) {
    return std::nullopt;
  }
  std::string text(env);
  ::unsetenv(kUpgradeEnv);
  InheritedFds out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    std::string item = text.substr(start, end == std::string::npos ? end : end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    size_t eq = item.rfind('=');
    if (eq == std::string::npos) {
      return invalid(std::string(kUpgradeEnv) + ": '" + item + "' is not NAME=FD");
    }
    std::string name = item.substr(0, eq);
    std::string value = item.substr(eq + 1);
    if (name == "api" || name == "metrics" || name == "ready") {
      auto fd = parseFd(value, name);
      if (!fd) {
        return std::unexpected(fd.error());
      }
      (name == "api" ? out.api : name == "metrics" ? out.metrics : out.ready) = *fd;
    } else if (name.starts_with("listener:")) {
      std::string address = name.substr(9);
      std::vector<int>& fds = out.listeners[address];
      size_t p = 0;
      while (p <= value.size()) {
        size_t comma = value.find(',', p);
        std::string one = value.substr(p, comma == std::string::npos ? comma : comma - p);
        auto fd = parseFd(one, "listener " + address);
        if (!fd) {
          return std::unexpected(fd.error());
        }
        if (auto r = checkInheritedListener(*fd, address); !r) {
          return std::unexpected(r.error());
        }
        fds.push_back(*fd);
        if (comma == std::string::npos) {
          break;
        }
        p = comma + 1;
      }
    } else {
      return invalid(std::string(kUpgradeEnv) + ": unknown entry '" + name + "'");
    }
  }
  if (out.api < 0 || out.ready < 0) {
    return invalid(std::string(kUpgradeEnv) + " names no api or no ready descriptor");
  }
  return out;
}

std::string formatInheritedFds(const InheritedFds& fds) {
  std::string out = "api=" + std::to_string(fds.api) + ";ready=" + std::to_string(fds.ready);
  if (fds.metrics >= 0) {
    out += ";metrics=" + std::to_string(fds.metrics);
  }
  for (const auto& [address, list] : fds.listeners) {
    out += ";listener:" + address + "=";
    for (size_t i = 0; i < list.size(); ++i) {
      out += (i == 0 ? "" : ",") + std::to_string(list[i]);
    }
  }
  return out;
}

Result<SelfExec> resolveSelf(int argc, char** argv) {
  SelfExec self;
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n < 0) {
    return sysError("readlink /proc/self/exe");
  }
  self.binary.assign(path, static_cast<size_t>(n));
  for (int i = 0; i < argc; ++i) {
    self.argv.emplace_back(argv[i]);
  }
  return self;
}

Result<UpgradeChild> startUpgrade(const SelfExec& self, InheritedFds fds,
                                  std::chrono::seconds timeout) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    return sysError("pipe for the upgrade's readiness");
  }
  UniqueFd readEnd(pipeFds[0]);
  UniqueFd writeEnd(pipeFds[1]);
  fds.ready = writeEnd.get();
  std::vector<int> handed{fds.api, fds.ready};
  if (fds.metrics >= 0) {
    handed.push_back(fds.metrics);
  }
  for (const auto& [address, list] : fds.listeners) {
    handed.insert(handed.end(), list.begin(), list.end());
  }
  // Everything the child touches is made before fork: between fork and exec only
  // async-signal-safe calls (other threads may hold malloc's lock).
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with(std::string(kUpgradeEnv) + "=")) {
      env.emplace_back(*e);
    }
  }
  env.push_back(std::string(kUpgradeEnv) + "=" + formatInheritedFds(fds));
  std::vector<char*> envp;
  for (auto& e : env) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = self.argv;
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  const char* binary = self.binary.c_str();

  pid_t pid = ::fork();
  if (pid < 0) {
    return sysError("fork for the upgrade");
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr); // exec keeps the mask: serve() blocks them
    for (int fd : handed) {
      ::fcntl(fd, F_SETFD, 0);
    }
    ::execve(binary, argv.data(), envp.data());
    ::_exit(127);
  }
  UpgradeChild child;
  child.pid = pid;
  child.ready = std::move(readEnd);
  child.deadline = std::chrono::steady_clock::now() + timeout;
  return child; // writeEnd closes here: EOF on `ready` when the child exits
}

bool childReady(UpgradeChild& child) {
  char word[16] = {};
  ssize_t n;
  do {
    n = ::read(child.ready.get(), word, sizeof word - 1);
  } while (n < 0 && errno == EINTR);
  return n > 0 && std::string_view(word, static_cast<size_t>(n)).starts_with("ready");
}

std::string abandonChild(UpgradeChild& child) {
  int status = 0;
  pid_t r = ::waitpid(child.pid, &status, WNOHANG);
  if (r == 0) {
    // Gone within a moment after it closed its pipe, or killed now.
    for (int i = 0; i < 20 && r == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      r = ::waitpid(child.pid, &status, WNOHANG);
    }
    if (r == 0) {
      ::kill(child.pid, SIGKILL);
      r = ::waitpid(child.pid, &status, 0);
    }
  }
  child.ready.reset();
  if (r != child.pid) {
    return "not reaped: " + std::string(std::strerror(errno));
  }
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "ended (status " + std::to_string(status) + ")";
}

void signalReady(int fd) {
  static constexpr char kWord[] = "ready\n";
  ssize_t n;
  do {
    n = ::write(fd, kWord, sizeof kWord - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
}

} // namespace gw
