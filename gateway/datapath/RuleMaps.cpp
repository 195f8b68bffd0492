// SPDX-License-Identifier: MIT
#include "gateway/datapath/RuleMaps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>

#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/MapDump.h"
#include "bpf/gw_abi.h"

namespace gw {
namespace {

void v4Bytes(union gw_addr& out, const IpAddress& addr) {
  std::memset(&out, 0, sizeof(out));
  std::memcpy(out.bytes, addr.bytes.data(), 4);
}

IpAddress v4Address(const union gw_addr& in) {
  IpAddress addr;
  addr.family = AF_INET;
  std::memcpy(addr.bytes.data(), in.bytes, 4);
  return addr;
}

Status requireV4(const IpAddress& addr, std::string_view what) {
  if (addr.family != AF_INET) {
    return fail(std::string(what) + ": only IPv4 is supported (" + addr.str() + ")");
  }
  return {};
}

// The gw_*_v4 maps keyed by an address: write `value` under `addr` ("add <what> <addr>").
Status updateByAddr(int mapFd, const IpAddress& addr, const void* value, std::string_view what) {
  if (auto ok = requireV4(addr, what); !ok) {
    return ok;
  }
  union gw_addr key;
  v4Bytes(key, addr);
  if (bpf_map_update_elem(mapFd, &key, value, BPF_ANY) != 0) {
    return sysError("add " + std::string(what) + " " + addr.str());
  }
  return {};
}

// Removes `addr` from such a map; one that is not there is fine.
Status deleteByAddr(int mapFd, const IpAddress& addr, std::string_view what) {
  if (auto ok = requireV4(addr, what); !ok) {
    return ok;
  }
  union gw_addr key;
  v4Bytes(key, addr);
  if (bpf_map_delete_elem(mapFd, &key) != 0 && errno != ENOENT) {
    return sysError("delete " + std::string(what) + " " + addr.str());
  }
  return {};
}

Result<gw_expose_key> exposeKey(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort) {
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
    return fail("expose: protocol " + std::to_string(proto) + " is neither TCP nor UDP");
  }
  if (hostAddr.family != 0 && hostAddr.family != AF_INET) {
    return fail("expose: only IPv4 host addresses are supported (" + hostAddr.str() + ")");
  }
  gw_expose_key key{};
  if (hostAddr.family == AF_INET) {
    v4Bytes(key.daddr, hostAddr);
  }
  key.dport = htons(hostPort);
  key.proto = proto;
  key.family = GW_AF_INET;
  return key;
}

Result<gw_masq_key> masqKey(const IpPrefix& source) {
  if (source.addr.family != AF_INET || source.length < 0 || source.length > 32) {
    return fail("masquerade: only IPv4 prefixes are supported (" + source.str() + ")");
  }
  gw_masq_key key{};
  key.prefixlen = GW_MASQ_PREFIXLEN(static_cast<uint32_t>(source.length));
  key.family = GW_AF_INET;
  v4Bytes(key.addr, source.network().addr);
  return key;
}

uint32_t withFib(uint32_t flags, bool fib) {
  return fib ? (flags | GW_CFG_FIB_REDIRECT) : (flags & ~GW_CFG_FIB_REDIRECT);
}

} // namespace

Status RuleMaps::writeConfig(const std::function<void(gw_config&)>& change) {
  int fd = objects_.mapFd("gw_config_map");
  uint32_t zero = 0;
  gw_config cfg{};
  if (bpf_map_lookup_elem(fd, &zero, &cfg) != 0) {
    return sysError("read gw_config");
  }
  change(cfg);
  if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) != 0) {
    return sysError("write gw_config");
  }
  return {};
}

Status RuleMaps::initConfig(bool fibRedirect) {
  return writeConfig([fibRedirect](gw_config& c) {
    if (c.snat_port_min == 0 || c.snat_port_max == 0) {
      c.snat_port_min = GW_SNAT_PORT_MIN;
      c.snat_port_max = GW_SNAT_PORT_MAX;
    }
    c.flags = withFib(c.flags, fibRedirect);
  });
}

