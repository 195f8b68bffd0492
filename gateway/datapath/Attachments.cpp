// SPDX-License-Identifier: MIT
#include "gateway/datapath/Attachments.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/MapDump.h"
#include "base/Log.h"

namespace gw {
namespace {

// Userspace-only map recording what we attached, pinned so a restart can tear it down.
constexpr const char* kRecordMapName = "gw_dp_attach";
constexpr uint32_t kRecordMapMax = 1024;

constexpr uint32_t kAttachTcIngress = 1 << 0;
constexpr uint32_t kAttachTcEgress = 1 << 1;
constexpr uint32_t kAttachQdiscOurs = 1 << 2; // we created clsact: we delete it
constexpr uint32_t kAttachXdp = 1 << 3;
constexpr uint32_t kAttachUplink = 1 << 4;
constexpr uint32_t kAttachTcxIngress = 1 << 5;
constexpr uint32_t kAttachTcxEgress = 1 << 6;

// From linux/bpf.h of 6.6; Debian 12's headers (6.1) and libbpf 1.1 lack them. libbpf's
// bpf_link_create passes an attach type it does not know on with its flags only.
constexpr auto kBpfTcxIngress = static_cast<bpf_attach_type>(46);
constexpr auto kBpfTcxEgress = static_cast<bpf_attach_type>(47);

// A fixed tc handle/priority: re-attaching with BPF_TC_F_REPLACE swaps the program in place.
constexpr uint32_t kTcHandle = 0x6777;
constexpr uint32_t kTcPriority = 1;

std::string xdpLinkName(int ifindex) { return "link_xdp_" + std::to_string(ifindex); }
std::string cgroupLinkName(const std::string& prog) { return "link_cg_" + prog; }
std::string tcxLinkName(int ifindex, bool ingress) {
  return std::string(ingress ? "link_tcx_in_" : "link_tcx_eg_") + std::to_string(ifindex);
}
uint32_t tcxBit(bool ingress) { return ingress ? kAttachTcxIngress : kAttachTcxEgress; }
uint32_t clsactBit(bool ingress) { return ingress ? kAttachTcIngress : kAttachTcEgress; }
const char* direction(bool ingress) { return ingress ? "ingress" : "egress"; }

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

Result<std::unique_ptr<Attachments>> Attachments::open(const BpfObjects& objects, XdpMode xdp,
                                                       TcHook tc) {
  std::unique_ptr<Attachments> a(new Attachments(objects, xdp, tc));
  auto ns = openCurrentNamespace();
  if (!ns) {
    return std::unexpected(ns.error());
  }
  a->netns_ = std::move(*ns);
  if (a->pinning()) {
    if (auto ok = a->loadRecord(); !ok) {
      return std::unexpected(ok.error());
    }
  }
  return a;
}

bool Attachments::pinning() const { return !objects_.pinDir().empty(); }

std::string Attachments::pinPath(const std::string& name) const {
  return gw::pinPath(objects_.pinDir(), name);
}

Result<NetnsGuard> Attachments::enterNetns() { return NetnsGuard::enter(netns_.get()); }

Status Attachments::loadRecord() {
  std::string path = pinPath(kRecordMapName);
  if (pathExists(path)) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      return sysError("bpf_obj_get " + path);
    }
    recordMap_.reset(fd);
  } else {
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, kRecordMapName, sizeof(uint32_t),
                            sizeof(uint32_t), kRecordMapMax, nullptr);
    if (fd < 0) {
      return sysError("bpf_map_create gw_dp_attach");
    }
    recordMap_.reset(fd);
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      return sysError("bpf_obj_pin " + path);
    }
  }
  auto records = dumpMap<uint32_t, uint32_t>(recordMap_.get());
  if (!records) {
    return std::unexpected(records.error());
  }
  for (const auto& [key, flags] : *records) {
    int ifindex = static_cast<int>(key);
    records_[ifindex] = flags;
    if (flags & kAttachUplink) {
      uplinkIfindex_ = ifindex;
    }
    for (bool ingress : {true, false}) {
      std::string tcxPath = pinPath(tcxLinkName(ifindex, ingress));
      if ((flags & tcxBit(ingress)) && pathExists(tcxPath)) {
        int fd = bpf_obj_get(tcxPath.c_str());
        if (fd < 0) {
          return sysError("bpf_obj_get " + tcxPath);
        }
        tcxLinks_[{ifindex, ingress}].reset(fd);
      }
    }
    std::string linkPath = pinPath(xdpLinkName(ifindex));
    if ((flags & kAttachXdp) && pathExists(linkPath)) {
      int fd = bpf_obj_get(linkPath.c_str());
      if (fd < 0) {
        return sysError("bpf_obj_get " + linkPath);
      }
      xdpLinks_[ifindex].reset(fd);
      if (auto guard = enterNetns(); guard) {
        uplinkXdp_ = queryXdpMode(ifindex);
      }
    }
  }
  for (bpf_program* prog : objects_.sockPrograms()) {
    std::string name = bpf_program__name(prog);
    std::string linkPath = pinPath(cgroupLinkName(name));
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

Status Attachments::saveRecord(int ifindex) {
  if (!recordMap_) {
    return {};
  }
  uint32_t key = static_cast<uint32_t>(ifindex);
  uint32_t flags = records_[ifindex];
  if (flags == 0) {
    if (bpf_map_delete_elem(recordMap_.get(), &key) != 0 && errno != ENOENT) {
      return sysError("delete attach record");
    }
    return {};
  }
  if (bpf_map_update_elem(recordMap_.get(), &key, &flags, BPF_ANY) != 0) {
    return sysError("save attach record");
  }
  return {};
}

Status Attachments::attachTc(int ifindex, bool ingress, int progFd) {
  if (tcUsed_ == TcHook::Tcx) {
    auto linked = attachTcx(ifindex, ingress, progFd);
    if (linked || tc_ != TcHook::Auto || linked.error().code != EINVAL) {
      return linked;
    }
    // A kernel before 6.6 does not know the attach type: clsact serves, and says so (status).
    log::info("tc hooks: the kernel refused a tcx link (", linked.error().str(),
              "), clsact filters serve");
    tcUsed_ = TcHook::Clsact;
  }
  return attachClsact(ifindex, ingress, progFd);
}

Status Attachments::attachTcx(int ifindex, bool ingress, int progFd) {
  auto key = std::pair{ifindex, ingress};
  if (auto it = tcxLinks_.find(key); it != tcxLinks_.end()) {
    // Restart or upgrade: the program is swapped under the link, no packet misses a hook.
    if (bpf_link_update(it->second.get(), progFd, nullptr) == 0) {
      return {};
    }
    // The link outlived its interface (an ifindex used again): make a new one.
    if (auto ok = detachTcx(ifindex, ingress); !ok) {
      return ok;
    }
  }
  bpf_link_create_opts opts{};
  opts.sz = sizeof(opts);
  int fd = bpf_link_create(progFd, ifindex, ingress ? kBpfTcxIngress : kBpfTcxEgress, &opts);
  if (fd < 0) {
    return sysError(std::string("attach tcx ") + direction(ingress) + " on ifindex " +
                    std::to_string(ifindex));
  }
  UniqueFd link(fd);
  if (pinning()) {
    std::string path = pinPath(tcxLinkName(ifindex, ingress));
    ::unlink(path.c_str()); // a pin left by a link that is gone
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      auto err = sysError("bpf_obj_pin " + path);
      bpf_link_detach(fd);
      return err;
    }
  }
  tcxLinks_[key] = std::move(link);
  records_[ifindex] |= tcxBit(ingress);
  if (auto ok = saveRecord(ifindex); !ok) {
    return ok;
  }
  // An earlier run's clsact filter (an upgrade from clsact) goes once the link is in place:
  // the tcx program's verdict is final, so the filter no longer ran anyway.
  if (records_[ifindex] & clsactBit(ingress)) {
    return detachClsact(ifindex, ingress);
  }
  return {};
}

