// SPDX-License-Identifier: MIT
// Exposed ports: the rules (clashes, ranges, rule ids, all-or-nothing batches), the choice of
// the path that serves each (eBPF or the proxy), and their counters.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "control/Api.h"
#include "gateway/services/Context.h"
#include "gateway/services/ProxyControl.h"
#include "gateway/services/Topology.h"

namespace gw {

class ExposeService {
public:
  ExposeService(ServiceContext& ctx, Topology& topology, ProxyControl& proxy)
      : ctx_(ctx), topology_(topology), proxy_(proxy) {}

  Result<api::ExposeAdded> add(const api::ExposeRequest& request);
  // All or nothing, one state commit (10,000 rules in one call, as iptables-restore).
  Result<std::vector<api::ExposeAdded>> addBatch(const std::vector<api::ExposeRequest>& batch);
  Result<api::ExposeDeleted> remove(const api::UnexposeQuery& query);
  // Counters come from `known` when the caller has read them already.
  std::vector<api::ExposeInfo> list(const DatapathStats* known = nullptr);

  // Applies every expose of the state (on start), then removes the expose map entries that no
  // state names (pinned by a run that crashed mid-change). Entries restored and removed are
  // logged; failures too, and are not fatal.
  void reconcile();
  // Removes every expose from the data path and the proxy, and stops the proxy.
  void teardown(std::vector<std::string>& problems);

  // The path serving an expose and why.
  struct Serving {
    ServingPath path = ServingPath::None;
    std::string why;
  };
  Serving servingPath(const ExposeRecord& e) const;

private:
  // Applies one expose to the kernel and adds it to the state; the caller commits.
  Result<api::ExposeAdded> addOne(const api::ExposeRequest& request);
  Status apply(const ExposeRecord& e);
  Status applyProxy(const ExposeRecord& e);
  Status unapply(const ExposeRecord& e);
  // The expose map entries of `e` (one per port), when the eBPF path serves it.
  std::vector<ExposeEntry> entriesOf(const ExposeRecord& e) const;
  Result<IpAddress> resolveTarget(const TargetSpec& target);
  Status checkPortFree(Proto proto, const PortRange& ports,
                       const std::optional<IpAddress>& hostIp);
  uint32_t allocateRuleId();

  ServiceContext& ctx_;
  Topology& topology_;
  ProxyControl& proxy_;
  std::map<uint32_t, std::vector<uint64_t>> listeners_; // rule id -> proxy listeners
};

} // namespace gw
