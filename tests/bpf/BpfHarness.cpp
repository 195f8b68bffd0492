// SPDX-License-Identifier: MIT
#include "tests/bpf/BpfHarness.h"

#include <stdexcept>

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

void BpfHarness::ctInsert(const gw_ct_key& k, const gw_ct_entry& e) {
  check(loader_->ctInsert(k, e));
}

} // namespace gw::test