Status Attachments::detachTcx(int ifindex, bool ingress) {
  Status result;
  auto it = tcxLinks_.find({ifindex, ingress});
  if (it != tcxLinks_.end()) {
    // Detaching a link whose interface is gone fails harmlessly: the kernel took it already.
    bpf_link_detach(it->second.get());
    tcxLinks_.erase(it);
  }
  if (pinning()) {
    ::unlink(pinPath(tcxLinkName(ifindex, ingress)).c_str());
  }
  auto rec = records_.find(ifindex);
  if (rec != records_.end() && (rec->second & tcxBit(ingress))) {
    rec->second &= ~tcxBit(ingress);
    result = saveRecord(ifindex);
  }
  return result;
}

Status Attachments::detachClsact(int ifindex, bool ingress) {
  uint32_t& flags = records_[ifindex];
  auto gone = [](int err) { return err == -ENOENT || err == -ENODEV || err == -EINVAL; };
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  Status result;
  if (flags & clsactBit(ingress)) {
    int err = bpf_tc_detach(&hook, &opts);
    if (err != 0 && !gone(err)) {
      result = sysError(std::string("detach tc ") + direction(ingress) + " on ifindex " +
                        std::to_string(ifindex));
    }
    flags &= ~clsactBit(ingress);
  }
  if ((flags & kAttachQdiscOurs) && !(flags & (kAttachTcIngress | kAttachTcEgress))) {
    // We created clsact and no filter of ours is left on it: it goes.
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int err = bpf_tc_hook_destroy(&hook);
    if (err != 0 && !gone(err) && result) {
      result = sysError("delete clsact qdisc on ifindex " + std::to_string(ifindex));
    }
    flags &= ~kAttachQdiscOurs;
  }
  auto saved = saveRecord(ifindex);
  return result ? saved : result;
}

