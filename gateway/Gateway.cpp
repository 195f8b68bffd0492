// SPDX-License-Identifier: MIT
#include "gateway/Gateway.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "netns/Address.h"
#include "netns/Link.h"
#include "base/Log.h"
#include "netns/Namespace.h"
#include "netns/Sysctl.h"
#include "gateway/Topology.h"
#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/BpfDatapath.h"
#include "gateway/proxy/Proxy.h"

namespace gw {
namespace {

using nlohmann::json;

constexpr const char* kVersion = "0.1.0";

int statusFor(const Error& e) {
  switch (e.code) {
  case 0:
  case EINVAL: return 400;
  case ENOENT:
  case ENODEV: return 404;
  case EEXIST:
  case EADDRINUSE:
  case ENOSPC:
  case EBUSY: return 409;
  default: return 500;
  }
}

http::Response jsonResponse(int status, const json& body) {
  return {status, "application/json", body.dump() + "\n"};
}

http::Response errorResponse(const Error& e) {
  return jsonResponse(statusFor(e), json{{"error", e.str()}});
}

std::unexpected<Error> badRequest(std::string message) {
  return fail(std::move(message), EINVAL);
}

Result<std::string> optionalString(const json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) {
    return std::string();
  }
  if (!body[key].is_string()) {
    return badRequest(std::string("field '") + key + "' must be a string");
  }
  return body[key].get<std::string>();
}

} // namespace

Gateway::Gateway(GatewayConfig config, Netlink host)
    : config_(std::move(config)), host_(std::move(host)), store_(config_.stateDir),
      started_(std::chrono::steady_clock::now()) {}

Result<std::unique_ptr<Gateway>> Gateway::start(const GatewayConfig& config) {
  auto host = Netlink::open();
  if (!host) {
    return std::unexpected(host.error());
  }
  auto uplink = getLink(*host, config.uplink);
  if (!uplink) {
    return fail("unknown uplink '" + config.uplink + "'" +
                    (config.netns.empty() ? "" : " in namespace " + config.netns) + ": " +
                    uplink.error().str(),
                ENODEV);
  }
  std::unique_ptr<Gateway> gw(new Gateway(config, std::move(*host)));
  auto state = gw->store_.load();
  if (!state) {
    return std::unexpected(state.error());
  }
  gw->uplinkIndex_ = uplink->index;
  gw->state_ = std::move(*state);
  auto addrs = listAddresses(gw->host_, AF_INET, uplink->index);
  if (!addrs || addrs->empty()) {
    return fail("uplink '" + config.uplink + "' has no IPv4 address", EINVAL);
  }
  gw->uplinkAddr_ = addrs->front().prefix.addr;
  if (auto r = gw->startDatapath(); !r) {
    gw->dpError_ = r.error().str();
    gw->dp_.reset();
    log::warn("eBPF data path not loaded: ", gw->dpError_);
  }
  if (auto r = gw->reconcile(); !r) {
    return std::unexpected(r.error());
  }
  return gw;
}

Status Gateway::reconcile() {
  for (const auto& bridge : state_.bridges) {
    if (auto r = ensureBridge(host_, bridge, nullptr); !r) {
      return fail("reconcile bridge " + bridge.name + ": " + r.error().str(), r.error().code);
    }
  }
  for (const auto& ns : state_.namespaces) {
    int bridgeIndex = 0;
    if (ns.wiring == Wiring::Bridge) {
      auto link = getLink(host_, ns.bridge);
      if (!link) {
        return fail("reconcile namespace " + ns.name + ": " + link.error().str());
      }
      bridgeIndex = link->index;
    }
    if (auto r = wireNamespace(host_, ns, bridgeIndex, nullptr); !r) {
      log::warn("reconcile namespace ", ns.name, " failed: ", r.error().str());
      continue;
    }
    if (auto r = applyNamespace(ns); !r) {
      log::warn("data path for namespace ", ns.name, ": ", r.error().str());
    }
    log::info("reconciled namespace ", ns.name, " address ", ns.address.str());
  }
  if (dp_) {
    for (const auto& m : state_.masquerades) {
      int out = 0;
      if (!m.outIf.empty()) {
        auto link = getLink(host_, m.outIf);
        out = link ? link->index : 0;
      }
      if (auto r = dp_->addMasquerade(m.source, out); !r) {
        log::warn("masquerade ", m.source.str(), ": ", r.error().str());
      }
    }
  }
  for (const auto& e : state_.exposes) {
    if (auto r = applyExpose(e); !r) {
      log::warn("expose ", e.hostPort, " -> ", e.target, ": ", r.error().str());
    }
  }
  return syncLocalAddresses();
}

