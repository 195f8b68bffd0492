// SPDX-License-Identifier: MIT
#include "gateway/services/MasqueradeService.h"

#include <algorithm>
#include <map>
#include <optional>

#include "base/Log.h"
#include "gateway/services/RepairLog.h"

namespace gw {

Result<api::MasqueradeAdded> MasqueradeService::add(const api::MasqueradeRequest& request) {
  if (!request.source.addr.isV4() && !request.source.addr.isV6()) {
    return invalid("masquerade source '" + request.source.str() + "' is not a CIDR");
  }
  IpPrefix net = request.source.network();
  if (net.overlaps(IpPrefix::parse("fe80::/10").value_or(IpPrefix{}))) {
    return invalid("masquerade source '" + request.source.str() +
                   "' is link-local: such sources are never routed out");
  }
  std::string outIf = request.outIf.value_or("");
  int outIndex = 0;
  if (!outIf.empty()) {
    auto link = topology_.link(outIf);
    if (!link) {
      return notFound("--out " + outIf + ": no such interface in the gateway host");
    }
    outIndex = link->index;
  }
  State& state = ctx_.state;
  if (std::ranges::any_of(state.masquerades, [&](const auto& m) { return m.source == net; })) {
    return conflict("masquerade for " + net.str() + " already exists");
  }
  auto dp = ctx_.datapath.get();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  bool eif = request.filtering == Filtering::EndpointIndependent;
  if (auto r = (*dp)->addMasquerade(net, outIndex, eif); !r) {
    return std::unexpected(r.error());
  }
  state.masquerades.push_back({net, outIf, false, request.filtering});
  if (auto r = ctx_.store.commit(state); !r) {
    state.masquerades.pop_back();
    restoreAutomatic(net);
    return std::unexpected(r.error());
  }
  log::info("masquerade add ", net.str(), outIf.empty() ? "" : " out " + outIf, " filtering ",
            toString(request.filtering));
  return api::MasqueradeAdded{
      .source = net, .out = outIf.empty() ? ctx_.uplink : outIf, .filtering = request.filtering};
}

Result<api::MasqueradeDeleted> MasqueradeService::remove(const api::MasqueradeQuery& query) {
  IpPrefix net = query.source.network();
  State& state = ctx_.state;
  auto found = std::ranges::find(state.masquerades, net, &MasqueradeRecord::source);
  if (found == state.masquerades.end()) {
    return notFound("no masquerade for " + net.str() + " (those of `ns add` go with `ns del`)");
  }
  // Committed first: a failed commit then changes nothing, and the data path's delete was
  // never checked anyway.
  MasqueradeRecord removed = *found;
  auto at = state.masquerades.erase(found);
  if (auto r = ctx_.store.commit(state); !r) {
    state.masquerades.insert(at, removed);
    return std::unexpected(r.error());
  }
  restoreAutomatic(net);
  return api::MasqueradeDeleted{.source = net, .deleted = true};
}

void MasqueradeService::restoreAutomatic(const IpPrefix& net) {
  if (!ctx_.datapath) {
    return;
  }
  // A managed namespace's subnet stays masqueraded the way `ns add` made it.
  auto automatic = automatic_();
  if (std::ranges::find(automatic, net) != automatic.end()) {
    (void)ctx_.datapath.dp->addMasquerade(net, 0);
  } else {
    (void)ctx_.datapath.dp->deleteMasquerade(net);
  }
}

std::vector<api::MasqueradeInfo> MasqueradeService::list() {
  std::vector<api::MasqueradeInfo> out;
  for (const auto& net : automatic_()) {
    out.push_back({.source = net, .out = ctx_.uplink, .automatic = true});
  }
  for (const auto& m : ctx_.state.masquerades) {
    out.push_back({.source = m.source,
                   .out = m.outIf.empty() ? ctx_.uplink : m.outIf,
                   .automatic = false,
                   .filtering = m.filtering});
  }
  return out;
}

void MasqueradeService::reconcile() {
  Datapath* dp = ctx_.datapath.dp;
  if (dp == nullptr) {
    return;
  }
  // What the state accounts for: each managed namespace's subnet, out the uplink, and each
  // `masquerade add` (whose --out wins when both name a subnet, as when it was added).
  struct Entry {
    int out = 0;
    Filtering filtering = Filtering::AddressAndPortDependent;
    bool operator==(const Entry&) const = default;
  };
  std::map<IpPrefix, Entry> wanted;
  for (const auto& net : automatic_()) {
    wanted[net] = {};
  }
  for (const auto& m : ctx_.state.masquerades) {
    int out = 0;
    if (!m.outIf.empty()) {
      if (auto link = topology_.link(m.outIf); link) {
        out = link->index;
      } else {
        log::warn("masquerade ", m.source.str(), ": --out ", m.outIf,
                  " not found, leaves through the uplink");
      }
    }
    wanted[m.source] = {out, m.filtering};
  }
  std::optional<std::map<IpPrefix, Entry>> before;
  if (auto entries = dp->listMasquerades(); entries) {
    before.emplace();
    for (const auto& e : *entries) {
      (*before)[e.source] = {e.outIfindex, e.endpointIndependent ? Filtering::EndpointIndependent
                                                                 : Filtering::AddressAndPortDependent};
    }
  } else {
    log::warn("reconcile: masquerade map not read (entries no state names stay): ",
              entries.error().str());
  }
  RepairLog restored("masquerade entries of the state restored");
  for (const auto& [net, entry] : wanted) {
    std::optional<Entry> was;
    if (before) {
      if (auto it = before->find(net); it != before->end()) {
        was = it->second;
      }
      if (was == entry) {
        continue;
      }
    }
    if (auto r = dp->addMasquerade(net, entry.out,
                                   entry.filtering == Filtering::EndpointIndependent);
        !r) {
      log::warn("masquerade ", net.str(), ": ", r.error().str());
      continue;
    }
    if (before && dp->adopted()) {
      restored.add("masquerade entry ", net.str(), " out ifindex ", entry.out, " filtering ",
                   toString(entry.filtering),
                   was ? " rewritten (was out ifindex " + std::to_string(was->out) + ", " +
                             std::string(toString(was->filtering)) + ")"
                       : " restored",
                   ": the state has it");
    }
  }
  restored.summary();
  if (!before) {
    return;
  }
  RepairLog removed("masquerade entries without state removed");
  for (const auto& [net, entry] : *before) {
    if (wanted.contains(net)) {
      continue;
    }
    // A `masquerade add` that crashed before its commit, or a `masquerade del` or `ns del`
    // that crashed after it: sources no state names must not be translated.
    if (auto r = dp->deleteMasquerade(net); !r && r.error().code != ENOENT) {
      log::warn("reconcile: masquerade entry ", net.str(), " that no state names not removed: ",
                r.error().str());
      continue;
    }
    removed.add("removed masquerade entry ", net.str(), " out ifindex ", entry.out,
                ": no state names it (a change cut short by a crash)");
  }
  removed.summary();
}

} // namespace gw
