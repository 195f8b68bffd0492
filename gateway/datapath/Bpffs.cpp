// SPDX-License-Identifier: MIT
#include "gateway/datapath/Bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gw {
namespace {

constexpr const char* kPrivateCgroup2 = "/run/gateway/cgroup2";

Status makeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return fail("mkdir -p " + dir + ": " + ec.message(), ec.value());
  }
  return {};
}

// /proc/mounts escapes spaces and friends as \ooo.
std::string unescapeMountField(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = field[i + k];
        if (c < '0' || c > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

} // namespace

Result<bool> isBpffs(const std::string& path) {
  struct statfs st{};
  if (::statfs(path.c_str(), &st) != 0) {
    return sysError("statfs " + path);
  }
  return static_cast<unsigned long>(st.f_type) == static_cast<unsigned long>(BPF_FS_MAGIC);
}

Result<std::string> ensureBpffs(const std::string& dir, const std::string& systemDir) {
  if (dir.empty()) {
    return fail("ensureBpffs: empty directory");
  }
  namespace fs = std::filesystem;
  fs::path target = fs::absolute(dir).lexically_normal();
  // Walk up to the nearest existing ancestor: inside a bpffs, plain mkdir is enough.
  fs::path probe = target;
  std::error_code ec;
  while (!fs::exists(probe, ec) && probe.has_parent_path() && probe != probe.parent_path()) {
    probe = probe.parent_path();
  }
  auto onBpffs = isBpffs(probe.string());
  if (!onBpffs) {
    return std::unexpected(onBpffs.error());
  }
  if (*onBpffs) {
    if (auto made = makeDirs(dir); !made) {
      return std::unexpected(made.error());
    }
    return std::string();
  }
  // Below an unmounted /sys/fs/bpf nothing can be made (it is sysfs): mount it there.
  fs::path system = fs::absolute(systemDir).lexically_normal();
  auto [end, rest] = std::mismatch(system.begin(), system.end(), target.begin(), target.end());
  bool below = end == system.end() && rest != target.end();
  std::string mountPoint = below && fs::is_directory(system, ec) ? system.string() : dir;
  if (mountPoint == dir) {
    if (auto made = makeDirs(dir); !made) {
      return std::unexpected(made.error());
    }
  }
  if (::mount("bpf", mountPoint.c_str(), "bpf", 0, "mode=0700") != 0) {
    return sysError("mount -t bpf bpf " + mountPoint);
  }
  if (auto made = makeDirs(dir); !made) {
    ::umount2(mountPoint.c_str(), MNT_DETACH);
    return std::unexpected(made.error());
  }
  return mountPoint;
}

Status releaseBpffs(const std::string& dir, const std::string& mounted) {
  // A fresh bpffs is never quite empty: the kernel's preload puts maps.debug and progs.debug
  // in it.
  auto onlyPreload = [](const std::string& d) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(d, ec)) {
      auto name = entry.path().filename();
      if (name != "maps.debug" && name != "progs.debug") {
        return false;
      }
    }
    return !ec;
  };
  auto isMountPoint = [](const std::string& d) {
    struct stat here {}, parent {};
    std::string up = std::filesystem::path(d).parent_path();
    return ::stat(d.c_str(), &here) == 0 && ::stat(up.c_str(), &parent) == 0 &&
           here.st_dev != parent.st_dev;
  };
  if (dir.empty() || !pathExists(dir)) {
    // nothing of ours left here
  } else if (!onlyPreload(dir)) {
    return fail("bpffs " + dir + " still holds pins: left in place");
  } else {
    // A bpffs on the pin directory itself: gatewayd mounted it (now or before it kept a record).
    if (isMountPoint(dir) && ::umount2(dir.c_str(), MNT_DETACH) != 0) {
      return sysError("umount " + dir);
    }
    ::rmdir(dir.c_str());
  }
  if (!mounted.empty() && mounted != dir && pathExists(mounted)) {
    auto still = isBpffs(mounted);
    if (still && *still && onlyPreload(mounted) && ::umount2(mounted.c_str(), MNT_DETACH) != 0) {
      return sysError("umount " + mounted);
    }
  }
  return {};
}

std::string pinPath(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string(name);
}

bool pathExists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

Status removePins(const std::string& dir, std::initializer_list<std::string_view> prefixes) {
  Status result;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename();
    bool match = std::any_of(prefixes.begin(), prefixes.end(),
                             [&](std::string_view p) { return name.starts_with(p); });
    if (match && ::unlink(entry.path().c_str()) != 0 && errno != ENOENT && result) {
      result = sysError("unpin " + entry.path().string());
    }
  }
  return result;
}

Result<std::string> findCgroup2() {
  std::ifstream mounts("/proc/mounts");
  if (!mounts) {
    return sysError("open /proc/mounts");
  }
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string source;
    std::string target;
    std::string type;
    if (fields >> source >> target >> type && type == "cgroup2") {
      return unescapeMountField(target);
    }
  }
  if (auto made = makeDirs(kPrivateCgroup2); !made) {
    return std::unexpected(made.error());
  }
  if (::mount("none", kPrivateCgroup2, "cgroup2", 0, nullptr) != 0 && errno != EBUSY) {
    return sysError(std::string("mount -t cgroup2 none ") + kPrivateCgroup2);
  }
  return std::string(kPrivateCgroup2);
}

} // namespace gw
