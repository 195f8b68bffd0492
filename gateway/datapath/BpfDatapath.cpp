// SPDX-License-Identifier: MIT
#include "gateway/datapath/BpfDatapath.h"

#include "gateway/datapath/Attachments.h"
#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/ConntrackTable.h"
#include "gateway/datapath/Counters.h"
#include "gateway/datapath/FragmentRelease.h"
#include "gateway/datapath/RuleMaps.h"
#include "bpf/gw_abi.h"

namespace gw {
BpfDatapath::BpfDatapath(DatapathConfig config) : config_(std::move(config)) {}

BpfDatapath::~BpfDatapath() {
  std::lock_guard lock(mu_);
  if (!tornDown_ && config_.bpffsDir.empty()) {
    (void)teardownLocked();
  }
  // With pins, links and maps stay pinned and tc filters keep their programs: closing our fds
  // here detaches nothing.
}

Result<std::unique_ptr<BpfDatapath>> BpfDatapath::open(const DatapathConfig& config) {
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath(config));
  if (!config.bpffsDir.empty()) {
    if (auto ok = ensureBpffs(config.bpffsDir); !ok) {
      return std::unexpected(ok.error());
    }
  }
  BpfObjectsOptions options;
  options.pinDir = config.bpffsDir;
  options.ctEntries = config.ctEntries;
  auto objects = BpfObjects::load(options);
  if (!objects) {
    return std::unexpected(objects.error());
  }
  dp->objects_ = std::move(*objects);
  auto attachments = Attachments::open(*dp->objects_, config.xdp, config.tc);
  if (!attachments) {
    return std::unexpected(attachments.error());
  }
  dp->attachments_ = std::move(*attachments);
  dp->rules_ = std::make_unique<RuleMaps>(*dp->objects_);
  dp->counters_ = std::make_unique<Counters>(*dp->objects_);
  dp->conntrack_ = std::make_unique<ConntrackTable>(*dp->objects_);
  if (auto ok = dp->rules_->initConfig(config.fibRedirect); !ok) {
    return std::unexpected(ok.error());
  }
  auto fragments = FragmentRelease::start(*dp->objects_);
  if (!fragments) {
    return std::unexpected(fragments.error());
  }
  dp->fragments_ = std::move(*fragments);
  return dp;
}

bool BpfDatapath::adopted() const {
  std::lock_guard lock(mu_);
  return objects_->adopted();
}

int BpfDatapath::mapFd(std::string_view name) const {
  std::lock_guard lock(mu_);
  return objects_->mapFd(name);
}

Status BpfDatapath::attachUplink(int ifindex, const IpAddress& uplinkAddr) {
  std::lock_guard lock(mu_);
  int current = attachments_->uplinkIfindex();
  if (current != 0 && current != ifindex) {
    return fail("uplink already attached to ifindex " + std::to_string(current));
  }
  // The config names the uplink before its programs run.
  if (auto ok = rules_->setUplink(ifindex, uplinkAddr, config_.fibRedirect); !ok) {
    return ok;
  }
  return attachments_->attachUplink(ifindex);
}

Status BpfDatapath::setUplinkAddress6(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return rules_->setUplinkAddress6(addr);
}

Status BpfDatapath::setUplinkAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  int ifindex = attachments_->uplinkIfindex();
  if (ifindex == 0) {
    return fail("no uplink attached");
  }
  return rules_->setUplink(ifindex, addr, config_.fibRedirect);
}

Result<std::pair<IpAddress, IpAddress>> BpfDatapath::config6() const {
  std::lock_guard lock(mu_);
  auto c = rules_->config6();
  if (!c) {
    return std::unexpected(c.error());
  }
  return std::pair{c->uplinkAddr, c->hairpinAddr};
}

TcHook BpfDatapath::tcHook() const {
  std::lock_guard lock(mu_);
  return attachments_->tcHook();
}

