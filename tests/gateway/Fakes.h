// SPDX-License-Identifier: MIT
// Fakes of what gatewayd's services stand on: the data path, the gateway host's topology, the
// proxy and the state's sink. Plain maps that tests set up and read (members are public, as
// in Envoy's mocks), failures on request. No root, no kernel.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "control/ApiValues.h"
#include "gateway/State.h"
#include "gateway/datapath/Datapath.h"
#include "gateway/services/ProxyControl.h"
#include "gateway/services/Topology.h"

namespace gw::test {

struct FakeEndpoint {
  int hostIfindex = 0;
  std::array<uint8_t, 6> peerMac{};
  std::array<uint8_t, 6> hostMac{};
};

class FakeDatapath final : public Datapath {
 public:
  Status attachUplink(int ifindex, const IpAddress& uplinkAddr) override;
  Status setUplinkAddress6(const IpAddress& addr) override;
  Status setUplinkAddress(const IpAddress& addr) override;
  XdpMode uplinkXdpMode() const override { return XdpMode::Off; }
  bool adopted() const override { return adopted_; }
  Status attachEndpoint(int ifindex) override;
  Status detachEndpoint(int ifindex) override;
  Status addEndpoint(const IpAddress& addr, int hostIfindex, std::array<uint8_t, 6> peerMac,
                     std::array<uint8_t, 6> hostMac) override;
  Status deleteEndpoint(const IpAddress& addr) override;
  Result<std::vector<EndpointEntry>> listEndpoints() override;
  // endpointPrograms_.
  Result<std::vector<int>> listEndpointAttachments() override;
  Status setHairpinAddress(const IpAddress& addr) override;
  Status addLocalAddress(const IpAddress& addr) override;
  Status deleteLocalAddress(const IpAddress& addr) override;
  Result<std::vector<IpAddress>> listLocalAddresses() override;
  Status addExpose(const ExposeEntry& entry) override;
  Status deleteExpose(const ExposeKey& key, FlowsOfRule flows = FlowsOfRule::Remove) override;
  Status deleteFlowsTo(const std::vector<ExposeKey>& keys) override;
  Result<std::vector<ExposeEntry>> listExposes() override;
  Status addMasquerade(const IpPrefix& source, int outIfindex,
                       bool endpointIndependent = false) override;
  Status deleteMasquerade(const IpPrefix& source) override;
  Result<std::vector<MasqueradeEntry>> listMasquerades() override;
  Status enableHostLocal(uint64_t netnsCookie, const std::string& cgroupPath) override;
  Result<std::vector<Flow>> listFlows() override;
  Result<size_t> deleteFlows(const FlowFilter& filter) override;
  Result<size_t> flushFlows() override;
  // Removes nothing; reports flows_, ctEntries_ and ctCapacity_.
  Result<ConntrackSweep> sweepConntrack() override;
  // The canned reasons and conntrack fill, and ruleStats_ of every rule id in exposes_.
  Result<DatapathStats> stats() override;
  Status resetRuleStats(uint32_t ruleId) override;
  Status teardown() override;

  // The entries of `proto` and `family` whose host port is in [first, last].
  size_t exposeCount(uint8_t proto, uint16_t first, uint16_t last, int family = AF_INET) const;

  bool adopted_ = false; // maps of an earlier run (what a start lacks is then a repair)
  // What the services made.
  std::map<ExposeKey, ExposeEntry> exposes_;
  std::map<IpPrefix, int> masquerades_;  // source -> out ifindex (0 = the uplink)
  std::set<IpPrefix> endpointIndependent_; // masquerades with endpoint-independent filtering
  std::map<IpAddress, FakeEndpoint> endpoints_;
  std::set<int> endpointPrograms_;  // ifindexes with the endpoint program attached
  std::set<IpAddress> localAddresses_;
  IpAddress uplinkAddr6_;  // setUplinkAddress6
  IpAddress hairpin_;      // setHairpinAddress, IPv4
  IpAddress hairpin6_;     // setHairpinAddress, IPv6
  // Counters by rule id, as tests set them; resetRuleStats zeroes one.
  std::map<uint32_t, RuleStats> ruleStats_;
  std::vector<uint32_t> resets_;  // resetRuleStats calls, in order

  // Canned answers.
  std::vector<Flow> flows_;
  std::vector<ReasonCount> reasons_;
  size_t ctEntries_ = 0;
  size_t ctCapacity_ = 0;

  int addExposeCalls_ = 0;
  int deleteExposeCalls_ = 0;
  std::vector<FlowsOfRule> deleteExposeFlows_; // what each deleteExpose was told of its flows
  std::vector<std::vector<ExposeKey>> flowsDeletedTo_; // each deleteFlowsTo's ports
  int flushCalls_ = 0;
  std::vector<FlowFilter> deleteFlowsCalls_;

