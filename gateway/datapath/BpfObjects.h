// SPDX-License-Identifier: MIT
// The one BPF loader: opens the data path's skeletons and loads them with one shared set of
// maps (bpf_map__reuse_fd); with a pin dir, adopts the maps an earlier run pinned there or pins
// the new ones. Attaches nothing. gatewayd (BpfDatapath), the BPF unit tests and the benchmark
// (tests/bpf/BpfLoader) all load through it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"

struct bpf_program;

namespace gw {

struct BpfObjectsOptions {
  // Where the shared maps are pinned so a restart keeps flows and rules ("" = no pins).
  // Must be on a bpffs (ensureBpffs()).
  std::string pinDir;
  uint32_t ctEntries = 0; // gw_ct_v4's size (two entries a flow); 0 = GW_CT_MAX_ENTRIES
  // Also gw_passthrough (gw_pass_tc, gw_pass_xdp): the benchmark's do-nothing baseline.
  bool passthrough = false;
};

class BpfObjects {
public:
  static Result<std::unique_ptr<BpfObjects>> load(const BpfObjectsOptions& options);
  ~BpfObjects();
  BpfObjects(const BpfObjects&) = delete;
  BpfObjects& operator=(const BpfObjects&) = delete;

  // A shared map's fd by name (gw_ct_v4, ...), -1 if unknown. Owned here.
  int mapFd(std::string_view name) const;
  // A loaded program by its C name (gw_uplink_ingress, ...), nullptr if none.
  bpf_program* program(std::string_view name) const;
  int progFd(std::string_view name) const; // -1 if none
  // The socket hooks for a cgroup: every program of gw_sock_cgroup.
  std::vector<bpf_program*> sockPrograms() const;
  // A bpf_map iterator that writes gw_ct_v4's entry count (one __s64) without walking it;
  // nullptr when this kernel lacks bpf_map_sum_elem_count (6.6+).
  bpf_program* ctCounter() const;

  // Whether maps were adopted from pins of an earlier run.
  bool adopted() const { return adopted_; }
  uint32_t ctCapacity() const { return ctCapacity_; }
  const std::string& pinDir() const { return options_.pinDir; }

  // Unpins every gw_* entry of the pin dir (an earlier build's too), then removes the dir
  // unless it is itself the bpffs mount point. The maps live on while their fds are open.
  Status unpin();

private:
  struct Skeletons;

  explicit BpfObjects(BpfObjectsOptions options);
  Status open();
  Status adoptPins();
  Status loadAll();
  Status loadCounter();

  BpfObjectsOptions options_;
  std::unique_ptr<Skeletons> skels_;
  std::map<std::string, UniqueFd, std::less<>> maps_; // the shared maps, by name
  uint32_t ctCapacity_ = 0;
  bool adopted_ = false;
};

} // namespace gw