XdpMode BpfDatapath::uplinkXdpMode() const {
  std::lock_guard lock(mu_);
  return attachments_->uplinkXdpMode();
}

Status BpfDatapath::detachUplink() {
  std::lock_guard lock(mu_);
  return attachments_->detachUplink();
}

Status BpfDatapath::attachEndpoint(int ifindex) {
  std::lock_guard lock(mu_);
  return attachments_->attachEndpoint(ifindex);
}

Status BpfDatapath::detachEndpoint(int ifindex) {
  std::lock_guard lock(mu_);
  return attachments_->detachEndpoint(ifindex);
}

Status BpfDatapath::addEndpoint(const IpAddress& addr, int hostIfindex,
                                std::array<uint8_t, 6> peerMac, std::array<uint8_t, 6> hostMac) {
  std::lock_guard lock(mu_);
  return rules_->addEndpoint(addr, hostIfindex, peerMac, hostMac);
}

Status BpfDatapath::deleteEndpoint(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return rules_->deleteEndpoint(addr);
}

Result<std::vector<EndpointEntry>> BpfDatapath::listEndpoints() {
  std::lock_guard lock(mu_);
  return rules_->listEndpoints();
}

Result<std::vector<int>> BpfDatapath::listEndpointAttachments() {
  std::lock_guard lock(mu_);
  return attachments_->endpointIfindexes();
}

Status BpfDatapath::setHairpinAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return rules_->setHairpinAddress(addr);
}

Status BpfDatapath::addLocalAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return rules_->addLocalAddress(addr);
}

Status BpfDatapath::deleteLocalAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return rules_->deleteLocalAddress(addr);
}

Result<std::vector<IpAddress>> BpfDatapath::listLocalAddresses() {
  std::lock_guard lock(mu_);
  return rules_->listLocalAddresses();
}

Status BpfDatapath::addExpose(const ExposeEntry& entry) {
  std::lock_guard lock(mu_);
  return rules_->addExpose(entry);
}

Status BpfDatapath::deleteExpose(const ExposeKey& key, FlowsOfRule flows) {
  std::lock_guard lock(mu_);
  if (auto ok = rules_->deleteExpose(key); !ok) {
    return ok;
  }
  if (flows == FlowsOfRule::Keep) {
    return {};
  }
  return deleteFlowsLocked({key});
}

Status BpfDatapath::deleteFlowsTo(const std::vector<ExposeKey>& keys) {
  std::lock_guard lock(mu_);
  return deleteFlowsLocked(keys);
}

// Matching on the port rather than the rule id keeps the other ports of a range rule alive.
Status BpfDatapath::deleteFlowsLocked(const std::vector<ExposeKey>& keys) {
  if (auto deleted = conntrack_->deleteDnatTo(keys); !deleted) {
    return std::unexpected(deleted.error());
  }
  return {};
}

Result<std::vector<ExposeEntry>> BpfDatapath::listExposes() {
  std::lock_guard lock(mu_);
  return rules_->listExposes();
}

Status BpfDatapath::addMasquerade(const IpPrefix& source, int outIfindex,
                                  bool endpointIndependent) {
  std::lock_guard lock(mu_);
  return rules_->addMasquerade(source, outIfindex, endpointIndependent);
}

Status BpfDatapath::deleteMasquerade(const IpPrefix& source) {
  std::lock_guard lock(mu_);
  return rules_->deleteMasquerade(source);
}

Result<std::vector<MasqueradeEntry>> BpfDatapath::listMasquerades() {
  std::lock_guard lock(mu_);
  return rules_->listMasquerades();
}

Status BpfDatapath::enableHostLocal(uint64_t netnsCookie, const std::string& cgroupPath) {
  std::lock_guard lock(mu_);
  // The hooks run for every socket in the cgroup, in every namespace: the cookie confines them.
  if (auto ok = rules_->setNetnsCookie(netnsCookie); !ok) {
    return ok;
  }
  return attachments_->attachSockHooks(cgroupPath);
}

