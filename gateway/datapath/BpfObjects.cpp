// SPDX-License-Identifier: MIT
#include "gateway/datapath/BpfObjects.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "base/Log.h"
#include "gateway/datapath/Bpffs.h"
#include "bpf/gw_abi.h"
#include "gw_endpoint_tc.skel.h"
#include "gw_map_count.skel.h"
#include "gw_passthrough.skel.h"
#include "gw_sock_cgroup.skel.h"
#include "gw_uplink_tc.skel.h"
#include "gw_uplink_xdp.skel.h"

namespace gw {
namespace {

// The maps every object shares (the per-CPU scratch map stays private to each object).
constexpr std::array<std::string_view, 23> kSharedMaps = {
    "gw_ct_v4",       "gw_expose_v4",    "gw_masq_v4",     "gw_local_v4",
    "gw_config_map",  "gw_stats_reason", "gw_stats_rule",  "gw_frag_v4",
    "gw_endpoint_v4", "gw_snat_v4",      "gw_snat_rev_v4", "gw_stats_reason_more",
    "gw_frag_held",   "gw_frag_wait",    "gw_frag_events", "gw_config6_map",
    "gw_local_v6",    "gw_endpoint_v6",  "gw_snat_v6",     "gw_snat_rev_v6",
    "gw_frag_v6",     "gw_frag_held6",   "gw_frag_wait6",
};

bool isShared(std::string_view name) {
  return std::find(kSharedMaps.begin(), kSharedMaps.end(), name) != kSharedMaps.end();
}

template <class T, void (*Destroy)(T*)>
struct SkelDeleter {
  void operator()(T* skel) const { Destroy(skel); }
};
template <class T, void (*Destroy)(T*)>
using SkelPtr = std::unique_ptr<T, SkelDeleter<T, Destroy>>;

Result<UniqueFd> dupFd(int fd, const std::string& what) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return sysError("dup " + what);
  }
  return UniqueFd(copy);
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

} // namespace

struct BpfObjects::Skeletons {
  SkelPtr<gw_uplink_tc, gw_uplink_tc__destroy> uplinkTc;
  SkelPtr<gw_endpoint_tc, gw_endpoint_tc__destroy> endpointTc;
  SkelPtr<gw_uplink_xdp, gw_uplink_xdp__destroy> uplinkXdp;
  SkelPtr<gw_sock_cgroup, gw_sock_cgroup__destroy> sockCgroup;
  SkelPtr<gw_passthrough, gw_passthrough__destroy> passthrough;
  SkelPtr<gw_map_count, gw_map_count__destroy> mapCount; // optional: see ctCounter()

  // Every opened object in load order: the first to declare a shared map creates it.
  struct Entry {
    bpf_object* obj = nullptr;
    bpf_object_skeleton* skeleton = nullptr;
    const char* what = "";
  };
  std::vector<Entry> all;

  template <class Skel, void (*Destroy)(Skel*)>
  Status open(SkelPtr<Skel, Destroy>& out, Skel* (*openSkel)(), const char* what) {
    out.reset(openSkel());
    if (!out) {
      return sysError(std::string("open BPF object ") + what);
    }
    all.push_back({out->obj, out->skeleton, what});
    return {};
  }
};

BpfObjects::BpfObjects(BpfObjectsOptions options)
    : options_(std::move(options)), skels_(std::make_unique<Skeletons>()) {}

BpfObjects::~BpfObjects() = default;

