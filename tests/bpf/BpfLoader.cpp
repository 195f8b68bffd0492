// SPDX-License-Identifier: MIT
#include "tests/bpf/BpfLoader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "gateway/datapath/BpfObjects.h"

namespace gw::test {
namespace {

Status mapUpdate(int fd, const void* key, const void* value, const char* what) {
  if (bpf_map_update_elem(fd, key, value, BPF_ANY) != 0) {
    return sysError(std::string("update ") + what);
  }
  return {};
}

} // namespace

const char* progName(Prog prog) {
  switch (prog) {
  case Prog::UplinkIngress:
    return "gw_uplink_ingress";
  case Prog::UplinkEgress:
    return "gw_uplink_egress";
  case Prog::EndpointIngress:
    return "gw_endpoint_ingress";
  case Prog::UplinkXdp:
    return "gw_uplink_xdp";
  case Prog::PassTc:
    return "gw_pass_tc";
  case Prog::PassXdp:
    return "gw_pass_xdp";
  }
  return "?";
}

bool isXdp(Prog prog) { return prog == Prog::UplinkXdp || prog == Prog::PassXdp; }

BpfLoader::BpfLoader(std::unique_ptr<BpfObjects> objects) : objects_(std::move(objects)) {}
BpfLoader::~BpfLoader() = default;

Result<std::unique_ptr<BpfLoader>> BpfLoader::load(uint32_t ctMaxEntries) {
  BpfObjectsOptions options;
  options.ctEntries = ctMaxEntries;
  options.passthrough = true;
  auto objects = BpfObjects::load(options);
  if (!objects) {
    return std::unexpected(objects.error());
  }
  return std::unique_ptr<BpfLoader>(new BpfLoader(std::move(*objects)));
}

Result<RunResult> BpfLoader::run(Prog prog, const Bytes& frame, uint32_t repeat,
                                 uint32_t mark) const {
  int fd = objects_->progFd(progName(prog));
  if (fd < 0) {
    return fail(std::string("no program ") + progName(prog));
  }
  RunResult r;
  r.out.resize(frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.out.size()),
              .repeat = static_cast<int>(repeat));
  __sk_buff skb{};
  if (mark != 0) {
    skb.mark = mark;
    opts.ctx_in = &skb;
    opts.ctx_size_in = sizeof(skb);
  }
  if (bpf_prog_test_run_opts(fd, &opts) != 0) {
    return sysError(std::string("BPF_PROG_TEST_RUN ") + progName(prog));
  }
  r.verdict = opts.retval;
  r.durationNs = opts.duration;
  r.out.resize(opts.data_size_out);
  return r;
}

int BpfLoader::mapFd(const char* name) const { return objects_->mapFd(name); }

const BpfObjects& BpfLoader::objects() const { return *objects_; }

uint32_t BpfLoader::ctMaxEntries() const { return objects_->ctCapacity(); }

Result<uint64_t> BpfLoader::mapMemlock(const char* name) const {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(mapFd(name)));
  if (!in) {
    return sysError("open fdinfo of " + std::string(name));
  }
  std::string field;
  uint64_t value = 0;
  while (in >> field) {
    if (field == "memlock:" && in >> value) {
      return value;
    }
  }
  return fail("no memlock in fdinfo of " + std::string(name));
}

Status BpfLoader::setConfig(const gw_config& cfg) const {
  uint32_t zero = 0;
  return mapUpdate(mapFd("gw_config_map"), &zero, &cfg, "gw_config_map");
}

Status BpfLoader::addLocal(uint32_t addrNet) const {
  gw_addr a{};
  a.v4 = addrNet;
  uint32_t one = 1;
  return mapUpdate(mapFd("gw_local_v4"), &a, &one, "gw_local_v4");
}

Status BpfLoader::addExpose(uint32_t daddrNet, uint16_t dport, uint8_t proto,
                            uint32_t targetNet, uint16_t targetPort, uint32_t ruleId) const {
  gw_expose_key k{};
  k.daddr.v4 = daddrNet;
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET;
  gw_expose_value v{};
  v.target_addr.v4 = targetNet;
  v.target_port = htons(targetPort);
  v.rule_id = ruleId;
  return mapUpdate(mapFd("gw_expose_v4"), &k, &v, "gw_expose_v4");
}

