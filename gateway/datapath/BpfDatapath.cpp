// SPDX-License-Identifier: MIT
#include "gateway/datapath/BpfDatapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/MapDump.h"
#include "gateway/datapath/Reasons.h"
#include "bpf/gw_abi.h"
#include "gw_endpoint_tc.skel.h"
#include "gw_sock_cgroup.skel.h"
#include "gw_uplink_tc.skel.h"
#include "gw_uplink_xdp.skel.h"

namespace gw {
namespace {

// The maps every object shares (the per-CPU scratch map stays private to each object).
constexpr std::array<std::string_view, 9> kSharedMaps = {
    "gw_ct_v4",        "gw_expose_v4",  "gw_masq_v4", "gw_local_v4",    "gw_config_map",
    "gw_stats_reason", "gw_stats_rule", "gw_frag_v4", "gw_endpoint_v4",
};

// Userspace-only map recording what we attached, pinned so a restart can tear it down.
constexpr const char* kAttachMapName = "gw_dp_attach";
constexpr uint32_t kAttachMapMax = 1024;

constexpr uint32_t kAttachTcIngress = 1 << 0;
constexpr uint32_t kAttachTcEgress = 1 << 1;
constexpr uint32_t kAttachQdiscOurs = 1 << 2; // we created clsact: we delete it
constexpr uint32_t kAttachXdp = 1 << 3;
constexpr uint32_t kAttachUplink = 1 << 4;

// A fixed tc handle/priority: re-attaching with BPF_TC_F_REPLACE swaps the program in place.
constexpr uint32_t kTcHandle = 0x6777;
constexpr uint32_t kTcPriority = 1;

// A half whose peer is gone may just be mid-insert on another CPU: leave it this long.
constexpr uint64_t kOrphanGraceNs = 2'000'000'000ULL;

template <class T, void (*Destroy)(T*)>
struct SkelDeleter {
  void operator()(T* skel) const { Destroy(skel); }
};
template <class T, void (*Destroy)(T*)>
using SkelPtr = std::unique_ptr<T, SkelDeleter<T, Destroy>>;

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

Result<UniqueFd> dupFd(int fd, const std::string& what) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return sysError("dup " + what);
  }
  return UniqueFd(copy);
}

bool pathExists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// A pinned map from an earlier run must look exactly like what this build's objects declare.
Status checkCompatible(int fd, const bpf_map* def, const std::string& path) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    return sysError("bpf_obj_get_info_by_fd " + path);
  }
  if (info.type != static_cast<uint32_t>(bpf_map__type(def)) ||
      info.key_size != bpf_map__key_size(def) || info.value_size != bpf_map__value_size(def) ||
      info.max_entries != bpf_map__max_entries(def) ||
      info.map_flags != bpf_map__map_flags(def)) {
    return fail("pinned map " + path +
                " does not match this build's layout (ABI change?): remove the pin dir to "
                "start fresh");
  }
  return {};
}

void v4Bytes(union gw_addr& out, const IpAddress& addr) {
  std::memset(&out, 0, sizeof(out));
  std::memcpy(out.bytes, addr.bytes.data(), 4);
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

// How XDP is attached on an interface right now (of the calling thread's netns).
XdpMode queryXdpMode(int ifindex) {
  bpf_xdp_query_opts opts{};
  opts.sz = sizeof(opts);
  if (bpf_xdp_query(ifindex, 0, &opts) != 0) {
    return XdpMode::Off;
  }
  switch (opts.attach_mode) {
  case XDP_ATTACHED_DRV:
  case XDP_ATTACHED_HW:
    return XdpMode::Native;
  case XDP_ATTACHED_SKB:
    return XdpMode::Generic;
  default:
    return XdpMode::Off;
  }
}


} // namespace

struct BpfDatapath::Objects {
  SkelPtr<gw_uplink_tc, gw_uplink_tc__destroy> uplinkTc;
  SkelPtr<gw_endpoint_tc, gw_endpoint_tc__destroy> endpointTc;
  SkelPtr<gw_uplink_xdp, gw_uplink_xdp__destroy> uplinkXdp;
  SkelPtr<gw_sock_cgroup, gw_sock_cgroup__destroy> sockCgroup;

  std::array<bpf_object*, 4> all() const {
    return {uplinkTc->obj, endpointTc->obj, uplinkXdp->obj, sockCgroup->obj};
  }
};

Result<XdpMode> parseXdpMode(std::string_view text) {
  if (text == "auto") {
    return XdpMode::Auto;
  }
  if (text == "native" || text == "drv") {
    return XdpMode::Native;
  }
  if (text == "generic" || text == "skb") {
    return XdpMode::Generic;
  }
  if (text == "off" || text == "none") {
    return XdpMode::Off;
  }
  return fail("unknown XDP mode '" + std::string(text) + "' (auto, native, generic, off)");
}

