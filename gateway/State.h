// SPDX-License-Identifier: MIT
// What gatewayd owns, as written to <state-dir>/state.json: the source of truth on restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "Error.h"
#include "Ip.h"

namespace gw {

struct BridgeRecord {
  std::string name;
  IpPrefix gateway; // the bridge's own address with the subnet length, e.g. 10.88.0.1/16
};

enum class Wiring { Bridge, PointToPoint };

struct NamespaceRecord {
  std::string name;
  Wiring wiring = Wiring::Bridge;
  std::string bridge;   // Wiring::Bridge only
  std::string hostLink; // gateway end of the veth
  IpPrefix address;     // inside the namespace, e.g. 10.88.0.2/16
  IpPrefix hostAddress; // gateway end (point-to-point) or the bridge's address
};

struct ExposeRecord {
  uint32_t id = 0;
  std::string proto = "tcp";
  uint16_t hostPort = 0;
  uint16_t hostPortEnd = 0;
  std::string hostIp;  // "" = every address of the gateway host
  std::string target;  // as the user wrote it
  std::string targetNs; // "" when the target was an IP
  IpAddress targetAddr;
  uint16_t targetPort = 0;
  std::string mode = "auto";
  std::string proxyProtocol; // "" or "v2"
};

struct MasqueradeRecord {
  IpPrefix source;
  std::string outIf; // "" = the uplink
  bool automatic = false; // added by `ns add`, removed by `ns del`
};

struct State {
  std::vector<BridgeRecord> bridges;
  std::vector<NamespaceRecord> namespaces;
  std::vector<ExposeRecord> exposes;
  std::vector<MasqueradeRecord> masquerades;
  uint32_t nextRuleId = 1;

  NamespaceRecord* findNamespace(std::string_view name);
  BridgeRecord* findBridge(std::string_view name);
};

std::string toJson(const State& state);
// Errors name what is wrong in the text; `origin` (a file name) prefixes them.
Result<State> fromJson(std::string_view text, const std::string& origin);

// Loads <dir>/state.json; a missing file is an empty state; a corrupt one is an error naming
// the file (the previous good copy stays in state.json.bak).
Result<State> loadState(const std::string& dir);
// Writes atomically: temp file, fsync, the old file kept as state.json.bak, rename, fsync dir.
Status saveState(const std::string& dir, const State& state);

} // namespace gw
