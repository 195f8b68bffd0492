// SPDX-License-Identifier: MIT
// The Gateway's NAT rules: exposes, masquerade, conntrack and counters (eBPF data path).
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "netns/Address.h"
#include "gateway/Gateway.h"
#include "netns/Link.h"
#include "base/Log.h"
#include "netns/Namespace.h"
#include "gateway/datapath/Datapath.h"
#include "bpf/gw_abi.h"
#include "gateway/proxy/Proxy.h"

namespace gw {
namespace {

using nlohmann::json;

// Where the proxy connects for NS:PORT targets, from inside NS (see addOneExpose).
const IpAddress kNamespaceLoopback = IpAddress::v4(0x7f000001);

std::unexpected<Error> badRequest(std::string message) {
  return fail(std::move(message), EINVAL);
}

Result<std::string> stringField(const json& body, const char* key, bool required) {
  if (!body.contains(key) || body[key].is_null()) {
    if (required) {
      return badRequest(std::string("missing field '") + key + "'");
    }
    return std::string();
  }
  if (body[key].is_number_unsigned()) {
    return std::to_string(body[key].get<uint64_t>());
  }
  if (!body[key].is_string()) {
    return badRequest(std::string("field '") + key + "' must be a string");
  }
  return body[key].get<std::string>();
}

json tupleJson(const FlowTuple& t) {
  return json{{"src", t.src.str()}, {"sport", t.sport}, {"dst", t.dst.str()}, {"dport", t.dport}};
}

std::string hostIpOf(const ExposeRecord& e) {
  return e.hostIp.empty() ? "*" : e.hostIp;
}

Result<FlowFilter> filterFromQuery(const std::map<std::string, std::string>& query) {
  FlowFilter f;
  for (const auto& [key, value] : query) {
    if (key == "proto") {
      if (value == "icmp") {
        f.proto = IPPROTO_ICMP;
        continue;
      }
      auto p = parseProto(value);
      if (!p) {
        return std::unexpected(p.error());
      }
      f.proto = *p;
    } else if (key == "src" || key == "dst") {
      auto a = IpAddress::parse(value);
      if (!a) {
        return badRequest("--" + key + ": " + a.error().message);
      }
      (key == "src" ? f.src : f.dst) = *a;
    } else if (key == "port" || key == "sport" || key == "dport") {
      auto r = parsePortRange(value, "--" + key);
      if (!r || r->size() != 1) {
        return badRequest("--" + key + ": '" + value + "' is not a port (1-65535)");
      }
      (key == "port" ? f.port : key == "sport" ? f.sport : f.dport) = r->first;
    } else if (key != "all") {
      return badRequest("unknown conntrack filter '" + key + "'");
    }
  }
  return f;
}

} // namespace

Result<Datapath*> Gateway::datapath() {
  if (!dp_) {
    return fail("the eBPF data path is not loaded: " + dpError_, EOPNOTSUPP);
  }
  return dp_.get();
}

Result<IpAddress> Gateway::resolveTarget(const TargetSpec& target) {
  if (target.addr) {
    return *target.addr;
  }
  if (const auto* managed = state_.findNamespace(target.ns); managed != nullptr) {
    return managed->address.addr;
  }
  if (!namespaceExists(target.ns)) {
    return fail("target namespace " + target.ns + " does not exist", ENOENT);
  }
  // A namespace wired by hand: take its address on a subnet the gateway host is attached to.
  auto inside = Netlink::openIn(target.ns);
  if (!inside) {
    return std::unexpected(inside.error());
  }
  auto theirs = listAddresses(*inside, AF_INET);
  auto ours = listAddresses(host_, AF_INET);
  if (!theirs || !ours) {
    return std::unexpected((!theirs ? theirs : ours).error());
  }
  std::optional<IpAddress> fallback;
  for (const auto& a : *theirs) {
    if (a.prefix.addr.bytes[0] == 127) {
      continue;
    }
    for (const auto& o : *ours) {
      if (o.prefix.addr.bytes[0] != 127 && o.prefix.network().contains(a.prefix.addr)) {
        return a.prefix.addr;
      }
    }
    if (!fallback) {
      fallback = a.prefix.addr;
    }
  }
  if (fallback) {
    return *fallback;
  }
  return fail("target namespace " + target.ns + " has no IPv4 address", ENOENT);
}

Status Gateway::checkPortFree(uint8_t proto, const PortRange& ports, const std::string& hostIp) {
  std::string_view protoText = protoName(proto);
  for (const auto& e : state_.exposes) {
    PortRange theirs{e.hostPort, e.hostPortEnd};
    if (e.proto == protoText && theirs.overlaps(ports) &&
        (e.hostIp.empty() || hostIp.empty() || e.hostIp == hostIp)) {
      return fail("host port " + ports.str() + "/" + e.proto + " clashes with the expose of " +
                      theirs.str() + " to " + e.target,
                  EEXIST);
    }
  }
  // A local socket of the gateway host already bound there: a bind attempt tells.
  int type = proto == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  for (unsigned port = ports.first; port <= ports.last; ++port) {
    UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (!fd) {
      return sysError("socket");
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (!hostIp.empty()) {
      std::memcpy(&sa.sin_addr, IpAddress::parse(hostIp)->bytes.data(), 4);
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 &&
        errno == EADDRINUSE) {
      return fail("host port " + std::to_string(port) + "/" + std::string(protoName(proto)) +
                      " is already in use by a local socket on the gateway host",
                  EADDRINUSE);
    }
  }
  return {};
}

uint32_t Gateway::allocateRuleId() {
  std::vector<bool> used(GW_RULE_MAX);
  for (const auto& e : state_.exposes) {
    used[e.id] = true;
  }
  // From a cursor, so ids are not reused soon after an unexpose (their counters are fresh).
  for (uint32_t k = 0; k + 1 < GW_RULE_MAX; ++k) {
    uint32_t id = 1 + (state_.nextRuleId - 1 + k) % (GW_RULE_MAX - 1);
    if (!used[id]) {
      state_.nextRuleId = id % (GW_RULE_MAX - 1) + 1;
      return id;
    }
  }
  return 0;
}

std::pair<std::string, std::string> Gateway::pathFor(const ExposeRecord& e) const {
  if (e.mode == "proxy") {
    return {"proxy", "io_uring proxy: --mode proxy"};
  }
  if (!e.proxyProtocol.empty()) {
    return {"proxy", "io_uring proxy: --proxy-protocol needs a proxy"};
  }
  if (e.targetAddr.isV6()) {
    if (e.mode == "ebpf") {
      return {"none", "--mode ebpf but the target is IPv6: the eBPF data path is IPv4 only"};
    }
    return {"proxy", "io_uring proxy: auto, an IPv6 target (the eBPF data path is IPv4 only)"};
  }
  if (dp_) {
    return {"ebpf", "eBPF data path: tc DNAT, cgroup hooks for the gateway host's own clients"};
  }
  if (e.mode == "ebpf") {
    return {"none", "--mode ebpf but the eBPF data path is not loaded: " + dpError_};
  }
  return {"proxy", "io_uring proxy: auto, the eBPF data path is not loaded (" + dpError_ + ")"};
}

Status Gateway::applyProxy(const ExposeRecord& e) {
  if (!proxy_) {
    ProxyConfig pc;
    pc.relay = config_.proxyRelay == "splice" ? RelayMode::Splice : RelayMode::Buffers;
    auto started = Proxy::start(pc);
    if (!started) {
      return std::unexpected(started.error());
    }
    proxy_ = std::move(*started);
  }
  std::vector<uint64_t> ids;
  for (unsigned i = 0; i + e.hostPort <= e.hostPortEnd; ++i) {
    ProxyListenerSpec spec;
    spec.listenAddr = e.hostIp.empty() ? "0.0.0.0" : e.hostIp;
    spec.listenPort = static_cast<uint16_t>(e.hostPort + i);
    spec.targetNetns = e.targetNs;
    spec.targetAddr = e.targetAddr.str();
    if (!e.targetNs.empty() && e.targetAddr == kNamespaceLoopback) {
      spec.fallbackAddr = "::1"; // a server on IPv6 loopback only
    }
    spec.targetPort = static_cast<uint16_t>(e.targetPort + i);
    spec.proxyProtocolV2 = e.proxyProtocol == "v2";
    auto id = proxy_->addListener(spec);
    if (!id) {
      for (auto added : ids) {
        (void)proxy_->removeListener(added, false);
      }
      return std::unexpected(id.error());
    }
    ids.push_back(*id);
  }
  listeners_[e.id] = std::move(ids);
  return {};
}

Status Gateway::applyExpose(const ExposeRecord& e) {
  auto [path, why] = pathFor(e);
  if (path == "proxy") {
    return applyProxy(e);
  }
  auto dp = datapath();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto proto = parseProto(e.proto);
  if (!proto) {
    return std::unexpected(proto.error());
  }
  IpAddress hostAddr;
  if (!e.hostIp.empty()) {
    hostAddr = *IpAddress::parse(e.hostIp);
  }
  for (unsigned i = 0; i + e.hostPort <= e.hostPortEnd; ++i) {
    ExposeEntry entry{*proto, hostAddr, static_cast<uint16_t>(e.hostPort + i), e.targetAddr,
                      static_cast<uint16_t>(e.targetPort + i), e.id};
    if (auto r = (*dp)->addExpose(entry); !r) {
      for (unsigned j = 0; j < i; ++j) {
        (void)(*dp)->deleteExpose(*proto, hostAddr, static_cast<uint16_t>(e.hostPort + j));
      }
      return r;
    }
  }
  return {};
}

Status Gateway::removeExpose(const ExposeRecord& e) {
  if (auto it = listeners_.find(e.id); it != listeners_.end()) {
    for (auto id : it->second) {
      (void)proxy_->removeListener(id, true);
    }
    listeners_.erase(it);
    return {};
  }
  auto dp = datapath();
  if (!dp) {
    return {};
  }
  auto proto = parseProto(e.proto);
  IpAddress hostAddr;
  if (!e.hostIp.empty()) {
    hostAddr = *IpAddress::parse(e.hostIp);
  }
  for (unsigned port = e.hostPort; port <= e.hostPortEnd; ++port) {
    auto r = (*dp)->deleteExpose(*proto, hostAddr, static_cast<uint16_t>(port));
    if (!r && r.error().code != ENOENT) {
      return r;
    }
  }
  return {};
}

Result<json> Gateway::addExpose(const json& body) {
  if (!body.is_array()) {
    auto r = addOneExpose(body);
    if (!r) {
      return r;
    }
    if (auto saved = persist(); !saved) {
      ExposeRecord e = state_.exposes.back();
      state_.exposes.pop_back();
      (void)removeExpose(e);
      return std::unexpected(saved.error());
    }
    return r;
  }
  // A batch: all or nothing, one state write (10,000 rules in one call, as iptables-restore).
  size_t before = state_.exposes.size();
  auto undo = [&] {
    while (state_.exposes.size() > before) {
      (void)removeExpose(state_.exposes.back());
      state_.exposes.pop_back();
    }
  };
  json out = json::array();
  for (size_t i = 0; i < body.size(); ++i) {
    auto r = addOneExpose(body[i]);
    if (!r) {
      undo();
      return fail("expose #" + std::to_string(i + 1) + " of the batch: " + r.error().str() +
                      " (none of the batch was applied)",
                  r.error().code);
    }
    out.push_back(*r);
  }
  if (auto saved = persist(); !saved) {
    undo();
    return std::unexpected(saved.error());
  }
  return out;
}

Result<json> Gateway::addOneExpose(const json& body) {
  if (!body.is_object()) {
    return badRequest("an expose must be a JSON object");
  }
  auto hostPort = stringField(body, "hostPort", true);
  auto target = stringField(body, "target", true);
  auto protoText = stringField(body, "proto", false);
  auto hostIp = stringField(body, "hostIp", false);
  auto mode = stringField(body, "mode", false);
  auto proxyProtocol = stringField(body, "proxyProtocol", false);
  for (const auto* f : {&hostPort, &target, &protoText, &hostIp, &mode, &proxyProtocol}) {
    if (!*f) {
      return std::unexpected(f->error());
    }
  }
  auto ports = parsePortRange(*hostPort, "host port");
  if (!ports) {
    return std::unexpected(ports.error());
  }
  auto spec = parseTarget(*target);
  if (!spec) {
    return std::unexpected(spec.error());
  }
  auto proto = parseProto(*protoText);
  if (!proto) {
    return std::unexpected(proto.error());
  }
  if (spec->ports.size() != ports->size()) {
    return badRequest("host ports " + ports->str() + " and target ports " + spec->ports.str() +
                      " differ in length: ranges map one to one");
  }
  if (!hostIp->empty()) {
    auto addr = IpAddress::parse(*hostIp);
    if (!addr || !addr->isV4()) {
      return badRequest("--host-ip '" + *hostIp + "' is not an IPv4 address");
    }
  }
  std::string modeText = mode->empty() ? "auto" : *mode;
  if (modeText != "auto" && modeText != "ebpf" && modeText != "proxy") {
    return badRequest("--mode '" + modeText + "': expected auto, ebpf or proxy");
  }
  if (!proxyProtocol->empty() && *proxyProtocol != "v2") {
    return badRequest("--proxy-protocol '" + *proxyProtocol + "': only v2 is supported");
  }
  if (!proxyProtocol->empty() && modeText == "ebpf") {
    return badRequest("--proxy-protocol v2 needs the proxy: use --mode auto or proxy");
  }
  ExposeRecord probe;
  probe.mode = modeText;
  probe.proxyProtocol = *proxyProtocol;
  probe.targetAddr = spec->addr.value_or(IpAddress{});
  auto [path, why] = pathFor(probe);
  if (path == "none") {
    return fail(why, EOPNOTSUPP);
  }
  if ((path == "proxy" || modeText == "proxy") && *proto != IPPROTO_TCP) {
    return badRequest("the proxy serves TCP only: --proto udp needs the eBPF data path");
  }
  Result<IpAddress> targetAddr = IpAddress{};
  if (path == "proxy" && !spec->ns.empty()) {
    // The proxy connects from inside the namespace: loopback there reaches servers bound to
    // 127.0.0.1 as well as to 0.0.0.0, and ::1 is tried when 127.0.0.1 refuses.
    if (!namespaceExists(spec->ns)) {
      return fail("target namespace " + spec->ns + " does not exist", ENOENT);
    }
    targetAddr = kNamespaceLoopback;
  } else {
    targetAddr = resolveTarget(*spec);
  }
  if (!targetAddr) {
    return std::unexpected(targetAddr.error());
  }
  if (auto r = checkPortFree(*proto, *ports, *hostIp); !r) {
    return std::unexpected(r.error());
  }
  ExposeRecord e;
  e.id = allocateRuleId();
  if (e.id == 0) {
    return fail("no free rule id: too many exposes", ENOSPC);
  }
  e.proto = std::string(protoName(*proto));
  e.hostPort = ports->first;
  e.hostPortEnd = ports->last;
  e.hostIp = *hostIp;
  e.target = *target;
  e.targetNs = spec->ns;
  e.targetAddr = *targetAddr;
  e.targetPort = spec->ports.first;
  e.mode = modeText;
  e.proxyProtocol = *proxyProtocol;
  if (dp_) {
    // A reused id starts from zero, not from the counters of the rule that had it before.
    (void)dp_->resetRuleStats(e.id);
  }
  if (auto r = applyExpose(e); !r) {
    return fail("expose " + ports->str() + ": " + r.error().str(), r.error().code);
  }
  state_.exposes.push_back(e);
  log::info("expose ", e.proto, " ", hostIpOf(e), ":", ports->str(), " -> ", e.target, " (",
            e.targetAddr.str(), ") rule ", e.id, " via ", path);
  return json{{"id", e.id},
              {"proto", e.proto},
              {"hostPort", ports->str()},
              {"target", e.target},
              {"targetAddr", e.targetAddr.str()},
              {"path", path},
              {"why", why}};
}

Result<json> Gateway::deleteExpose(const std::map<std::string, std::string>& query) {
  auto it = query.find("port");
  if (it == query.end()) {
    return badRequest("missing the host port to unexpose");
  }
  auto ports = parsePortRange(it->second, "host port");
  if (!ports) {
    return std::unexpected(ports.error());
  }
  auto proto = parseProto(query.contains("proto") ? query.at("proto") : "");
  if (!proto) {
    return std::unexpected(proto.error());
  }
  std::string name(protoName(*proto));
  auto found = std::ranges::find_if(state_.exposes, [&](const ExposeRecord& e) {
    return e.proto == name && e.hostPort == ports->first && e.hostPortEnd == ports->last;
  });
  if (found == state_.exposes.end()) {
    for (const auto& e : state_.exposes) {
      if (e.proto == name && PortRange{e.hostPort, e.hostPortEnd}.overlaps(*ports)) {
        return fail("host port " + ports->str() + "/" + name + " is part of the expose of " +
                        PortRange{e.hostPort, e.hostPortEnd}.str() + ": unexpose that range",
                    ENOENT);
      }
    }
    return fail("nothing is exposed on host port " + ports->str() + "/" + name, ENOENT);
  }
  ExposeRecord e = *found;
  if (auto r = removeExpose(e); !r) {
    return std::unexpected(r.error());
  }
  state_.exposes.erase(found);
  if (auto r = persist(); !r) {
    return std::unexpected(r.error());
  }
  log::info("unexpose ", e.proto, " ", ports->str());
  return json{{"id", e.id}, {"hostPort", ports->str()}, {"proto", e.proto}, {"deleted", true}};
}

Result<json> Gateway::listExposes(const DatapathStats* known) {
  std::optional<DatapathStats> read;
  if (known == nullptr && dp_) {
    if (auto s = dp_->stats(); s) {
      read = std::move(*s);
      known = &*read;
    }
  }
  std::map<uint32_t, RuleStats> counters;
  if (known != nullptr) {
    for (const auto& r : known->rules) {
      counters[r.ruleId] = r;
    }
  }
  json out = json::array();
  for (const auto& e : state_.exposes) {
    auto [path, why] = pathFor(e);
    RuleStats c = counters[e.id];
    if (auto it = listeners_.find(e.id); it != listeners_.end()) {
      for (auto id : it->second) {
        if (auto ls = proxy_->listenerStats(id); ls) {
          c.connections += ls->accepted;
          c.bytes += ls->bytesIn + ls->bytesOut;
          c.drops += ls->refusedLimit + ls->backendFailed;
        }
      }
    }
    PortRange targets{e.targetPort,
                      static_cast<uint16_t>(e.targetPort + (e.hostPortEnd - e.hostPort))};
    out.push_back({{"id", e.id},
                   {"proto", e.proto},
                   {"hostIp", hostIpOf(e)},
                   {"hostPort", PortRange{e.hostPort, e.hostPortEnd}.str()},
                   {"target", e.target},
                   {"targetAddr", e.targetAddr.str()},
                   {"targetPort", targets.str()},
                   {"mode", e.mode},
                   {"proxyProtocol", e.proxyProtocol},
                   {"path", path},
                   {"why", why},
                   {"packets", c.packets},
                   {"bytes", c.bytes},
                   {"connections", c.connections},
                   {"drops", c.drops}});
  }
  return out;
}

std::vector<IpPrefix> Gateway::masqueradeSources() const {
  std::vector<IpPrefix> out;
  for (const auto& n : state_.namespaces) {
    auto net = n.address.network();
    if (std::ranges::find(out, net) == out.end()) {
      out.push_back(net);
    }
  }
  return out;
}

Result<json> Gateway::addMasquerade(const json& body) {
  if (!body.is_object()) {
    return badRequest("body must be a JSON object");
  }
  auto source = stringField(body, "source", true);
  auto outIf = stringField(body, "outIf", false);
  if (!source || !outIf) {
    return std::unexpected((!source ? source : outIf).error());
  }
  auto prefix = IpPrefix::parse(*source);
  if (!prefix || !prefix->addr.isV4()) {
    return badRequest("masquerade source '" + *source + "' is not an IPv4 CIDR");
  }
  IpPrefix net = prefix->network();
  int outIndex = 0;
  if (!outIf->empty()) {
    auto link = getLink(host_, *outIf);
    if (!link) {
      return fail("--out " + *outIf + ": no such interface in the gateway host", ENODEV);
    }
    outIndex = link->index;
  }
  if (std::ranges::any_of(state_.masquerades, [&](const auto& m) { return m.source == net; })) {
    return fail("masquerade for " + net.str() + " already exists", EEXIST);
  }
  auto dp = datapath();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  if (auto r = (*dp)->addMasquerade(net, outIndex); !r) {
    return std::unexpected(r.error());
  }
  state_.masquerades.push_back({net, *outIf, false});
  if (auto r = persist(); !r) {
    return std::unexpected(r.error());
  }
  log::info("masquerade add ", net.str(), outIf->empty() ? "" : " out " + *outIf);
  return json{{"source", net.str()}, {"out", outIf->empty() ? config_.uplink : *outIf}};
}

Result<json> Gateway::deleteMasquerade(const std::map<std::string, std::string>& query) {
  auto it = query.find("source");
  if (it == query.end()) {
    return badRequest("missing the source CIDR");
  }
  auto prefix = IpPrefix::parse(it->second);
  if (!prefix) {
    return badRequest("masquerade source '" + it->second + "' is not a CIDR");
  }
  IpPrefix net = prefix->network();
  auto found = std::ranges::find(state_.masquerades, net, &MasqueradeRecord::source);
  if (found == state_.masquerades.end()) {
    return fail("no masquerade for " + net.str() + " (those of `ns add` go with `ns del`)",
                ENOENT);
  }
  auto automatic = masqueradeSources();
  if (dp_ && std::ranges::find(automatic, net) == automatic.end()) {
    (void)dp_->deleteMasquerade(net);
  }
  state_.masquerades.erase(found);
  if (auto r = persist(); !r) {
    return std::unexpected(r.error());
  }
  return json{{"source", net.str()}, {"deleted", true}};
}

json Gateway::listMasquerades() {
  json out = json::array();
  for (const auto& net : masqueradeSources()) {
    out.push_back({{"source", net.str()}, {"out", config_.uplink}, {"automatic", true}});
  }
  for (const auto& m : state_.masquerades) {
    out.push_back({{"source", m.source.str()},
                   {"out", m.outIf.empty() ? config_.uplink : m.outIf},
                   {"automatic", false}});
  }
  return out;
}

Result<json> Gateway::listConntrack(const std::map<std::string, std::string>& query) {
  auto dp = datapath();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto filter = filterFromQuery(query);
  if (!filter) {
    return std::unexpected(filter.error());
  }
  auto flows = (*dp)->listFlows();
  if (!flows) {
    return std::unexpected(flows.error());
  }
  json out = json::array();
  for (const auto& f : *flows) {
    if (!filter->matches(f)) {
      continue;
    }
    out.push_back({{"proto", std::string(protoName(f.proto))},
                   {"orig", tupleJson(f.orig)},
                   {"reply", tupleJson(f.reply)},
                   {"state", std::string(f.state)},
                   {"idleSeconds", std::chrono::duration<double>(f.age).count()},
                   {"ageSeconds", std::chrono::duration<double>(f.life).count()},
                   {"packets", f.origCounters.packets + f.replyCounters.packets},
                   {"bytes", f.origCounters.bytes + f.replyCounters.bytes},
                   {"origPackets", f.origCounters.packets},
                   {"replyPackets", f.replyCounters.packets},
                   {"rule", f.ruleId},
                   {"nat", (f.nat & 1 ? std::string("dnat") : std::string()) +
                               (f.nat == 3 ? "+" : "") + (f.nat & 2 ? "snat" : "")}});
  }
  return out;
}

Result<json> Gateway::deleteConntrack(const std::map<std::string, std::string>& query) {
  auto dp = datapath();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  if (query.empty()) {
    return badRequest("conntrack delete needs a filter (or flush)");
  }
  if (query.contains("all")) {
    auto n = (*dp)->flushFlows();
    if (!n) {
      return std::unexpected(n.error());
    }
    return json{{"deleted", *n}};
  }
  auto filter = filterFromQuery(query);
  if (!filter) {
    return std::unexpected(filter.error());
  }
  auto n = (*dp)->deleteFlows(*filter);
  if (!n) {
    return std::unexpected(n.error());
  }
  return json{{"deleted", *n}};
}

Result<json> Gateway::stats() {
  auto dp = datapath();
  if (!dp) {
    return std::unexpected(dp.error());
  }
  auto s = (*dp)->stats();
  if (!s) {
    return std::unexpected(s.error());
  }
  json reasons = json::object();
  for (const auto& r : s->reasons) {
    reasons[std::string(r.name)] = r.packets;
  }
  json rules = json::array();
  for (const auto& r : s->rules) {
    std::string what;
    for (const auto& e : state_.exposes) {
      if (e.id == r.ruleId) {
        what = e.proto + " " + PortRange{e.hostPort, e.hostPortEnd}.str() + " -> " + e.target;
      }
    }
    rules.push_back({{"id", r.ruleId},
                     {"rule", what},
                     {"packets", r.packets},
                     {"bytes", r.bytes},
                     {"connections", r.connections},
                     {"drops", r.drops}});
  }
  return json{{"reasons", reasons},
              {"rules", rules},
              {"conntrack",
               {{"entries", s->ctEntries},
                {"capacity", s->ctCapacity},
                {"pressureSweeps", ctPressureSweeps_}}}};
}

} // namespace gw
