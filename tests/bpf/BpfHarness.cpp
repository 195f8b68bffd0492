// SPDX-License-Identifier: MIT
#include "tests/bpf/BpfHarness.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gw::test {
namespace {

void check(const Status& s) {
  if (!s) {
    throw std::runtime_error(s.error().str());
  }
}

} // namespace

BpfHarness::BpfHarness() {
  auto loaded = BpfLoader::load();
  if (!loaded) {
    loadError_ = loaded.error().str();
    return;
  }
  loader_ = std::move(*loaded);
}

BpfHarness::~BpfHarness() = default;

RunResult BpfHarness::run(Prog prog, const Bytes& frame, int repeat) {
  return runMarked(prog, frame, 0, repeat);
}

RunResult BpfHarness::runMarked(Prog prog, const Bytes& frame, uint32_t mark) {
  return runMarked(prog, frame, mark, 1);
}

RunResult BpfHarness::runMarked(Prog prog, const Bytes& frame, uint32_t mark, int repeat) {
  auto r = loader_->run(prog, frame, static_cast<uint32_t>(repeat), mark);
  if (!r) {
    RunResult failed;
    failed.err = -r.error().code;
    return failed;
  }
  return std::move(*r);
}

void BpfHarness::setConfig(const gw_config& cfg) { check(loader_->setConfig(cfg)); }

void BpfHarness::addLocal(uint32_t addrNet) { check(loader_->addLocal(addrNet)); }

void BpfHarness::addExpose(uint32_t daddrNet, uint16_t dport, uint8_t proto, uint32_t targetNet,
                           uint16_t targetPort, uint32_t ruleId) {
  check(loader_->addExpose(daddrNet, dport, proto, targetNet, targetPort, ruleId));
}

void BpfHarness::addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex,
                         uint32_t flags) {
  check(loader_->addMasq(prefixNet, bits, outIfindex, flags));
}

void BpfHarness::addEndpoint(uint32_t addrNet, uint32_t ifindex, const uint8_t (&peerMac)[6],
                             const uint8_t (&hostMac)[6]) {
  check(loader_->addEndpoint(addrNet, ifindex, peerMac, hostMac));
}

namespace {

gw_addr addr6(const Addr6& a) {
  gw_addr out{};
  std::memcpy(out.bytes, a.data(), 16);
  return out;
}

} // namespace

void BpfHarness::update(const char* map, const void* key, const void* value) {
  if (bpf_map_update_elem(mapFd(map), key, value, BPF_ANY) != 0) {
    throw std::runtime_error(std::string("update ") + map + ": " + std::strerror(errno));
  }
}

void BpfHarness::setConfig6(const Addr6& uplink, const Addr6& hairpin) {
  uint32_t zero = 0;
  gw_config6 cfg{};
  cfg.uplink_addr = addr6(uplink);
  cfg.hairpin_addr = addr6(hairpin);
  update("gw_config6_map", &zero, &cfg);
}

void BpfHarness::addLocal6(const Addr6& addr) {
  gw_addr key = addr6(addr);
  uint32_t one = 1;
  update("gw_local_v6", &key, &one);
}

void BpfHarness::addExpose6(const Addr6& daddr, uint16_t dport, uint8_t proto,
                            const Addr6& target, uint16_t targetPort, uint32_t ruleId) {
  gw_expose_key key{};
  key.daddr = addr6(daddr);
  key.dport = htons(dport);
  key.proto = proto;
  key.family = GW_AF_INET6;
  gw_expose_value value{};
  value.target_addr = addr6(target);
  value.target_port = htons(targetPort);
  value.rule_id = ruleId;
  update("gw_expose_v4", &key, &value);
}

void BpfHarness::addMasq6(const Addr6& prefix, uint32_t bits, uint32_t flags) {
  gw_masq_key key{};
  key.prefixlen = GW_MASQ_PREFIXLEN(bits);
  key.family = GW_AF_INET6;
  key.addr = addr6(prefix);
  gw_masq_value value{};
  value.flags = flags;
  update("gw_masq_v4", &key, &value);
}

void BpfHarness::addEndpoint6(const Addr6& addr, uint32_t ifindex, const uint8_t (&peerMac)[6],
                              const uint8_t (&hostMac)[6]) {
  gw_addr key = addr6(addr);
  gw_endpoint_value value{};
  value.ifindex = ifindex;
  std::memcpy(value.peer_mac, peerMac, 6);
  std::memcpy(value.host_mac, hostMac, 6);
  update("gw_endpoint_v6", &key, &value);
}

gw_ct_key BpfHarness::key6(const Addr6& saddr, const Addr6& daddr, uint16_t sport,
                           uint16_t dport, uint8_t proto) {
  gw_ct_key k{};
  k.saddr = addr6(saddr);
  k.daddr = addr6(daddr);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET6;
  return k;
}

void BpfHarness::ctInsert(const gw_ct_key& k, const gw_ct_entry& e) {
  check(loader_->ctInsert(k, e));
}

} // namespace gw::test