std::string_view toString(XdpMode mode) {
  switch (mode) {
  case XdpMode::Auto:
    return "auto";
  case XdpMode::Native:
    return "native";
  case XdpMode::Generic:
    return "generic";
  case XdpMode::Off:
    return "off";
  }
  return "?";
}

BpfDatapath::BpfDatapath(DatapathConfig config) : config_(std::move(config)) {}

BpfDatapath::~BpfDatapath() {
  std::lock_guard lock(mu_);
  if (!tornDown_ && config_.bpffsDir.empty()) {
    (void)teardownLocked();
  }
  // With pins, links and maps stay pinned and tc filters keep their programs: closing our fds
  // here detaches nothing.
}

Result<std::unique_ptr<BpfDatapath>> BpfDatapath::open(const DatapathConfig& config) {
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath(config));
  if (!config.bpffsDir.empty()) {
    if (auto ok = ensureBpffs(config.bpffsDir); !ok) {
      return std::unexpected(ok.error());
    }
  }
  auto ns = openCurrentNamespace();
  if (!ns) {
    return std::unexpected(ns.error());
  }
  dp->netns_ = std::move(*ns);
  if (auto ok = dp->load(); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = dp->loadAttachments(); !ok) {
    return std::unexpected(ok.error());
  }
  bool fib = config.fibRedirect;
  auto ok = dp->writeConfig([fib](gw_config& c) {
    if (c.snat_port_min == 0 || c.snat_port_max == 0) {
      c.snat_port_min = GW_SNAT_PORT_MIN;
      c.snat_port_max = GW_SNAT_PORT_MAX;
    }
    c.flags = fib ? (c.flags | GW_CFG_FIB_REDIRECT) : (c.flags & ~GW_CFG_FIB_REDIRECT);
  });
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return dp;
}

std::string BpfDatapath::pinPath(std::string_view name) const {
  return config_.bpffsDir + "/" + std::string(name);
}

Result<NetnsGuard> BpfDatapath::enterNetns() { return NetnsGuard::enter(netns_.get()); }

int BpfDatapath::mapFd(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = maps_.find(name);
  return it == maps_.end() ? -1 : it->second.get();
}

Status BpfDatapath::load() {
  objects_ = std::make_unique<Objects>();
  objects_->uplinkTc.reset(gw_uplink_tc__open());
  if (!objects_->uplinkTc) {
    return sysError("open BPF object uplink_tc");
  }
  objects_->endpointTc.reset(gw_endpoint_tc__open());
  if (!objects_->endpointTc) {
    return sysError("open BPF object endpoint_tc");
  }
  objects_->uplinkXdp.reset(gw_uplink_xdp__open());
  if (!objects_->uplinkXdp) {
    return sysError("open BPF object uplink_xdp");
  }
  objects_->sockCgroup.reset(gw_sock_cgroup__open());
  if (!objects_->sockCgroup) {
    return sysError("open BPF object sock_cgroup");
  }
  if (config_.ctEntries != 0) {
    for (bpf_object* obj : objects_->all()) {
      if (bpf_map* ct = bpf_object__find_map_by_name(obj, "gw_ct_v4"); ct != nullptr) {
        if (bpf_map__set_max_entries(ct, config_.ctEntries) != 0) {
          return sysError("size gw_ct_v4 to " + std::to_string(config_.ctEntries));
        }
      }
    }
  }
  bool pinning = !config_.bpffsDir.empty();
  auto shared = [](std::string_view name) {
    return std::find(kSharedMaps.begin(), kSharedMaps.end(), name) != kSharedMaps.end();
  };

  // Adopt the maps an earlier run pinned: flows, rules and counters survive the restart.
  if (pinning) {
    for (bpf_object* obj : objects_->all()) {
      bpf_map* map = nullptr;
      bpf_object__for_each_map(map, obj) {
        std::string name = bpf_map__name(map);
        std::string path = pinPath(name);
        if (!shared(name) || maps_.contains(name) || !pathExists(path)) {
          continue;
        }
        int fd = bpf_obj_get(path.c_str());
        if (fd < 0) {
          return sysError("bpf_obj_get " + path);
        }
        UniqueFd owned(fd);
        if (auto ok = checkCompatible(fd, map, path); !ok) {
          return ok;
        }
        maps_.emplace(name, std::move(owned));
        adopted_ = true;
      }
    }
  }

  // Load objects in turn; the first to declare a map creates it, the rest reuse its fd.
  auto loadOne = [&](bpf_object* obj, auto loadSkel, const char* what) -> Status {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, obj) {
      auto it = maps_.find(std::string_view(bpf_map__name(map)));
      if (it != maps_.end() && bpf_map__reuse_fd(map, it->second.get()) != 0) {
        return sysError(std::string("bpf_map__reuse_fd ") + bpf_map__name(map) + " in " + what);
      }
    }
    if (loadSkel() != 0) {
      return sysError(std::string("load BPF object ") + what);
    }
    bpf_object__for_each_map(map, obj) {
      std::string name = bpf_map__name(map);
      if (!shared(name) || maps_.contains(name)) {
        continue;
      }
      auto fd = dupFd(bpf_map__fd(map), name);
      if (!fd) {
        return std::unexpected(fd.error());
      }
      if (pinning) {
        std::string path = pinPath(name);
        if (bpf_obj_pin(fd->get(), path.c_str()) != 0) {
          return sysError("bpf_obj_pin " + path);
        }
      }
      maps_.emplace(name, std::move(*fd));
    }
    return {};
  };
  auto* o = objects_.get();
  if (auto ok = loadOne(o->uplinkTc->obj, [o] { return gw_uplink_tc__load(o->uplinkTc.get()); },
                        "uplink_tc");
      !ok) {
    return ok;
  }
  if (auto ok = loadOne(
          o->endpointTc->obj, [o] { return gw_endpoint_tc__load(o->endpointTc.get()); },
          "endpoint_tc");
      !ok) {
    return ok;
  }
  if (auto ok = loadOne(
          o->uplinkXdp->obj, [o] { return gw_uplink_xdp__load(o->uplinkXdp.get()); },
          "uplink_xdp");
      !ok) {
    return ok;
  }
  if (auto ok = loadOne(
          o->sockCgroup->obj, [o] { return gw_sock_cgroup__load(o->sockCgroup.get()); },
          "sock_cgroup");
      !ok) {
    return ok;
  }
  for (std::string_view name : kSharedMaps) {
    if (!maps_.contains(name)) {
      return fail("no BPF object declares map " + std::string(name));
    }
  }
  return {};
}