Status Gateway::startDatapath() {
  if (auto r = failpoint("datapath-load"); !r) {
    return r;
  }
  if (!config_.bpffs.empty()) {
    if (auto r = ensureBpffs(config_.bpffs); !r) {
      return r;
    }
  }
  auto xdp = parseXdpMode(config_.xdp);
  if (!xdp) {
    return std::unexpected(xdp.error());
  }
  if (*xdp == XdpMode::Auto) {
    // Native XDP on a veth turns its peer's TSO off and sees CHECKSUM_PARTIAL packets whose
    // port rewrites it cannot get right: on veth uplinks tc alone serves (see PLATFORM traps).
    if (auto link = getLink(host_, config_.uplink); link && link->kind == "veth") {
      log::info("--xdp auto: uplink ", config_.uplink, " is a veth, XDP stays off (tc serves)");
      *xdp = XdpMode::Off;
    }
  }
  DatapathConfig dc{.bpffsDir = config_.bpffs,
                    .xdp = *xdp,
                    .timeouts = config_.timeouts,
                    .ctEntries = config_.ctEntries};
  auto dp = BpfDatapath::open(dc);
  if (!dp) {
    return std::unexpected(dp.error());
  }
  dp_ = std::move(*dp);
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
  if (config_.hostLocal) {
    auto self = openCurrentNamespace();
    auto cookie = self ? namespaceCookie(self->get()) : Result<uint64_t>(std::unexpected(self.error()));
    if (!cookie) {
      return std::unexpected(cookie.error());
    }
    if (auto r = dp_->enableHostLocal(*cookie); !r) {
      log::warn("host-local access hooks not attached: ", r.error().str());
    }
  }
  log::info("eBPF data path ", dp_->adopted() ? "adopted from pins in " : "loaded, pins in ",
            config_.bpffs.empty() ? "(none)" : config_.bpffs, ", XDP ",
            toString(dp_->uplinkXdpMode()));
  return {};
}

Status Gateway::applyNamespace(const NamespaceRecord& ns) {
  if (!dp_) {
    return {};
  }
  auto link = getLink(host_, ns.hostLink);
  if (!link) {
    return std::unexpected(link.error());
  }
  if (auto r = dp_->attachEndpoint(link->index); !r) {
    return r;
  }
  if (auto r = dp_->addMasquerade(ns.address.network(), 0); !r) {
    return r;
  }
  // Last, so a failure leaves no entry behind: traffic translated towards the namespace then
  // goes straight into its eth0 (bpf_redirect_peer) with these MACs.
  auto inside = Netlink::openIn(ns.name);
  if (!inside) {
    return std::unexpected(inside.error());
  }
  auto peer = getLink(*inside, kNamespaceLink);
  if (!peer) {
    return std::unexpected(peer.error());
  }
  return dp_->addEndpoint(ns.address.addr, link->index, peer->mac, link->mac);
}

Status Gateway::syncLocalAddresses() {
  if (!dp_) {
    return {};
  }
  auto addrs = listAddresses(host_, AF_INET);
  if (!addrs) {
    return std::unexpected(addrs.error());
  }
  for (const auto& a : *addrs) {
    if (a.prefix.addr.bytes[0] == 127) {
      continue;
    }
    if (auto r = dp_->addLocalAddress(a.prefix.addr); !r) {
      return r;
    }
  }
  return {};
}

