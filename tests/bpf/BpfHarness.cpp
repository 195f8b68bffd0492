// SPDX-License-Identifier: MIT
#include "BpfHarness.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "gw_endpoint_tc.skel.h"
#include "gw_passthrough.skel.h"
#include "gw_sock_cgroup.skel.h"
#include "gw_uplink_tc.skel.h"
#include "gw_uplink_xdp.skel.h"

namespace gw::test {

namespace {

void check(int err, const char* what) {
  if (err) {
    throw std::runtime_error(std::string(what) + ": " + std::strerror(-err));
  }
}

// Points every gw_* map of `obj` at the one `owner` already created.
int shareMaps(bpf_object* owner, bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    if (std::strncmp(name, "gw_", 3) != 0) {
      continue;
    }
    bpf_map* src = bpf_object__find_map_by_name(owner, name);
    if (!src) {
      continue;
    }
    int err = bpf_map__reuse_fd(map, bpf_map__fd(src));
    if (err) {
      return err;
    }
  }
  return 0;
}

std::string errText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err < 0 ? -err : err);
}

template <typename Skel>
Skel* loadShared(Skel* (*open)(), int (*load)(Skel*), void (*destroy)(Skel*),
                 bpf_object* owner, const char* name, std::string& error) {
  Skel* s = open();
  if (!s) {
    error = errText(name, errno);
    return nullptr;
  }
  int err = owner ? shareMaps(owner, s->obj) : 0;
  if (!err) {
    err = load(s);
  }
  if (err) {
    error = errText(name, err);
    destroy(s);
    return nullptr;
  }
  return s;
}

} // namespace

BpfHarness::BpfHarness() {
  uplink_ = loadShared(gw_uplink_tc__open, gw_uplink_tc__load, gw_uplink_tc__destroy, nullptr,
                       "uplink_tc", loadError_);
  if (!uplink_) {
    return;
  }
  bpf_object* owner = uplink_->obj;
  endpoint_ = loadShared(gw_endpoint_tc__open, gw_endpoint_tc__load, gw_endpoint_tc__destroy,
                         owner, "endpoint_tc", loadError_);
  xdp_ = loadShared(gw_uplink_xdp__open, gw_uplink_xdp__load, gw_uplink_xdp__destroy, owner,
                    "uplink_xdp", loadError_);
  pass_ = loadShared(gw_passthrough__open, gw_passthrough__load, gw_passthrough__destroy,
                     owner, "passthrough", loadError_);
  sock_ = loadShared(gw_sock_cgroup__open, gw_sock_cgroup__load, gw_sock_cgroup__destroy,
                     owner, "sock_cgroup", loadError_);
}

BpfHarness::~BpfHarness() {
  gw_sock_cgroup__destroy(sock_);
  gw_passthrough__destroy(pass_);
  gw_uplink_xdp__destroy(xdp_);
  gw_endpoint_tc__destroy(endpoint_);
  gw_uplink_tc__destroy(uplink_);
}

RunResult BpfHarness::run(Prog prog, const Bytes& frame, int repeat) {
  int fd = -1;
  switch (prog) {
  case Prog::UplinkIngress:
    fd = bpf_program__fd(uplink_->progs.gw_uplink_ingress);
    break;
  case Prog::UplinkEgress:
    fd = bpf_program__fd(uplink_->progs.gw_uplink_egress);
    break;
  case Prog::EndpointIngress:
    fd = bpf_program__fd(endpoint_->progs.gw_endpoint_ingress);
    break;
  case Prog::UplinkXdp:
    fd = bpf_program__fd(xdp_->progs.gw_uplink_xdp);
    break;
  case Prog::PassTc:
    fd = bpf_program__fd(pass_->progs.gw_pass_tc);
    break;
  case Prog::PassXdp:
    fd = bpf_program__fd(pass_->progs.gw_pass_xdp);
    break;
  }
  RunResult r;
  r.out.resize(frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_out = r.out.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.out.size()), .repeat = repeat);
  r.err = bpf_prog_test_run_opts(fd, &opts);
  r.verdict = opts.retval;
  r.durationNs = opts.duration;
  r.out.resize(r.err ? 0 : opts.data_size_out);
  return r;
}

