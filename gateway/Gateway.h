// SPDX-License-Identifier: MIT
// gatewayd's composition: the state, the kernel behind its interfaces (data path, topology,
// proxy), the services over them and the routes of the API. Start, reconcile, teardown.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/Error.h"
#include "control/Http.h"
#include "gateway/State.h"
#include "gateway/api/Router.h"
#include "gateway/services/HandWiredEndpoints.h"
#include "gateway/datapath/Conntrack.h"
#include "gateway/datapath/Datapath.h"
#include "gateway/host/HostTopology.h"
#include "gateway/host/ProxyOnDemand.h"
#include "gateway/services/ConntrackService.h"
#include "gateway/services/ExposeService.h"
#include "gateway/services/MasqueradeService.h"
#include "gateway/services/MetricsService.h"
#include "gateway/services/NamespaceService.h"
#include "netns/Address.h"
#include "netns/Netlink.h"

namespace gw {

// What gatewayd does when the eBPF data path cannot load.
enum class DatapathPolicy {
  Auto, // start degraded: the proxy serves TCP exposes, and status says so
  Ebpf, // refuse to start
};

// --bpffs's default. Where it cannot be made (a container whose /sys is read-only and has no
// /sys/fs/bpf) the pins go to kFallbackBpffs instead, a bpffs gatewayd mounts there (the
// unit's RuntimeDirectoryPreserve keeps /run/gateway across restarts); status and the log say so.
inline constexpr const char* kDefaultBpffs = "/sys/fs/bpf/gateway";
inline constexpr const char* kFallbackBpffs = "/run/gateway/bpffs";

struct GatewayConfig {
  std::string uplink;
  std::string netns; // "" = the namespace gatewayd was started in
  std::string socketPath;
  std::string stateDir;
  std::string bpffs;
  XdpMode xdp = XdpMode::Auto;
  TcHook tc = TcHook::Auto;
  bool hostLocal = true; // cgroup connect4/sendmsg4 hooks for clients on the gateway host
  CtTimeouts timeouts;
  std::chrono::seconds gcInterval{5};
  uint32_t ctEntries = 0; // 0 = the compiled-in size
  RelayMode proxyRelay = RelayMode::Buffers;
  DatapathPolicy datapath = DatapathPolicy::Auto;
  bool groupMayPublishAny = false; // --group members may publish any target, not only managed
  bool recover = false; // start from the last good journal line instead of refusing
  // Proxy listening sockets handed over at an upgrade (see ProxyConfig): each must be
  // adopted by an expose of the state, or start fails.
  std::map<std::string, std::vector<int>> inheritedListeners;
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

  http::Response handle(const http::Request& request, Caller caller = Caller::Root) {
    http::Response response = router_.route(request, caller);
    // A change may cover a namespace wired by hand, or no longer: its fast path follows.
    if (request.method != "GET" && response.status < 300 && !finished_) {
      handWired_.refresh();
    }
    return response;
  }
  // Set after `gwctl down` was served: the daemon should exit.
  bool finished() const { return finished_; }
  // For systemd's STATUS=: the data path's state and where its pins live.
  std::string summary();
  // Folds the state journal into state.json: a clean stop leaves one file to read.
  Status saveSnapshot() { return store_.compact(state_); }

  // Upgrade (SIGUSR2): the proxy's listening sockets to hand over.
  std::vector<ListenerFds> listenerFds() { return proxy_.listenerFds(); }
  // Handed over: the new process serves. Stops conntrack maintenance and accepting; proxied
  // connections keep relaying. Nothing is torn down.
  void retire() {
    conntrack_.stopMaintenance();
    proxy_.releaseListeners();
  }
  size_t proxiedConnections() { return proxy_.activeConnections().value_or(0); }
  // Between requests, at least once a second: the host's addresses followed when they change.
  void tick();

private:
  Gateway(GatewayConfig config, Netlink host);

  Status startDatapath();
  Status recordHost(); // where --cleanup acts later
  Status dropAttachmentsOfEarlierBoot();
  // --cleanup: into the namespace host.json names, refusing any other.
  static Status enterRecordedHost(const GatewayConfig& config);
  Status reconcile();
  // Removes exposes, namespaces, bridges, the data path, pins and the state file.
  Status teardownAll();
  api::StatusInfo status();
  void addRoutes();
  // An address of the gateway host came or went: the local-address maps and the uplink's
  // addresses in the data path follow.
  void followAddresses();

  GatewayConfig config_;
  std::string bpffsFallback_; // why the pins are in kFallbackBpffs, "" when they are not
  Netlink host_;
  State state_;
  StateStore store_;
  int uplinkIndex_ = 0;
  IpAddress uplinkAddr_;
  IpAddress uplinkAddr6_; // the first global IPv6 address; unset: none
  std::optional<AddressWatch> addressWatch_;
  std::chrono::steady_clock::time_point pathsCheckedAt_{};
  std::unique_ptr<Datapath> dp_;
  DatapathRef datapath_;
  HostTopology topology_;
  ProxyOnDemand proxy_;
  ServiceContext ctx_;
  NamespaceService namespaces_;
  ExposeService exposes_;
  MasqueradeService masquerades_;
  HandWiredEndpoints handWired_;
  ConntrackService conntrack_;
  MetricsService metrics_;
  Router router_;
  std::chrono::steady_clock::time_point started_;
  bool finished_ = false;
};

} // namespace gw
