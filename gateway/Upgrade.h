// SPDX-License-Identifier: MIT
// Binary upgrade (SIGUSR2), as nginx does it: the running gatewayd forks and executes the
// binary now on disk, passing its listening sockets (control, metrics, proxy) as inherited
// descriptors named in GATEWAY_UPGRADE_FDS. The new process adopts them instead of binding, so
// no connection is refused, and says "ready" on a pipe once it serves; the old one then stops
// accepting and exits when its proxied connections are done. If the new one fails, the old
// one never stopped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"

namespace gw {

inline constexpr const char* kUpgradeEnv = "GATEWAY_UPGRADE_FDS";
inline constexpr auto kUpgradeReadyTimeout = std::chrono::seconds(30);

// What a new process inherits, parsed from GATEWAY_UPGRADE_FDS (e.g.
// "api=5;metrics=6;ready=7;listener:0.0.0.0:6000=8,9").
struct InheritedFds {
  int api = -1;
  int metrics = -1; // -1: none
  int ready = -1;   // the pipe to write "ready" to
  std::map<std::string, std::vector<int>> listeners;
};

// Parses and removes the variable (so it is never passed on by mistake). nullopt: a normal
// start. Each listener fd is checked to listen on its address; any mismatch is an error.
Result<std::optional<InheritedFds>> takeInheritedFds();
std::string formatInheritedFds(const InheritedFds& fds);

// The binary and arguments to execute at an upgrade: resolved at start, before anything
// replaces the file.
struct SelfExec {
  std::string binary;
  std::vector<std::string> argv;
};
Result<SelfExec> resolveSelf(int argc, char** argv);

// A new process started by an upgrade and not yet ready.
struct UpgradeChild {
  pid_t pid = -1;
  UniqueFd ready; // read end: "ready", or EOF if it exits first
  std::chrono::steady_clock::time_point deadline;
};

// Forks and executes `self` with `fds` (ours, left close-on-exec here: only the child makes
// them inheritable, between fork and exec).
// The child is given up (killed) when it is not ready within `timeout`.
Result<UpgradeChild> startUpgrade(const SelfExec& self, InheritedFds fds,
                                  std::chrono::seconds timeout = kUpgradeReadyTimeout);

// Reads the child's word on its pipe (readable): true if it said "ready".
bool childReady(UpgradeChild& child);
// Gives up on a child: kills it if still running, reaps it; returns how it ended.
std::string abandonChild(UpgradeChild& child);

// The new process: tells the old one that it serves.
void signalReady(int fd);

} // namespace gw