Status BpfLoader::addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex,
                          uint32_t flags) const {
  gw_masq_key k{};
  k.prefixlen = GW_MASQ_PREFIXLEN(bits);
  k.family = GW_AF_INET;
  k.addr.v4 = prefixNet;
  gw_masq_value v{};
  v.out_ifindex = outIfindex;
  v.flags = flags;
  return mapUpdate(mapFd("gw_masq_v4"), &k, &v, "gw_masq_v4");
}

Status BpfLoader::addEndpoint(uint32_t addrNet, uint32_t ifindex, const uint8_t (&peerMac)[6],
                              const uint8_t (&hostMac)[6]) const {
  gw_addr a{};
  a.v4 = addrNet;
  gw_endpoint_value v{};
  v.ifindex = ifindex;
  std::memcpy(v.peer_mac, peerMac, sizeof(v.peer_mac));
  std::memcpy(v.host_mac, hostMac, sizeof(v.host_mac));
  return mapUpdate(mapFd("gw_endpoint_v4"), &a, &v, "gw_endpoint_v4");
}

std::optional<gw_ct_entry> BpfLoader::ctLookup(const gw_ct_key& key) const {
  gw_ct_entry e{};
  if (bpf_map_lookup_elem(mapFd("gw_ct_v4"), &key, &e) != 0) {
    return std::nullopt;
  }
  return e;
}

Status BpfLoader::ctInsert(const gw_ct_key& key, const gw_ct_entry& entry) const {
  return mapUpdate(mapFd("gw_ct_v4"), &key, &entry, "gw_ct_v4");
}

void BpfLoader::ctDelete(const gw_ct_key& key) const {
  bpf_map_delete_elem(mapFd("gw_ct_v4"), &key);
}

size_t BpfLoader::ctCount() const {
  int fd = mapFd("gw_ct_v4");
  gw_ct_key k{}, next{};
  size_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    k = next;
    prev = &k;
  }
  return n;
}

gw_rule_stats BpfLoader::rule(uint32_t ruleId) const {
  std::vector<gw_rule_stats> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  gw_rule_stats sum{};
  if (bpf_map_lookup_elem(mapFd("gw_stats_rule"), &ruleId, v.data()) != 0) {
    return sum;
  }
  for (const auto& s : v) {
    sum.packets += s.packets;
    sum.bytes += s.bytes;
    sum.connections += s.connections;
    sum.drops += s.drops;
  }
  return sum;
}

int BpfLoader::runSockConnect4(bpf_sock_addr& ctx) const {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_out = &ctx,
              .ctx_size_in = sizeof(ctx), .ctx_size_out = sizeof(ctx));
  return bpf_prog_test_run_opts(objects_->progFd("gw_connect4"), &opts);
}

uint64_t BpfLoader::reason(gw_reason r) const {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  bool more = r >= GW_REASON_SLOTS;
  uint32_t idx = more ? r - GW_REASON_SLOTS : r;
  if (bpf_map_lookup_elem(mapFd(more ? "gw_stats_reason_more" : "gw_stats_reason"), &idx,
                          v.data()) != 0) {
    return 0;
  }
  uint64_t sum = 0;
  for (uint64_t x : v) {
    sum += x;
  }
  return sum;
}

gw_ct_key ctKey(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint8_t proto) {
  gw_ct_key k{};
  k.saddr.v4 = saddr;
  k.daddr.v4 = daddr;
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET;
  return k;
}

gw_ct_entry ctEntry(const gw_ct_key& to, const gw_ct_key& peer, uint8_t dir, uint8_t nat,
                    uint32_t ruleId) {
  gw_ct_entry e{};
  e.new_saddr = to.saddr;
  e.new_daddr = to.daddr;
  e.new_sport = to.sport;
  e.new_dport = to.dport;
  e.dir = dir;
  e.nat = nat;
  e.rule_id = ruleId;
  e.peer = peer;
  return e;
}

} // namespace gw::test
