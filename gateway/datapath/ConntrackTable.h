// SPDX-License-Identifier: MIT
// The conntrack map (gw_ct_v4) from userspace: its two halves a flow paired into Flows (with
// Conntrack.h's pure functions), deleted by filter, flushed, garbage-collected and counted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/Error.h"
#include "gateway/datapath/Conntrack.h"
#include "gateway/datapath/Datapath.h"
#include "bpf/gw_abi.h"

struct bpf_link;

namespace gw {

class BpfObjects;

// Holds no state but the map (and the counter's iterator link): every method reads the kernel
// afresh, so any thread may call any method. `objects` must outlive this.
class ConntrackTable {
public:
  explicit ConntrackTable(const BpfObjects& objects);
  ~ConntrackTable();
  ConntrackTable(const ConntrackTable&) = delete;
  ConntrackTable& operator=(const ConntrackTable&) = delete;

  Result<std::vector<Flow>> list() const;
  // One page of the listing (Datapath::listFlowPage) from one walk that keeps only the page's
  // candidates: the memory and time of a page do not grow with the pages before it.
  Result<FlowPage> listPage(const FlowFilter& filter, const std::optional<FlowKey>& after,
                            size_t limit) const;
  // Deletes both halves of every flow `pred` picks; returns the flows deleted.
  Result<size_t> deleteIf(const std::function<bool(const Flow&)>& pred);
  // Deletes both halves of every DNAT flow whose first packet was addressed to one of these
  // ports, from one walk that pairs and builds nothing (a container's DEL on a big table):
  // the orig half names its peer.
  Result<size_t> deleteDnatTo(const std::vector<ExposeKey>& keys);

  // A flow garbage collection picked: its entries' keys and how long they must stay idle.
  struct Expired {
    std::array<gw_ct_key, 2> keys{};
    size_t halves = 0;
    uint64_t idleNs = 0; // 0: an orphan half past its grace period, deleted unchecked
  };
  // GC in two steps, so that a caller's lock need not cover the walk. findExpired reads the
  // map once and picks flows idle past their state's timeout, and orphan halves (peer gone)
  // past a grace period; deleteExpired deletes those still idle now (a packet may have come
  // since) and returns how many flows it deleted.
  // With `seen`, also counts the entries read and the live flows holding an SNAT port.
  Result<std::vector<Expired>> findExpired(const CtTimeouts& timeouts,
                                           ConntrackSweep* seen = nullptr) const;
  Result<size_t> deleteExpired(std::span<const Expired> flows);

  // Entries (a flow uses two), without reading them: the kernel's own element count through
  // BpfObjects::ctCounter(); without it (before 6.6), a walk that keeps nothing.
  Result<size_t> count() const;
  // The fallback, public for tests: one walk of the map in chunks.
  Result<size_t> countByWalking() const;
  size_t capacity() const;

private:
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };

  const BpfObjects& objects_;
  std::unique_ptr<bpf_link, LinkDeleter> counter_; // iter link of ctCounter(); null: walk
};

} // namespace gw