Status Gateway::persist() {
  return store_.commit(state_);
}

Status Gateway::saveSnapshot() {
  return store_.compact(state_);
}

Status Gateway::teardownAll() {
  std::vector<std::string> problems;
  for (const auto& e : state_.exposes) {
    if (auto r = removeExpose(e); !r) {
      problems.push_back("expose " + std::to_string(e.hostPort) + ": " + r.error().str());
    }
  }
  state_.exposes.clear();
  if (proxy_) {
    proxy_->stop(false);
    proxy_.reset();
  }
  for (const auto& ns : state_.namespaces) {
    if (auto r = unwireNamespace(host_, ns); !r) {
      problems.push_back("namespace " + ns.name + ": " + r.error().str());
    }
  }
  state_.namespaces.clear();
  for (const auto& b : state_.bridges) {
    (void)removeBridge(host_, b.name);
  }
  state_.bridges.clear();
  state_.masquerades.clear();
  if (dp_) {
    if (auto r = dp_->teardown(); !r) {
      problems.push_back("data path: " + r.error().str());
    }
    dp_.reset();
  }
  // The bpffs we mounted for our pins goes too, once empty (never one with others' pins).
  // A fresh bpffs is never quite empty: the kernel's preload puts maps.debug and progs.debug
  // in it.
  auto onlyPreload = [](const std::string& dir) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      auto name = entry.path().filename();
      if (name != "maps.debug" && name != "progs.debug") {
        return false;
      }
    }
    return !ec;
  };
  if (!config_.bpffs.empty() && onlyPreload(config_.bpffs)) {
    struct stat here {}, parent {};
    std::string up = std::filesystem::path(config_.bpffs).parent_path();
    if (::stat(config_.bpffs.c_str(), &here) == 0 && ::stat(up.c_str(), &parent) == 0 &&
        here.st_dev != parent.st_dev) {
      ::umount2(config_.bpffs.c_str(), MNT_DETACH);
    }
    ::rmdir(config_.bpffs.c_str());
  }
  for (const char* name : {"/state.json", "/state.json.bak", "/state.json.tmp", "/state.journal"}) {
    ::unlink((config_.stateDir + name).c_str());
  }
  ::rmdir(config_.stateDir.c_str());
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) {
      all += (all.empty() ? "" : "; ") + p;
    }
    return fail("teardown incomplete: " + all, EIO);
  }
  log::info("teardown: everything gatewayd made is removed");
  return {};
}

Status Gateway::cleanup(const GatewayConfig& config) {
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
  if (!config.bpffs.empty()) {
    if (auto pinned = isBpffs(config.bpffs); pinned && *pinned) {
      DatapathConfig dc{.bpffsDir = config.bpffs, .xdp = XdpMode::Off, .timeouts = {}};
      if (auto dp = BpfDatapath::open(dc); dp) {
        gw->dp_ = std::move(*dp);
      } else {
        log::warn("cleanup: pinned data path not opened: ", dp.error().str());
      }
    }
  }
  return gw->teardownAll();
}