  // The Nth addExpose (1-based, counted over the fake's life) fails; 0 = none.
  int failAddExposeAt_ = 0;
  bool failAddMasquerade_ = false;
  bool failAddEndpoint_ = false;
  bool failStats_ = false;
  bool failList_ = false; // every list* call fails (a map that cannot be read)
};

// A namespace of the fake host: what `ip netns` and `ip -n NS addr` would show.
struct FakeNamespace {
  std::vector<IpPrefix> addresses;  // IPv4, loopback included if the test wants it
  std::vector<IpPrefix> addresses6; // made by wireNamespace
  std::string sameAs;               // a path: the namespace of that name (a bind mount of it)
  std::map<std::string, LinkState> links;
};

class FakeTopology final : public Topology {
 public:
  // A host with lo (127.0.0.1/8) and uplink0 (192.0.2.10/24).
  FakeTopology();

  bool namespaceExists(const std::string& name) override;
  Result<LinkState> link(const std::string& name) override;
  Result<LinkState> linkIn(const std::string& ns, const std::string& name) override;
  Result<std::vector<HostAddress>> hostAddresses(int family) override;
  Result<NamespaceId> namespaceId(const std::string& nameOrPath) override;
  Result<std::vector<IpPrefix>> namespaceAddresses(const std::string& ns, int family) override;
  Result<std::vector<std::string>> namespaceNames() override;
  Result<PeeredNamespace> peeredNamespace(const std::string& ns) override;
  Result<std::map<int, int>> hostVeths() override { return veths_; }
  Status ensureBridge(const BridgeRecord& bridge, Rollback* rollback) override;
  // Makes the namespace with eth0, the veth's host end, and for point-to-point the host
  // address; then the bridge must exist for bridge wiring.
  Status wireNamespace(const NamespaceRecord& ns, Rollback* rollback) override;
  Status unwireNamespace(const NamespaceRecord& ns) override;
  Status removeBridge(const std::string& name) override;
  Result<bool> portInUse(Proto proto, uint16_t port,
                         const std::optional<IpAddress>& hostIp) override;

  // A link of the host, with the next ifindex and a MAC derived from it.
  LinkState& addLink(const std::string& name);
  void addHostAddress(const std::string& link, const IpPrefix& prefix);
  bool hasHostAddress(const IpPrefix& prefix) const;

  std::map<std::string, LinkState> links_;
  std::vector<HostAddress> addresses_;
  std::map<std::string, FakeNamespace> namespaces_;
  std::map<std::string, BridgeRecord> bridges_;   // made by ensureBridge
  std::map<std::string, NamespaceRecord> wired_;  // made by wireNamespace
  std::set<std::pair<Proto, uint16_t>> portsInUse_;
  std::map<std::string, PeeredNamespace> peered_; // a namespace's veths into the host
  std::map<int, int> veths_;                      // the host's veths: ifindex -> namespace id
  int peeredScans_ = 0;                            // peeredNamespace calls

  int wireCalls_ = 0;
  int unwireCalls_ = 0;
  int removeBridgeCalls_ = 0;

  // wireNamespace makes the namespace and the veth, then fails: only the Rollback takes
  // them away again.
  bool failWireAfterLink_ = false;
  bool failEnsureBridge_ = false;

 private:
  void dropLink(const std::string& name);
  int nextIndex_ = 1;
};

class FakeProxy final : public ProxyControl {
 public:
  Result<uint64_t> addListener(const ProxyListenerSpec& spec) override;
  Status removeListener(uint64_t id, bool drain) override;
  Result<ProxyListenerStats> listenerStats(uint64_t id) override;
  std::optional<size_t> activeConnections() override { return active_; }
  void stop(bool drain) override;

  // The listener on `port`, if any.
  std::optional<uint64_t> listenerOn(uint16_t port) const;

  std::map<uint64_t, ProxyListenerSpec> listeners_;
  std::map<uint64_t, ProxyListenerStats> stats_;  // by listener id, as tests set them
  std::optional<size_t> active_;
  int addListenerCalls_ = 0;
  int stops_ = 0;
  // The Nth addListener (1-based) fails with EADDRINUSE; 0 = none.
  int failAddListenerAt_ = 0;

 private:
  uint64_t nextId_ = 1;
};

class FakeStateSink final : public StateSink {
 public:
  Status commit(const State& state) override;

  int commits_ = 0;                 // successful ones
  std::optional<State> committed_;  // the last state made durable
  bool failNext_ = false;           // the next commit fails (then commits work again)
};

}  // namespace gw::test
