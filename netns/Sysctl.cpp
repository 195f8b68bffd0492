// SPDX-License-Identifier: MIT
#include "netns/Sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/Fd.h"
#include "netns/Namespace.h"

namespace gw {
namespace {

std::string pathOf(std::string_view key) {
  return "/proc/sys/" + std::string(key);
}

} // namespace

Status validateSysctlKey(std::string_view key) {
  auto bad = [&](const char* why) {
    return fail("invalid sysctl key '" + std::string(key) + "': " + why, EINVAL);
  };
  if (key.empty()) {
    return bad("empty");
  }
  if (key.front() == '/') {
    return bad("must be relative to /proc/sys");
  }
  if (key.find('\0') != std::string_view::npos) {
    return bad("contains NUL");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) {
      end = key.size();
    }
    auto part = key.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return bad("empty, '.' or '..' component");
    }
    start = end + 1;
  }
  return {};
}

Status writeSysctl(std::string_view key, std::string_view value) {
  if (auto ok = validateSysctlKey(key); !ok) {
    return ok;
  }
  std::string path = pathOf(key);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    return sysError("open " + path);
  }
  ssize_t wrote = write(fd.get(), value.data(), value.size());
  if (wrote < 0) {
    return sysError("write '" + std::string(value) + "' to " + path);
  }
  if (static_cast<size_t>(wrote) != value.size()) {
    return fail("short write of '" + std::string(value) + "' to " + path, EIO);
  }
  return {};
}

Result<std::string> readSysctl(std::string_view key) {
  if (auto ok = validateSysctlKey(key); !ok) {
    return std::unexpected(ok.error());
  }
  std::string path = pathOf(key);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return sysError("open " + path);
  }
  std::string value;
  char buf[4096];
  while (true) {
    ssize_t got = read(fd.get(), buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sysError("read " + path);
    }
    if (got == 0) {
      break;
    }
    value.append(buf, static_cast<size_t>(got));
  }
  const char* space = " \t\n\r";
  auto first = value.find_first_not_of(space);
  if (first == std::string::npos) {
    return std::string();
  }
  return value.substr(first, value.find_last_not_of(space) - first + 1);
}

Status writeSysctlIn(int nsFd, std::string_view key, std::string_view value) {
  auto guard = NetnsGuard::enter(nsFd);
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return writeSysctl(key, value);
}

Result<std::string> readSysctlIn(int nsFd, std::string_view key) {
  auto guard = NetnsGuard::enter(nsFd);
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return readSysctl(key);
}

} // namespace gw
