// SPDX-License-Identifier: MIT
#include "gateway/datapath/Counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <string>
#include <string_view>

#include "gateway/datapath/BpfObjects.h"
#include "bpf/gw_abi.h"
#include "gateway/datapath/Reasons.h"

namespace gw {
namespace {


Result<size_t> possibleCpus() {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return fail("libbpf_num_possible_cpus", -ncpus);
  }
  return static_cast<size_t>(ncpus);
}

} // namespace

Result<std::vector<ReasonCount>> Counters::reasons() const {
  auto ncpus = possibleCpus();
  if (!ncpus) {
    return std::unexpected(ncpus.error());
  }
  std::vector<uint64_t> perCpu(*ncpus);
  int fd = objects_.mapFd("gw_stats_reason");
  int moreFd = objects_.mapFd("gw_stats_reason_more");
  std::vector<ReasonCount> out;
  for (uint32_t i = 0; i < GW_REASON_MAX; ++i) {
    bool more = i >= GW_REASON_SLOTS;
    uint32_t slot = more ? i - GW_REASON_SLOTS : i;
    if (bpf_map_lookup_elem(more ? moreFd : fd, &slot, perCpu.data()) != 0) {
      return sysError(more ? "read gw_stats_reason_more" : "read gw_stats_reason");
    }
    ReasonCount r{reasonName(i), 0};
    for (uint64_t v : perCpu) {
      r.packets += v;
    }
    out.push_back(r);
  }
  return out;
}

Result<std::vector<RuleStats>> Counters::rules(const std::set<uint32_t>& ruleIds) const {
  auto ncpus = possibleCpus();
  if (!ncpus) {
    return std::unexpected(ncpus.error());
  }
  std::vector<gw_rule_stats> perCpu(*ncpus);
  int fd = objects_.mapFd("gw_stats_rule");
  std::vector<RuleStats> out;
  for (uint32_t id : ruleIds) {
    if (bpf_map_lookup_elem(fd, &id, perCpu.data()) != 0) {
      return sysError("read gw_stats_rule " + std::to_string(id));
    }
    RuleStats r;
    r.ruleId = id;
    for (const auto& s : perCpu) {
      r.packets += s.packets;
      r.bytes += s.bytes;
      r.connections += s.connections;
      r.drops += s.drops;
    }
    out.push_back(r);
  }
  return out;
}

Status Counters::resetRule(uint32_t ruleId) {
  if (ruleId >= GW_RULE_MAX) {
    return fail("reset rule stats: rule id " + std::to_string(ruleId) + " >= " +
                std::to_string(GW_RULE_MAX));
  }
  auto ncpus = possibleCpus();
  if (!ncpus) {
    return std::unexpected(ncpus.error());
  }
  // A per-CPU array update writes every CPU's slot from one buffer.
  std::vector<gw_rule_stats> zeroes(*ncpus);
  if (bpf_map_update_elem(objects_.mapFd("gw_stats_rule"), &ruleId, zeroes.data(), BPF_ANY) !=
      0) {
    return sysError("reset gw_stats_rule " + std::to_string(ruleId));
  }
  return {};
}

} // namespace gw
