// SPDX-License-Identifier: MIT
// Where the loaded programs run: tc hooks (tcx links or clsact filters) and XDP links on
// interfaces, BPF links on a cgroup for the socket hooks. What we attached is recorded in a
// pinned ifindex -> flags map so a restart (or --cleanup) knows what is ours to remove.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"
#include "gateway/datapath/Datapath.h"
#include "netns/Namespace.h"

namespace gw {

class BpfObjects;

// Lives in the network namespace the calling thread is in at open(): calls that touch
// interfaces enter it for their duration. Not thread-safe (BpfDatapath serializes).
class Attachments {
public:
  // Re-opens the attachment record and the links an earlier run pinned in objects.pinDir().
  // `objects` must outlive this.
  static Result<std::unique_ptr<Attachments>> open(const BpfObjects& objects, XdpMode xdp,
                                                   TcHook tc);
  Attachments(const Attachments&) = delete;
  Attachments& operator=(const Attachments&) = delete;

  // tc ingress + egress and XDP (per the configured mode). Again: replaces in place.
  Status attachUplink(int ifindex);
  Status detachUplink();
  int uplinkIfindex() const { return uplinkIfindex_; } // 0 = none
  XdpMode uplinkXdpMode() const { return uplinkXdp_; }
  // What the tc programs are hooked with: Tcx or Clsact (Auto falls back on an old kernel).
  TcHook tcHook() const { return tcUsed_; }

  Status attachEndpoint(int ifindex); // tc ingress
  Status detachEndpoint(int ifindex);
  // The interfaces recorded with an attachment other than the uplink, ascending.
  std::vector<int> endpointIfindexes() const;

  // Every socket hook on the cgroup v2 at `cgroupPath` ("" = the cgroup2 mount's root) with
  // BPF links, pinned with the maps. Again: swaps the programs under links on the same cgroup.
  Status attachSockHooks(const std::string& cgroupPath);
  Status detachSockHooks();

  // Detaches everything recorded (an earlier run's too) and unpins the links and the record.
  Status teardown();
  // Nothing recorded or linked (false after a teardown that could not enter the namespace).
  bool empty() const {
    return records_.empty() && xdpLinks_.empty() && tcxLinks_.empty() && cgroupLinks_.empty();
  }

private:
  Attachments(const BpfObjects& objects, XdpMode xdp, TcHook tc)
      : objects_(objects), xdp_(xdp), tc_(tc),
        tcUsed_(tc == TcHook::Clsact ? TcHook::Clsact : TcHook::Tcx) {}
  Status loadRecord();
  Result<NetnsGuard> enterNetns();
  Status attachTc(int ifindex, bool ingress, int progFd);
  Status attachTcx(int ifindex, bool ingress, int progFd);
  Status attachClsact(int ifindex, bool ingress, int progFd);
  // Takes away one direction's tcx link, or clsact filter (and the qdisc if ours and unused).
  Status detachTcx(int ifindex, bool ingress);
  Status detachClsact(int ifindex, bool ingress);
  Status attachXdp(int ifindex);
  Status detachInterface(int ifindex);
  Status saveRecord(int ifindex);
  std::string pinPath(const std::string& name) const;
  bool pinning() const;

  const BpfObjects& objects_;
  XdpMode xdp_;
  TcHook tc_;
  TcHook tcUsed_;
  UniqueFd netns_;
  UniqueFd recordMap_;              // pinned ifindex -> flags, so a restart knows what is ours
  std::map<int, uint32_t> records_; // ifindex -> kAttach* bits (Attachments.cpp)
  std::map<int, UniqueFd> xdpLinks_;
  std::map<std::pair<int, bool>, UniqueFd> tcxLinks_; // (ifindex, ingress)
  std::map<std::string, UniqueFd> cgroupLinks_; // by program name
  int uplinkIfindex_ = 0;
  XdpMode uplinkXdp_ = XdpMode::Off;
};

} // namespace gw