Status BpfDatapath::loadAttachments() {
  if (config_.bpffsDir.empty()) {
    return {};
  }
  std::string path = pinPath(kAttachMapName);
  if (pathExists(path)) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      return sysError("bpf_obj_get " + path);
    }
    attachMap_.reset(fd);
  } else {
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, kAttachMapName, sizeof(uint32_t),
                            sizeof(uint32_t), kAttachMapMax, nullptr);
    if (fd < 0) {
      return sysError("bpf_map_create gw_dp_attach");
    }
    attachMap_.reset(fd);
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      return sysError("bpf_obj_pin " + path);
    }
  }
  auto records = dumpMap<uint32_t, uint32_t>(attachMap_.get());
  if (!records) {
    return std::unexpected(records.error());
  }
  for (const auto& [ifindex, flags] : *records) {
    attachments_[static_cast<int>(ifindex)].flags = flags;
    if (flags & kAttachUplink) {
      uplinkIfindex_ = static_cast<int>(ifindex);
    }
    std::string linkPath = pinPath("link_xdp_" + std::to_string(ifindex));
    if ((flags & kAttachXdp) && pathExists(linkPath)) {
      int fd = bpf_obj_get(linkPath.c_str());
      if (fd < 0) {
        return sysError("bpf_obj_get " + linkPath);
      }
      xdpLinks_[static_cast<int>(ifindex)].reset(fd);
      if (auto guard = enterNetns(); guard) {
        uplinkXdp_ = queryXdpMode(static_cast<int>(ifindex));
      }
    }
  }
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, objects_->sockCgroup->obj) {
    std::string name = bpf_program__name(prog);
    std::string linkPath = pinPath("link_cg_" + name);
    if (!pathExists(linkPath)) {
      continue;
    }
    int fd = bpf_obj_get(linkPath.c_str());
    if (fd < 0) {
      return sysError("bpf_obj_get " + linkPath);
    }
    cgroupLinks_[name].reset(fd);
  }
  return {};
}

Status BpfDatapath::saveAttachment(int ifindex, const Attachment& record) {
  if (!attachMap_) {
    return {};
  }
  uint32_t key = static_cast<uint32_t>(ifindex);
  if (record.flags == 0) {
    if (bpf_map_delete_elem(attachMap_.get(), &key) != 0 && errno != ENOENT) {
      return sysError("delete attach record");
    }
    return {};
  }
  if (bpf_map_update_elem(attachMap_.get(), &key, &record.flags, BPF_ANY) != 0) {
    return sysError("save attach record");
  }
  return {};
}

