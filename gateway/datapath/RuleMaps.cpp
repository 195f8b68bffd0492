// SPDX-License-Identifier: MIT
#include "gateway/datapath/RuleMaps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <tuple>

#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/MapDump.h"
#include "bpf/gw_abi.h"

namespace gw {
namespace {

// An address into a map's 16 bytes: IPv4 in the first 4, the rest zero.
void addrBytes(union gw_addr& out, const IpAddress& addr) {
  std::memset(&out, 0, sizeof(out));
  std::memcpy(out.bytes, addr.bytes.data(), addr.size());
}

IpAddress addrOf(const union gw_addr& in, int family) {
  IpAddress addr;
  addr.family = family;
  std::memcpy(addr.bytes.data(), in.bytes, addr.size());
  return addr;
}

uint8_t gwFamily(int family) { return family == AF_INET6 ? GW_AF_INET6 : GW_AF_INET; }

Status requireFamily(const IpAddress& addr, int family, std::string_view what) {
  if (addr.family != family) {
    return fail(std::string(what) + ": not an " + (family == AF_INET6 ? "IPv6" : "IPv4") +
                " address (" + addr.str() + ")");
  }
  return {};
}

// The twin maps keyed by a bare address (gw_local_v4/v6, gw_endpoint_v4/v6): the one of
// `addr`'s family.
Result<int> twinFd(const BpfObjects& objects, std::string_view base, const IpAddress& addr,
                   std::string_view what) {
  if (!addr.isV4() && !addr.isV6()) {
    return fail(std::string(what) + ": no address given");
  }
  return objects.mapFd(std::string(base) + (addr.isV6() ? "_v6" : "_v4"));
}

// Writes `value` under `addr` in the twin of `base` for its family ("add <what> <addr>").
Status updateByAddr(const BpfObjects& objects, std::string_view base, const IpAddress& addr,
                    const void* value, std::string_view what) {
  auto fd = twinFd(objects, base, addr, what);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  union gw_addr key;
  addrBytes(key, addr);
  if (bpf_map_update_elem(*fd, &key, value, BPF_ANY) != 0) {
    return sysError("add " + std::string(what) + " " + addr.str());
  }
  return {};
}

// Removes `addr` from such a map; one that is not there is fine.
Status deleteByAddr(const BpfObjects& objects, std::string_view base, const IpAddress& addr,
                    std::string_view what) {
  auto fd = twinFd(objects, base, addr, what);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  union gw_addr key;
  addrBytes(key, addr);
  if (bpf_map_delete_elem(*fd, &key) != 0 && errno != ENOENT) {
    return sysError("delete " + std::string(what) + " " + addr.str());
  }
  return {};
}

// Both twins of `base` read into (address, value) rows, IPv4 first.
template <class V>
Result<std::vector<std::pair<IpAddress, V>>> dumpTwins(const BpfObjects& objects,
                                                       std::string_view base) {
  std::vector<std::pair<IpAddress, V>> out;
  for (int family : {AF_INET, AF_INET6}) {
    auto name = std::string(base) + (family == AF_INET6 ? "_v6" : "_v4");
    auto rows = dumpMap<gw_addr, V>(objects.mapFd(name));
    if (!rows) {
      return std::unexpected(rows.error());
    }
    for (const auto& [key, value] : *rows) {
      out.emplace_back(addrOf(key, family), value);
    }
  }
  return out;
}

Result<gw_expose_key> exposeKey(const ExposeKey& k) {
  if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP) {
    return fail("expose: protocol " + std::to_string(k.proto) + " is neither TCP nor UDP");
  }
  if (k.family != AF_INET && k.family != AF_INET6) {
    return fail("expose: family " + std::to_string(k.family) + " is neither IPv4 nor IPv6");
  }
  if (k.hostAddr.family != 0 && k.hostAddr.family != k.family) {
    return fail("expose: host address " + k.hostAddr.str() + " is not of the target's family");
  }
  gw_expose_key key{};
  addrBytes(key.daddr, k.hostAddr); // unset: all zero, any local address
  key.dport = htons(k.hostPort);
  key.proto = k.proto;
  key.family = gwFamily(k.family);
  return key;
}

Result<gw_masq_key> masqKey(const IpPrefix& source) {
  if ((!source.addr.isV4() && !source.addr.isV6()) || source.length < 0 ||
      source.length > source.addr.maxLength()) {
    return fail("masquerade: not an IPv4 or IPv6 prefix (" + source.str() + ")");
  }
  gw_masq_key key{};
  key.prefixlen = GW_MASQ_PREFIXLEN(static_cast<uint32_t>(source.length));
  key.family = gwFamily(source.addr.family);
  addrBytes(key.addr, source.network().addr);
  return key;
}

// Read-modify-write of entry 0 of a one-entry config array (gw_config_map, gw_config6_map).
template <class Config>
Status changeConfig(int fd, std::string_view what, const std::function<void(Config&)>& change) {
  uint32_t zero = 0;
  Config cfg{};
  if (bpf_map_lookup_elem(fd, &zero, &cfg) != 0) {
    return sysError("read " + std::string(what));
  }
  change(cfg);
  if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) != 0) {
    return sysError("write " + std::string(what));
  }
  return {};
}

