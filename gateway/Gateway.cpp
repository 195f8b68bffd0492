// SPDX-License-Identifier: MIT
#include "gateway/Gateway.h"

#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "base/Failpoint.h"
#include "base/Log.h"
#include "control/Api.h"
#include "gateway/api/Routes.h"
#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/BpfDatapath.h"
#include "netns/Address.h"
#include "netns/Link.h"
#include "netns/Namespace.h"
#include "netns/Sysctl.h"

namespace gw {
namespace {

using nlohmann::json;

// This boot's id: a reboot changes it. "" when unreadable (nothing is then dropped).
std::string currentBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

constexpr const char* kVersion = "0.1.0";

ProxyConfig proxyConfig(const GatewayConfig& config) {
  ProxyConfig pc;
  pc.relay = config.proxyRelay;
  pc.inheritedListeners = config.inheritedListeners;
  return pc;
}

// The first IPv6 address of `ifindex` that is not link-local (fe80::/10); unset when none.
IpAddress firstGlobal6(Netlink& host, int ifindex) {
  auto addrs = listAddresses(host, AF_INET6, ifindex);
  if (!addrs) {
    return {};
  }
  for (const auto& a : *addrs) {
    if (!a.prefix.addr.isLinkLocal6()) {
      return a.prefix.addr;
    }
  }
  return {};
}

} // namespace

Gateway::Gateway(GatewayConfig config, Netlink host)
    : config_(std::move(config)), host_(std::move(host)), store_(config_.stateDir, config_.recover),
      topology_(host_, config_.uplink), proxy_(proxyConfig(config_)),
      ctx_{state_, store_, datapath_, config_.uplink}, namespaces_(ctx_, topology_),
      exposes_(ctx_, topology_, proxy_),
      masquerades_(ctx_, topology_, [this] { return namespaces_.subnets(); }),
      handWired_(ctx_, topology_,
                 [this] {
                   EndpointWants wants = exposes_.handWiredTargets();
                   for (const auto& m : state_.masquerades) {
                     wants.prefixes.push_back(m.source);
                   }
                   return wants;
                 }),
      conntrack_(ctx_),
      metrics_(ctx_, exposes_, conntrack_, proxy_), started_(std::chrono::steady_clock::now()) {
  exposes_.setGroupMayPublishAny(config_.groupMayPublishAny);
  namespaces_.setOtherEndpointLinks([this] {
    auto links = exposes_.handWiredLinks();
    links.merge(handWired_.links());
    return links;
  });
  namespaces_.setOtherEndpointAddresses([this] { return handWired_.addresses(); });
  exposes_.setPeered([this](const IpAddress& addr) { return handWired_.peered(addr); });
  addRoutes();
}

Result<std::unique_ptr<Gateway>> Gateway::start(const GatewayConfig& config) {
  auto host = Netlink::open();
  if (!host) {
    return std::unexpected(host.error());
  }
  auto uplink = getLink(*host, config.uplink);
  if (!uplink) {
    return notFound("unknown uplink '" + config.uplink + "'" +
                    (config.netns.empty() ? "" : " in namespace " + config.netns) + ": " +
                    uplink.error().str());
  }
  std::unique_ptr<Gateway> gw(new Gateway(config, std::move(*host)));
  auto state = gw->store_.load();
  if (!state) {
    return std::unexpected(state.error());
  }
  gw->uplinkIndex_ = uplink->index;
  gw->state_ = std::move(*state);
  auto previous = loadHostRecord(config.stateDir); // before recordHost() replaces it
  if (auto r = gw->recordHost(); !r) {
    return std::unexpected(r.error());
  }
  if (previous && *previous && !(*previous)->bootId.empty() &&
      (*previous)->bootId != currentBootId()) {
    if (auto r = gw->dropAttachmentsOfEarlierBoot(); !r) {
      return std::unexpected(r.error());
    }
  }
  auto addrs = listAddresses(gw->host_, AF_INET, uplink->index);
  if (!addrs || addrs->empty()) {
    return invalid("uplink '" + config.uplink + "' has no IPv4 address");
  }
  gw->uplinkAddr_ = addrs->front().prefix.addr;
  gw->uplinkAddr6_ = firstGlobal6(gw->host_, uplink->index);
  // Opened before the addresses are read into the maps: a change in between is not lost.
  if (auto watch = AddressWatch::open(); watch) {
    gw->addressWatch_ = std::move(*watch);
  } else {
    log::warn("address changes not followed (the host's addresses are read at start and at "
              "ns add/del only): ", watch.error().str());
  }
  if (auto r = gw->startDatapath(); !r) {
    if (config.datapath == DatapathPolicy::Ebpf) {
      return unavailable("the eBPF data path did not load (--datapath ebpf): " + r.error().str());
    }
    gw->datapath_ = DatapathRef{nullptr, r.error().str()};
    gw->dp_.reset();
    log::error("eBPF data path not loaded: ", gw->datapath_.error,
               "; degraded: TCP exposes go through the io_uring proxy (servers see the "
               "proxy's address), UDP exposes and masquerade are refused "
               "(--datapath ebpf refuses to start instead)");
  }
  if (auto r = gw->reconcile(); !r) {
    return std::unexpected(r.error());
  }
  if (auto left = gw->proxy_.closeUnadopted(); !left.empty()) {
    std::string list;
    for (const auto& a : left) {
      list += (list.empty() ? "" : ", ") + a;
    }
    return invalid("inherited proxy listeners not adopted by an expose of the state: " + list);
  }
  gw->conntrack_.startMaintenance(config.gcInterval);
  return gw;
}

Status Gateway::reconcile() {
  // First: the stray sweep of namespaces_ then knows these entries and programs for its own.
  handWired_.refresh(true);
  if (auto r = namespaces_.reconcile(); !r) {
    return r;
  }
  masquerades_.reconcile();
  exposes_.reconcile();
  return namespaces_.syncLocalAddresses();
}

void Gateway::tick() {
  if (addressWatch_ && addressWatch_->changed()) {
    followAddresses();
  }
  // A /proc/PID/ns/net target's process may end at any time: noticed within seconds, not at
  // the next listing.
  auto now = std::chrono::steady_clock::now();
  if (now - pathsCheckedAt_ >= std::chrono::seconds(2)) {
    pathsCheckedAt_ = now;
    exposes_.checkPaths();
    handWired_.refresh(true);
  }
}

void Gateway::followAddresses() {
  if (auto r = namespaces_.syncLocalAddresses(); !r) {
    log::warn("the gateway host's addresses changed; local address map not updated: ",
              r.error().str());
  }
  if (dp_ == nullptr) {
    return;
  }
  auto addrs = listAddresses(host_, AF_INET, uplinkIndex_);
  if (addrs && !addrs->empty() && addrs->front().prefix.addr != uplinkAddr_) {
    IpAddress now = addrs->front().prefix.addr;
    if (auto r = dp_->setUplinkAddress(now); !r) {
      log::warn("uplink address ", now.str(), " not set in the data path: ", r.error().str());
    } else if (auto h = dp_->setHairpinAddress(now); !h) {
      log::warn("hairpin address ", now.str(), " not set: ", h.error().str());
    } else {
      log::info("uplink ", config_.uplink, " address ", uplinkAddr_.str(), " -> ", now.str(),
                ": masquerade and hairpin follow");
      uplinkAddr_ = now;
    }
  }
  if (IpAddress now6 = firstGlobal6(host_, uplinkIndex_); now6 != uplinkAddr6_) {
    if (auto r = dp_->setUplinkAddress6(now6); !r) {
      log::warn("uplink IPv6 address not set in the data path: ", r.error().str());
    } else {
      log::info("uplink ", config_.uplink, " IPv6 address ",
                uplinkAddr6_.isV6() ? uplinkAddr6_.str() : std::string("(none)"), " -> ",
                now6.isV6() ? now6.str() : std::string("(none)"));
      uplinkAddr6_ = now6;
    }
  }
}

Status Gateway::recordHost() {
  auto cookie = currentNamespaceCookie();
  if (!cookie) {
    return std::unexpected(cookie.error());
  }
  return store_.recordHost(HostRecord{.netns = config_.netns,
                                      .netnsCookie = *cookie,
                                      .uplink = config_.uplink,
                                      .bootId = currentBootId()});
}

// The containers the CNI plugin published are gone with the boot that ran them (their network
// namespaces with it); their rules would hold host ports, and DNAT to addresses the runtime
// hands to other containers now.
Status Gateway::dropAttachmentsOfEarlierBoot() {
  std::set<std::string> owners;
  for (const auto& e : state_.exposes) {
    if (e.owner && e.owner->isCniAttachment()) {
      owners.insert(e.owner->text);
    }
  }
  if (owners.empty()) {
    return {};
  }
  size_t before = state_.exposes.size();
  std::erase_if(state_.exposes,
                [](const ExposeRecord& e) { return e.owner && e.owner->isCniAttachment(); });
  if (auto r = store_.commit(state_); !r) {
    return r;
  }
  log::warn("started after a reboot: ", before - state_.exposes.size(), " rule(s) of ",
            owners.size(), " container attachment(s) of the earlier boot dropped (",
            *owners.begin(), owners.size() > 1 ? ", ..." : "", ")");
  return {};
}

Status Gateway::startDatapath() {
  if (auto r = failpoint("datapath-load"); !r) {
    return r;
  }
  if (!config_.bpffs.empty()) {
    auto mounted = ensureBpffs(config_.bpffs);
    if (!mounted && config_.bpffs == kDefaultBpffs) {
      // The default location cannot be made here (a read-only /sys without /sys/fs/bpf):
      // the pins go to gatewayd's own bpffs, and every later start finds them there.
      bpffsFallback_ = std::string(kDefaultBpffs) + " cannot be used: " +
                       mounted.error().str() + "; pins in " + kFallbackBpffs + " instead";
      log::warn("bpffs: ", bpffsFallback_);
      config_.bpffs = kFallbackBpffs;
      mounted = ensureBpffs(config_.bpffs);
    }
    if (!mounted) {
      return std::unexpected(mounted.error());
    }
    if (!mounted->empty()) {
      // Teardown (even `gatewayd --cleanup` after a crash) unmounts exactly this.
      if (auto r = store_.recordMount(*mounted); !r) {
        return r;
      }
      log::info("mounted a bpffs on ", *mounted, " for the pins in ", config_.bpffs);
    }
  }
  XdpMode xdp = config_.xdp;
  if (xdp == XdpMode::Auto) {
    // Native XDP on a veth turns its peer's TSO off and sees CHECKSUM_PARTIAL packets whose
    // port rewrites it cannot get right: on veth uplinks tc alone serves (see PLATFORM traps).
    if (auto link = getLink(host_, config_.uplink); link && link->kind == "veth") {
      log::info("--xdp auto: uplink ", config_.uplink, " is a veth, XDP stays off (tc serves)");
      xdp = XdpMode::Off;
    }
  }
  DatapathConfig dc{.bpffsDir = config_.bpffs,
                    .xdp = xdp,
                    .tc = config_.tc,
                    .timeouts = config_.timeouts,
                    .ctEntries = config_.ctEntries};
  auto dp = BpfDatapath::open(dc);
  if (!dp) {
    return std::unexpected(dp.error());
  }
  dp_ = std::move(*dp);
  datapath_ = DatapathRef{dp_.get(), {}};
  // bpf_fib_lookup forwards only where the stack would: a gateway host forwards.
  if (auto r = writeSysctl("net/ipv4/ip_forward", "1"); !r) {
    return r;
  }
  if (auto r = dp_->attachUplink(uplinkIndex_, uplinkAddr_); !r) {
    return r;
  }
  // Hairpin and host-local flows leave with the uplink's address as their source.
  if (auto r = dp_->setHairpinAddress(uplinkAddr_); !r) {
    return r;
  }
  if (auto r = dp_->setUplinkAddress6(uplinkAddr6_); !r) {
    return r;
  }
  if (uplinkAddr6_.isV6()) {
    log::info("uplink ", config_.uplink, " IPv6 address ", uplinkAddr6_.str(),
              ": IPv6 masquerade source and default exposed address");
  } else {
    log::info("uplink ", config_.uplink, " has no global IPv6 address: IPv6 masquerade has no "
              "source address, and IPv6 exposes answer only on the gateway host's other "
              "IPv6 addresses");
  }
  if (config_.hostLocal) {
    auto cookie = currentNamespaceCookie();
    if (!cookie) {
      return std::unexpected(cookie.error());
    }
    if (auto r = dp_->enableHostLocal(*cookie); !r) {
      log::warn("host-local access hooks not attached: ", r.error().str());
    }
  }
  log::info("eBPF data path ", dp_->adopted() ? "adopted from pins in " : "loaded, pins in ",
            config_.bpffs.empty() ? "(none)" : config_.bpffs, ", XDP ",
            toString(dp_->uplinkXdpMode()), ", tc hooks ", toString(dp_->tcHook()));
  return {};
}

Status Gateway::teardownAll() {
  conntrack_.stopMaintenance();
  std::vector<std::string> problems;
  handWired_.teardown();
  exposes_.teardown(problems);
  namespaces_.teardown(problems);
  state_.masquerades.clear();
  if (dp_) {
    if (auto r = dp_->teardown(); !r) {
      problems.push_back("data path: " + r.error().str());
    }
    datapath_ = DatapathRef{nullptr, "torn down"};
    dp_.reset();
  }
  // The bpffs we mounted for our pins goes too, once empty (never one with others' pins).
  if (!config_.bpffs.empty()) {
    std::string mounted = store_.recordedMount();
    if (auto r = releaseBpffs(config_.bpffs, mounted); !r) {
      log::warn("bpffs: ", r.error().str());
    } else if (!mounted.empty()) {
      log::info("unmounted the bpffs on ", mounted);
    }
  }
  for (const char* name : {"/state.json", "/state.json.bak", "/state.json.tmp", "/state.journal",
                           "/bpffs.mount", "/host.json"}) {
    ::unlink((config_.stateDir + name).c_str());
  }
  ::rmdir(config_.stateDir.c_str());
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) {
      all += (all.empty() ? "" : "; ") + p;
    }
    return fail(ErrorKind::Internal, "teardown incomplete: " + all);
  }
  log::info("teardown: everything gatewayd made is removed");
  return {};
}