std::string Gateway::metrics() {
  std::string out;
  auto line = [&](const std::string& name, const std::string& labels, uint64_t value) {
    out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
  };
  auto help = [&](const std::string& name, const char* type, const char* text) {
    out += "# HELP " + name + " " + text + "\n# TYPE " + name + " " + type + "\n";
  };
  help("gateway_up", "gauge", "1 while gatewayd serves");
  line("gateway_up", "", 1);
  help("gateway_namespaces", "gauge", "namespaces managed by gatewayd");
  line("gateway_namespaces", "", state_.namespaces.size());
  help("gateway_datapath_loaded", "gauge", "1 when the eBPF data path is loaded");
  line("gateway_datapath_loaded", "", dp_ ? 1 : 0);
  // The counters are read once per scrape: expose rows and reason/conntrack gauges share them.
  std::optional<DatapathStats> stats;
  if (dp_) {
    if (auto s = dp_->stats(); s) {
      stats = std::move(*s);
    }
  }
  if (auto list = listExposes(stats ? &*stats : nullptr); list) {
    const char* names[][2] = {{"packets", "packets"}, {"bytes", "bytes"},
                              {"connections", "connections"}, {"drops", "drops"}};
    for (const auto& [key, what] : names) {
      std::string name = std::string("gateway_expose_") + what + "_total";
      help(name, "counter", "per expose rule");
      for (const auto& e : *list) {
        std::string labels = "rule=\"" + std::to_string(e["id"].get<uint32_t>()) +
                             "\",proto=\"" + e["proto"].get<std::string>() + "\",host_port=\"" +
                             e["hostPort"].get<std::string>() + "\",target=\"" +
                             e["target"].get<std::string>() + "\",path=\"" +
                             e["path"].get<std::string>() + "\"";
        line(name, labels, e[key].get<uint64_t>());
      }
    }
  }
  if (dp_) {
    if (const DatapathStats* s = stats ? &*stats : nullptr; s != nullptr) {
      help("gateway_datapath_packets_total", "counter", "packets by named reason");
      for (const auto& r : s->reasons) {
        line("gateway_datapath_packets_total", "reason=\"" + std::string(r.name) + "\"",
             r.packets);
      }
      help("gateway_conntrack_entries", "gauge", "conntrack map entries (two per flow)");
      line("gateway_conntrack_entries", "", s->ctEntries);
      help("gateway_conntrack_capacity", "gauge", "conntrack map capacity");
      line("gateway_conntrack_capacity", "", s->ctCapacity);
      help("gateway_conntrack_pressure_sweeps_total", "counter",
           "conntrack sweeps that found the map at least 75% full (LRU evicting)");
      line("gateway_conntrack_pressure_sweeps_total", "", ctPressureSweeps_);
    }
    if (auto flows = dp_->listFlows(); flows) {
      uint64_t snat = 0;
      for (const auto& f : *flows) {
        snat += (f.nat & 2) != 0 ? 1 : 0;
      }
      help("gateway_snat_ports_in_use", "gauge", "flows holding a masquerade/hairpin port");
      line("gateway_snat_ports_in_use", "", snat);
    }
  }
  if (proxy_) {
    help("gateway_proxy_connections_active", "gauge", "open proxied connections");
    line("gateway_proxy_connections_active", "", proxy_->activeConnections());
  }
  return out;
}

Gateway::~Gateway() {
  if (proxy_) {
    proxy_->stop(true);
  }
}

void Gateway::tick() {
  auto now = std::chrono::steady_clock::now();
  if (!dp_ || now - lastGc_ < config_.gcInterval) {
    return;
  }
  lastGc_ = now;
  // LRU maps evict silently: a nearly full table is the pressure we can see and count. A
  // saturated LRU map reads 80-95% full (it keeps free entries per CPU), hence 75%.
  if (auto s = dp_->stats(); s && s->ctCapacity > 0 && s->ctEntries * 4 >= s->ctCapacity * 3) {
    if (ctPressureSweeps_++ % 60 == 0) {
      log::warn("conntrack map ", s->ctEntries, "/", s->ctCapacity,
                " full: the oldest flows are evicted (LRU); raise --ct-entries");
    }
  }
  if (auto removed = dp_->collectGarbage(); !removed) {
    log::warn("conntrack gc: ", removed.error().str());
  } else if (*removed > 0) {
    log::debug("conntrack gc removed ", *removed, " flows");
  }
}

Status Gateway::checkSubnetFree(const IpPrefix& subnet, std::string_view what) {
  for (const auto& b : state_.bridges) {
    if (b.gateway.overlaps(subnet)) {
      return fail(std::string(what) + " " + subnet.network().str() + " overlaps bridge " + b.name +
                      " (" + b.gateway.network().str() + ")",
                  EEXIST);
    }
  }
  for (const auto& n : state_.namespaces) {
    if (n.wiring == Wiring::PointToPoint && n.address.overlaps(subnet)) {
      return fail(std::string(what) + " " + subnet.network().str() + " overlaps namespace " +
                      n.name + " (" + n.address.network().str() + ")",
                  EEXIST);
    }
  }
  auto addresses = listAddresses(host_, AF_INET);
  if (!addresses) {
    return std::unexpected(addresses.error());
  }
  for (const auto& a : *addresses) {
    if (a.prefix.overlaps(subnet)) {
      auto link = getLink(host_, a.ifindex);
      return fail(std::string(what) + " " + subnet.network().str() + " overlaps " +
                      a.prefix.str() + " on " + (link ? link->name : std::to_string(a.ifindex)),
                  EEXIST);
    }
  }
  return {};
}

