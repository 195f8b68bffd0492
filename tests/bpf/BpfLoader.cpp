// SPDX-License-Identifier: MIT
#include "tests/bpf/BpfLoader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "gw_endpoint_tc.skel.h"
#include "gw_passthrough.skel.h"
#include "gw_sock_cgroup.skel.h"
#include "gw_uplink_tc.skel.h"
#include "gw_uplink_xdp.skel.h"

namespace gw::test {
namespace {

template <class T, void (*Destroy)(T*)>
struct SkelDeleter {
  void operator()(T* skel) const { Destroy(skel); }
};
template <class T, void (*Destroy)(T*)>
using SkelPtr = std::unique_ptr<T, SkelDeleter<T, Destroy>>;

// Points every gw_* map of `obj` at the one `owner` created (as gatewayd shares them).
int shareMaps(bpf_object* owner, bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    bpf_map* src = std::strncmp(name, "gw_", 3) == 0
                       ? bpf_object__find_map_by_name(owner, name)
                       : nullptr;
    if (src) {
      if (int err = bpf_map__reuse_fd(map, bpf_map__fd(src)); err) {
        return err;
      }
    }
  }
  return 0;
}

// open + (share maps or size conntrack) + load; libbpf returns -errno and sets errno.
template <class Skel, void (*Destroy)(Skel*)>
Result<SkelPtr<Skel, Destroy>> openLoad(Skel* (*open)(), int (*load)(Skel*), bpf_object* owner,
                                        uint32_t ctMaxEntries, const char* name) {
  SkelPtr<Skel, Destroy> s(open());
  if (!s) {
    return sysError(std::string("open ") + name);
  }
  int err = 0;
  if (owner) {
    err = shareMaps(owner, s->obj);
  } else if (ctMaxEntries) {
    err = bpf_map__set_max_entries(bpf_object__find_map_by_name(s->obj, "gw_ct_v4"),
                                   ctMaxEntries);
  }
  if (!err) {
    err = load(s.get());
  }
  if (err) {
    errno = -err;
    return sysError(std::string("load ") + name);
  }
  return s;
}

Status mapUpdate(int fd, const void* key, const void* value, const char* what) {
  if (bpf_map_update_elem(fd, key, value, BPF_ANY) != 0) {
    return sysError(std::string("update ") + what);
  }
  return {};
}

} // namespace

struct BpfLoader::Skels {
  SkelPtr<gw_uplink_tc, gw_uplink_tc__destroy> uplink;
  SkelPtr<gw_endpoint_tc, gw_endpoint_tc__destroy> endpoint;
  SkelPtr<gw_uplink_xdp, gw_uplink_xdp__destroy> xdp;
  SkelPtr<gw_passthrough, gw_passthrough__destroy> pass;
  SkelPtr<gw_sock_cgroup, gw_sock_cgroup__destroy> sock;
};

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

BpfLoader::BpfLoader() : skels_(std::make_unique<Skels>()) {}
BpfLoader::~BpfLoader() = default;

Result<std::unique_ptr<BpfLoader>> BpfLoader::load(uint32_t ctMaxEntries) {
  std::unique_ptr<BpfLoader> l(new BpfLoader());
  auto up = openLoad<gw_uplink_tc, gw_uplink_tc__destroy>(
      gw_uplink_tc__open, gw_uplink_tc__load, nullptr, ctMaxEntries, "uplink_tc");
  if (!up) {
    return std::unexpected(up.error());
  }
  l->skels_->uplink = std::move(*up);
  bpf_object* owner = l->skels_->uplink->obj;
  auto ep = openLoad<gw_endpoint_tc, gw_endpoint_tc__destroy>(
      gw_endpoint_tc__open, gw_endpoint_tc__load, owner, 0, "endpoint_tc");
  if (!ep) {
    return std::unexpected(ep.error());
  }
  l->skels_->endpoint = std::move(*ep);
  auto xdp = openLoad<gw_uplink_xdp, gw_uplink_xdp__destroy>(
      gw_uplink_xdp__open, gw_uplink_xdp__load, owner, 0, "uplink_xdp");
  if (!xdp) {
    return std::unexpected(xdp.error());
  }
  l->skels_->xdp = std::move(*xdp);
  auto pass = openLoad<gw_passthrough, gw_passthrough__destroy>(
      gw_passthrough__open, gw_passthrough__load, owner, 0, "passthrough");
  if (!pass) {
    return std::unexpected(pass.error());
  }
  l->skels_->pass = std::move(*pass);
  auto sock = openLoad<gw_sock_cgroup, gw_sock_cgroup__destroy>(
      gw_sock_cgroup__open, gw_sock_cgroup__load, owner, 0, "sock_cgroup");
  if (!sock) {
    return std::unexpected(sock.error());
  }
  l->skels_->sock = std::move(*sock);
  return l;
}

Result<RunResult> BpfLoader::run(Prog prog, const Bytes& frame, uint32_t repeat) const {
  bpf_program* p = nullptr;
  switch (prog) {
  case Prog::UplinkIngress:
    p = skels_->uplink->progs.gw_uplink_ingress;
    break;
  case Prog::UplinkEgress:
    p = skels_->uplink->progs.gw_uplink_egress;
    break;
  case Prog::EndpointIngress:
    p = skels_->endpoint->progs.gw_endpoint_ingress;
    break;
  case Prog::UplinkXdp:
    p = skels_->xdp->progs.gw_uplink_xdp;
    break;
  case Prog::PassTc:
    p = skels_->pass->progs.gw_pass_tc;
    break;
  case Prog::PassXdp:
    p = skels_->pass->progs.gw_pass_xdp;
    break;
  }
  RunResult r;
  r.out.resize(frame.size() + 512);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.out.size()),
              .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(bpf_program__fd(p), &opts) != 0) {
    return sysError(std::string("BPF_PROG_TEST_RUN ") + progName(prog));
  }
  r.verdict = opts.retval;
  r.durationNs = opts.duration;
  r.out.resize(opts.data_size_out);
  return r;
}

int BpfLoader::mapFd(const char* name) const {
  return bpf_object__find_map_fd_by_name(skels_->uplink->obj, name);
}

uint32_t BpfLoader::ctMaxEntries() const {
  return bpf_map__max_entries(bpf_object__find_map_by_name(skels_->uplink->obj, "gw_ct_v4"));
}

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

Status BpfLoader::addMasq(uint32_t prefixNet, uint32_t bits, uint32_t outIfindex) const {
  gw_masq_key k{};
  k.prefixlen = GW_MASQ_PREFIXLEN(bits);
  k.family = GW_AF_INET;
  k.addr.v4 = prefixNet;
  gw_masq_value v{};
  v.out_ifindex = outIfindex;
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
  return bpf_prog_test_run_opts(bpf_program__fd(skels_->sock->progs.gw_connect4), &opts);
}

uint64_t BpfLoader::reason(gw_reason r) const {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  uint32_t idx = r;
  if (bpf_map_lookup_elem(mapFd("gw_stats_reason"), &idx, v.data()) != 0) {
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