Status Gateway::enterRecordedHost(const GatewayConfig& config) {
  auto recorded = loadHostRecord(config.stateDir);
  if (!recorded) {
    return std::unexpected(recorded.error());
  }
  if (!*recorded) {
    // A state from before host.json: only --netns says where it was made.
    if (!config.netns.empty()) {
      auto fd = openNamespace(config.netns);
      if (!fd) {
        return within(fd.error(), "--netns " + config.netns);
      }
      if (::setns(fd->get(), CLONE_NEWNET) != 0) {
        return sysError("setns into --netns " + config.netns);
      }
    }
    return {};
  }
  const HostRecord& host = **recorded;
  std::string where = host.netns.empty() ? "gatewayd's own network namespace (no --netns)"
                                         : "network namespace " + host.netns;
  if (!config.netns.empty() && config.netns != host.netns) {
    return conflict("--netns " + config.netns + ", but the state in " + config.stateDir +
                    " was made in " + where + ": nothing touched");
  }
  if (host.netns.empty()) {
    auto cookie = currentNamespaceCookie();
    if (!cookie) {
      return std::unexpected(cookie.error());
    }
    if (*cookie != host.netnsCookie) {
      return conflict("the state in " + config.stateDir + " was made in another network "
                      "namespace (cookie " + std::to_string(host.netnsCookie) + ", this one is " +
                      std::to_string(*cookie) + "): run --cleanup there; nothing touched");
    }
    return {};
  }
  auto fd = openNamespace(host.netns);
  if (!fd) {
    // The gateway host's namespace is gone, and its links, bridges and qdiscs with it. What
    // is left (managed namespaces, pins, state) is removed from an empty namespace, so that
    // no link of the same name elsewhere can be taken for ours.
    log::warn("cleanup: ", where, " no longer exists: removing the managed namespaces, pins "
              "and state it left");
    if (::unshare(CLONE_NEWNET) != 0) {
      return sysError("unshare(CLONE_NEWNET) for cleanup");
    }
    return {};
  }
  auto cookie = namespaceCookie(fd->get());
  if (!cookie) {
    return std::unexpected(cookie.error());
  }
  if (*cookie != host.netnsCookie) {
    return conflict(where + " is not the namespace the state in " + config.stateDir +
                    " was made in (it was deleted and made again): nothing touched");
  }
  if (::setns(fd->get(), CLONE_NEWNET) != 0) {
    return sysError("setns into " + where);
  }
  return {};
}

