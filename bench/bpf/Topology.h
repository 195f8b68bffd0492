// SPDX-License-Identifier: MIT
// The gateway the BPF benchmark imagines (the unit tests' topology): a client on the
// internet, the uplink address, the bridge, two namespaces, a remote server; one exposed TCP
// port and masquerade for the namespaces' /16.
#pragma once

#include <arpa/inet.h>

#include "bench/bpf/Loader.h"

namespace gw::bench {

inline constexpr uint8_t kTcp = 6;
inline constexpr uint32_t kRule = 7;
inline constexpr uint16_t kExposedPort = 8080;
inline constexpr uint16_t kTargetPort = 80;
// 64-byte frames: Ethernet 14 + IPv4 20 + TCP 20 + 10 bytes.
inline const Bytes kPayload(10, 0x5a);

struct Topology {
  uint32_t client = test::ipv4("203.0.113.5");
  uint32_t uplink = test::ipv4("198.51.100.1");
  uint32_t bridge = test::ipv4("10.88.0.1");
  uint32_t ns1 = test::ipv4("10.88.0.2");
  uint32_t ns2 = test::ipv4("10.88.0.3");
  uint32_t remote = test::ipv4("192.0.2.9");
};

inline test::Ip4 ip(uint32_t s, uint32_t d) {
  test::Ip4 r;
  r.saddr = s;
  r.daddr = d;
  return r;
}

// Config, local addresses, the exposed port and masquerade, as gatewayd would write them
// (forwarding by FIB lookup off: the figures are the translation's, see BPF.md).
inline Status setupTopology(const BpfLoader& l, const Topology& t) {
  gw_config cfg{};
  cfg.uplink_ifindex = 1; // PROG_TEST_RUN runs skbs on loopback
  cfg.uplink_addr.v4 = t.uplink;
  cfg.hairpin_addr.v4 = t.bridge;
  cfg.snat_port_min = GW_SNAT_PORT_MIN;
  cfg.snat_port_max = GW_SNAT_PORT_MAX;
  if (auto ok = l.setConfig(cfg); !ok) {
    return ok;
  }
  if (auto ok = l.addLocal(t.uplink); !ok) {
    return ok;
  }
  if (auto ok = l.addLocal(t.bridge); !ok) {
    return ok;
  }
  if (auto ok = l.addExpose(0, kExposedPort, kTcp, t.ns1, kTargetPort, kRule); !ok) {
    return ok;
  }
  return l.addMasq(test::ipv4("10.88.0.0"), 16);
}

} // namespace gw::bench