int BpfHarness::mapFd(const char* name) {
  return bpf_object__find_map_fd_by_name(uplink_->obj, name);
}

int BpfHarness::runSockConnect4(bpf_sock_addr& ctx) {
  if (!sock_) {
    return -ENOENT;
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_out = &ctx,
              .ctx_size_in = sizeof(ctx), .ctx_size_out = sizeof(ctx));
  return bpf_prog_test_run_opts(bpf_program__fd(sock_->progs.gw_connect4), &opts);
}

void BpfHarness::setConfig(const gw_config& cfg) {
  uint32_t zero = 0;
  check(bpf_map_update_elem(mapFd("gw_config_map"), &zero, &cfg, BPF_ANY), "update gw_config_map");
}

void BpfHarness::addLocal(uint32_t addrNet) {
  gw_addr a{};
  a.v4 = addrNet;
  uint32_t one = 1;
  check(bpf_map_update_elem(mapFd("gw_local_v4"), &a, &one, BPF_ANY), "update gw_local_v4");
}

void BpfHarness::addExpose(uint32_t daddrNet, uint16_t dport, uint8_t proto, uint32_t targetNet,
                           uint16_t targetPort, uint32_t ruleId) {
  gw_expose_key k{};
  k.daddr.v4 = daddrNet;
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET;
  gw_expose_value v{};
  v.target_addr.v4 = targetNet;
  v.target_port = htons(targetPort);
  v.rule_id = ruleId;
  check(bpf_map_update_elem(mapFd("gw_expose_v4"), &k, &v, BPF_ANY), "update gw_expose_v4");
}

void BpfHarness::addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex) {
  gw_masq_key k{};
  k.prefixlen = GW_MASQ_PREFIXLEN(bits);
  k.family = GW_AF_INET;
  k.addr.v4 = prefixNet;
  gw_masq_value v{.out_ifindex = outIfindex, .flags = 0};
  check(bpf_map_update_elem(mapFd("gw_masq_v4"), &k, &v, BPF_ANY), "update gw_masq_v4");
}

void BpfHarness::addEndpoint(uint32_t addrNet, uint32_t ifindex, const uint8_t (&peerMac)[6],
                             const uint8_t (&hostMac)[6]) {
  gw_addr a{};
  a.v4 = addrNet;
  gw_endpoint_value v{};
  v.ifindex = ifindex;
  std::memcpy(v.peer_mac, peerMac, sizeof(v.peer_mac));
  std::memcpy(v.host_mac, hostMac, sizeof(v.host_mac));
  check(bpf_map_update_elem(mapFd("gw_endpoint_v4"), &a, &v, BPF_ANY), "update gw_endpoint_v4");
}

gw_ct_key BpfHarness::key(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                          uint8_t proto) {
  gw_ct_key k{};
  k.saddr.v4 = saddr;
  k.daddr.v4 = daddr;
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET;
  return k;
}

std::optional<gw_ct_entry> BpfHarness::ct(const gw_ct_key& k) {
  gw_ct_entry e{};
  if (bpf_map_lookup_elem(mapFd("gw_ct_v4"), &k, &e)) {
    return std::nullopt;
  }
  return e;
}

void BpfHarness::ctInsert(const gw_ct_key& k, const gw_ct_entry& e) {
  check(bpf_map_update_elem(mapFd("gw_ct_v4"), &k, &e, BPF_ANY), "update gw_ct_v4");
}

void BpfHarness::ctDelete(const gw_ct_key& k) { bpf_map_delete_elem(mapFd("gw_ct_v4"), &k); }

size_t BpfHarness::ctCount() {
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

uint64_t BpfHarness::reason(gw_reason r) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> v(static_cast<size_t>(ncpu));
  uint32_t idx = r;
  if (bpf_map_lookup_elem(mapFd("gw_stats_reason"), &idx, v.data())) {
    return 0;
  }
  uint64_t sum = 0;
  for (auto x : v) {
    sum += x;
  }
  return sum;
}

gw_rule_stats BpfHarness::rule(uint32_t ruleId) {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<gw_rule_stats> v(static_cast<size_t>(ncpu));
  gw_rule_stats sum{};
  if (bpf_map_lookup_elem(mapFd("gw_stats_rule"), &ruleId, v.data())) {
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

} // namespace gw::test
