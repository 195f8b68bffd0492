// SPDX-License-Identifier: MIT
// Loads the data-path programs with gatewayd's own loader (BpfLoader -> gw::BpfObjects) and runs
// them on packets with BPF_PROG_TEST_RUN.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tests/bpf/BpfLoader.h"
#include "tests/bpf/PacketBuilder.h"
#include "bpf/gw_abi.h"

namespace gw::test {

// The unit tests' face of BpfLoader: a failed load is reported by loadError() (for
// GTEST_SKIP/FAIL), a failed map update throws, and run() reports a failed test run in
// RunResult::err instead of failing.
class BpfHarness {
public:
  BpfHarness();
  ~BpfHarness();
  BpfHarness(const BpfHarness&) = delete;
  BpfHarness& operator=(const BpfHarness&) = delete;

  // Empty when everything loaded; otherwise why not (for GTEST_SKIP/FAIL).
  const std::string& loadError() const { return loadError_; }

  // repeat > 1: the benchmark's ns/packet. The kernel reuses one buffer, so from the second
  // repetition on the program sees its own output (a translated packet then misses); maps
  // keep their state.
  RunResult run(Prog prog, const Bytes& frame, int repeat = 1);
  // One run of a tc program on an skb with this mark.
  RunResult runMarked(Prog prog, const Bytes& frame, uint32_t mark);

  void setConfig(const gw_config& cfg);
  void addLocal(uint32_t addrNet);
  void addExpose(uint32_t daddrNet, uint16_t dport, uint8_t proto, uint32_t targetNet,
                 uint16_t targetPort, uint32_t ruleId);
  void addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex = 0, uint32_t flags = 0);
  void addEndpoint(uint32_t addrNet, uint32_t ifindex, const uint8_t (&peerMac)[6],
                   const uint8_t (&hostMac)[6]);

  // IPv6: gw_config6_map and the family-6 entries of the shared maps and the v6 twins.
  void setConfig6(const Addr6& uplink, const Addr6& hairpin);
  void addLocal6(const Addr6& addr);
  void addExpose6(const Addr6& daddr, uint16_t dport, uint8_t proto, const Addr6& target,
                  uint16_t targetPort, uint32_t ruleId); // daddr all zero: any local address
  void addMasq6(const Addr6& prefix, uint32_t bits, uint32_t flags = 0);
  void addEndpoint6(const Addr6& addr, uint32_t ifindex, const uint8_t (&peerMac)[6],
                    const uint8_t (&hostMac)[6]);

  static gw_ct_key key(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                       uint8_t proto) {
    return ctKey(saddr, daddr, sport, dport, proto);
  }
  static gw_ct_key key6(const Addr6& saddr, const Addr6& daddr, uint16_t sport, uint16_t dport,
                        uint8_t proto);
  std::optional<gw_ct_entry> ct(const gw_ct_key& k) { return loader_->ctLookup(k); }
  void ctInsert(const gw_ct_key& k, const gw_ct_entry& e);
  void ctDelete(const gw_ct_key& k) { loader_->ctDelete(k); }
  size_t ctCount() { return loader_->ctCount(); }

  uint64_t reason(gw_reason r) { return loader_->reason(r); } // summed over CPUs
  gw_rule_stats rule(uint32_t ruleId) { return loader_->rule(ruleId); }

  int mapFd(const char* name) { return loader_->mapFd(name); }
  // Runs gw_connect4 on ctx (in/out); returns the test-run result (0 or -errno).
  int runSockConnect4(struct bpf_sock_addr& ctx) { return loader_->runSockConnect4(ctx); }

private:
  RunResult runMarked(Prog prog, const Bytes& frame, uint32_t mark, int repeat);
  void update(const char* map, const void* key, const void* value);

  std::string loadError_;
  std::unique_ptr<BpfLoader> loader_;
};

} // namespace gw::test