Result<json> Gateway::addNamespace(const json& body) {
  if (!body.is_object()) {
    return badRequest("body must be a JSON object");
  }
  auto name = optionalString(body, "name");
  auto bridgeName = optionalString(body, "bridge");
  auto subnetText = optionalString(body, "subnet");
  if (!name || !bridgeName || !subnetText) {
    return std::unexpected((!name ? name : !bridgeName ? bridgeName : subnetText).error());
  }
  if (auto r = validateNamespaceName(*name); !r) {
    return badRequest(r.error().message);
  }
  if (state_.findNamespace(*name) != nullptr) {
    return fail("namespace " + *name + " is already managed by gatewayd", EEXIST);
  }
  if (namespaceExists(*name)) {
    return fail("namespace " + *name + " already exists (made outside gatewayd)", EEXIST);
  }
  NamespaceRecord rec;
  rec.name = *name;
  rec.hostLink = hostLinkName(*name);
  if (auto link = getLink(host_, rec.hostLink); link) {
    return fail("link " + rec.hostLink + " already exists in the gateway host", EEXIST);
  }
  std::optional<IpPrefix> subnet;
  if (!subnetText->empty()) {
    auto parsed = IpPrefix::parse(*subnetText);
    if (!parsed) {
      return badRequest("--subnet: " + parsed.error().message);
    }
    subnet = *parsed;
  }

  Rollback rollback;
  std::optional<BridgeRecord> newBridge;
  int bridgeIndex = 0;
  if (subnet && bridgeName->empty()) {
    rec.wiring = Wiring::PointToPoint;
    auto pair = pointToPointAddresses(*subnet);
    if (!pair) {
      return badRequest(pair.error().message);
    }
    if (auto r = checkSubnetFree(*subnet, "--subnet"); !r) {
      return std::unexpected(r.error());
    }
    rec.hostAddress = pair->first;
    rec.address = pair->second;
  } else {
    rec.wiring = Wiring::Bridge;
    rec.bridge = bridgeName->empty() ? kDefaultBridge : *bridgeName;
    if (auto r = validateIfName(rec.bridge); !r) {
      return badRequest("--bridge: " + r.error().message);
    }
    BridgeRecord* bridge = state_.findBridge(rec.bridge);
    if (bridge != nullptr) {
      if (subnet && subnet->network() != bridge->gateway.network()) {
        return fail("bridge " + rec.bridge + " already has subnet " +
                        bridge->gateway.network().str(),
                    EEXIST);
      }
    } else {
      IpPrefix gateway;
      if (subnet) {
        auto pair = pointToPointAddresses(*subnet);
        if (!pair) {
          return badRequest(pair.error().message);
        }
        gateway = pair->first;
      } else if (rec.bridge == kDefaultBridge) {
        gateway = *IpPrefix::parse(kDefaultBridgeGateway);
      } else {
        return badRequest("bridge " + rec.bridge + " is new: give --subnet CIDR for it");
      }
      if (auto r = checkSubnetFree(gateway.network(), "bridge subnet"); !r) {
        return std::unexpected(r.error());
      }
      newBridge = BridgeRecord{rec.bridge, gateway};
      if (auto r = ensureBridge(host_, *newBridge, &rollback); !r) {
        return std::unexpected(r.error());
      }
      bridge = &*newBridge;
    }
    std::set<IpAddress> used;
    for (const auto& n : state_.namespaces) {
      if (n.wiring == Wiring::Bridge && n.bridge == rec.bridge) {
        used.insert(n.address.addr);
      }
    }
    auto address = allocateAddress(bridge->gateway, used);
    if (!address) {
      return std::unexpected(address.error());
    }
    rec.address = *address;
    rec.hostAddress = bridge->gateway;
    auto link = getLink(host_, rec.bridge);
    if (!link) {
      return std::unexpected(link.error());
    }
    bridgeIndex = link->index;
  }

  if (auto r = wireNamespace(host_, rec, bridgeIndex, &rollback); !r) {
    return fail("ns add " + rec.name + ": " + r.error().str() + " (rolled back)", r.error().code);
  }
  if (auto r = applyNamespace(rec); !r) {
    if (auto link = getLink(host_, rec.hostLink); link) {
      (void)dp_->detachEndpoint(link->index);
    }
    return fail("ns add " + rec.name + ": data path: " + r.error().str() + " (rolled back)",
                r.error().code);
  }
  (void)syncLocalAddresses();
  if (newBridge) {
    state_.bridges.push_back(*newBridge);
  }
  state_.namespaces.push_back(rec);
  if (auto r = persist(); !r) {
    state_.namespaces.pop_back();
    if (newBridge) {
      state_.bridges.pop_back();
    }
    return fail("ns add " + rec.name + ": saving state: " + r.error().str() + " (rolled back)");
  }
  rollback.commit();
  log::info("ns add ", rec.name, " address ", rec.address.str(), " via ", rec.hostLink);
  return json{{"name", rec.name},
              {"address", rec.address.addr.str()},
              {"prefix", rec.address.str()},
              {"gateway", rec.hostAddress.addr.str()},
              {"link", rec.hostLink}};
}

