// SPDX-License-Identifier: MIT
// Shared helpers for netns/ tests: owned throwaway namespaces and iproute2 JSON as the oracle.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "base/Fd.h"
#include "netns/Netlink.h"

namespace gw::test {

// prefix() + suffix: unique to this test process, short enough for IFNAMSIZ.
std::string nsName(const std::string& suffix);

// A namespace made by our createNamespace(), with lo up; deleted on destruction even if the
// test failed (falls back to `ip netns del`).
class OwnedNamespace {
public:
  explicit OwnedNamespace(const std::string& suffix);
  OwnedNamespace(const OwnedNamespace&) = delete;
  OwnedNamespace& operator=(const OwnedNamespace&) = delete;
  ~OwnedNamespace();

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  // A netlink socket bound inside this namespace.
  Netlink& nl() { return nl_; }

private:
  std::string name_;
  UniqueFd fd_;
  Netlink nl_;
};

// Runs `ip -j args...` and parses its output; throws with stderr if ip fails.
nlohmann::json ipJson(const std::vector<std::string>& args);
// `ip -n ns -j -d link show dev` as one object; null if the link is absent.
nlohmann::json ipLink(const std::string& ns, const std::string& dev);

} // namespace gw::test