uint32_t withFib(uint32_t flags, bool fib) {
  return fib ? (flags | GW_CFG_FIB_REDIRECT) : (flags & ~GW_CFG_FIB_REDIRECT);
}

} // namespace

Status RuleMaps::writeConfig(const std::function<void(gw_config&)>& change) {
  return changeConfig(objects_.mapFd("gw_config_map"), "gw_config", change);
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

Status RuleMaps::writeConfig6(const std::function<void(gw_config6&)>& change) {
  return changeConfig(objects_.mapFd("gw_config6_map"), "gw_config6", change);
}

Status RuleMaps::setUplink(int ifindex, const IpAddress& addr, bool fibRedirect) {
  if (auto ok = requireFamily(addr, AF_INET, "uplink address"); !ok) {
    return ok;
  }
  return writeConfig([&](gw_config& c) {
    c.uplink_ifindex = static_cast<uint32_t>(ifindex);
    addrBytes(c.uplink_addr, addr);
    c.flags = withFib(c.flags, fibRedirect);
  });
}

Status RuleMaps::setUplinkAddress6(const IpAddress& addr) {
  if (addr.family != 0) {
    if (auto ok = requireFamily(addr, AF_INET6, "uplink IPv6 address"); !ok) {
      return ok;
    }
  }
  return writeConfig6([&](gw_config6& c) { addrBytes(c.uplink_addr, addr); });
}

Status RuleMaps::setHairpinAddress(const IpAddress& addr) {
  if (addr.isV6()) {
    return writeConfig6([&](gw_config6& c) { addrBytes(c.hairpin_addr, addr); });
  }
  if (auto ok = requireFamily(addr, AF_INET, "hairpin address"); !ok) {
    return ok;
  }
  return writeConfig([&](gw_config& c) { addrBytes(c.hairpin_addr, addr); });
}

Result<RuleMaps::Config6> RuleMaps::config6() const {
  uint32_t zero = 0;
  gw_config6 cfg{};
  if (bpf_map_lookup_elem(objects_.mapFd("gw_config6_map"), &zero, &cfg) != 0) {
    return sysError("read gw_config6");
  }
  Config6 out;
  auto set = [](const union gw_addr& a) {
    const union gw_addr zero{};
    return std::memcmp(&a, &zero, sizeof a) == 0 ? IpAddress{} : addrOf(a, AF_INET6);
  };
  out.uplinkAddr = set(cfg.uplink_addr);
  out.hairpinAddr = set(cfg.hairpin_addr);
  return out;
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
  return updateByAddr(objects_, "gw_endpoint", addr, &value, "endpoint");
}

Status RuleMaps::deleteEndpoint(const IpAddress& addr) {
  return deleteByAddr(objects_, "gw_endpoint", addr, "endpoint");
}

Result<std::vector<EndpointEntry>> RuleMaps::listEndpoints() const {
  auto rows = dumpTwins<gw_endpoint_value>(objects_, "gw_endpoint");
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<EndpointEntry> out;
  for (const auto& [addr, value] : *rows) {
    EndpointEntry e;
    e.addr = addr;
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
  return updateByAddr(objects_, "gw_local", addr, &one, "local address");
}

Status RuleMaps::deleteLocalAddress(const IpAddress& addr) {
  return deleteByAddr(objects_, "gw_local", addr, "local address");
}

Result<std::vector<IpAddress>> RuleMaps::listLocalAddresses() const {
  auto rows = dumpTwins<uint32_t>(objects_, "gw_local");
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<IpAddress> out;
  for (const auto& [addr, value] : *rows) {
    out.push_back(addr);
  }
  std::ranges::sort(out);
  return out;
}

Status RuleMaps::addExpose(const ExposeEntry& entry) {
  if (!entry.targetAddr.isV4() && !entry.targetAddr.isV6()) {
    return fail("expose: no target address");
  }
  auto key = exposeKey(entry.key());
  if (!key) {
    return std::unexpected(key.error());
  }
  if (entry.ruleId >= GW_RULE_MAX) {
    return fail("expose: rule id " + std::to_string(entry.ruleId) + " >= " +
                std::to_string(GW_RULE_MAX));
  }
  gw_expose_value value{};
  addrBytes(value.target_addr, entry.targetAddr);
  value.target_port = htons(entry.targetPort);
  value.rule_id = entry.ruleId;
  if (bpf_map_update_elem(objects_.mapFd("gw_expose_v4"), &*key, &value, BPF_ANY) != 0) {
    if (errno == E2BIG) {
      // Full: say which limit, not "Argument list too long".
      return conflict("add expose port " + std::to_string(entry.hostPort) +
                          ": the expose map is full (" + std::to_string(GW_EXPOSE_MAX_ENTRIES) +
                          " entries; a port takes one per family: 32,768 dual-stack ports)",
                      E2BIG);
    }
    return sysError("add expose port " + std::to_string(entry.hostPort));
  }
  return {};
}

Status RuleMaps::deleteExpose(const ExposeKey& k) {
  auto key = exposeKey(k);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (bpf_map_delete_elem(objects_.mapFd("gw_expose_v4"), &*key) != 0) {
    return sysError("delete expose port " + std::to_string(k.hostPort) +
                    (k.family == AF_INET6 ? " (IPv6)" : ""));
  }
  return {};
}

Result<std::vector<ExposeEntry>> RuleMaps::listExposes() const {
  auto rows = dumpMap<gw_expose_key, gw_expose_value>(objects_.mapFd("gw_expose_v4"));
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<ExposeEntry> out;
  const union gw_addr any{};
  for (const auto& [key, value] : *rows) {
    if (key.family != GW_AF_INET && key.family != GW_AF_INET6) {
      continue; // not a key RuleMaps writes
    }
    int family = key.family == GW_AF_INET6 ? AF_INET6 : AF_INET;
    ExposeEntry e;
    e.proto = key.proto;
    if (std::memcmp(&key.daddr, &any, sizeof any) != 0) {
      e.hostAddr = addrOf(key.daddr, family);
    }
    e.hostPort = ntohs(key.dport);
    e.targetAddr = addrOf(value.target_addr, family);
    e.targetPort = ntohs(value.target_port);
    e.ruleId = value.rule_id;
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const ExposeEntry& a, const ExposeEntry& b) {
    return std::tuple(a.proto, a.hostPort, a.family(), a.hostAddr) <
           std::tuple(b.proto, b.hostPort, b.family(), b.hostAddr);
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
    int family = key.family == GW_AF_INET6 ? AF_INET6 : AF_INET;
    uint32_t maxBits = family == AF_INET6 ? 128 : 32;
    if ((key.family != GW_AF_INET && key.family != GW_AF_INET6) ||
        key.prefixlen < GW_MASQ_PREFIXLEN(0) || key.prefixlen > GW_MASQ_PREFIXLEN(maxBits)) {
      continue; // not a key RuleMaps writes
    }
    MasqueradeEntry e;
    e.source = IpPrefix{addrOf(key.addr, family),
                        static_cast<int>(key.prefixlen - GW_MASQ_PREFIXLEN(0))};
    e.outIfindex = static_cast<int>(value.out_ifindex);
    e.endpointIndependent = (value.flags & GW_MASQ_F_EIF) != 0;
    out.push_back(e);
  }
  std::ranges::sort(out, {}, &MasqueradeEntry::source);
  return out;
}

} // namespace gw
