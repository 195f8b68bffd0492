// SPDX-License-Identifier: MIT
#include "gateway/services/ConntrackService.h"

#include <algorithm>

#include <pthread.h>
#include <signal.h>

#include "base/Log.h"

namespace gw {
namespace {

api::FlowTupleInfo tupleInfo(const FlowTuple& t) {
  return {.src = t.src, .sport = t.sport, .dst = t.dst, .dport = t.dport};
}

Result<std::optional<uint16_t>> singlePort(const std::optional<PortRange>& range,
                                           const char* flag) {
  if (!range) {
    return std::nullopt;
  }
  if (range->size() != 1) {
    return invalid(std::string(flag) + ": '" + range->str() + "' is not a port (1-65535)");
  }
  return range->first;
}

api::FlowInfo flowInfo(const Flow& f) {
  return {.proto = std::string(protoName(f.proto)),
          .orig = tupleInfo(f.orig),
          .reply = tupleInfo(f.reply),
          .state = std::string(f.state),
          .idleSeconds = std::chrono::duration<double>(f.age).count(),
          .ageSeconds = std::chrono::duration<double>(f.life).count(),
          .packets = f.origCounters.packets + f.replyCounters.packets,
          .bytes = f.origCounters.bytes + f.replyCounters.bytes,
          .origPackets = f.origCounters.packets,
          .replyPackets = f.replyCounters.packets,
          .rule = f.ruleId,
          .nat = NatKind::fromBits(f.nat)};
}

FlowKey keyOf(const api::FlowCursor& c) {
  return {c.proto, {.src = c.src, .dst = c.dst, .sport = c.sport, .dport = c.dport}};
}

api::FlowCursor cursorOf(const FlowKey& k) {
  return {k.proto, k.orig.src, k.orig.sport, k.orig.dst, k.orig.dport};
}

} // namespace

Result<FlowFilter> flowFilter(const api::ConntrackQuery& query) {
  FlowFilter f;
  if (query.proto) {
    f.proto = ipProto(*query.proto);
  }
  f.src = query.src;
  f.dst = query.dst;
  auto port = singlePort(query.port, "--port");
  auto sport = singlePort(query.sport, "--sport");
  auto dport = singlePort(query.dport, "--dport");
  for (const auto* p : {&port, &sport, &dport}) {
    if (!*p) {
      return std::unexpected(p->error());
    }
  }
  f.port = *port;
  f.sport = *sport;
  f.dport = *dport;
  return f;
}

Result<std::vector<api::FlowInfo>> ConntrackService::list(const api::ConntrackQuery& query) {
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto filter = flowFilter(query);
  if (!filter) {
    return std::unexpected(filter.error());
  }
  auto flows = (*dp)->listFlows();
  if (!flows) {
    return std::unexpected(flows.error());
  }
  std::vector<api::FlowInfo> out;
  for (const auto& f : *flows) {
    if (filter->matches(f)) {
      out.push_back(flowInfo(f));
    }
  }
  return out;
}

Result<api::ConntrackPage> ConntrackService::page(const api::ConntrackQuery& query) {
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto filter = flowFilter(query);
  if (!filter) {
    return std::unexpected(filter.error());
  }
  auto paging = query.paging();
  std::optional<FlowKey> after;
  if (paging.after) {
    after = keyOf(*paging.after);
  }
  auto flows = (*dp)->listFlowPage(*filter, after, paging.pageSize());
  if (!flows) {
    return std::unexpected(flows.error());
  }
  api::ConntrackPage out;
  out.items.reserve(flows->flows.size());
  for (const auto& f : flows->flows) {
    out.items.push_back(flowInfo(f));
  }
  if (flows->more && !flows->flows.empty()) {
    out.next = cursorOf(flowKey(flows->flows.back()));
  }
  return out;
}

Result<api::FlowsDeleted> ConntrackService::remove(const api::ConntrackQuery& query) {
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  if (query.all) {
    auto n = (*dp)->flushFlows();
    if (!n) {
      return std::unexpected(n.error());
    }
    return api::FlowsDeleted{.deleted = *n};
  }
  auto filter = flowFilter(query);
  if (!filter) {
    return std::unexpected(filter.error());
  }
  if (!filter->proto && !filter->src && !filter->dst && !filter->port && !filter->sport &&
      !filter->dport) {
    return invalid("conntrack delete needs a filter (or flush)");
  }
  auto n = (*dp)->deleteFlows(*filter);
  if (!n) {
    return std::unexpected(n.error());
  }
  return api::FlowsDeleted{.deleted = *n};
}

Result<api::StatsInfo> ConntrackService::stats(const std::vector<ExposeRecord>& exposes) {
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto s = (*dp)->stats();
  if (!s) {
    return std::unexpected(s.error());
  }
  api::StatsInfo out;
  for (const auto& r : s->reasons) {
    out.reasons[std::string(r.name)] = r.packets;
  }
  for (const auto& r : s->rules) {
    std::string what;
    for (const auto& e : exposes) {
      if (e.id == r.ruleId) {
        what = std::string(protoName(e.proto)) + " " + e.hostPorts().str() + " -> " + e.target;
      }
    }
    out.rules.push_back({.id = r.ruleId,
                         .rule = what,
                         .packets = r.packets,
                         .bytes = r.bytes,
                         .connections = r.connections,
                         .drops = r.drops});
  }
  out.conntrack = {
      .entries = s->ctEntries, .capacity = s->ctCapacity, .pressureSweeps = pressureSweeps()};
  return out;
}

void ConntrackService::maintain() {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return;
  }
  // One walk of the map: expired flows go, and what it saw feeds the gauges.
  auto sweep = dp->sweepConntrack();
  if (!sweep) {
    log::warn("conntrack gc: ", sweep.error().str());
    return;
  }
  if (sweep->removed > 0) {
    log::debug("conntrack gc removed ", sweep->removed, " flows");
  }
  snatPorts_ = sweep->snatFlows;
  // LRU maps evict silently: a nearly full table is the pressure we can see and count. A
  // saturated LRU map reads 80-95% full (it keeps free entries per CPU), hence 75%.
  if (sweep->capacity > 0 && sweep->entries * 4 >= sweep->capacity * 3) {
    if (pressureSweeps_++ % 60 == 0) {
      log::warn("conntrack map ", sweep->entries, "/", sweep->capacity,
                " full: the oldest flows are evicted (LRU); raise --ct-entries");
    }
  }
}

void ConntrackService::startMaintenance(std::chrono::milliseconds interval) {
  stopMaintenance();
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this, interval] {
    // Signals are the main thread's (a signalfd there): one delivered here would kill.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::unique_lock lock(mu_);
    std::chrono::milliseconds wait = interval;
    sweepWaitMicros_ = static_cast<uint64_t>(wait.count()) * 1000;
    while (!wake_.wait_for(lock, wait, [this] { return stopping_; })) {
      lock.unlock();
      auto started = std::chrono::steady_clock::now();
      maintain();
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - started);
      // A million flows take seconds of a core to walk: every 5 s that was half the machine
      // here (bench/ctfull.py). Timeouts are minutes, so expiring later costs little.
      wait = std::max(interval, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    took * kGcDutyDivisor));
      lastSweepMicros_ = static_cast<uint64_t>(took.count());
      sweepWaitMicros_ = static_cast<uint64_t>(wait.count()) * 1000;
      lock.lock();
    }
  });
}

void ConntrackService::stopMaintenance() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

} // namespace gw
