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

// Ensures the bridge exists, is a bridge, carries its address and is up.
Status ensureBridge(Netlink& host, const BridgeRecord& bridge, Rollback* rollback);

// Ensures namespace, veth, addresses, routes and forwarding exist as `rec` says.
Status wireNamespace(Netlink& host, const NamespaceRecord& rec, int bridgeIndex,
                     Rollback* rollback);

// Removes what wireNamespace made (veth and namespace); missing pieces are not errors.
Status unwireNamespace(Netlink& host, const NamespaceRecord& rec);

// Deletes a bridge by name if it exists.
Status removeBridge(Netlink& host, const std::string& name);

} // namespace gw