Result<std::unique_ptr<BpfObjects>> BpfObjects::load(const BpfObjectsOptions& options) {
  std::unique_ptr<BpfObjects> objects(new BpfObjects(options));
  if (auto ok = objects->open(); !ok) {
    return std::unexpected(ok.error());
  }
  if (!options.pinDir.empty()) {
    if (auto ok = objects->adoptPins(); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (auto ok = objects->loadAll(); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = objects->loadCounter(); !ok) {
    objects->skels_->mapCount.reset();
    log::warn("conntrack entries will be counted by walking the map: ", ok.error().str());
  }
  return objects;
}

Status BpfObjects::open() {
  Skeletons& s = *skels_;
  if (auto ok = s.open(s.uplinkTc, gw_uplink_tc__open, "uplink_tc"); !ok) {
    return ok;
  }
  if (auto ok = s.open(s.endpointTc, gw_endpoint_tc__open, "endpoint_tc"); !ok) {
    return ok;
  }
  if (auto ok = s.open(s.uplinkXdp, gw_uplink_xdp__open, "uplink_xdp"); !ok) {
    return ok;
  }
  if (auto ok = s.open(s.sockCgroup, gw_sock_cgroup__open, "sock_cgroup"); !ok) {
    return ok;
  }
  if (options_.passthrough) {
    if (auto ok = s.open(s.passthrough, gw_passthrough__open, "passthrough"); !ok) {
      return ok;
    }
  }
  ctCapacity_ = options_.ctEntries != 0 ? options_.ctEntries : GW_CT_MAX_ENTRIES;
  if (options_.ctEntries == 0) {
    return {};
  }
  for (const auto& entry : s.all) {
    if (bpf_map* ct = bpf_object__find_map_by_name(entry.obj, "gw_ct_v4"); ct != nullptr) {
      if (bpf_map__set_max_entries(ct, options_.ctEntries) != 0) {
        return sysError("size gw_ct_v4 to " + std::to_string(options_.ctEntries));
      }
    }
  }
  return {};
}

// Adopts the maps an earlier run pinned: flows, rules and counters survive the restart.
Status BpfObjects::adoptPins() {
  for (const auto& entry : skels_->all) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, entry.obj) {
      std::string name = bpf_map__name(map);
      std::string path = pinPath(options_.pinDir, name);
      if (!isShared(name) || maps_.contains(name) || !pathExists(path)) {
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
  return {};
}

// Loads the objects in turn; the first to declare a map creates (and pins) it, the rest reuse
// its fd.
Status BpfObjects::loadAll() {
  for (const auto& entry : skels_->all) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, entry.obj) {
      auto it = maps_.find(std::string_view(bpf_map__name(map)));
      if (it != maps_.end() && bpf_map__reuse_fd(map, it->second.get()) != 0) {
        return sysError(std::string("bpf_map__reuse_fd ") + bpf_map__name(map) + " in " +
                        entry.what);
      }
    }
    if (int err = bpf_object__load_skeleton(entry.skeleton); err != 0) {
      errno = -err;
      return sysError(std::string("load BPF object ") + entry.what);
    }
    bpf_object__for_each_map(map, entry.obj) {
      std::string name = bpf_map__name(map);
      if (!isShared(name) || maps_.contains(name)) {
        continue;
      }
      auto fd = dupFd(bpf_map__fd(map), name);
      if (!fd) {
        return std::unexpected(fd.error());
      }
      if (!options_.pinDir.empty()) {
        std::string path = pinPath(options_.pinDir, name);
        if (bpf_obj_pin(fd->get(), path.c_str()) != 0) {
          return sysError("bpf_obj_pin " + path);
        }
      }
      maps_.emplace(name, std::move(*fd));
    }
  }
  for (std::string_view name : kSharedMaps) {
    if (!maps_.contains(name)) {
      return fail("no BPF object declares map " + std::string(name));
    }
  }
  return {};
}

// Loaded last and on its own: it shares no map, and a kernel without the kfunc only loses it.
Status BpfObjects::loadCounter() {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(mapFd("gw_ct_v4"), &info, &len) != 0) {
    return sysError("bpf_obj_get_info_by_fd gw_ct_v4");
  }
  Skeletons& s = *skels_;
  s.mapCount.reset(gw_map_count__open());
  if (!s.mapCount) {
    return sysError("open BPF object map_count");
  }
  s.mapCount->rodata->gw_count_map_id = info.id;
  if (int err = gw_map_count__load(s.mapCount.get()); err != 0) {
    errno = -err;
    return sysError("load BPF object map_count");
  }
  return {};
}

bpf_program* BpfObjects::ctCounter() const {
  return skels_->mapCount ? skels_->mapCount->progs.gw_count_entries : nullptr;
}

int BpfObjects::mapFd(std::string_view name) const {
  auto it = maps_.find(name);
  return it == maps_.end() ? -1 : it->second.get();
}

bpf_program* BpfObjects::program(std::string_view name) const {
  std::string wanted(name);
  for (const auto& entry : skels_->all) {
    if (bpf_program* prog = bpf_object__find_program_by_name(entry.obj, wanted.c_str())) {
      return prog;
    }
  }
  return nullptr;
}

int BpfObjects::progFd(std::string_view name) const {
  bpf_program* prog = program(name);
  return prog == nullptr ? -1 : bpf_program__fd(prog);
}

std::vector<bpf_program*> BpfObjects::sockPrograms() const {
  std::vector<bpf_program*> out;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skels_->sockCgroup->obj) {
    out.push_back(prog);
  }
  return out;
}

Status BpfObjects::unpin() {
  if (options_.pinDir.empty()) {
    return {};
  }
  Status result = removePins(options_.pinDir, {"gw_"});
  // A dir that is itself the bpffs mount point stays (EBUSY): whoever mounted it unmounts.
  if (::rmdir(options_.pinDir.c_str()) != 0 && errno != EBUSY && errno != ENOENT &&
      errno != ENOTEMPTY && result) {
    result = sysError("rmdir " + options_.pinDir);
  }
  return result;
}

} // namespace gw
