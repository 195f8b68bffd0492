// SPDX-License-Identifier: MIT
// What the services need of the gateway host's network: links, addresses, namespaces and the
// wiring of managed ones. host/HostTopology is the kernel's (netlink); unit tests use a fake.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/Error.h"
#include "base/Ip.h"
#include "base/Rollback.h"
#include "control/ApiValues.h"
#include "gateway/State.h"
#include "netns/Namespace.h" // NamespaceId: a plain value

namespace gw {

struct LinkState {
  std::string name;
  int index = 0;
  bool up = false;
  std::array<uint8_t, 6> mac{};
};

struct HostAddress {
  IpPrefix prefix;
  std::string link;
};

// An address inside a namespace, on a veth whose other end is a link of the gateway host: what
// bpf_redirect_peer needs to hand it packets (gw_endpoint_v4/v6).
struct PeeredAddress {
  IpAddress addr;
  int hostIndex = 0;                 // the gateway host's end of the veth
  std::array<uint8_t, 6> hostMac{}; // its MAC
  std::array<uint8_t, 6> peerMac{}; // the namespace's end's
  bool operator==(const PeeredAddress&) const = default;
};

struct PeeredNamespace {
  int id = -1; // the id the gateway host knows it by (IFLA_LINK_NETNSID of its veths); -1 none
  std::vector<PeeredAddress> addresses;
};

class Topology {
public:
  virtual ~Topology() = default;

  virtual bool namespaceExists(const std::string& name) = 0;
  // Which namespace a name or a path ('/...') is: the same id, the same namespace. Invalid when
  // the path is no network namespace, NotFound when nothing is there.
  virtual Result<NamespaceId> namespaceId(const std::string& nameOrPath) = 0;
  // A link of the gateway host; an ErrorKind::NotFound error when it does not exist.
  virtual Result<LinkState> link(const std::string& name) = 0;
  // A link inside namespace `ns`.
  virtual Result<LinkState> linkIn(const std::string& ns, const std::string& name) = 0;
  // The gateway host's addresses of `family` (AF_INET, AF_INET6, AF_UNSPEC = both).
  virtual Result<std::vector<HostAddress>> hostAddresses(int family) = 0;
  // The addresses of `family` (AF_INET or AF_INET6) inside namespace `ns` (a name or a path).
  virtual Result<std::vector<IpPrefix>> namespaceAddresses(const std::string& ns, int family) = 0;
  // The named namespaces (`ip netns`, /run/netns).
  virtual Result<std::vector<std::string>> namespaceNames() = 0;
  // The global addresses of both families inside `ns` (a name or a path) that sit on a veth
  // whose other end is a link of the gateway host.
  virtual Result<PeeredNamespace> peeredNamespace(const std::string& ns) = 0;
  // The gateway host's veths whose other end is in another namespace: ifindex -> the id of
  // that namespace (PeeredNamespace::id).
  virtual Result<std::map<int, int>> hostVeths() = 0;

  // Idempotent: each adopts what exists and, with a rollback, records an undo for what it made.
  virtual Status ensureBridge(const BridgeRecord& bridge, Rollback* rollback) = 0;
  virtual Status wireNamespace(const NamespaceRecord& ns, Rollback* rollback) = 0;
  // Missing pieces are not errors.
  virtual Status unwireNamespace(const NamespaceRecord& ns) = 0;
  virtual Status removeBridge(const std::string& name) = 0;

  // Whether a local socket of the gateway host holds `port` (a bind probe).
  virtual Result<bool> portInUse(Proto proto, uint16_t port,
                                 const std::optional<IpAddress>& hostIp) = 0;
};

} // namespace gw
