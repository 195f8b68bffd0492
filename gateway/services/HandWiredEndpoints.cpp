// SPDX-License-Identifier: MIT
#include "gateway/services/HandWiredEndpoints.h"

#include <algorithm>

#include "base/Log.h"

namespace gw {

bool HandWiredEndpoints::stale(const Scan& scan, const std::map<int, int>& veths,
                               bool vethsCame) const {
  // A host end it had went away (the namespace rewired, or going).
  for (int v : scan.veths) {
    if (!veths.contains(v)) {
      return true;
    }
  }
  // A veth into it with none of its addresses: one it did not have, or whose address came
  // later (set by hand).
  for (const auto& [index, id] : veths) {
    if (id == scan.id && std::ranges::none_of(scan.addresses, [&](const PeeredAddress& a) {
          return a.hostIndex == index;
        })) {
      return true;
    }
  }
  // It had no id for the host yet: any new veth may be its.
  return scan.id < 0 && vethsCame;
}

void HandWiredEndpoints::refresh(bool thorough) {
  if (!ctx_.datapath) {
    return;
  }
  EndpointWants wants = wants_();
  auto veths = topology_.hostVeths();
  if (!veths) {
    log::warn("hand-wired namespaces: the host's links not read: ", veths.error().str());
    return;
  }
  bool vethsCame = false;
  if (thorough) {
    std::set<int> now;
    for (const auto& [index, id] : *veths) {
      now.insert(index);
      vethsCame = vethsCame || !veths_.contains(index);
    }
    veths_ = std::move(now);
  }

  std::set<std::string> candidates = wants.namespaces;
  if (!wants.addresses.empty() || !wants.prefixes.empty()) {
    if (auto names = topology_.namespaceNames(); names) {
      candidates.insert(names->begin(), names->end());
    }
  }
  for (const auto& ns : ctx_.state.namespaces) {
    candidates.erase(ns.name); // `ns add` namespaces have their own entries
  }
  std::erase_if(scans_, [&](const auto& kv) { return !candidates.contains(kv.first); });
  for (const auto& name : candidates) {
    auto it = scans_.find(name);
    // A namespace a rule names is looked at as thoroughly each time (they are few).
    bool came = vethsCame || (wants.namespaces.contains(name) && veths->size() != 0);
    if (it != scans_.end() && !stale(it->second, *veths, came)) {
      continue;
    }
    Scan scan;
    if (auto found = topology_.peeredNamespace(name); found) {
      scan.id = found->id;
      scan.addresses = std::move(found->addresses);
      for (const auto& [index, id] : *veths) {
        if (id == scan.id && scan.id >= 0) {
          scan.veths.insert(index);
        }
      }
    } else {
      log::debug("hand-wired namespaces: ", name, " not read: ", found.error().str());
    }
    scans_[name] = std::move(scan);
  }

  std::set<IpAddress> managed;
  for (const auto& ns : ctx_.state.namespaces) {
    managed.insert(ns.address.addr);
    if (ns.address6) {
      managed.insert(ns.address6->addr);
    }
  }
  // The uplink has its own programs: a peer behind it is the outside (the lab's client).
  auto uplink = topology_.link(ctx_.uplink);
  std::map<IpAddress, PeeredAddress> want;
  for (const auto& [name, scan] : scans_) {
    for (const auto& a : scan.addresses) {
      if (uplink && a.hostIndex == uplink->index) {
        continue;
      }
      bool covered = wants.addresses.contains(a.addr) ||
                     std::ranges::any_of(wants.prefixes, [&](const IpPrefix& p) {
                       return p.contains(a.addr);
                     });
      if (covered && !managed.contains(a.addr)) {
        want.emplace(a.addr, a);
      }
    }
  }
  apply(want);
}

void HandWiredEndpoints::apply(const std::map<IpAddress, PeeredAddress>& want) {
  Datapath* dp = ctx_.datapath.dp;
  // Entries first out, programs last out; programs first in, entries last in: an entry never
  // sends packets into a namespace whose replies nothing translates.
  for (auto it = installed_.begin(); it != installed_.end();) {
    auto w = want.find(it->first);
    if (w != want.end() && w->second == it->second) {
      ++it;
      continue;
    }
    (void)dp->deleteEndpoint(it->first);
    log::info("hand-wired namespace address ", it->first.str(),
              ": no longer forwarded straight into its namespace");
    it = installed_.erase(it);
  }
  std::set<int> links;
  for (const auto& [addr, p] : want) {
    links.insert(p.hostIndex);
  }
  for (int link : links) {
    if (attached_.contains(link)) {
      continue;
    }
    if (auto r = dp->attachEndpoint(link); !r) {
      log::warn("hand-wired namespaces: endpoint program on ifindex ", link,
                " not attached (its addresses go through the host's routing): ",
                r.error().str());
      continue;
    }
    attached_.insert(link);
  }
  for (const auto& [addr, p] : want) {
    if (installed_.contains(addr) || !attached_.contains(p.hostIndex)) {
      continue;
    }
    if (auto r = dp->addEndpoint(addr, p.hostIndex, p.peerMac, p.hostMac); !r) {
      log::warn("hand-wired namespace address ", addr.str(),
                ": endpoint entry not written (it goes through the host's routing): ",
                r.error().str());
      continue;
    }
    installed_.emplace(addr, p);
    log::info("hand-wired namespace address ", addr.str(), ": forwarded straight into its "
              "namespace through the host end ifindex ", p.hostIndex);
  }
  for (auto it = attached_.begin(); it != attached_.end();) {
    if (links.contains(*it)) {
      ++it;
      continue;
    }
    (void)dp->detachEndpoint(*it);
    it = attached_.erase(it);
  }
}

std::set<IpAddress> HandWiredEndpoints::addresses() const {
  std::set<IpAddress> out;
  for (const auto& [addr, p] : installed_) {
    out.insert(addr);
  }
  return out;
}

void HandWiredEndpoints::teardown() {
  if (Datapath* dp = ctx_.datapath.dp; dp != nullptr) {
    apply({});
  }
  scans_.clear();
  veths_.clear();
}

} // namespace gw