Status Attachments::attachClsact(int ifindex, bool ingress, int progFd) {
  uint32_t& flags = records_[ifindex];
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  int err = bpf_tc_hook_create(&hook);
  if (err == 0) {
    flags |= kAttachQdiscOurs;
  } else if (err != -EEXIST) {
    return sysError("create clsact qdisc on ifindex " + std::to_string(ifindex));
  }
  // Save ownership before attaching: a failure below must still let teardown delete the qdisc.
  if (auto ok = saveRecord(ifindex); !ok) {
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
  flags |= ingress ? kAttachTcIngress : kAttachTcEgress;
  if (auto ok = saveRecord(ifindex); !ok) {
    return ok;
  }
  // A tcx link of an earlier run would still run first, and its verdict is final: it goes.
  if (records_[ifindex] & tcxBit(ingress)) {
    return detachTcx(ifindex, ingress);
  }
  return {};
}

Status Attachments::attachXdp(int ifindex) {
  uint32_t& flags = records_[ifindex];
  int progFd = objects_.progFd("gw_uplink_xdp");
  auto existing = xdpLinks_.find(ifindex);
  if (xdp_ == XdpMode::Off) {
    uplinkXdp_ = XdpMode::Off;
    if (existing == xdpLinks_.end()) {
      return {};
    }
    // Configured off now but an earlier run attached one: take it away.
    bpf_link_detach(existing->second.get());
    xdpLinks_.erase(existing);
    ::unlink(pinPath(xdpLinkName(ifindex)).c_str());
    flags &= ~kAttachXdp;
    return saveRecord(ifindex);
  }
  if (existing != xdpLinks_.end()) {
    // Restart: swap the program under the existing link (keeps its mode).
    if (bpf_link_update(existing->second.get(), progFd, nullptr) == 0) {
      uplinkXdp_ = queryXdpMode(ifindex);
      return {};
    }
    bpf_link_detach(existing->second.get());
    xdpLinks_.erase(existing);
    ::unlink(pinPath(xdpLinkName(ifindex)).c_str());
  }
  bpf_link_create_opts opts{};
  opts.sz = sizeof(opts);
  opts.flags = xdp_ == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  int fd = bpf_link_create(progFd, ifindex, BPF_XDP, &opts);
  if (fd < 0) {
    if (xdp_ == XdpMode::Auto) {
      // The driver refused native XDP (or another program holds the hook): tc does it all.
      uplinkXdp_ = XdpMode::Off;
      flags &= ~kAttachXdp;
      return saveRecord(ifindex);
    }
    return sysError("attach XDP (" + std::string(toString(xdp_)) + ") on ifindex " +
                    std::to_string(ifindex));
  }
  UniqueFd link(fd);
  if (pinning()) {
    std::string path = pinPath(xdpLinkName(ifindex));
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      auto err = sysError("bpf_obj_pin " + path);
      bpf_link_detach(fd);
      return err;
    }
  }
  xdpLinks_[ifindex] = std::move(link);
  uplinkXdp_ = queryXdpMode(ifindex);
  flags |= kAttachXdp;
  return saveRecord(ifindex);
}

