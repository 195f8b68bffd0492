// SPDX-License-Identifier: MIT
// Builds and removes the wiring of managed namespaces (namespace, veth, bridge, addresses,
// routes, forwarding) through netns/. Every step adopts what exists and records an undo for
// what it created, so one code path serves `ns add` (with rollback) and restart reconciling.
#pragma once

#include <string>

#include "base/Error.h"
#include "base/Ip.h"
#include "netns/Netlink.h"
#include "base/Rollback.h"
#include "gateway/State.h"

namespace gw {

// The IPv4 GSO/GRO size the links we make get (IPv4 BIG TCP when above 65,536): the uplink's,
// so a big packet from a namespace leaves by the uplink whole. 0 leaves the kernel's default.
struct LinkSizing {
  uint32_t ipv4GsoMax = 0;
};

// Ensures the bridge exists, is a bridge, carries its address and is up.
Status ensureBridge(Netlink& host, const BridgeRecord& bridge, Rollback* rollback);

// Ensures namespace, veth, addresses, routes and forwarding exist as `rec` says; the veth's
// ends and its bridge get `sizing`.
Status wireNamespace(Netlink& host, const NamespaceRecord& rec, int bridgeIndex,
                     LinkSizing sizing, Rollback* rollback);

// Removes what wireNamespace made (veth and namespace); missing pieces are not errors.
Status unwireNamespace(Netlink& host, const NamespaceRecord& rec);

// Deletes a bridge by name if it exists.
Status removeBridge(Netlink& host, const std::string& name);

} // namespace gw