Status BpfDatapath::writeConfig(const std::function<void(gw_config&)>& change) {
  int fd = maps_.at("gw_config_map").get();
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

Status BpfDatapath::attachTc(int ifindex, bool ingress, int progFd, Attachment& record) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  int err = bpf_tc_hook_create(&hook);
  if (err == 0) {
    record.flags |= kAttachQdiscOurs;
  } else if (err != -EEXIST) {
    return sysError("create clsact qdisc on ifindex " + std::to_string(ifindex));
  }
  // Save ownership before attaching: a failure below must still let teardown delete the qdisc.
  if (auto ok = saveAttachment(ifindex, record); !ok) {
    return ok;
  }
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  opts.prog_fd = progFd;
  opts.flags = BPF_TC_F_REPLACE;
  if (bpf_tc_attach(&hook, &opts) != 0) {
    return sysError(std::string("attach tc ") + (ingress ? "ingress" : "egress") +
                    " on ifindex " + std::to_string(ifindex));
  }
  record.flags |= ingress ? kAttachTcIngress : kAttachTcEgress;
  return saveAttachment(ifindex, record);
}

Status BpfDatapath::attachXdp(int ifindex, Attachment& record) {
  int progFd = bpf_program__fd(objects_->uplinkXdp->progs.gw_uplink_xdp);
  auto existing = xdpLinks_.find(ifindex);
  if (config_.xdp == XdpMode::Off) {
    uplinkXdp_ = XdpMode::Off;
    if (existing == xdpLinks_.end()) {
      return {};
    }
    // Configured off now but an earlier run attached one: take it away.
    bpf_link_detach(existing->second.get());
    xdpLinks_.erase(existing);
    ::unlink(pinPath("link_xdp_" + std::to_string(ifindex)).c_str());
    record.flags &= ~kAttachXdp;
    return saveAttachment(ifindex, record);
  }
  if (existing != xdpLinks_.end()) {
    // Restart: swap the program under the existing link (keeps its mode).
    if (bpf_link_update(existing->second.get(), progFd, nullptr) == 0) {
      uplinkXdp_ = queryXdpMode(ifindex);
      return {};
    }
    bpf_link_detach(existing->second.get());
    xdpLinks_.erase(existing);
    ::unlink(pinPath("link_xdp_" + std::to_string(ifindex)).c_str());
  }
  bpf_link_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.flags = config_.xdp == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  int fd = bpf_link_create(progFd, ifindex, BPF_XDP, &opts);
  if (fd < 0) {
    if (config_.xdp == XdpMode::Auto) {
      // The driver refused native XDP (or another program holds the hook): tc does it all.
      uplinkXdp_ = XdpMode::Off;
      record.flags &= ~kAttachXdp;
      return saveAttachment(ifindex, record);
    }
    return sysError("attach XDP (" + std::string(toString(config_.xdp)) + ") on ifindex " +
                    std::to_string(ifindex));
  }
  UniqueFd link(fd);
  if (!config_.bpffsDir.empty()) {
    std::string path = pinPath("link_xdp_" + std::to_string(ifindex));
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      auto err = sysError("bpf_obj_pin " + path);
      bpf_link_detach(fd);
      return err;
    }
  }
  xdpLinks_[ifindex] = std::move(link);
  uplinkXdp_ = queryXdpMode(ifindex);
  record.flags |= kAttachXdp;
  return saveAttachment(ifindex, record);
}

Status BpfDatapath::attachUplink(int ifindex, const IpAddress& uplinkAddr) {
  std::lock_guard lock(mu_);
  if (auto ok = requireV4(uplinkAddr, "uplink address"); !ok) {
    return ok;
  }
  if (uplinkIfindex_ != 0 && uplinkIfindex_ != ifindex) {
    return fail("uplink already attached to ifindex " + std::to_string(uplinkIfindex_));
  }
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  bool fib = config_.fibRedirect;
  auto cfgOk = writeConfig([&](gw_config& c) {
    c.uplink_ifindex = static_cast<uint32_t>(ifindex);
    v4Bytes(c.uplink_addr, uplinkAddr);
    c.flags = fib ? (c.flags | GW_CFG_FIB_REDIRECT) : (c.flags & ~GW_CFG_FIB_REDIRECT);
  });
  if (!cfgOk) {
    return cfgOk;
  }
  Attachment& record = attachments_[ifindex];
  record.flags |= kAttachUplink;
  uplinkIfindex_ = ifindex;
  auto* tc = objects_->uplinkTc.get();
  if (auto ok = attachTc(ifindex, true, bpf_program__fd(tc->progs.gw_uplink_ingress), record);
      !ok) {
    return ok;
  }
  if (auto ok = attachTc(ifindex, false, bpf_program__fd(tc->progs.gw_uplink_egress), record);
      !ok) {
    return ok;
  }
  return attachXdp(ifindex, record);
}

XdpMode BpfDatapath::uplinkXdpMode() const {
  std::lock_guard lock(mu_);
  return uplinkXdp_;
}

Status BpfDatapath::detachUplink() {
  std::lock_guard lock(mu_);
  if (uplinkIfindex_ == 0) {
    return {};
  }
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  auto ok = detachInterface(uplinkIfindex_);
  uplinkIfindex_ = 0;
  return ok;
}

