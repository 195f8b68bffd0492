// SPDX-License-Identifier: MIT
// The fast path for namespaces gatewayd did not make (wired by hand, by a CNI plugin, by
// another tool): once an expose or a masquerade covers an address that sits inside one on a
// veth whose other end is a link of the gateway host, that address gets what `ns add` gives
// its own: an endpoint entry (bpf_redirect_peer straight into its eth0) and the endpoint
// program on the host end (its replies redirected out without the host's stack). Where no
// such veth is found, the address is served through the host's routing, and says so.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gateway/services/Context.h"
#include "gateway/services/Topology.h"

namespace gw {

// What the rules cover, from the expose and masquerade services.
struct EndpointWants {
  std::set<IpAddress> addresses;    // eBPF-served expose targets gatewayd does not manage
  std::vector<IpPrefix> prefixes;   // masquerade sources
  std::set<std::string> namespaces; // namespaces those exposes name, by name or path
};

class HandWiredEndpoints {
public:
  using Wants = std::function<EndpointWants()>;
  HandWiredEndpoints(ServiceContext& ctx, Topology& topology, Wants wants)
      : ctx_(ctx), topology_(topology), wants_(std::move(wants)) {}

  // Makes the endpoint entries and programs what the rules cover now. A namespace is looked
  // into once, and again only when a veth into it came or went (or it has one without an
  // address yet): otherwise this is one link dump and one read of /run/netns.
  // `thorough` (gatewayd's tick) also looks again into namespaces that had no veth ending here
  // when any new veth came since the last thorough refresh: one may have got one (the
  // tutorial's order: `ip netns add`, then the veth). Not on every request: on a host with
  // many other namespaces that would cost each CNI ADD a look into all of them.
  void refresh(bool thorough = false);
  // The host ends that carry the endpoint program for these namespaces.
  std::set<int> links() const { return attached_; }
  // The addresses it wrote endpoint entries for.
  std::set<IpAddress> addresses() const;
  // Whether packets to `addr` go straight into its namespace (bpf_redirect_peer).
  bool peered(const IpAddress& addr) const { return installed_.contains(addr); }
  // Every entry and program out of the data path (gwctl down).
  void teardown();

private:
  struct Scan {
    int id = -1; // the id the host knows the namespace by
    std::vector<PeeredAddress> addresses;
    std::set<int> veths; // host ends seen at the scan
  };
  bool stale(const Scan& scan, const std::map<int, int>& veths, bool vethsCame) const;
  void apply(const std::map<IpAddress, PeeredAddress>& want);

  ServiceContext& ctx_;
  Topology& topology_;
  Wants wants_;
  std::map<std::string, Scan> scans_;           // by namespace name or path
  std::set<int> veths_;                         // the host's veths at the last thorough refresh
  std::map<IpAddress, PeeredAddress> installed_; // endpoint entries this class wrote
  std::set<int> attached_;                      // host ends it attached the program to
};

} // namespace gw
