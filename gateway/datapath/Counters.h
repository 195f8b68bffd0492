// SPDX-License-Identifier: MIT
// The programs' per-CPU counters, summed over CPUs: packets by reason (gw_stats_reason) and
// per-rule totals (gw_stats_rule).
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "base/Error.h"
#include "gateway/datapath/Datapath.h"

namespace gw {

class BpfObjects;

// `objects` must outlive this.
class Counters {
public:
  explicit Counters(const BpfObjects& objects) : objects_(objects) {}

  Result<std::vector<ReasonCount>> reasons() const; // every enum gw_reason, in enum order
  Result<std::vector<RuleStats>> rules(const std::set<uint32_t>& ruleIds) const; // ascending
  // Zeroes one rule id's counters on every CPU (see Datapath::resetRuleStats).
  Status resetRule(uint32_t ruleId);

private:
  const BpfObjects& objects_;
};

} // namespace gw