Status BpfDatapath::attachEndpoint(int ifindex) {
  std::lock_guard lock(mu_);
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  Attachment& record = attachments_[ifindex];
  return attachTc(ifindex, true, bpf_program__fd(objects_->endpointTc->progs.gw_endpoint_ingress),
                  record);
}

Status BpfDatapath::detachEndpoint(int ifindex) {
  std::lock_guard lock(mu_);
  if (ifindex == uplinkIfindex_) {
    return fail("ifindex " + std::to_string(ifindex) + " is the uplink: use detachUplink");
  }
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return detachInterface(ifindex);
}

// Undoes every attachment recorded for an interface. An interface that is gone (its
// namespace deleted) took its hooks with it: ENODEV/ENOENT count as done.
Status BpfDatapath::detachInterface(int ifindex) {
  auto it = attachments_.find(ifindex);
  if (it == attachments_.end()) {
    return {};
  }
  Attachment& record = it->second;
  Status result;
  auto gone = [](int err) { return err == -ENOENT || err == -ENODEV || err == -EINVAL; };
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  for (bool ingress : {true, false}) {
    uint32_t bit = ingress ? kAttachTcIngress : kAttachTcEgress;
    if (!(record.flags & bit)) {
      continue;
    }
    hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    int err = bpf_tc_detach(&hook, &opts);
    if (err != 0 && !gone(err) && result) {
      result = sysError("detach tc on ifindex " + std::to_string(ifindex));
    }
    record.flags &= ~bit;
  }
  if (record.flags & kAttachQdiscOurs) {
    // We created clsact, so we remove it (and with it anything added to it since).
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int err = bpf_tc_hook_destroy(&hook);
    if (err != 0 && !gone(err) && result) {
      result = sysError("delete clsact qdisc on ifindex " + std::to_string(ifindex));
    }
    record.flags &= ~kAttachQdiscOurs;
  }
  auto link = xdpLinks_.find(ifindex);
  if (link != xdpLinks_.end()) {
    bpf_link_detach(link->second.get());
    xdpLinks_.erase(link);
  }
  if (!config_.bpffsDir.empty()) {
    ::unlink(pinPath("link_xdp_" + std::to_string(ifindex)).c_str());
  }
  if (ifindex == uplinkIfindex_) {
    uplinkXdp_ = XdpMode::Off;
  }
  record.flags = 0;
  auto saved = saveAttachment(ifindex, record);
  attachments_.erase(it);
  if (!result) {
    return result;
  }
  return saved;
}

Status BpfDatapath::addEndpoint(const IpAddress& addr, int hostIfindex,
                             std::array<uint8_t, 6> peerMac, std::array<uint8_t, 6> hostMac) {
  std::lock_guard lock(mu_);
  if (hostIfindex <= 0) {
    return fail("endpoint " + addr.str() + ": bad ifindex " + std::to_string(hostIfindex));
  }
  gw_endpoint_value value{};
  value.ifindex = static_cast<uint32_t>(hostIfindex);
  std::memcpy(value.peer_mac, peerMac.data(), peerMac.size());
  std::memcpy(value.host_mac, hostMac.data(), hostMac.size());
  return updateByAddr(maps_.at("gw_endpoint_v4").get(), addr, &value, "endpoint");
}

Status BpfDatapath::deleteEndpoint(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return deleteByAddr(maps_.at("gw_endpoint_v4").get(), addr, "endpoint");
}

Status BpfDatapath::setHairpinAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  if (auto ok = requireV4(addr, "hairpin address"); !ok) {
    return ok;
  }
  return writeConfig([&](gw_config& c) { v4Bytes(c.hairpin_addr, addr); });
}

Status BpfDatapath::addLocalAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  uint32_t one = 1;
  return updateByAddr(maps_.at("gw_local_v4").get(), addr, &one, "local address");
}

Status BpfDatapath::deleteLocalAddress(const IpAddress& addr) {
  std::lock_guard lock(mu_);
  return deleteByAddr(maps_.at("gw_local_v4").get(), addr, "local address");
}

namespace {

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

} // namespace

Status BpfDatapath::addExpose(const ExposeEntry& entry) {
  std::lock_guard lock(mu_);
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
  if (bpf_map_update_elem(maps_.at("gw_expose_v4").get(), &*key, &value, BPF_ANY) != 0) {
    return sysError("add expose port " + std::to_string(entry.hostPort));
  }
  return {};
}