Result<json> Gateway::deleteNamespace(const std::string& name) {
  if (auto r = validateNamespaceName(name); !r) {
    return badRequest(r.error().message);
  }
  auto it = std::ranges::find(state_.namespaces, name, &NamespaceRecord::name);
  if (it == state_.namespaces.end()) {
    return fail("namespace " + name + " is not managed by gatewayd", ENOENT);
  }
  NamespaceRecord rec = *it;
  if (dp_) {
    (void)dp_->deleteEndpoint(rec.address.addr);
    if (auto link = getLink(host_, rec.hostLink); link) {
      (void)dp_->detachEndpoint(link->index);
    }
  }
  if (auto r = unwireNamespace(host_, rec); !r) {
    return fail("ns del " + name + ": " + r.error().str(), r.error().code);
  }
  state_.namespaces.erase(it);
  if (rec.wiring == Wiring::Bridge &&
      std::ranges::none_of(state_.namespaces,
                           [&](const auto& n) { return n.bridge == rec.bridge; })) {
    // The bridge was made for its namespaces; the last one takes it along.
    (void)removeBridge(host_, rec.bridge);
    std::erase_if(state_.bridges, [&](const auto& b) { return b.name == rec.bridge; });
  }
  IpPrefix subnet = rec.address.network();
  bool subnetInUse = std::ranges::any_of(
      state_.namespaces, [&](const auto& n) { return n.address.network() == subnet; });
  if (dp_ && !subnetInUse) {
    (void)dp_->deleteMasquerade(subnet);
  }
  if (auto r = persist(); !r) {
    return std::unexpected(r.error());
  }
  log::info("ns del ", name);
  return json{{"name", name}, {"deleted", true}};
}

json Gateway::listNamespaces() {
  json out = json::array();
  for (const auto& n : state_.namespaces) {
    std::string health = "up";
    auto link = getLink(host_, n.hostLink);
    if (!namespaceExists(n.name)) {
      health = "missing: namespace";
    } else if (!link) {
      health = "missing: link " + n.hostLink;
    } else if (!link->up) {
      health = "down";
    }
    out.push_back({{"name", n.name},
                   {"address", n.address.addr.str()},
                   {"prefix", n.address.str()},
                   {"gateway", n.hostAddress.addr.str()},
                   {"link", n.hostLink},
                   {"wiring", n.wiring == Wiring::Bridge ? "bridge" : "p2p"},
                   {"bridge", n.bridge},
                   {"state", health}});
  }
  return out;
}

