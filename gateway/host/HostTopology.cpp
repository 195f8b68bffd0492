// SPDX-License-Identifier: MIT
#include "gateway/host/HostTopology.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <map>

#include "base/Fd.h"
#include "gateway/host/Wiring.h"
#include "netns/Address.h"
#include "netns/Link.h"
#include "netns/Namespace.h"

namespace gw {
namespace {

Result<LinkState> linkState(Result<LinkInfo> info) {
  if (!info) {
    if (info.error().code == ENODEV) {
      return fail(ErrorKind::NotFound, info.error().str());
    }
    return std::unexpected(info.error());
  }
  return LinkState{.name = info->name, .index = info->index, .up = info->up, .mac = info->mac};
}

} // namespace

bool HostTopology::namespaceExists(const std::string& name) {
  return gw::namespaceExists(name);
}

Result<LinkState> HostTopology::link(const std::string& name) {
  return linkState(getLink(host_, name));
}

Result<LinkState> HostTopology::linkIn(const std::string& ns, const std::string& name) {
  auto inside = Netlink::openIn(ns);
  if (!inside) {
    return std::unexpected(inside.error());
  }
  return linkState(getLink(*inside, name));
}

Result<std::vector<HostAddress>> HostTopology::hostAddresses(int family) {
  auto addrs = listAddresses(host_, family);
  if (!addrs) {
    return std::unexpected(addrs.error());
  }
  // One link dump names them all (not a netlink round trip per address).
  std::map<int, std::string> names;
  if (auto links = listLinks(host_); links) {
    for (const auto& l : *links) {
      names[l.index] = l.name;
    }
  }
  std::vector<HostAddress> out;
  for (const auto& a : *addrs) {
    auto name = names.find(a.ifindex);
    out.push_back({a.prefix, name != names.end() ? name->second : std::to_string(a.ifindex)});
  }
  return out;
}

Result<NamespaceId> HostTopology::namespaceId(const std::string& nameOrPath) {
  return gw::namespaceId(nameOrPath);
}

Result<std::vector<IpPrefix>> HostTopology::namespaceAddresses(const std::string& ns,
                                                               int family) {
  // The socket is made inside by a guard that returns this thread to where it was.
  auto inside = Netlink::openIn(ns);
  if (!inside) {
    return std::unexpected(inside.error());
  }
  auto addrs = listAddresses(*inside, family);
  if (!addrs) {
    return std::unexpected(addrs.error());
  }
  std::vector<IpPrefix> out;
  for (const auto& a : *addrs) {
    out.push_back(a.prefix);
  }
  return out;
}

Result<std::vector<std::string>> HostTopology::namespaceNames() {
  return listNamespaces();
}

Result<std::map<int, int>> HostTopology::hostVeths() {
  auto links = listLinks(host_);
  if (!links) {
    return std::unexpected(links.error());
  }
  std::map<int, int> out;
  for (const auto& l : *links) {
    if (l.kind == "veth" && l.peerNetnsId >= 0) {
      out[l.index] = l.peerNetnsId;
    }
  }
  return out;
}

Result<PeeredNamespace> HostTopology::peeredNamespace(const std::string& ns) {
  auto here = openCurrentNamespace(); // the gateway host's: how the namespace names it
  if (!here) {
    return std::unexpected(here.error());
  }
  auto there = openNamespace(ns);
  if (!there) {
    return std::unexpected(there.error());
  }
  auto inside = Netlink::openIn(there->get());
  if (!inside) {
    return std::unexpected(inside.error());
  }
  auto links = listLinks(*inside); // first: listing a link with a peer here assigns the id
  if (!links) {
    return std::unexpected(links.error());
  }
  auto hostId = namespaceIdOf(*inside, here->get());
  if (!hostId) {
    return std::unexpected(hostId.error());
  }
  PeeredNamespace out;
  if (*hostId < 0) {
    return out; // nothing inside has a peer here
  }
  std::map<int, PeeredAddress> byLink; // the namespace's ifindex -> its veth, addr unset
  for (const auto& l : *links) {
    if (l.kind != "veth" || l.peerNetnsId != *hostId || l.peerIndex <= 0) {
      continue;
    }
    // The host end must be a veth whose peer is this very link (a link id of the host's, not
    // one that only happens to carry the same number).
    auto host = getLink(host_, l.peerIndex);
    if (!host || host->kind != "veth" || host->peerIndex != l.index || host->peerNetnsId < 0) {
      continue;
    }
    byLink[l.index] = PeeredAddress{
        .addr = {}, .hostIndex = host->index, .hostMac = host->mac, .peerMac = l.mac};
  }
  // After the host ends were read: reading one assigns the id the host knows this one by.
  auto id = namespaceIdOf(host_, there->get());
  if (!id) {
    return std::unexpected(id.error());
  }
  out.id = *id;
  if (byLink.empty()) {
    return out;
  }
  auto addrs = listAddresses(*inside, AF_UNSPEC);
  if (!addrs) {
    return std::unexpected(addrs.error());
  }
  for (const auto& a : *addrs) {
    auto it = byLink.find(a.ifindex);
    if (it == byLink.end() || a.prefix.addr.isLinkLocal6()) {
      continue;
    }
    PeeredAddress p = it->second;
    p.addr = a.prefix.addr;
    out.addresses.push_back(p);
  }
  return out;
}

LinkSizing HostTopology::sizing() {
  // Read at each wiring: an admin who raises the uplink's size, then adds (or restarts over)
  // namespaces, gets BIG TCP through them. Lowering it is followed the same way.
  auto uplink = getLink(host_, uplink_);
  if (!uplink || uplink->gsoIpv4MaxSize < kLegacyGsoMaxSize) {
    return {};
  }
  return LinkSizing{.ipv4GsoMax = uplink->gsoIpv4MaxSize};
}

Status HostTopology::ensureBridge(const BridgeRecord& bridge, Rollback* rollback) {
  return gw::ensureBridge(host_, bridge, rollback);
}

Status HostTopology::wireNamespace(const NamespaceRecord& ns, Rollback* rollback) {
  int bridgeIndex = 0;
  if (ns.wiring == Wiring::Bridge) {
    auto bridge = getLink(host_, ns.bridge);
    if (!bridge) {
      return std::unexpected(bridge.error());
    }
    bridgeIndex = bridge->index;
  }
  return gw::wireNamespace(host_, ns, bridgeIndex, sizing(), rollback);
}

Status HostTopology::unwireNamespace(const NamespaceRecord& ns) {
  return gw::unwireNamespace(host_, ns);
}

Status HostTopology::removeBridge(const std::string& name) {
  return gw::removeBridge(host_, name);
}

Result<bool> HostTopology::portInUse(Proto proto, uint16_t port,
                                     const std::optional<IpAddress>& hostIp) {
  int type = proto == Proto::Tcp ? SOCK_STREAM : SOCK_DGRAM;
  bool v6 = hostIp && hostIp->isV6();
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd) {
    return sysError("socket");
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    std::memcpy(&sa->sin6_addr, hostIp->bytes.data(), 16);
    len = sizeof *sa;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (hostIp && hostIp->isV4()) {
      std::memcpy(&sa->sin_addr, hostIp->bytes.data(), 4);
    }
    len = sizeof *sa;
  }
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno == EADDRINUSE;
}

} // namespace gw
