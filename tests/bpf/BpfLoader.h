// SPDX-License-Identifier: MIT
// The data-path programs loaded by gatewayd's own loader (gw::BpfObjects: one shared set of maps,
// no pins) plus the pass-through baseline, run on packets with BPF_PROG_TEST_RUN. Attaches
// nothing. Used by the BPF unit tests (through BpfHarness) and the per-packet benchmark; the
// conntrack map can be sized (1M flows need more than GW_CT_MAX_ENTRIES).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/Error.h"
#include "tests/bpf/PacketBuilder.h"
#include "bpf/gw_abi.h"

struct bpf_sock_addr;

namespace gw {
class BpfObjects;
}

namespace gw::test {

enum class Prog { UplinkIngress, UplinkEgress, EndpointIngress, UplinkXdp, PassTc, PassXdp };

const char* progName(Prog prog);
bool isXdp(Prog prog);

struct RunResult {
  int err = 0; // 0, or -errno when the test run itself failed (BpfHarness::run)
  uint32_t verdict = 0;
  uint32_t durationNs = 0; // the kernel's time per repetition (its timer wraps the run loop)
  Bytes out;
};

class BpfLoader {
public:
  // ctMaxEntries 0: the map as compiled (GW_CT_MAX_ENTRIES).
  static Result<std::unique_ptr<BpfLoader>> load(uint32_t ctMaxEntries = 0);
  ~BpfLoader();
  BpfLoader(const BpfLoader&) = delete;
  BpfLoader& operator=(const BpfLoader&) = delete;

  // mark: the skb's mark (tc programs only; 0 = none).
  Result<RunResult> run(Prog prog, const Bytes& frame, uint32_t repeat, uint32_t mark = 0) const;

  int mapFd(const char* name) const;
  const BpfObjects& objects() const; // what loaded them: gatewayd's loader
  // The kernel's memory figure for a map (fdinfo "memlock", what bpftool shows).
  Result<uint64_t> mapMemlock(const char* name) const;
  uint32_t ctMaxEntries() const;

  Status setConfig(const gw_config& cfg) const;
  Status addLocal(uint32_t addrNet) const;
  Status addExpose(uint32_t daddrNet, uint16_t dport, uint8_t proto, uint32_t targetNet,
                   uint16_t targetPort, uint32_t ruleId) const;
  Status addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex = 0,
                 uint32_t flags = 0) const;
  Status addEndpoint(uint32_t addrNet, uint32_t ifindex, const uint8_t (&peerMac)[6],
                     const uint8_t (&hostMac)[6]) const;
  uint64_t reason(gw_reason r) const; // summed over CPUs
  gw_rule_stats rule(uint32_t ruleId) const; // summed over CPUs

  std::optional<gw_ct_entry> ctLookup(const gw_ct_key& key) const;
  Status ctInsert(const gw_ct_key& key, const gw_ct_entry& entry) const;
  void ctDelete(const gw_ct_key& key) const;
  size_t ctCount() const;

  // Runs gw_connect4 on ctx (in/out); returns the test-run result (0 or -errno).
  int runSockConnect4(bpf_sock_addr& ctx) const;

private:
  explicit BpfLoader(std::unique_ptr<BpfObjects> objects);
  std::unique_ptr<BpfObjects> objects_;
};

// ABI helpers (addresses network order, ports host order).
gw_ct_key ctKey(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint8_t proto);
// The entry a packet with `key` gets: rewritten to `to`; `peer` the other direction's key.
gw_ct_entry ctEntry(const gw_ct_key& to, const gw_ct_key& peer, uint8_t dir, uint8_t nat,
                    uint32_t ruleId);

} // namespace gw::test
