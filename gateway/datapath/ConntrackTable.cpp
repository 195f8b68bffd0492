// SPDX-License-Identifier: MIT
#include "base/Clock.h"
#include "gateway/datapath/ConntrackTable.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "base/Fd.h"
#include "base/Log.h"
#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/MapDump.h"
#include "bpf/gw_abi.h"

namespace gw {
namespace {

// A half whose peer is gone may just be mid-insert on another CPU: leave it this long.
constexpr uint64_t kOrphanGraceNs = 2'000'000'000ULL;

using CtRows = std::vector<std::pair<gw_ct_key, gw_ct_entry>>;

// The wire keys of one flow's entries (1, or 2 when both halves are there).
struct FlowKeys {
  std::array<gw_ct_key, 2> keys{};
  size_t count = 0;
  const gw_ct_key* begin() const { return keys.data(); }
  const gw_ct_key* end() const { return keys.data() + count; }
};

struct CtKeyHash {
  size_t operator()(const gw_ct_key& key) const {
    // FNV-1a over the key's bytes: keys are zeroed before use, padding included.
    const auto* p = reinterpret_cast<const uint8_t*>(&key);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof key; ++i) {
      h = (h ^ p[i]) * 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

struct CtKeyEqual {
  bool operator()(const gw_ct_key& a, const gw_ct_key& b) const {
    return std::memcmp(&a, &b, sizeof a) == 0;
  }
};

// Pairs the halves of each flow: one Flow per pair (from its orig half), one per orphan half.
// `halves` gets the wire keys of each flow's entries.
std::vector<Flow> pairFlows(const CtRows& rows, uint64_t now, std::vector<FlowKeys>* halves) {
  std::unordered_map<gw_ct_key, size_t, CtKeyHash, CtKeyEqual> index;
  index.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    index.emplace(rows[i].first, i);
  }
  std::vector<Flow> flows;
  flows.reserve(rows.size() / 2 + 1);
  for (const auto& [key, entry] : rows) {
    auto peer = index.find(entry.peer);
    const gw_ct_entry* peerEntry = peer == index.end() ? nullptr : &rows[peer->second].second;
    // A pair is listed once, from its orig half; a half alone is listed as an orphan.
    if (peerEntry != nullptr && entry.dir != GW_CT_DIR_ORIG) {
      continue;
    }
    flows.push_back(makeFlow(key, entry, peerEntry, now));
    if (halves != nullptr) {
      FlowKeys keys;
      keys.keys[keys.count++] = key;
      if (peerEntry != nullptr) {
        keys.keys[keys.count++] = entry.peer;
      }
      halves->push_back(keys);
    }
  }
  return flows;
}

// Deletes a flow's entries; whether any was still there to delete (ENOENT: gone meanwhile, by
// LRU eviction or another deleter).
Result<bool> deleteHalves(int fd, const FlowKeys& keys) {
  bool any = false;
  for (const auto& key : keys) {
    if (bpf_map_delete_elem(fd, &key) == 0) {
      any = true;
    } else if (errno != ENOENT) {
      return sysError("delete conntrack entry");
    }
  }
  return any;
}

// Reads the conntrack map once and deletes both halves of every flow `pred` picks.
Result<size_t> deleteFlowsWhere(int fd, uint64_t now,
                                const std::function<bool(const Flow&)>& pred) {
  auto rows = dumpMap<gw_ct_key, gw_ct_entry>(fd);
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<FlowKeys> halves;
  auto flows = pairFlows(*rows, now, &halves);
  size_t deleted = 0;
  for (size_t i = 0; i < flows.size(); ++i) {
    if (!pred(flows[i])) {
      continue;
    }
    auto gone = deleteHalves(fd, halves[i]);
    if (!gone) {
      return std::unexpected(gone.error());
    }
    deleted += *gone ? 1 : 0;
  }
  return deleted;
}

} // namespace

void ConntrackTable::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

ConntrackTable::ConntrackTable(const BpfObjects& objects) : objects_(objects) {
  bpf_program* counter = objects.ctCounter();
  if (counter == nullptr) {
    return;
  }
  counter_.reset(bpf_program__attach_iter(counter, nullptr));
  if (!counter_) {
    auto err = sysError("attach the conntrack counter iterator");
    log::warn("conntrack entries will be counted by walking the map: ", err.error().str());
  }
}

ConntrackTable::~ConntrackTable() = default;

size_t ConntrackTable::capacity() const { return objects_.ctCapacity(); }

Result<std::vector<Flow>> ConntrackTable::list() const {
  auto rows = dumpMap<gw_ct_key, gw_ct_entry>(objects_.mapFd("gw_ct_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  return pairFlows(*rows, monotonicNs(), nullptr);
}

Result<FlowPage> ConntrackTable::listPage(const FlowFilter& filter,
                                          const std::optional<FlowKey>& after,
                                          size_t limit) const {
  struct Half {
    gw_ct_key key;
    gw_ct_entry entry;
  };
  struct Halves {
    std::optional<Half> orig;
    std::optional<Half> reply;
  };
  int fd = objects_.mapFd("gw_ct_v4");
  uint64_t now = monotonicNs();
  bool filtered = filter.proto || filter.src || filter.dst || filter.sport || filter.dport ||
                  filter.port || filter.ruleId;
  // The smallest limit + 1 flow keys seen (one more than the page: whether another follows),
  // each with the halves seen. Both halves of a flow share its key, so they meet here and are
  // paired without a lookup.
  std::map<FlowKey, Halves> best;
  auto walked = forEachEntry<gw_ct_key, gw_ct_entry>(fd, [&](const gw_ct_key& key,
                                                             const gw_ct_entry& entry) {
    FlowKey fk = flowKeyOf(key, entry);
    if (after && fk <= *after) {
      return;
    }
    if (best.size() > limit && fk > best.rbegin()->first) {
      return;
    }
    // The filter looks at tuples, which either half gives alike.
    if (filtered && !filter.matches(makeFlow(key, entry, nullptr, now))) {
      return;
    }
    Halves& h = best[fk];
    (entry.dir == GW_CT_DIR_ORIG ? h.orig : h.reply) = Half{key, entry};
    if (best.size() > limit + 1) {
      best.erase(std::prev(best.end()));
    }
  });
  if (!walked) {
    return std::unexpected(walked.error());
  }
  FlowPage page;
  page.more = best.size() > limit;
  if (page.more) {
    best.erase(std::prev(best.end()));
  }
  page.flows.reserve(best.size());
  for (const auto& [fk, h] : best) {
    if (!h.orig) {
      // A reply half whose original half was not in the map: an orphan, as list() shows it.
      page.flows.push_back(makeFlow(h.reply->key, h.reply->entry, nullptr, now));
      continue;
    }
    // As list() pairs them: the original half with whatever entry its peer key names.
    const gw_ct_entry* peer = nullptr;
    gw_ct_entry looked{};
    if (h.reply && std::memcmp(&h.reply->key, &h.orig->entry.peer, sizeof(gw_ct_key)) == 0) {
      peer = &h.reply->entry;
    } else if (bpf_map_lookup_elem(fd, &h.orig->entry.peer, &looked) == 0) {
      peer = &looked;
    }
    page.flows.push_back(makeFlow(h.orig->key, h.orig->entry, peer, now));
  }
  return page;
}

Result<size_t> ConntrackTable::deleteIf(const std::function<bool(const Flow&)>& pred) {
  return deleteFlowsWhere(objects_.mapFd("gw_ct_v4"), monotonicNs(), pred);
}

Result<size_t> ConntrackTable::deleteDnatTo(const std::vector<ExposeKey>& keys) {
  if (keys.empty()) {
    return 0;
  }
  // (proto, port, family) first: most entries are ruled out by one set lookup.
  std::set<std::tuple<uint8_t, uint16_t, uint8_t>> ports;
  for (const auto& k : keys) {
    ports.emplace(k.proto, k.hostPort, k.family == AF_INET6 ? GW_AF_INET6 : GW_AF_INET);
  }
  auto addressedTo = [&](const gw_ct_key& key) {
    return std::ranges::any_of(keys, [&](const ExposeKey& k) {
      if (k.proto != key.proto || k.hostPort != ntohs(key.dport) ||
          (k.family == AF_INET6) != (key.family == GW_AF_INET6)) {
        return false;
      }
      return k.hostAddr.family == 0 ||
             std::memcmp(k.hostAddr.bytes.data(), key.daddr.bytes,
                         k.hostAddr.family == AF_INET ? 4 : 16) == 0;
    });
  };
  int fd = objects_.mapFd("gw_ct_v4");
  std::vector<FlowKeys> picked;
  auto walked = forEachEntry<gw_ct_key, gw_ct_entry>(
      fd, [&](const gw_ct_key& key, const gw_ct_entry& entry) {
        if (entry.dir != GW_CT_DIR_ORIG || !(entry.nat & GW_NAT_DNAT) ||
            !ports.contains({key.proto, ntohs(key.dport), key.family}) || !addressedTo(key)) {
          return;
        }
        FlowKeys flow;
        flow.keys[flow.count++] = key;
        flow.keys[flow.count++] = entry.peer;
        picked.push_back(flow);
      });
  if (!walked) {
    return std::unexpected(walked.error());
  }
  size_t deleted = 0;
  for (const auto& flow : picked) {
    auto gone = deleteHalves(fd, flow);
    if (!gone) {
      return std::unexpected(gone.error());
    }
    deleted += *gone ? 1 : 0;
  }
  return deleted;
}

Result<std::vector<ConntrackTable::Expired>> ConntrackTable::findExpired(
    const CtTimeouts& timeouts, ConntrackSweep* seen) const {
  auto rows = dumpMap<gw_ct_key, gw_ct_entry>(objects_.mapFd("gw_ct_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<FlowKeys> halves;
  auto flows = pairFlows(*rows, monotonicNs(), &halves);
  if (seen != nullptr) {
    seen->entries = rows->size();
  }
  std::vector<Expired> out;
  for (size_t i = 0; i < flows.size(); ++i) {
    const Flow& f = flows[i];
    uint64_t idleNs = 0;
    bool expired = false;
    if (f.orphan) {
      expired = static_cast<uint64_t>(f.life.count()) >= kOrphanGraceNs;
    } else {
      auto timeout = flowTimeout(f.proto, f.state, timeouts);
      expired = f.age > timeout;
      idleNs = static_cast<uint64_t>(std::chrono::nanoseconds(timeout).count());
    }
    if (!expired) {
      if (seen != nullptr && (f.nat & GW_NAT_SNAT) != 0) {
        ++seen->snatFlows; // stays, and keeps its port
      }
      continue;
    }
    out.push_back({halves[i].keys, halves[i].count, idleNs});
  }
  return out;
}

Result<size_t> ConntrackTable::deleteExpired(std::span<const Expired> flows) {
  int fd = objects_.mapFd("gw_ct_v4");
  uint64_t now = monotonicNs();
  size_t deleted = 0;
  for (const Expired& e : flows) {
    FlowKeys keys{e.keys, e.halves};
    bool idle = true;
    for (const auto& key : keys) {
      gw_ct_entry current{};
      if (e.idleNs != 0 && bpf_map_lookup_elem(fd, &key, &current) == 0 &&
          current.last_seen_ns + e.idleNs >= now) {
        idle = false;
      }
    }
    if (!idle) {
      continue;
    }
    auto gone = deleteHalves(fd, keys);
    if (!gone) {
      return std::unexpected(gone.error());
    }
    deleted += *gone ? 1 : 0;
  }
  return deleted;
}

Result<size_t> ConntrackTable::count() const {
  if (!counter_) {
    return countByWalking();
  }
  // Each read of a fresh iterator runs the program over the system's maps once.
  UniqueFd iter(bpf_iter_create(bpf_link__fd(counter_.get())));
  if (!iter) {
    return sysError("bpf_iter_create (conntrack counter)");
  }
  int64_t count = 0;
  size_t got = 0;
  while (got < sizeof(count)) {
    ssize_t n = ::read(iter.get(), reinterpret_cast<char*>(&count) + got, sizeof(count) - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sysError("read conntrack counter");
    }
    if (n == 0) {
      return fail("conntrack counter: gw_ct_v4 not found by the map iterator");
    }
    got += static_cast<size_t>(n);
  }
  // Per-CPU increments and decrements summed without a lock can dip below zero for a moment.
  return static_cast<size_t>(std::max<int64_t>(count, 0));
}

// Counts a chunk at a time and keeps nothing: memory stays flat however big the table.
Result<size_t> ConntrackTable::countByWalking() const {
  size_t n = 0;
  auto ok = forEachEntry<gw_ct_key, gw_ct_entry>(
      objects_.mapFd("gw_ct_v4"), [&n](const gw_ct_key&, const gw_ct_entry&) { ++n; });
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return n;
}

} // namespace gw