Status Gateway::cleanup(const GatewayConfig& config) {
  if (auto r = enterRecordedHost(config); !r) {
    return r;
  }
  auto host = Netlink::open();
  if (!host) {
    return std::unexpected(host.error());
  }
  auto state = loadState(config.stateDir);
  if (!state) {
    return std::unexpected(state.error());
  }
  std::unique_ptr<Gateway> gw(new Gateway(config, std::move(*host)));
  gw->state_ = std::move(*state);
  if (config.bpffs == kDefaultBpffs && !isBpffs(config.bpffs).value_or(false) &&
      isBpffs(kFallbackBpffs).value_or(false)) {
    gw->config_.bpffs = kFallbackBpffs; // where startDatapath put the pins (see there)
  }
  if (!gw->config_.bpffs.empty()) {
    if (auto pinned = isBpffs(gw->config_.bpffs); pinned && *pinned) {
      DatapathConfig dc{.bpffsDir = gw->config_.bpffs, .xdp = XdpMode::Off, .timeouts = {}};
      if (auto dp = BpfDatapath::open(dc); dp) {
        gw->dp_ = std::move(*dp);
        gw->datapath_ = DatapathRef{gw->dp_.get(), {}};
      } else {
        log::warn("cleanup: pinned data path not opened: ", dp.error().str());
      }
    }
  }
  return gw->teardownAll();
}