json Gateway::status() {
  json uplink = {{"name", config_.uplink}, {"ifindex", uplinkIndex_}};
  json addrs = json::array();
  if (auto list = listAddresses(host_, AF_UNSPEC, uplinkIndex_); list) {
    for (const auto& a : *list) {
      addrs.push_back(a.prefix.str());
    }
  }
  uplink["addresses"] = addrs;
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - started_);
  return json{{"version", kVersion},
              {"pid", ::getpid()},
              {"netns", config_.netns},
              {"uplink", uplink},
              {"socket", config_.socketPath},
              {"stateDir", config_.stateDir},
              {"bpffs", config_.bpffs},
              {"uptimeSeconds", uptime.count()},
              {"namespaces", state_.namespaces.size()},
              {"bridges", state_.bridges.size()},
              {"exposes", state_.exposes.size()},
              {"datapath",
               dp_ ? json{{"loaded", true},
                          {"xdp", std::string(toString(dp_->uplinkXdpMode()))},
                          {"adopted", dp_->adopted()}}
                   : json{{"loaded", false}, {"error", dpError_}}}};
}

http::Response Gateway::handle(const http::Request& request) {
  const std::string path = request.path();
  const std::string& method = request.method;
  json body = json::object();
  if (!request.body.empty()) {
    body = json::parse(request.body, nullptr, false);
    if (body.is_discarded()) {
      return jsonResponse(400, json{{"error", "request body is not valid JSON"}});
    }
  }
  auto reply = [](const Result<json>& r, int okStatus = 200) {
    return r ? jsonResponse(okStatus, *r) : errorResponse(r.error());
  };
  constexpr std::string_view kNamespaces = "/v1/namespaces";
  if (path == "/v1/status" && method == "GET") {
    return jsonResponse(200, status());
  }
  if (path == kNamespaces && method == "GET") {
    return jsonResponse(200, listNamespaces());
  }
  if (path == kNamespaces && method == "POST") {
    return reply(addNamespace(body), 201);
  }
  if (path.starts_with(std::string(kNamespaces) + "/") && method == "DELETE") {
    return reply(deleteNamespace(http::percentDecode(path.substr(kNamespaces.size() + 1))));
  }
  if (path == "/v1/exposes") {
    if (method == "GET") {
      return reply(listExposes());
    }
    if (method == "POST") {
      return reply(addExpose(body), 201);
    }
    if (method == "DELETE") {
      return reply(deleteExpose(request.query()));
    }
  }
  if (path == "/v1/masquerade") {
    if (method == "GET") {
      return jsonResponse(200, listMasquerades());
    }
    if (method == "POST") {
      return reply(addMasquerade(body), 201);
    }
    if (method == "DELETE") {
      return reply(deleteMasquerade(request.query()));
    }
  }
  if (path == "/v1/conntrack") {
    if (method == "GET") {
      return reply(listConntrack(request.query()));
    }
    if (method == "DELETE") {
      return reply(deleteConntrack(request.query()));
    }
  }
  if (path == "/v1/stats" && method == "GET") {
    return reply(stats());
  }
  if (path == "/metrics" && method == "GET") {
    return {200, "text/plain; version=0.0.4", metrics()};
  }
  if (path == "/v1/down" && method == "POST") {
    auto r = teardownAll();
    finished_ = true;
    return r ? jsonResponse(200, json{{"down", true}}) : errorResponse(r.error());
  }
  if (path == "/v1/status" || path.starts_with(kNamespaces) || path == "/v1/exposes" ||
      path == "/v1/masquerade" || path == "/v1/conntrack" || path == "/v1/stats") {
    return jsonResponse(405, json{{"error", "method " + method + " not allowed on " + path}});
  }
  return jsonResponse(404, json{{"error", "no such endpoint: " + method + " " + path}});
}

} // namespace gw