Status Attachments::attachUplink(int ifindex) {
  if (uplinkIfindex_ != 0 && uplinkIfindex_ != ifindex) {
    return fail("uplink already attached to ifindex " + std::to_string(uplinkIfindex_));
  }
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  records_[ifindex] |= kAttachUplink;
  uplinkIfindex_ = ifindex;
  if (auto ok = attachTc(ifindex, true, objects_.progFd("gw_uplink_ingress")); !ok) {
    return ok;
  }
  if (auto ok = attachTc(ifindex, false, objects_.progFd("gw_uplink_egress")); !ok) {
    return ok;
  }
  return attachXdp(ifindex);
}

Status Attachments::detachUplink() {
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

Status Attachments::attachEndpoint(int ifindex) {
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return attachTc(ifindex, true, objects_.progFd("gw_endpoint_ingress"));
}

Status Attachments::detachEndpoint(int ifindex) {
  if (ifindex == uplinkIfindex_) {
    return fail("ifindex " + std::to_string(ifindex) + " is the uplink: use detachUplink");
  }
  auto guard = enterNetns();
  if (!guard) {
    return std::unexpected(guard.error());
  }
  return detachInterface(ifindex);
}

std::vector<int> Attachments::endpointIfindexes() const {
  std::vector<int> out;
  for (const auto& [ifindex, flags] : records_) {
    if (flags != 0 && ifindex != uplinkIfindex_ && (flags & kAttachUplink) == 0) {
      out.push_back(ifindex);
    }
  }
  return out;
}

// Undoes every attachment recorded for an interface. An interface that is gone (its
// namespace deleted) took its hooks with it: ENODEV/ENOENT count as done.
Status Attachments::detachInterface(int ifindex) {
  auto it = records_.find(ifindex);
  if (it == records_.end()) {
    return {};
  }
  Status result;
  for (bool ingress : {true, false}) {
    if (auto ok = detachTcx(ifindex, ingress); !ok && result) {
      result = ok;
    }
    if (auto ok = detachClsact(ifindex, ingress); !ok && result) {
      result = ok;
    }
  }
  uint32_t& flags = it->second;
  auto link = xdpLinks_.find(ifindex);
  if (link != xdpLinks_.end()) {
    bpf_link_detach(link->second.get());
    xdpLinks_.erase(link);
  }
  if (pinning()) {
    ::unlink(pinPath(xdpLinkName(ifindex)).c_str());
  }
  if (ifindex == uplinkIfindex_) {
    uplinkXdp_ = XdpMode::Off;
  }
  flags = 0;
  auto saved = saveRecord(ifindex);
  records_.erase(ifindex);
  if (!result) {
    return result;
  }
  return saved;
}

Status Attachments::attachSockHooks(const std::string& cgroupPath) {
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
  for (bpf_program* prog : objects_.sockPrograms()) {
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
      if (pinning()) {
        ::unlink(pinPath(cgroupLinkName(name)).c_str());
      }
    }
    int fd = bpf_link_create(progFd, cg, bpf_program__expected_attach_type(prog), nullptr);
    if (fd < 0) {
      return sysError("attach " + name + " to cgroup " + path);
    }
    UniqueFd link(fd);
    if (pinning()) {
      std::string pin = pinPath(cgroupLinkName(name));
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

Status Attachments::detachSockHooks() {
  for (auto& [name, link] : cgroupLinks_) {
    // Detach explicitly: the link may also be pinned or held by another process.
    bpf_link_detach(link.get());
    if (pinning()) {
      ::unlink(pinPath(cgroupLinkName(name)).c_str());
    }
  }
  cgroupLinks_.clear();
  return {};
}

Status Attachments::teardown() {
  Status result;
  {
    auto guard = enterNetns();
    if (!guard) {
      return std::unexpected(guard.error());
    }
    std::vector<int> ifindexes;
    for (const auto& [ifindex, flags] : records_) {
      ifindexes.push_back(ifindex);
    }
    for (int ifindex : ifindexes) {
      if (auto ok = detachInterface(ifindex); !ok && result) {
        result = ok;
      }
    }
  }
  uplinkIfindex_ = 0;
  (void)detachSockHooks();
  xdpLinks_.clear();
  if (pinning()) {
    // An earlier build's links too, and the record itself.
    if (auto ok = removePins(objects_.pinDir(), {"link_xdp_", "link_cg_", kRecordMapName});
        !ok && result) {
      result = ok;
    }
  }
  recordMap_.reset();
  return result;
}

} // namespace gw