Status RuleMaps::setUplink(int ifindex, const IpAddress& addr, bool fibRedirect) {
  if (auto ok = requireV4(addr, "uplink address"); !ok) {
    return ok;
  }
  return writeConfig([&](gw_config& c) {
    c.uplink_ifindex = static_cast<uint32_t>(ifindex);
    v4Bytes(c.uplink_addr, addr);
    c.flags = withFib(c.flags, fibRedirect);
  });
}

Status RuleMaps::setHairpinAddress(const IpAddress& addr) {
  if (auto ok = requireV4(addr, "hairpin address"); !ok) {
    return ok;
  }
  return writeConfig([&](gw_config& c) { v4Bytes(c.hairpin_addr, addr); });
}

Status RuleMaps::setNetnsCookie(uint64_t cookie) {
  return writeConfig([cookie](gw_config& c) { c.netns_cookie = cookie; });
}

Status RuleMaps::addEndpoint(const IpAddress& addr, int hostIfindex,
                             std::array<uint8_t, 6> peerMac, std::array<uint8_t, 6> hostMac) {
  if (hostIfindex <= 0) {
    return fail("endpoint " + addr.str() + ": bad ifindex " + std::to_string(hostIfindex));
  }
  gw_endpoint_value value{};
  value.ifindex = static_cast<uint32_t>(hostIfindex);
  std::memcpy(value.peer_mac, peerMac.data(), peerMac.size());
  std::memcpy(value.host_mac, hostMac.data(), hostMac.size());
  return updateByAddr(objects_.mapFd("gw_endpoint_v4"), addr, &value, "endpoint");
}

Status RuleMaps::deleteEndpoint(const IpAddress& addr) {
  return deleteByAddr(objects_.mapFd("gw_endpoint_v4"), addr, "endpoint");
}

