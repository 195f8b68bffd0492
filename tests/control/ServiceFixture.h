// SPDX-License-Identifier: MIT
// A gateway host for end-to-end tests: a throwaway namespace "gwh" with an uplink veth to an
// external-client namespace "ext", gatewayd running inside gwh (--netns), and gwctl to talk
// to it. Everything is named from gw::test::prefix() and removed even when a test fails.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/TestSupport.h"

namespace gw::test {

inline constexpr const char* kUplinkAddr = "198.18.0.1";
inline constexpr const char* kExternalAddr = "198.18.0.2";
inline constexpr const char* kUplinkAddr6 = "fd00:18::1";   // with addUplink6()
inline constexpr const char* kExternalAddr6 = "fd00:18::2";
inline constexpr int kExitDegraded = 3; // `gwctl status` without the eBPF data path

class ServiceFixture : public ::testing::Test {
protected:
  void SetUp() override;
  void TearDown() override;

  // Starts gatewayd (extra args appended, extra env as NAME=VALUE) and waits for its socket.
  void startDaemon(const std::vector<std::string>& extraArgs = {},
                   const std::vector<std::string>& env = {});
  // Gives up0 and the external namespace's eth0 IPv6 addresses too (kUplinkAddr6/64 and
  // kExternalAddr6/64, no DAD wait), and ext a default IPv6 route via up0. Opt-in: call it
  // before startDaemon(), which then finds the uplink's IPv6 address.
  void addUplink6();
  // Stops it with `sig` (SIGTERM by default); returns its exit status.
  int stopDaemon(int sig = 15);
  // Stops gatewayd with `sig` and starts `binary` ("" = the built gatewayd) with the arguments
  // and environment of the last startDaemon(); returns the stopped one's exit status.
  int restartDaemon(int sig, const std::string& binary = {});
  // Runs gatewayd to completion with this fixture's options plus `extraArgs` (--cleanup),
  // and `env` as NAME=VALUE.
  CommandResult runGatewayd(const std::vector<std::string>& extraArgs,
                            const std::vector<std::string>& env = {});

  CommandResult gwctl(const std::vector<std::string>& args);
  // gwctl ... -j, parsed; fails the test if the command fails.
  nlohmann::json gwctlJson(const std::vector<std::string>& args);

  // A namespace name for gatewayd to create (removed at teardown if it still exists).
  std::string nsName(const std::string& suffix);

  std::string gwh() const { return prefix() + "gwh"; }
  std::string ext() const { return prefix() + "ext"; }
  std::string dir_;
  std::string socket_;
  std::string log_;
  Child daemon_;

  // gatewayd's command line with this fixture's options ("" = the built gatewayd).
  std::vector<std::string> daemonArgv(const std::string& binary) const;

private:

  std::string binary_; // "" = GATEWAYD_PATH
  std::vector<std::string> lastArgs_;
  std::vector<std::string> lastEnv_;
  std::unique_ptr<TestNamespace> gwhNs_;
  std::unique_ptr<TestNamespace> extNs_;
  std::vector<std::string> created_;
};

// `ip -j ...` parsed (iproute2 as the independent oracle).
nlohmann::json ipJson(const std::vector<std::string>& args);
bool pingFrom(const std::string& ns, const std::string& addr);

// The BPF programs on `dev`'s tc hook in namespace `ns`, however hooked: names of clsact
// filters (tc, iproute2) and of tcx links (BPF_PROG_QUERY; names cut at 15 characters).
struct TcHooked {
  std::vector<std::string> clsact;
  std::vector<std::string> tcx;
  bool tcxQueried = false; // false: the query failed (no such link, or a kernel before 6.6)
  bool has(const std::string& namePrefix) const;
};
TcHooked tcHooked(const std::string& ns, const std::string& dev, bool ingress);

} // namespace gw::test