Status BpfDatapath::deleteExpose(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort) {
  std::lock_guard lock(mu_);
  auto key = exposeKey(proto, hostAddr, hostPort);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (bpf_map_delete_elem(maps_.at("gw_expose_v4").get(), &*key) != 0) {
    return sysError("delete expose port " + std::to_string(hostPort));
  }
  // Flows through this port: DNAT flows whose first packet was addressed to it. Matching on the
  // port rather than the rule id keeps the other ports of a range rule alive.
  auto deleted = deleteFlowsIf([&](const Flow& f) {
    return (f.nat & GW_NAT_DNAT) && f.proto == proto && f.orig.dport == hostPort &&
           (hostAddr.family == 0 || f.orig.dst == hostAddr);
  });
  if (!deleted) {
    return std::unexpected(deleted.error());
  }
  return {};
}

Result<std::vector<ExposeEntry>> BpfDatapath::listExposes() {
  std::lock_guard lock(mu_);
  auto rows = dumpMap<gw_expose_key, gw_expose_value>(maps_.at("gw_expose_v4").get());
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

namespace {

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

} // namespace

Status BpfDatapath::addMasquerade(const IpPrefix& source, int outIfindex) {
  std::lock_guard lock(mu_);
  auto key = masqKey(source);
  if (!key) {
    return std::unexpected(key.error());
  }
  gw_masq_value value{};
  value.out_ifindex = static_cast<uint32_t>(outIfindex);
  if (bpf_map_update_elem(maps_.at("gw_masq_v4").get(), &*key, &value, BPF_ANY) != 0) {
    return sysError("add masquerade " + source.str());
  }
  return {};
}

Status BpfDatapath::deleteMasquerade(const IpPrefix& source) {
  std::lock_guard lock(mu_);
  auto key = masqKey(source);
  if (!key) {
    return std::unexpected(key.error());
  }
  if (bpf_map_delete_elem(maps_.at("gw_masq_v4").get(), &*key) != 0) {
    return sysError("delete masquerade " + source.str());
  }
  return {};
}

Status BpfDatapath::enableHostLocal(uint64_t netnsCookie, const std::string& cgroupPath) {
  std::lock_guard lock(mu_);
  std::string path = cgroupPath;
  if (path.empty()) {
    auto root = findCgroup2();
    if (!root) {
      return std::unexpected(root.error());
    }
    path = *root;
  }
  int cg = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) {
    return sysError("open cgroup " + path);
  }
  UniqueFd cgroup(cg);
  struct stat st{};
  if (::fstat(cg, &st) != 0) {
    return sysError("stat cgroup " + path);
  }
  // The hook runs for every socket in the cgroup, in every namespace: the cookie confines it.
  if (auto ok = writeConfig([&](gw_config& c) { c.netns_cookie = netnsCookie; }); !ok) {
    return ok;
  }
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, objects_->sockCgroup->obj) {
    std::string name = bpf_program__name(prog);
    int progFd = bpf_program__fd(prog);
    auto existing = cgroupLinks_.find(name);
    if (existing != cgroupLinks_.end()) {
      // From an earlier run (or call): swap the program if it sits on the same cgroup.
      bpf_link_info info{};
      uint32_t len = sizeof(info);
      bool same = bpf_obj_get_info_by_fd(existing->second.get(), &info, &len) == 0 &&
                  info.cgroup.cgroup_id == static_cast<uint64_t>(st.st_ino);
      if (same && bpf_link_update(existing->second.get(), progFd, nullptr) == 0) {
        continue;
      }
      bpf_link_detach(existing->second.get());
      cgroupLinks_.erase(existing);
      if (!config_.bpffsDir.empty()) {
        ::unlink(pinPath("link_cg_" + name).c_str());
      }
    }
    int fd = bpf_link_create(progFd, cg, bpf_program__expected_attach_type(prog), nullptr);
    if (fd < 0) {
      return sysError("attach " + name + " to cgroup " + path);
    }
    UniqueFd link(fd);
    if (!config_.bpffsDir.empty()) {
      std::string pin = pinPath("link_cg_" + name);
      if (bpf_obj_pin(fd, pin.c_str()) != 0) {
        auto err = sysError("bpf_obj_pin " + pin);
        bpf_link_detach(fd);
        return err;
      }
    }
    cgroupLinks_[name] = std::move(link);
  }
  return {};
}

Status BpfDatapath::disableHostLocal() {
  std::lock_guard lock(mu_);
  for (auto& [name, link] : cgroupLinks_) {
    // Detach explicitly: the link may also be pinned or held by another process.
    bpf_link_detach(link.get());
    if (!config_.bpffsDir.empty()) {
      ::unlink(pinPath("link_cg_" + name).c_str());
    }
  }
  cgroupLinks_.clear();
  return writeConfig([](gw_config& c) { c.netns_cookie = 0; });
}