Result<std::vector<EndpointEntry>> RuleMaps::listEndpoints() const {
  auto rows = dumpMap<gw_addr, gw_endpoint_value>(objects_.mapFd("gw_endpoint_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<EndpointEntry> out;
  for (const auto& [key, value] : *rows) {
    EndpointEntry e;
    e.addr = v4Address(key);
    e.hostIfindex = static_cast<int>(value.ifindex);
    std::memcpy(e.peerMac.data(), value.peer_mac, e.peerMac.size());
    std::memcpy(e.hostMac.data(), value.host_mac, e.hostMac.size());
    out.push_back(e);
  }
  std::ranges::sort(out, {}, &EndpointEntry::addr);
  return out;
}

Status RuleMaps::addLocalAddress(const IpAddress& addr) {
  uint32_t one = 1;
  return updateByAddr(objects_.mapFd("gw_local_v4"), addr, &one, "local address");
}

Status RuleMaps::deleteLocalAddress(const IpAddress& addr) {
  return deleteByAddr(objects_.mapFd("gw_local_v4"), addr, "local address");
}

Result<std::vector<IpAddress>> RuleMaps::listLocalAddresses() const {
  auto rows = dumpMap<gw_addr, uint32_t>(objects_.mapFd("gw_local_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<IpAddress> out;
  for (const auto& [key, value] : *rows) {
    out.push_back(v4Address(key));
  }
  std::ranges::sort(out);
  return out;
}

Status RuleMaps::addExpose(const ExposeEntry& entry) {
  auto key = exposeKey(entry.proto, entry.hostAddr, entry.hostPort);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (auto ok = requireV4(entry.targetAddr, "expose target"); !ok) {
    return ok;
  }
  if (entry.ruleId >= GW_RULE_MAX) {
    return fail("expose: rule id " + std::to_string(entry.ruleId) + " >= " +
                std::to_string(GW_RULE_MAX));
  }
  gw_expose_value value{};
  v4Bytes(value.target_addr, entry.targetAddr);
  value.target_port = htons(entry.targetPort);
  value.rule_id = entry.ruleId;
  if (bpf_map_update_elem(objects_.mapFd("gw_expose_v4"), &*key, &value, BPF_ANY) != 0) {
    return sysError("add expose port " + std::to_string(entry.hostPort));
  }
  return {};
}

Status RuleMaps::deleteExpose(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort) {
  auto key = exposeKey(proto, hostAddr, hostPort);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (bpf_map_delete_elem(objects_.mapFd("gw_expose_v4"), &*key) != 0) {
    return sysError("delete expose port " + std::to_string(hostPort));
  }
  return {};
}

Result<std::vector<ExposeEntry>> RuleMaps::listExposes() const {
  auto rows = dumpMap<gw_expose_key, gw_expose_value>(objects_.mapFd("gw_expose_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<ExposeEntry> out;
  for (const auto& [key, value] : *rows) {
    ExposeEntry e;
    e.proto = key.proto;
    if (key.daddr.v4 != 0) {
      e.hostAddr.family = AF_INET;
      std::memcpy(e.hostAddr.bytes.data(), key.daddr.bytes, 4);
    }
    e.hostPort = ntohs(key.dport);
    e.targetAddr.family = AF_INET;
    std::memcpy(e.targetAddr.bytes.data(), value.target_addr.bytes, 4);
    e.targetPort = ntohs(value.target_port);
    e.ruleId = value.rule_id;
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const ExposeEntry& a, const ExposeEntry& b) {
    return std::tie(a.proto, a.hostPort, a.hostAddr) < std::tie(b.proto, b.hostPort, b.hostAddr);
  });
  return out;
}

Result<std::set<uint32_t>> RuleMaps::exposedRuleIds() const {
  auto rows = dumpMap<gw_expose_key, gw_expose_value>(objects_.mapFd("gw_expose_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::set<uint32_t> ids;
  for (const auto& [key, value] : *rows) {
    if (value.rule_id != 0) {
      ids.insert(value.rule_id);
    }
  }
  return ids;
}

Status RuleMaps::addMasquerade(const IpPrefix& source, int outIfindex, bool endpointIndependent) {
  auto key = masqKey(source);
  if (!key) {
    return std::unexpected(key.error());
  }
  gw_masq_value value{};
  value.out_ifindex = static_cast<uint32_t>(outIfindex);
  value.flags = endpointIndependent ? GW_MASQ_F_EIF : 0;
  if (bpf_map_update_elem(objects_.mapFd("gw_masq_v4"), &*key, &value, BPF_ANY) != 0) {
    return sysError("add masquerade " + source.str());
  }
  return {};
}

Status RuleMaps::deleteMasquerade(const IpPrefix& source) {
  auto key = masqKey(source);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (bpf_map_delete_elem(objects_.mapFd("gw_masq_v4"), &*key) != 0) {
    return sysError("delete masquerade " + source.str());
  }
  return {};
}

Result<std::vector<MasqueradeEntry>> RuleMaps::listMasquerades() const {
  // An LPM trie: no batched lookup, dumpMap walks it key by key.
  auto rows = dumpMap<gw_masq_key, gw_masq_value>(objects_.mapFd("gw_masq_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<MasqueradeEntry> out;
  for (const auto& [key, value] : *rows) {
    if (key.family != GW_AF_INET || key.prefixlen < GW_MASQ_PREFIXLEN(0) ||
        key.prefixlen > GW_MASQ_PREFIXLEN(32)) {
      continue; // not a key RuleMaps writes
    }
    MasqueradeEntry e;
    e.source = IpPrefix{v4Address(key.addr),
                        static_cast<int>(key.prefixlen - GW_MASQ_PREFIXLEN(0))};
    e.outIfindex = static_cast<int>(value.out_ifindex);
    e.endpointIndependent = (value.flags & GW_MASQ_F_EIF) != 0;
    out.push_back(e);
  }
  std::ranges::sort(out, {}, &MasqueradeEntry::source);
  return out;
}

} // namespace gw
