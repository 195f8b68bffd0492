// SPDX-License-Identifier: MIT
#include "gateway/host/Wiring.h"

#include <linux/if_addr.h>
#include <sys/socket.h>

#include "netns/Address.h"
#include "netns/Link.h"
#include "netns/Namespace.h"
#include "netns/Route.h"
#include "netns/Sysctl.h"
#include "base/Failpoint.h"
#include "base/Log.h"
#include "gateway/services/AddressPlan.h"

namespace gw {
namespace {

// With IPv6 forwarding on, a link with accept_ra=1 ignores router advertisements: a host that
// learns its IPv6 default route by SLAAC would lose it. accept_ra=2 keeps them, so links at 1
// get 2 first (as Docker's and systemd-networkd's docs advise), each said in the log.
Status enableIpv6Forwarding(Netlink& host) {
  if (auto on = readSysctl("net/ipv6/conf/all/forwarding"); on && *on == "1") {
    return {};
  }
  auto links = listLinks(host);
  if (!links) {
    return std::unexpected(links.error());
  }
  for (const auto& link : *links) {
    std::string key = "net/ipv6/conf/" + link.name + "/accept_ra";
    if (auto ra = readSysctl(key); ra && *ra == "1") {
      if (auto w = writeSysctl(key, "2"); !w) {
        return w;
      }
      log::info("IPv6 forwarding: accept_ra 1 -> 2 on ", link.name,
                " so it keeps accepting router advertisements");
    }
  }
  return writeSysctl("net/ipv6/conf/all/forwarding", "1");
}

bool alreadyExists(const Error& e) {
  return e.code == EEXIST;
}

Status addAddressOnce(Netlink& nl, int ifindex, const IpPrefix& prefix) {
  auto r = addAddress(nl, ifindex, prefix);
  if (!r && !alreadyExists(r.error())) {
    return r;
  }
  return {};
}

// IPv6 on links we own: no duplicate address detection (nothing else assigns there), so the
// address is usable at once instead of tentative for a second or more. Sets `added` when it
// was not there before.
Status addAddress6Once(Netlink& nl, int ifindex, const IpPrefix& prefix, bool* added = nullptr) {
  auto r = addAddress(nl, ifindex, prefix, IFA_F_NODAD);
  if (!r && !alreadyExists(r.error())) {
    return r;
  }
  if (added != nullptr) {
    *added = r.has_value();
  }
  return {};
}

// Changes only a link whose kernel reports the sizes (6.3+) and whose size differs.
Status applySizing(Netlink& nl, const LinkInfo& link, LinkSizing sizing) {
  if (sizing.ipv4GsoMax == 0 || link.gsoIpv4MaxSize == 0 ||
      (link.gsoIpv4MaxSize == sizing.ipv4GsoMax && link.groIpv4MaxSize == sizing.ipv4GsoMax)) {
    return {};
  }
  if (auto r = setLinkIpv4GsoGroMax(nl, link.index, sizing.ipv4GsoMax); !r) {
    return r;
  }
  log::info("link ", link.name, ": IPv4 GSO/GRO max size ", sizing.ipv4GsoMax, ", the uplink's",
            sizing.ipv4GsoMax > kLegacyGsoMaxSize ? " (BIG TCP)" : "");
  return {};
}

} // namespace

Status ensureBridge(Netlink& host, const BridgeRecord& bridge, Rollback* rollback) {
  auto link = getLink(host, bridge.name);
  if (link && link->kind != "bridge") {
    return fail("link " + bridge.name + " exists and is not a bridge (kind '" + link->kind + "')",
                EEXIST);
  }
  if (!link) {
    if (link.error().code != ENODEV) {
      return std::unexpected(link.error());
    }
    if (auto r = createBridge(host, bridge.name); !r) {
      return r;
    }
    link = getLink(host, bridge.name);
    if (!link) {
      return std::unexpected(link.error());
    }
    if (rollback != nullptr) {
      rollback->add([&host, index = link->index] { (void)deleteLink(host, index); });
    }
  }
  if (auto r = addAddressOnce(host, link->index, bridge.gateway); !r) {
    return r;
  }
  if (bridge.gateway6) {
    bool added = false;
    if (auto r = addAddress6Once(host, link->index, *bridge.gateway6, &added); !r) {
      return r;
    }
    if (added && rollback != nullptr) {
      // An existing bridge given its IPv6 pool by a failed `ns add` loses it again.
      rollback->add([&host, index = link->index, prefix = *bridge.gateway6] {
        (void)deleteAddress(host, index, prefix);
      });
    }
  }
  return setLinkUp(host, link->index, true);
}

Status wireNamespace(Netlink& host, const NamespaceRecord& rec, int bridgeIndex,
                     LinkSizing sizing, Rollback* rollback) {
  if (!namespaceExists(rec.name)) {
    if (auto r = createNamespace(rec.name); !r) {
      return r;
    }
    if (rollback != nullptr) {
      rollback->add([name = rec.name] { (void)deleteNamespace(name); });
    }
  }
  auto nsFd = openNamespace(rec.name);
  if (!nsFd) {
    return std::unexpected(nsFd.error());
  }
  auto inside = Netlink::openIn(nsFd->get());
  if (!inside) {
    return std::unexpected(inside.error());
  }
  auto lo = getLink(*inside, "lo");
  if (!lo) {
    return std::unexpected(lo.error());
  }
  if (auto r = setLinkUp(*inside, lo->index, true); !r) {
    return r;
  }

  auto hostLink = getLink(host, rec.hostLink);
  if (!hostLink) {
    if (hostLink.error().code != ENODEV) {
      return std::unexpected(hostLink.error());
    }
    if (auto r = createVeth(host, rec.hostLink, kNamespaceLink, nsFd->get()); !r) {
      return r;
    }
    hostLink = getLink(host, rec.hostLink);
    if (!hostLink) {
      return std::unexpected(hostLink.error());
    }
    if (rollback != nullptr) {
      rollback->add([&host, index = hostLink->index] { (void)deleteLink(host, index); });
    }
  } else if (hostLink->kind != "veth") {
    return fail("link " + rec.hostLink + " exists in the gateway host and is not a veth", EEXIST);
  }
  if (auto r = failpoint("ns-add-after-veth"); !r) {
    return r;
  }

  if (rec.wiring == Wiring::Bridge) {
    if (hostLink->master != bridgeIndex) {
      if (auto r = setLinkMaster(host, hostLink->index, bridgeIndex); !r) {
        return r;
      }
    }
    // Only now: a bridge allows big packets once it has a port that does.
    auto bridge = getLink(host, bridgeIndex);
    if (!bridge) {
      return std::unexpected(bridge.error());
    }
    if (auto r = applySizing(host, *bridge, sizing); !r) {
      return r;
    }
  } else {
    if (auto r = addAddressOnce(host, hostLink->index, rec.hostAddress); !r) {
      return r;
    }
    if (rec.hostAddress6) {
      if (auto r = addAddress6Once(host, hostLink->index, *rec.hostAddress6); !r) {
        return r;
      }
    }
  }
  if (auto r = applySizing(host, *hostLink, sizing); !r) {
    return r;
  }
  if (auto r = setLinkUp(host, hostLink->index, true); !r) {
    return r;
  }

  auto peer = getLink(*inside, kNamespaceLink);
  if (!peer) {
    return fail("namespace " + rec.name + " has no " + kNamespaceLink + ": " +
                peer.error().str(), peer.error().code);
  }
  if (auto r = addAddressOnce(*inside, peer->index, rec.address); !r) {
    return r;
  }
  if (rec.address6) {
    if (auto r = addAddress6Once(*inside, peer->index, *rec.address6); !r) {
      return r;
    }
  }
  if (auto r = applySizing(*inside, *peer, sizing); !r) {
    return r;
  }
  if (auto r = setLinkUp(*inside, peer->index, true); !r) {
    return r;
  }
  RouteSpec route{.dst = std::nullopt, .gateway = rec.hostAddress.addr, .ifindex = peer->index};
  if (auto r = addRoute(*inside, route); !r && !alreadyExists(r.error())) {
    return r;
  }
  if (rec.address6 && rec.hostAddress6) {
    RouteSpec route6{.dst = std::nullopt, .gateway = rec.hostAddress6->addr,
                     .ifindex = peer->index};
    if (auto r = addRoute(*inside, route6); !r && !alreadyExists(r.error())) {
      return r;
    }
  }
  if (auto r = failpoint("ns-add-after-route"); !r) {
    return r;
  }
  // Forwarding on the gateway host: the calling thread is in its namespace.
  if (auto r = writeSysctl("net/ipv4/ip_forward", "1"); !r) {
    return r;
  }
  if (rec.address6) {
    return enableIpv6Forwarding(host);
  }
  return {};
}

Status unwireNamespace(Netlink& host, const NamespaceRecord& rec) {
  if (auto link = getLink(host, rec.hostLink); link) {
    if (auto r = deleteLink(host, link->index); !r && r.error().code != ENODEV) {
      return r;
    }
  }
  if (namespaceExists(rec.name)) {
    return deleteNamespace(rec.name);
  }
  return {};
}

Status removeBridge(Netlink& host, const std::string& name) {
  auto link = getLink(host, name);
  if (!link) {
    return {};
  }
  return deleteLink(host, link->index);
}

} // namespace gw