Status BpfDatapath::disableHostLocal() {
  std::lock_guard lock(mu_);
  if (auto ok = attachments_->detachSockHooks(); !ok) {
    return ok;
  }
  return rules_->setNetnsCookie(0);
}

Result<std::vector<Flow>> BpfDatapath::listFlows() {
  std::lock_guard lock(mu_);
  return conntrack_->list();
}

Result<FlowPage> BpfDatapath::listFlowPage(const FlowFilter& filter,
                                           const std::optional<FlowKey>& after, size_t limit) {
  std::lock_guard lock(mu_);
  return conntrack_->listPage(filter, after, limit);
}

Result<size_t> BpfDatapath::deleteFlows(const FlowFilter& filter) {
  std::lock_guard lock(mu_);
  return conntrack_->deleteIf([&](const Flow& f) { return filter.matches(f); });
}

Result<size_t> BpfDatapath::flushFlows() {
  std::lock_guard lock(mu_);
  return conntrack_->deleteIf([](const Flow&) { return true; });
}

void BpfDatapath::setTimeouts(const CtTimeouts& timeouts) {
  std::lock_guard lock(mu_);
  config_.timeouts = timeouts;
}

Result<ConntrackSweep> BpfDatapath::sweepConntrack() {
  CtTimeouts timeouts;
  {
    std::lock_guard lock(mu_);
    timeouts = config_.timeouts;
  }
  // Neither step takes the lock: they touch no state of ours, only the conntrack map (alive
  // as long as this object), whose deletes are atomic and whose other deleters (deleteFlows,
  // flushFlows, deleteExpose, the LRU) just see ENOENT. Deleting under the lock a chunk at a
  // time was tried: std::mutex is not fair, GC re-took it first, and an API call waited out
  // every chunk (400 ms of a 700 ms GC of 100k flows).
  ConntrackSweep sweep;
  auto expired = conntrack_->findExpired(timeouts, &sweep);
  if (!expired) {
    return std::unexpected(expired.error());
  }
  auto removed = conntrack_->deleteExpired(*expired);
  if (!removed) {
    return std::unexpected(removed.error());
  }
  sweep.removed = *removed;
  sweep.capacity = conntrack_->capacity();
  return sweep;
}

Result<size_t> BpfDatapath::conntrackEntries() {
  std::lock_guard lock(mu_);
  return conntrack_->count();
}

Result<DatapathStats> BpfDatapath::stats() {
  std::lock_guard lock(mu_);
  DatapathStats out;
  auto reasons = counters_->reasons();
  if (!reasons) {
    return std::unexpected(reasons.error());
  }
  out.reasons = std::move(*reasons);
  auto ruleIds = rules_->exposedRuleIds();
  if (!ruleIds) {
    return std::unexpected(ruleIds.error());
  }
  auto rules = counters_->rules(*ruleIds);
  if (!rules) {
    return std::unexpected(rules.error());
  }
  out.rules = std::move(*rules);
  auto entries = conntrack_->count();
  if (!entries) {
    return std::unexpected(entries.error());
  }
  out.ctEntries = *entries;
  out.ctCapacity = conntrack_->capacity();
  return out;
}

Status BpfDatapath::resetRuleStats(uint32_t ruleId) {
  std::lock_guard lock(mu_);
  return counters_->resetRule(ruleId);
}

Status BpfDatapath::teardown() {
  std::lock_guard lock(mu_);
  return teardownLocked();
}

Status BpfDatapath::teardownLocked() {
  if (tornDown_) {
    return {};
  }
  Status result = attachments_->teardown();
  if (!attachments_->empty()) {
    return result; // the namespace was out of reach: keep the pins that say what is attached
  }
  if (auto ok = objects_->unpin(); !ok && result) {
    result = ok;
  }
  tornDown_ = true;
  return result;
}

} // namespace gw
