// SPDX-License-Identifier: MIT
#include "tests/netns/NetnsTestUtil.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "netns/Link.h"
#include "netns/Namespace.h"
#include "tests/support/TestSupport.h"

namespace gw::test {
namespace {

// Removes namespaces left by earlier, killed runs before any test makes new ones.
class SweepEnvironment : public ::testing::Environment {
public:
  void SetUp() override { sweepLeftovers(); }
};

[[maybe_unused]] const auto* const kSweep =
    ::testing::AddGlobalTestEnvironment(new SweepEnvironment);

template <class T>
T orThrow(Result<T> result, const std::string& what) {
  if (!result) {
    throw std::runtime_error(what + ": " + result.error().str());
  }
  return std::move(*result);
}

Netlink setUp(const std::string& name, UniqueFd& fd) {
  if (auto ok = createNamespace(name); !ok) {
    throw std::runtime_error("createNamespace: " + ok.error().str());
  }
  // The destructor will not run if the constructor throws: clean up here.
  try {
    fd = orThrow(openNamespace(name), "openNamespace " + name);
    auto nl = orThrow(Netlink::openIn(fd.get()), "Netlink::openIn " + name);
    auto lo = orThrow(getLink(nl, std::string("lo")), "getLink lo");
    if (auto ok = setLinkUp(nl, lo.index, true); !ok) {
      throw std::runtime_error("lo up: " + ok.error().str());
    }
    return nl;
  } catch (...) {
    fd.reset();
    deleteNamespace(name);
    throw;
  }
}

} // namespace

std::string nsName(const std::string& suffix) {
  return prefix() + suffix;
}

OwnedNamespace::OwnedNamespace(const std::string& suffix)
    : name_(nsName(suffix)), nl_(setUp(name_, fd_)) {}

OwnedNamespace::~OwnedNamespace() {
  if (!deleteNamespace(name_)) {
    run({"ip", "netns", "del", name_});
  }
}

nlohmann::json ipJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip", "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv);
  if (!r.ok()) {
    std::string cmd;
    for (const auto& a : argv) {
      cmd += a + " ";
    }
    throw std::runtime_error(cmd + "failed: " + r.err);
  }
  // `ip -j netns list` prints nothing at all when there are no namespaces.
  if (r.out.find_first_not_of(" \n") == std::string::npos) {
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(r.out);
}

nlohmann::json ipLink(const std::string& ns, const std::string& dev) {
  auto r = run({"ip", "-n", ns, "-j", "-d", "link", "show", "dev", dev});
  if (!r.ok()) {
    return nullptr;
  }
  auto links = nlohmann::json::parse(r.out);
  return links.empty() ? nlohmann::json(nullptr) : links[0];
}

} // namespace gw::test
