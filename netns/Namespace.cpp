// SPDX-License-Identifier: MIT
#include "netns/Namespace.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace gw {
namespace {

constexpr const char* kThreadNetns = "/proc/thread-self/ns/net";

std::string pathOf(const std::string& name) {
  return std::string(kNetnsRunDir) + "/" + name;
}

// iproute2's netns_add: /run/netns must be a shared mount so that deleting a namespace in one
// mount namespace also drops its bind mount in the others (and the namespace can be freed).
Status makeRunDirShared() {
  if (mkdir(kNetnsRunDir, 0755) != 0 && errno != EEXIST) {
    return sysError(std::string("mkdir ") + kNetnsRunDir);
  }
  bool madeMountPoint = false;
  while (mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    // EINVAL: not a mount point yet; bind it onto itself once and retry.
    if (errno != EINVAL || madeMountPoint) {
      return sysError(std::string("mount --make-shared ") + kNetnsRunDir);
    }
    if (mount(kNetnsRunDir, kNetnsRunDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
      return sysError(std::string("mount --bind ") + kNetnsRunDir);
    }
    madeMountPoint = true;
  }
  return {};
}

// Returns the thread to `saved`; see ~NetnsGuard for why failure aborts.
void returnOrAbort(int saved) {
  if (setns(saved, CLONE_NEWNET) != 0) {
    std::perror("gw: cannot return to the original network namespace");
    std::abort();
  }
}

} // namespace


Status createNamespace(const std::string& name) {
  if (auto ok = validateNamespaceName(name); !ok) {
    return ok;
  }
  if (auto ok = makeRunDirShared(); !ok) {
    return ok;
  }
  std::string path = pathOf(name);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    return sysError("create namespace file " + path);
  }
  close(fd);
  auto removeFile = [&](Error error) {
    unlink(path.c_str());
    return std::unexpected(std::move(error));
  };

  auto saved = openCurrentNamespace();
  if (!saved) {
    return removeFile(saved.error());
  }
  // unshare() moves only this thread into the new namespace; the bind mount keeps it alive.
  if (unshare(CLONE_NEWNET) != 0) {
    return removeFile(sysError("unshare(CLONE_NEWNET) for " + name).error());
  }
  Status mounted;
  if (mount(kThreadNetns, path.c_str(), "none", MS_BIND, nullptr) != 0) {
    mounted = sysError("bind-mount namespace onto " + path);
  }
  returnOrAbort(saved->get());
  if (!mounted) {
    return removeFile(std::move(mounted.error()));
  }
  return {};
}

Status deleteNamespace(const std::string& name) {
  if (auto ok = validateNamespaceName(name); !ok) {
    return ok;
  }
  std::string path = pathOf(name);
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return sysError("delete namespace " + name);
  }
  // EINVAL means nothing is mounted (a stale file): still remove it, as iproute2 does.
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return sysError("umount " + path);
  }
  if (unlink(path.c_str()) != 0) {
    return sysError("unlink " + path);
  }
  return {};
}

Result<std::vector<std::string>> listNamespaces() {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(kNetnsRunDir), closedir);
  if (!dir) {
    if (errno == ENOENT) {
      return names;
    }
    return sysError(std::string("opendir ") + kNetnsRunDir);
  }
  while (dirent* entry = readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") {
      names.push_back(std::move(name));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool namespaceExists(const std::string& name) {
  if (!validateNamespaceName(name)) {
    return false;
  }
  struct stat st {};
  return lstat(pathOf(name).c_str(), &st) == 0;
}

Result<UniqueFd> openNamespaceAt(const std::string& path) {
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string::npos) {
    return invalid("namespace path '" + path + "' is not an absolute path");
  }
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    return fail(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Invalid,
                "namespace " + path + ": " + std::strerror(err), err);
  }
  struct statfs fs {};
  if (fstatfs(fd.get(), &fs) != 0) {
    return sysError("fstatfs " + path);
  }
  if (fs.f_type != NSFS_MAGIC) {
    return fail(ErrorKind::Invalid, path + " is not a network namespace (not a namespace file)",
                EINVAL);
  }
  int type = ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    return fail(ErrorKind::Invalid,
                path + " is not a network namespace (a namespace of another kind)", EINVAL);
  }
  return fd;
}

Result<NamespaceId> namespaceId(const std::string& nameOrPath) {
  auto fd = openNamespace(nameOrPath);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  auto cookie = namespaceCookie(fd->get());
  if (!cookie) {
    return std::unexpected(cookie.error());
  }
  return NamespaceId{*cookie};
}

Result<UniqueFd> openNamespace(const std::string& name) {
  if (!name.empty() && name.front() == '/') {
    return openNamespaceAt(name);
  }
  if (auto ok = validateNamespaceName(name); !ok) {
    return std::unexpected(ok.error());
  }
  std::string path = pathOf(name);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return sysError("open namespace " + name);
  }
  struct statfs fs {};
  if (fstatfs(fd.get(), &fs) != 0) {
    return sysError("fstatfs " + path);
  }
  if (fs.f_type != NSFS_MAGIC) {
    return fail("namespace " + name + " is not mounted (stale " + path + ")", EINVAL);
  }
  return fd;
}

Result<UniqueFd> openCurrentNamespace() {
  UniqueFd fd(open(kThreadNetns, O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return sysError(std::string("open ") + kThreadNetns);
  }
  return fd;
}

Result<uint64_t> namespaceCookie(int nsFd) {
  auto guard = NetnsGuard::enter(nsFd);
  if (!guard) {
    return std::unexpected(guard.error());
  }
  UniqueFd sock(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) {
    return sysError("socket for namespace cookie");
  }
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    return sysError("getsockopt(SO_NETNS_COOKIE)");
  }
  return cookie;
}

Result<uint64_t> currentNamespaceCookie() {
  auto self = openCurrentNamespace();
  if (!self) {
    return std::unexpected(self.error());
  }
  return namespaceCookie(self->get());
}

Result<NetnsGuard> NetnsGuard::enter(int nsFd) {
  auto saved = openCurrentNamespace();
  if (!saved) {
    return std::unexpected(saved.error());
  }
  if (setns(nsFd, CLONE_NEWNET) != 0) {
    return sysError("setns into network namespace fd " + std::to_string(nsFd));
  }
  return NetnsGuard(std::move(*saved));
}

Result<NetnsGuard> NetnsGuard::enter(const std::string& name) {
  auto fd = openNamespace(name);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  return enter(fd->get());
}

NetnsGuard& NetnsGuard::operator=(NetnsGuard&& other) noexcept {
  if (this != &other) {
    restore();
    saved_ = std::move(other.saved_);
  }
  return *this;
}

NetnsGuard::~NetnsGuard() {
  restore();
}

void NetnsGuard::restore() {
  if (saved_) {
    returnOrAbort(saved_.get());
    saved_.reset();
  }
}

} // namespace gw
