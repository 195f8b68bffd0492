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
  return gw::wireNamespace(host_, ns, bridgeIndex, rollback);
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
