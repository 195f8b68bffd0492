// SPDX-License-Identifier: MIT
// The gateway service: owns the state, applies requests to the kernel, answers the API.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/Error.h"
#include "control/Http.h"
#include "netns/Netlink.h"
#include "gateway/Rules.h"
#include "gateway/State.h"
#include "gateway/datapath/Conntrack.h"

namespace gw {
class Datapath;
class Proxy;
struct DatapathStats;
}

namespace gw {

struct GatewayConfig {
  std::string uplink;
  std::string netns; // "" = the namespace gatewayd was started in
  std::string socketPath;
  std::string stateDir;
  std::string bpffs;
  std::string xdp = "auto";
  bool hostLocal = true; // cgroup connect4/sendmsg4 hooks for clients on the gateway host
  CtTimeouts timeouts;
  std::chrono::seconds gcInterval{5};
  uint32_t ctEntries = 0; // 0 = the compiled-in size
  std::string proxyRelay = "buffers"; // io_uring proxy relay: buffers | splice
};

class Gateway {
public:
  // Opens netlink in the calling thread's namespace (the gateway host), checks the uplink,
  // loads the state and reconciles the kernel with it.
  static Result<std::unique_ptr<Gateway>> start(const GatewayConfig& config);
  ~Gateway();

  // Loads only what is needed to undo an earlier run (state, pinned data path) and removes
  // everything gatewayd made: `gatewayd --cleanup`.
  static Status cleanup(const GatewayConfig& config);

  http::Response handle(const http::Request& request);
  // Set after `gwctl down` was served: the daemon should exit.
  bool finished() const { return finished_; }
  // Periodic work between requests.
  void tick();
  // Folds the state journal into state.json: a clean stop leaves one file to read.
  Status saveSnapshot();

private:
  explicit Gateway(GatewayConfig config, Netlink host);

  Status reconcile();
  // Removes exposes, namespaces, bridges, the data path, pins and the state file.
  Status teardownAll();
  std::string metrics();
  Status persist();
  Status startDatapath();
  // Applies to the data path what the state says (idempotent).
  Status applyNamespace(const NamespaceRecord& ns);
  Status applyExpose(const ExposeRecord& e);
  Status applyProxy(const ExposeRecord& e);
  // The path serving an expose ("ebpf", "proxy" or "none") and why.
  std::pair<std::string, std::string> pathFor(const ExposeRecord& e) const;
  Status removeExpose(const ExposeRecord& e);
  Status syncLocalAddresses();
  std::vector<IpPrefix> masqueradeSources() const;
  Result<IpAddress> resolveTarget(const TargetSpec& target);
  Status checkPortFree(uint8_t proto, const PortRange& ports, const std::string& hostIp);
  uint32_t allocateRuleId();

  Result<nlohmann::json> addNamespace(const nlohmann::json& body);
  Result<nlohmann::json> deleteNamespace(const std::string& name);
  nlohmann::json listNamespaces();
  nlohmann::json status();
  // One expose object, or an array of them (all or nothing, one state write).
  Result<nlohmann::json> addExpose(const nlohmann::json& body);
  // Applies one expose and adds it to the state; the caller persists.
  Result<nlohmann::json> addOneExpose(const nlohmann::json& body);
  Result<nlohmann::json> deleteExpose(const std::map<std::string, std::string>& query);
  // Counters come from `known` when the caller has read them already.
  Result<nlohmann::json> listExposes(const DatapathStats* known = nullptr);
  Result<nlohmann::json> addMasquerade(const nlohmann::json& body);
  Result<nlohmann::json> deleteMasquerade(const std::map<std::string, std::string>& query);
  nlohmann::json listMasquerades();
  Result<nlohmann::json> listConntrack(const std::map<std::string, std::string>& query);
  Result<nlohmann::json> deleteConntrack(const std::map<std::string, std::string>& query);
  Result<nlohmann::json> stats();
  Result<Datapath*> datapath();
  // Every managed subnet and every address on the gateway host, for overlap checks.
  Status checkSubnetFree(const IpPrefix& subnet, std::string_view what);

  GatewayConfig config_;
  Netlink host_;
  State state_;
  StateStore store_;
  int uplinkIndex_ = 0;
  IpAddress uplinkAddr_;
  std::unique_ptr<Datapath> dp_;
  std::string dpError_; // why the eBPF data path is not loaded
  std::unique_ptr<Proxy> proxy_; // started at the first expose it serves
  std::map<uint32_t, std::vector<uint64_t>> listeners_; // rule id -> proxy listeners
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point lastGc_;
  bool finished_ = false;
  uint64_t ctPressureSweeps_ = 0; // GC sweeps that found the conntrack map >= 75% full
};

} // namespace gw