Gateway::~Gateway() {
  conntrack_.stopMaintenance();
  proxy_.stop(true);
}

api::StatusInfo Gateway::status() {
  api::StatusInfo s;
  s.version = kVersion;
  s.pid = ::getpid();
  s.netns = config_.netns;
  s.uplink.name = config_.uplink;
  s.uplink.ifindex = uplinkIndex_;
  if (uplinkAddr6_.isV6()) {
    s.uplink.address6 = uplinkAddr6_;
  }
  if (auto list = listAddresses(host_, AF_UNSPEC, uplinkIndex_); list) {
    for (const auto& a : *list) {
      s.uplink.addresses.push_back(a.prefix.str());
    }
  }
  s.socket = config_.socketPath;
  s.stateDir = config_.stateDir;
  s.bpffs = config_.bpffs;
  if (!bpffsFallback_.empty()) {
    s.bpffsFallback = bpffsFallback_;
  }
  s.uptimeSeconds = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
  s.namespaces = state_.namespaces.size();
  s.bridges = state_.bridges.size();
  s.exposes = state_.exposes.size();
  s.datapath.loaded = datapath_.dp != nullptr;
  s.state = datapath_ ? "running" : "degraded";
  if (datapath_) {
    s.datapath.xdp = std::string(toString(datapath_.dp->uplinkXdpMode()));
    s.datapath.tc = std::string(toString(datapath_.dp->tcHook()));
    s.datapath.adopted = datapath_.dp->adopted();
  } else {
    s.datapath.error = datapath_.error;
  }
  return s;
}

std::string Gateway::summary() {
  auto s = status();
  std::string text = s.datapath.loaded
                         ? "eBPF data path, pins in " + (s.bpffs.empty() ? "(none)" : s.bpffs)
                         : "DEGRADED: eBPF data path not loaded: " + s.datapath.error.value_or("?");
  if (s.bpffsFallback) {
    text += " (" + *s.bpffsFallback + ")";
  }
  return text;
}

void Gateway::addRoutes() {
  addApiRoutes(router_, ApiEndpoints{.namespaces = namespaces_,
                                     .exposes = exposes_,
                                     .masquerades = masquerades_,
                                     .conntrack = conntrack_,
                                     .metrics = metrics_,
                                     .state = state_,
                                     .status = [this] { return status(); },
                                     .down = [this] {
                                       auto done = teardownAll();
                                       finished_ = true;
                                       return done;
                                     }});
}

} // namespace gw