namespace {

using CtRows = std::vector<std::pair<gw_ct_key, gw_ct_entry>>;

// The wire keys of one flow's entries (1, or 2 when both halves are there).
struct FlowKeys {
  std::array<gw_ct_key, 2> keys{};
  size_t count = 0;
  const gw_ct_key* begin() const { return keys.data(); }
  const gw_ct_key* end() const { return keys.data() + count; }
};

struct CtKeyHash {
  size_t operator()(const gw_ct_key& key) const {
    // FNV-1a over the key's bytes: keys are zeroed before use, padding included.
    const auto* p = reinterpret_cast<const uint8_t*>(&key);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof key; ++i) {
      h = (h ^ p[i]) * 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

struct CtKeyEqual {
  bool operator()(const gw_ct_key& a, const gw_ct_key& b) const {
    return std::memcmp(&a, &b, sizeof a) == 0;
  }
};

// Pairs the halves of each flow: one Flow per pair (from its orig half), one per orphan half.
// `halves` gets the wire keys of each flow's entries.
std::vector<Flow> pairFlows(const CtRows& rows, uint64_t now, std::vector<FlowKeys>* halves) {
  std::unordered_map<gw_ct_key, size_t, CtKeyHash, CtKeyEqual> index;
  index.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    index.emplace(rows[i].first, i);
  }
  std::vector<Flow> flows;
  flows.reserve(rows.size() / 2 + 1);
  for (const auto& [key, entry] : rows) {
    auto peer = index.find(entry.peer);
    const gw_ct_entry* peerEntry = peer == index.end() ? nullptr : &rows[peer->second].second;
    // A pair is listed once, from its orig half; a half alone is listed as an orphan.
    if (peerEntry != nullptr && entry.dir != GW_CT_DIR_ORIG) {
      continue;
    }
    flows.push_back(makeFlow(key, entry, peerEntry, now));
    if (halves != nullptr) {
      FlowKeys keys;
      keys.keys[keys.count++] = key;
      if (peerEntry != nullptr) {
        keys.keys[keys.count++] = entry.peer;
      }
      halves->push_back(keys);
    }
  }
  return flows;
}

// Reads the conntrack map once and deletes both halves of every flow `pred` picks.
Result<size_t> deleteFlowsWhere(int fd, uint64_t now,
                                const std::function<bool(const Flow&, const FlowKeys&)>& pred) {
  auto rows = dumpMap<gw_ct_key, gw_ct_entry>(fd);
  if (!rows) {
    return std::unexpected(rows.error());
  }
  std::vector<FlowKeys> halves;
  auto flows = pairFlows(*rows, now, &halves);
  size_t deleted = 0;
  for (size_t i = 0; i < flows.size(); ++i) {
    if (!pred(flows[i], halves[i])) {
      continue;
    }
    for (const auto& key : halves[i]) {
      // ENOENT: gone meanwhile (LRU eviction, or the data path re-created it).
      if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) {
        return sysError("delete conntrack entry");
      }
    }
    ++deleted;
  }
  return deleted;
}

} // namespace

Result<std::vector<Flow>> BpfDatapath::listFlows() {
  std::lock_guard lock(mu_);
  auto rows = dumpMap<gw_ct_key, gw_ct_entry>(maps_.at("gw_ct_v4").get());
  if (!rows) {
    return std::unexpected(rows.error());
  }
  return pairFlows(*rows, monotonicNs(), nullptr);
}

Result<size_t> BpfDatapath::deleteFlowsIf(const std::function<bool(const Flow&)>& pred) {
  return deleteFlowsWhere(maps_.at("gw_ct_v4").get(), monotonicNs(),
                          [&](const Flow& f, const FlowKeys&) { return pred(f); });
}

Result<size_t> BpfDatapath::deleteFlows(const FlowFilter& filter) {
  std::lock_guard lock(mu_);
  return deleteFlowsIf([&](const Flow& f) { return filter.matches(f); });
}

Result<size_t> BpfDatapath::flushFlows() {
  std::lock_guard lock(mu_);
  return deleteFlowsIf([](const Flow&) { return true; });
}

void BpfDatapath::setTimeouts(const CtTimeouts& timeouts) {
  std::lock_guard lock(mu_);
  config_.timeouts = timeouts;
}

Result<size_t> BpfDatapath::collectGarbage() {
  std::lock_guard lock(mu_);
  int fd = maps_.at("gw_ct_v4").get();
  uint64_t now = monotonicNs();
  return deleteFlowsWhere(fd, now, [&](const Flow& f, const FlowKeys& keys) {
    if (f.orphan) {
      return static_cast<uint64_t>(f.life.count()) >= kOrphanGraceNs;
    }
    auto timeout = flowTimeout(f.proto, f.state, config_.timeouts);
    if (f.age <= timeout) {
      return false;
    }
    // A packet may have arrived since the dump: re-read the halves before deleting.
    uint64_t timeoutNs = static_cast<uint64_t>(std::chrono::nanoseconds(timeout).count());
    for (const auto& key : keys) {
      gw_ct_entry current{};
      if (bpf_map_lookup_elem(fd, &key, &current) == 0 &&
          current.last_seen_ns + timeoutNs >= now) {
        return false;
      }
    }
    return true;
  });
}

