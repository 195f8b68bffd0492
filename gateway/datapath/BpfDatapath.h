// SPDX-License-Identifier: MIT
// The kernel's data path, composed of one class per job: BpfObjects loads (and pins) the
// programs and maps, Attachments puts the programs on links and cgroups, RuleMaps writes the
// rules, ConntrackTable lists and collects flows, Counters sums the statistics.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "gateway/datapath/Datapath.h"

namespace gw {

class Attachments;
class BpfObjects;
class ConntrackTable;
class Counters;
class FragmentRelease;
class RuleMaps;

// Lives in the network namespace that the calling thread is in at open(): every later call
// that touches interfaces enters that namespace for its duration, whatever thread calls it.
// Any thread may call any method; they are serialized by an internal mutex, except
// sweepConntrack(), which takes it only to read the timeouts: its walk and deletes touch only
// the conntrack map, so a GC thread never holds up the API thread. Destroy it only once no
// other thread can still be calling.
//
// Lifetime: teardown() detaches everything this BpfDatapath (or, with pins, an earlier run)
// attached, unpins and removes the pin dir. The destructor tears down the same way when
// bpffsDir is empty; when bpffsDir is set it leaves programs attached and maps/links pinned
// so traffic keeps flowing and the next open() with the same dir adopts them (hitless restart:
// re-attaching swaps programs atomically, flows survive).
class BpfDatapath final : public Datapath {
public:
  static Result<std::unique_ptr<BpfDatapath>> open(const DatapathConfig& config);
  ~BpfDatapath() override;
  BpfDatapath(const BpfDatapath&) = delete;
  BpfDatapath& operator=(const BpfDatapath&) = delete;

  // tc ingress + egress and XDP (per config.xdp) on the uplink; writes the uplink into
  // gw_config. Calling it again (or after a restart) replaces the programs in place.
  Status attachUplink(int ifindex, const IpAddress& uplinkAddr) override;
  Status setUplinkAddress6(const IpAddress& addr) override;
  Status setUplinkAddress(const IpAddress& addr) override;
  Status detachUplink();
  // The XDP mode the uplink actually got (Auto resolves to Native or Off).
  XdpMode uplinkXdpMode() const override;
  TcHook tcHook() const override;

  // tc ingress on the gateway-side end of a namespace link.
  Status attachEndpoint(int ifindex) override;
  Status detachEndpoint(int ifindex) override;
  // A managed namespace's address reachable through its veth: packets translated towards it
  // at a tc ingress go straight into the namespace (bpf_redirect_peer) with this Ethernet
  // header (dst peerMac = its eth0, src hostMac = the gateway end hostIfindex). Replaces.
  Status addEndpoint(const IpAddress& addr, int hostIfindex, std::array<uint8_t, 6> peerMac,
                     std::array<uint8_t, 6> hostMac) override;
  // Absent is not an error.
  Status deleteEndpoint(const IpAddress& addr) override;
  Result<std::vector<EndpointEntry>> listEndpoints() override;
  Result<std::vector<int>> listEndpointAttachments() override;

  Status setHairpinAddress(const IpAddress& addr) override;
  Status addLocalAddress(const IpAddress& addr) override;
  Status deleteLocalAddress(const IpAddress& addr) override;
  Result<std::vector<IpAddress>> listLocalAddresses() override;

  Status addExpose(const ExposeEntry& entry) override;
  // Also deletes that rule's conntrack flows (both halves).
  Status deleteExpose(const ExposeKey& key, FlowsOfRule flows = FlowsOfRule::Remove) override;
  Status deleteFlowsTo(const std::vector<ExposeKey>& keys) override;
  Result<std::vector<ExposeEntry>> listExposes() override;

  // outIfindex 0 = the uplink.
  Status addMasquerade(const IpPrefix& source, int outIfindex,
                       bool endpointIndependent = false) override;
  Status deleteMasquerade(const IpPrefix& source) override;
  Result<std::vector<MasqueradeEntry>> listMasquerades() override;

  // Socket hooks (connect4/sendmsg4/...) on a cgroup v2 with BPF links, acting only on sockets
  // of the namespace with `netnsCookie`. cgroupPath "" = the root of the cgroup2 mount (every
  // process of the machine). Pinned with the maps; detached by disableHostLocal/teardown.
  Status enableHostLocal(uint64_t netnsCookie, const std::string& cgroupPath) override;
  Status disableHostLocal();

  Result<std::vector<Flow>> listFlows() override;
  Result<FlowPage> listFlowPage(const FlowFilter& filter, const std::optional<FlowKey>& after,
                                size_t limit) override;
  Result<size_t> deleteFlows(const FlowFilter& filter) override; // flows deleted (both halves each)
  Result<size_t> flushFlows() override;
  // Removes flows idle past their state's timeout, and orphan halves (peer gone).
  Result<ConntrackSweep> sweepConntrack() override;
  void setTimeouts(const CtTimeouts& timeouts);

  // The kernel's own element count of gw_ct_v4 (6.6+; before, a walk that keeps nothing).
  Result<size_t> conntrackEntries() override;
  Result<DatapathStats> stats() override;
  // Zeroes one rule id's counters on every CPU. The BPF side only ever adds to them, so a rule
  // id that is deleted and later reused would otherwise inherit its predecessor's totals:
  // call it when a rule id is freed (or before it is handed out again).
  Status resetRuleStats(uint32_t ruleId) override;

  Status teardown() override;

  // Whether maps were adopted from pins of an earlier run at open().
  bool adopted() const override;
  // gw_config6 as written (for tests and status).
  Result<std::pair<IpAddress, IpAddress>> config6() const; // uplink, hairpin
  // A shared map's fd by name (gw_ct_v4, ...), -1 if unknown. For tests and tools.
  int mapFd(std::string_view name) const;

private:
  explicit BpfDatapath(DatapathConfig config);
  Status teardownLocked();
  Status deleteFlowsLocked(const std::vector<ExposeKey>& keys); // under mu_

  DatapathConfig config_;
  // Declared before what borrows from it: destroyed last.
  std::unique_ptr<BpfObjects> objects_;
  std::unique_ptr<Attachments> attachments_;
  std::unique_ptr<RuleMaps> rules_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<ConntrackTable> conntrack_;
  std::unique_ptr<FragmentRelease> fragments_;
  bool tornDown_ = false;
  mutable std::mutex mu_;
};

} // namespace gw
