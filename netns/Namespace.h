// SPDX-License-Identifier: MIT
// Named network namespaces, compatible with iproute2 (`ip netns`): bind mounts under /run/netns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "base/Names.h"
#include "base/Fd.h"

namespace gw {

inline constexpr const char* kNetnsRunDir = "/run/netns";

// Like `ip netns add`: fails with EEXIST if the name is taken; leaves nothing behind on failure.
Status createNamespace(const std::string& name);
// Like `ip netns del`: detaches the bind mount and removes the file; ENOENT if missing.
Status deleteNamespace(const std::string& name);
// Names under /run/netns, sorted; empty if the directory does not exist.
Result<std::vector<std::string>> listNamespaces();
bool namespaceExists(const std::string& name);

// An fd for setns(); fails if the file is not a live namespace (e.g. a stale, unmounted file).
// A name starting with '/' is a path, as openNamespaceAt.
Result<UniqueFd> openNamespace(const std::string& name);
// Any network namespace file (/proc/PID/ns/net, a bind mount of one): Invalid, naming the
// path, when it is something else (a plain file, a directory, a mount namespace); NotFound
// when it does not exist.
Result<UniqueFd> openNamespaceAt(const std::string& path);
// What tells namespaces apart: the cookie, never reused (an inode number is, once freed).
struct NamespaceId {
  uint64_t cookie = 0;
  bool operator==(const NamespaceId&) const = default;
};
Result<NamespaceId> namespaceId(const std::string& nameOrPath);
// The calling thread's namespace (threads can sit in different namespaces).
Result<UniqueFd> openCurrentNamespace();
// The namespace's unique, never reused cookie (SO_NETNS_COOKIE of a socket made inside it).
Result<uint64_t> namespaceCookie(int nsFd);
// The calling thread's namespace's cookie.
Result<uint64_t> currentNamespaceCookie();

// Moves the calling thread into a namespace and always brings it back on destruction.
class NetnsGuard {
public:
  static Result<NetnsGuard> enter(int nsFd);
  static Result<NetnsGuard> enter(const std::string& name);

  NetnsGuard(NetnsGuard&& other) noexcept = default;
  NetnsGuard& operator=(NetnsGuard&& other) noexcept;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  // Aborts if it cannot return: carrying on in the wrong namespace would touch the wrong network.
  ~NetnsGuard();

private:
  explicit NetnsGuard(UniqueFd saved) : saved_(std::move(saved)) {}
  void restore();

  UniqueFd saved_;
};

} // namespace gw