Result<DatapathStats> BpfDatapath::stats() {
  std::lock_guard lock(mu_);
  DatapathStats out;
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return fail("libbpf_num_possible_cpus", -ncpus);
  }
  std::vector<uint64_t> perCpu(static_cast<size_t>(ncpus));
  int reasonFd = maps_.at("gw_stats_reason").get();
  for (uint32_t i = 0; i < GW_REASON_MAX; ++i) {
    if (bpf_map_lookup_elem(reasonFd, &i, perCpu.data()) != 0) {
      return sysError("read gw_stats_reason");
    }
    ReasonCount r{reasonName(i), 0};
    for (uint64_t v : perCpu) {
      r.packets += v;
    }
    out.reasons.push_back(r);
  }
  auto exposes = dumpMap<gw_expose_key, gw_expose_value>(maps_.at("gw_expose_v4").get());
  if (!exposes) {
    return std::unexpected(exposes.error());
  }
  std::set<uint32_t> ruleIds;
  for (const auto& [key, value] : *exposes) {
    if (value.rule_id != 0) {
      ruleIds.insert(value.rule_id);
    }
  }
  std::vector<gw_rule_stats> ruleCpu(static_cast<size_t>(ncpus));
  int ruleFd = maps_.at("gw_stats_rule").get();
  for (uint32_t id : ruleIds) {
    if (bpf_map_lookup_elem(ruleFd, &id, ruleCpu.data()) != 0) {
      return sysError("read gw_stats_rule " + std::to_string(id));
    }
    RuleStats r;
    r.ruleId = id;
    for (const auto& s : ruleCpu) {
      r.packets += s.packets;
      r.bytes += s.bytes;
      r.connections += s.connections;
      r.drops += s.drops;
    }
    out.rules.push_back(r);
  }
  auto ct = dumpMap<gw_ct_key, gw_ct_entry>(maps_.at("gw_ct_v4").get());
  if (!ct) {
    return std::unexpected(ct.error());
  }
  out.ctEntries = ct->size();
  out.ctCapacity = config_.ctEntries != 0 ? config_.ctEntries : GW_CT_MAX_ENTRIES;
  return out;
}

Status BpfDatapath::resetRuleStats(uint32_t ruleId) {
  std::lock_guard lock(mu_);
  if (ruleId >= GW_RULE_MAX) {
    return fail("reset rule stats: rule id " + std::to_string(ruleId) + " >= " +
                std::to_string(GW_RULE_MAX));
  }
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return fail("libbpf_num_possible_cpus", -ncpus);
  }
  // A per-CPU array update writes every CPU's slot from one buffer.
  std::vector<gw_rule_stats> zeroes(static_cast<size_t>(ncpus));
  if (bpf_map_update_elem(maps_.at("gw_stats_rule").get(), &ruleId, zeroes.data(), BPF_ANY) !=
      0) {
    return sysError("reset gw_stats_rule " + std::to_string(ruleId));
  }
  return {};
}

Status BpfDatapath::teardown() {
  std::lock_guard lock(mu_);
  return teardownLocked();
}

Status BpfDatapath::teardownLocked() {
  if (tornDown_) {
    return {};
  }
  Status result;
  {
    auto guard = enterNetns();
    if (!guard) {
      return std::unexpected(guard.error());
    }
    std::vector<int> ifindexes;
    for (const auto& [ifindex, record] : attachments_) {
      ifindexes.push_back(ifindex);
    }
    for (int ifindex : ifindexes) {
      if (auto ok = detachInterface(ifindex); !ok && result) {
        result = ok;
      }
    }
  }
  uplinkIfindex_ = 0;
  for (auto& [name, link] : cgroupLinks_) {
    bpf_link_detach(link.get());
  }
  cgroupLinks_.clear();
  xdpLinks_.clear();
  if (!config_.bpffsDir.empty()) {
    // Everything we pin lives directly in the dir: maps, the attach record, links.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(config_.bpffsDir, ec)) {
      std::string name = entry.path().filename();
      bool ours = name.starts_with("gw_") || name.starts_with("link_xdp_") ||
                  name.starts_with("link_cg_");
      if (ours && ::unlink(entry.path().c_str()) != 0 && result) {
        result = sysError("unpin " + entry.path().string());
      }
    }
    // A dir that is itself the bpffs mount point stays (EBUSY): whoever mounted it unmounts.
    if (::rmdir(config_.bpffsDir.c_str()) != 0 && errno != EBUSY && errno != ENOENT &&
        errno != ENOTEMPTY && result) {
      result = sysError("rmdir " + config_.bpffsDir);
    }
  }
  attachMap_.reset();
  tornDown_ = true;
  return result;
}

} // namespace gw
