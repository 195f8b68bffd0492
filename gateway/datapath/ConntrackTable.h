// SPDX-License-Identifier: MIT
// The conntrack map (gw_ct_v4) from userspace: its two halves a flow paired into Flows (with
// Conntrack.h's pure functions), deleted by filter, flushed, garbage-collected and counted.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "base/Error.h"
#include "gateway/datapath/Conntrack.h"

namespace gw {

class BpfObjects;

// Holds no state but the map: every method reads the kernel afresh. `objects` must outlive this.
class ConntrackTable {
public:
  explicit ConntrackTable(const BpfObjects& objects);

  Result<std::vector<Flow>> list() const;
  // Deletes both halves of every flow `pred` picks; returns the flows deleted.
  Result<size_t> deleteIf(const std::function<bool(const Flow&)>& pred);
  // Flows idle past their state's timeout, and orphan halves (peer gone) past a grace period.
  Result<size_t> collectGarbage(const CtTimeouts& timeouts);

  Result<size_t> count() const; // entries (a flow uses two)
  size_t capacity() const;

private:
  const BpfObjects& objects_;
};

} // namespace gw
