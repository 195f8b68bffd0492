// SPDX-License-Identifier: MIT
// Conntrack as users see it (list, delete, flush, counters) and its upkeep: the garbage
// collector runs on a thread of its own, so the API never waits for a full-table walk.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "control/Api.h"
#include "gateway/services/Context.h"

namespace gw {

class ConntrackService {
public:
  explicit ConntrackService(ServiceContext& ctx) : ctx_(ctx) {}
  ~ConntrackService() { stopMaintenance(); }
  ConntrackService(const ConntrackService&) = delete;
  ConntrackService& operator=(const ConntrackService&) = delete;

  Result<std::vector<api::FlowInfo>> list(const api::ConntrackQuery& query);
  // One page of the flows the query's filters pick, after its cursor (query.limit/after).
  Result<api::ConntrackPage> page(const api::ConntrackQuery& query);
  Result<api::FlowsDeleted> remove(const api::ConntrackQuery& query);
  Result<api::StatsInfo> stats(const std::vector<ExposeRecord>& exposes);

  // Every `interval`: removes expired flows, watches the map's fill, counts SNAT ports. A
  // round over a big table waits longer: at most 1/kGcDutyDivisor of a core goes to it.
  void startMaintenance(std::chrono::milliseconds interval);
  static constexpr int kGcDutyDivisor = 20;
  void stopMaintenance();
  // One round of it, on the calling thread.
  void maintain();

  // GC rounds that found the conntrack map >= 75% full.
  uint64_t pressureSweeps() const { return pressureSweeps_.load(); }
  // Flows holding a masquerade/hairpin port at the last round.
  uint64_t snatPortsInUse() const { return snatPorts_.load(); }
  // How long the last round took, and the wait it set before the next one (µs).
  uint64_t lastSweepMicros() const { return lastSweepMicros_.load(); }
  uint64_t sweepWaitMicros() const { return sweepWaitMicros_.load(); }

private:
  ServiceContext& ctx_;
  std::atomic<uint64_t> pressureSweeps_{0};
  std::atomic<uint64_t> snatPorts_{0};
  std::atomic<uint64_t> lastSweepMicros_{0};
  std::atomic<uint64_t> sweepWaitMicros_{0};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

// The flows a query selects; an invalid filter names its flag.
Result<FlowFilter> flowFilter(const api::ConntrackQuery& query);

} // namespace gw
