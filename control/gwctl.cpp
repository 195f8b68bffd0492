// SPDX-License-Identifier: MIT
// gwctl: the command line client of gatewayd. A thin layer: parse, call the API, print.
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/Api.h"
#include "control/ApiClient.h"
#include "control/ApiValues.h"
#include "control/Http.h"
#include "control/Table.h"

namespace po = boost::program_options;
namespace api = gw::api;
using nlohmann::json;

namespace {
struct Globals {
  std::string socket = gw::kDefaultSocket;
  bool json = false;
};

constexpr const char* kUsage = R"(usage: gwctl [--socket PATH] [-j|--json] COMMAND ...
commands:
  status                                  show the daemon's state (exit 3: degraded)
  ns add NAME [--bridge BR] [--subnet CIDR]
                                          create a namespace wired to the gateway
  ns del NAME                             remove it and everything `ns add` made
  ns list                                 list managed namespaces
  expose HOSTPORT[-END] TARGET [--proto tcp|udp] [--host-ip IP] [--mode auto|ebpf|proxy]
         [--proxy-protocol v2]            TARGET: NS:PORT[-END], IP:PORT[-END] or [IPv6]:PORT[-END]
  expose --file FILE|-                    many at once: lines "HOSTPORT TARGET [tcp|udp]"
  unexpose HOSTPORT[-END] [--proto tcp|udp] [--host-ip IP] [--keep-flows]
  list                                    list exposes: which path serves each, counters
  masquerade add CIDR [--out IFNAME] | del CIDR | list
  conntrack [list] [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack delete [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack flush
  stats                                   packets by reason, per-rule counters
  down                                    remove everything gatewayd made, then stop it
)";

// `gwctl status` while gatewayd serves without its eBPF data path.
constexpr int kExitDegraded = 3;

int usageError(const std::string& message) {
  std::fprintf(stderr, "gwctl: %s (see gwctl --help)\n", message.c_str());
  return 2;
}

// Calls the API; prints the error and returns nullopt on failure.
std::optional<json> callRaw(const Globals& g, const std::string& method,
                            const std::string& target, const json& body = nullptr) {
  auto response = gw::callApi(g.socket, method, target, body.is_null() ? "" : body.dump());
  if (!response) {
    std::fprintf(stderr, "gwctl: %s\n", response.error().str().c_str());
    return std::nullopt;
  }
  json parsed = json::parse(response->body, nullptr, false);
  if (response->status >= 300) {
    auto error = api::fromJson<api::ErrorBody>(parsed, "error answer");
    std::string message = error ? error->error : "HTTP " + std::to_string(response->status);
    std::fprintf(stderr, "gwctl: %s\n", message.c_str());
    return std::nullopt;
  }
  if (parsed.is_discarded()) {
    std::fprintf(stderr, "gwctl: gatewayd sent a reply that is not JSON\n");
    return std::nullopt;
  }
  return parsed;
}

// An answer as gatewayd sent it (printed as is with -j) and decoded into its API type.
template <class T>
struct Answer {
  json raw;
  T value;
};

// Calls the API and decodes the answer into T; prints the error and returns nullopt on failure.
template <class T>
std::optional<Answer<T>> call(const Globals& g, const std::string& method,
                              const std::string& target, const json& body = nullptr) {
  auto raw = callRaw(g, method, target, body);
  if (!raw) {
    return std::nullopt;
  }
  auto value = api::fromJson<T>(*raw, "gatewayd's answer");
  if (!value) {
    std::fprintf(stderr, "gwctl: gatewayd sent an answer gwctl does not understand: %s\n",
                 value.error().str().c_str());
    return std::nullopt;
  }
  return Answer<T>{std::move(*raw), std::move(*value)};
}

// A command-line value parsed into its API type; prints the error and returns nullopt.
template <class T>
std::optional<T> parsed(gw::Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "gwctl: %s\n", r.error().str().c_str());
    return std::nullopt;
  }
  return std::move(*r);
}

// "?a=b&c=d" from a query struct: its non-empty fields, by their API names.
template <class T>
std::string queryOf(const T& query) {
  std::string q;
  json fields = api::toJson(query); // items() of a temporary would dangle
  for (const auto& [key, value] : fields.items()) {
    std::string text = value.is_string() ? value.template get<std::string>() : value.dump();
    if (!text.empty()) {
      q += (q.empty() ? "?" : "&") + key + "=" + gw::http::percentEncode(text);
    }
  }
  return q;
}

// Parses a subcommand's own options and positionals; throws po::error on bad input.
po::variables_map parseSub(const std::vector<std::string>& args,
                           const po::options_description& options,
                           const po::positional_options_description& positional) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

int printJsonOr(const Globals& g, const json& value, const std::function<void()>& human) {
  if (g.json) {
    std::cout << value.dump(2) << "\n";
  } else {
    human();
  }
  return 0;
}

int nsCommand(const Globals& g, std::vector<std::string> args) {
  if (args.empty()) {
    return usageError("ns: expected add, del or list");
  }
  std::string verb = args.front();
  args.erase(args.begin());
  if (verb == "list" || verb == "ls") {
    if (!args.empty()) {
      return usageError("ns list takes no arguments");
    }
    auto r = call<std::vector<api::NamespaceInfo>>(g, "GET", api::kNamespacesPath);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] {
      gw::Table t({"NAME", "ADDRESS", "GATEWAY", "LINK", "BRIDGE", "STATE"});
      for (const auto& n : r->value) {
        t.add({n.name, n.prefix.str(), n.gateway.str(), n.link,
               n.bridge.empty() ? "-" : n.bridge, n.state});
      }
      t.print(std::cout);
    });
  }
  if (verb == "add") {
    po::options_description o;
    std::string name, bridge, subnet;
    o.add_options()("name", po::value(&name)->required())("bridge", po::value(&bridge))(
        "subnet", po::value(&subnet));
    po::positional_options_description p;
    p.add("name", 1);
    parseSub(args, o, p);
    api::NamespaceAddRequest request{.name = name};
    if (!bridge.empty()) {
      request.bridge = bridge;
    }
    if (!subnet.empty()) {
      auto prefix = parsed(gw::IpPrefix::parse(subnet));
      if (!prefix) {
        return 1;
      }
      request.subnet = *prefix;
    }
    auto r = call<api::NamespaceAdded>(g, "POST", api::kNamespacesPath, api::toJson(request));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] {
      const auto& n = r->value;
      std::cout << "namespace " << n.name << " at " << n.prefix.str() << " via "
                << n.gateway.str() << " (" << n.link << ")\n";
    });
  }
  if (verb == "del" || verb == "delete" || verb == "rm") {
    if (args.size() != 1) {
      return usageError("ns del takes exactly one NAME");
    }
    auto r = call<api::NamespaceDeleted>(
        g, "DELETE", std::string(api::kNamespacesPath) + "/" + gw::http::percentEncode(args[0]));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] { std::cout << "namespace " << args[0] << " deleted\n"; });
  }
  return usageError("ns: unknown verb '" + verb + "'");
}

// The words of one expose, typed; prints what is wrong (naming `where`) on failure.
std::optional<api::ExposeRequest> exposeRequest(const std::string& where, const std::string& port,
                                                const std::string& target,
                                                const std::string& proto,
                                                const std::string& hostIp = {},
                                                const std::string& mode = {},
                                                const std::string& proxyProtocol = {}) {
  api::ExposeRequest request;
  auto fail = [&](const gw::Error& e) {
    std::fprintf(stderr, "gwctl: %s%s\n", where.c_str(), e.str().c_str());
    return std::nullopt;
  };
  auto ports = gw::parsePortRange(port, "host port");
  if (!ports) {
    return fail(ports.error());
  }
  request.hostPort = *ports;
  auto spec = gw::parseTarget(target);
  if (!spec) {
    return fail(spec.error());
  }
  request.target = *spec;
  auto p = gw::parseProto(proto);
  if (!p) {
    return fail(p.error());
  }
  request.proto = *p;
  if (!hostIp.empty()) {
    auto addr = gw::IpAddress::parse(hostIp);
    if (!addr) {
      return fail(gw::Error{0, "--host-ip: " + addr.error().message, false});
    }
    request.hostIp = *addr;
  }
  auto m = gw::parseExposeMode(mode);
  if (!m) {
    return fail(m.error());
  }
  request.mode = *m;
  auto pp = gw::parseProxyProtocol(proxyProtocol);
  if (!pp) {
    return fail(pp.error());
  }
  request.proxyProtocol = *pp;
  return request;
}

// `gwctl expose --file FILE|-`: one expose per line, "HOSTPORT TARGET [tcp|udp]", sent as one
// batch (all or nothing).
int exposeBatch(const Globals& g, const std::string& file) {
  std::ifstream in;
  std::istream* src = &std::cin;
  if (file != "-") {
    in.open(file);
    if (!in) {
      std::fprintf(stderr, "gwctl: cannot read %s\n", file.c_str());
      return 1;
    }
    src = &in;
  }
  std::vector<api::ExposeRequest> batch;
  std::string line;
  for (int n = 1; std::getline(*src, line); ++n) {
    std::istringstream words(line);
    std::string port, target, proto;
    if (!(words >> port) || port.starts_with("#")) {
      continue;
    }
    std::string where = file + " line " + std::to_string(n) + ": ";
    if (!(words >> target)) {
      std::fprintf(stderr, "gwctl: %sexpected HOSTPORT TARGET [tcp|udp]\n", where.c_str());
      return 1;
    }
    words >> proto;
    auto request = exposeRequest(where, port, target, proto);
    if (!request) {
      return 1;
    }
    batch.push_back(std::move(*request));
  }
  auto r = call<std::vector<api::ExposeAdded>>(g, "POST", api::kExposesPath, api::toJson(batch));
  if (!r) {
    return 1;
  }
  return printJsonOr(g, r->raw, [&] { std::cout << "exposed " << r->value.size() << " rules\n"; });
}

int exposeCommand(const Globals& g, const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "--file") {
    return exposeBatch(g, args[1]);
  }
  po::options_description o;
  std::string port, target, proto, hostIp, mode, proxyProtocol;
  o.add_options()("port", po::value(&port)->required())("target", po::value(&target)->required())(
      "proto", po::value(&proto)->default_value("tcp"))("host-ip", po::value(&hostIp))(
      "mode", po::value(&mode)->default_value("auto"))("proxy-protocol",
                                                        po::value(&proxyProtocol));
  po::positional_options_description p;
  p.add("port", 1).add("target", 1);
  parseSub(args, o, p);
  auto request = exposeRequest("", port, target, proto, hostIp, mode, proxyProtocol);
  if (!request) {
    return 1;
  }
  auto r = call<api::ExposeAdded>(g, "POST", api::kExposesPath, api::toJson(*request));
  if (!r) {
    return 1;
  }
  return printJsonOr(g, r->raw, [&] {
    const auto& e = r->value;
    std::cout << "exposed " << gw::protoName(e.proto) << " " << e.hostPort.str() << " -> "
              << e.target << " (" << e.targetAddr.str() << ") via " << gw::toString(e.path)
              << "\n";
  });
}

int unexposeCommand(const Globals& g, const std::vector<std::string>& args) {
  po::options_description o;
  std::string port, proto, hostIp;
  bool keepFlows = false;
  o.add_options()("port", po::value(&port)->required())(
      "proto", po::value(&proto)->default_value("tcp"))("host-ip", po::value(&hostIp))(
      "keep-flows", po::bool_switch(&keepFlows));
  po::positional_options_description p;
  p.add("port", 1);
  parseSub(args, o, p);
  auto ports = parsed(gw::parsePortRange(port, "host port"));
  auto protocol = parsed(gw::parseProto(proto));
  if (!ports || !protocol) {
    return 1;
  }
  api::UnexposeQuery query{.port = *ports, .proto = *protocol, .keepFlows = keepFlows};
  if (!hostIp.empty()) {
    auto addr = parsed(gw::IpAddress::parse(hostIp));
    if (!addr) {
      return 1;
    }
    query.hostIp = *addr;
  }
  auto r = call<api::ExposeDeleted>(g, "DELETE", api::kExposesPath + queryOf(query));
  if (!r) {
    return 1;
  }
  return printJsonOr(g, r->raw, [&] { std::cout << "unexposed " << proto << " " << port << "\n"; });
}

int listCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("list takes no arguments");
  }
  auto r = call<std::vector<api::ExposeInfo>>(g, "GET", api::kExposesPath);
  if (!r) {
    return 1;
  }
  return printJsonOr(g, r->raw, [&] {
    gw::Table t({"ID", "PROTO", "HOST", "TARGET", "ADDRESS", "PATH", "CONNS", "PACKETS", "BYTES"});
    for (const auto& e : r->value) {
      t.add({std::to_string(e.id), std::string(gw::protoName(e.proto)),
             e.hostIp + ":" + e.hostPort.str(), e.target,
             e.targetAddr.str() + ":" + e.targetPort.str(), std::string(gw::toString(e.path)),
             std::to_string(e.connections), std::to_string(e.packets),
             std::to_string(e.bytes)});
    }
    t.print(std::cout);
    for (const auto& e : r->value) {
      std::cout << "  rule " << e.id << ": " << e.why << "\n";
    }
  });
}

int masqueradeCommand(const Globals& g, std::vector<std::string> args) {
  std::string verb = args.empty() ? "list" : args.front();
  if (!args.empty()) {
    args.erase(args.begin());
  }
  if (verb == "list" || verb == "ls") {
    auto r = call<std::vector<api::MasqueradeInfo>>(g, "GET", api::kMasqueradePath);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] {
      gw::Table t({"SOURCE", "OUT", "FROM"});
      for (const auto& m : r->value) {
        t.add({m.source.str(), m.out, m.automatic ? "ns add" : "masquerade add"});
      }
      t.print(std::cout);
    });
  }
  po::options_description o;
  std::string cidr, out;
  o.add_options()("cidr", po::value(&cidr)->required())("out", po::value(&out));
  po::positional_options_description p;
  p.add("cidr", 1);
  if (verb == "add") {
    parseSub(args, o, p);
    auto source = parsed(gw::IpPrefix::parse(cidr));
    if (!source) {
      return 1;
    }
    api::MasqueradeRequest request{.source = *source};
    if (!out.empty()) {
      request.outIf = out;
    }
    auto r = call<api::MasqueradeAdded>(g, "POST", api::kMasqueradePath, api::toJson(request));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] {
      std::cout << "masquerading " << r->value.source.str() << " out " << r->value.out << "\n";
    });
  }
  if (verb == "del" || verb == "delete" || verb == "rm") {
    parseSub(args, o, p);
    auto source = parsed(gw::IpPrefix::parse(cidr));
    if (!source) {
      return 1;
    }
    api::MasqueradeQuery query{.source = *source};
    auto r = call<api::MasqueradeDeleted>(g, "DELETE", api::kMasqueradePath + queryOf(query));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] { std::cout << "masquerade " << cidr << " deleted\n"; });
  }
  return usageError("masquerade: unknown verb '" + verb + "'");
}

// The conntrack filter flags, typed.
std::optional<api::ConntrackQuery> conntrackQuery(const std::string& proto, const std::string& src,
                                                  const std::string& dst,
                                                  const std::string& port) {
  api::ConntrackQuery q;
  if (!proto.empty()) {
    auto p = parsed(gw::parseProto(proto));
    if (!p) {
      return std::nullopt;
    }
    q.proto = *p;
  }
  for (auto [text, field, flag] : {std::tuple{&src, &q.src, "--src"}, {&dst, &q.dst, "--dst"}}) {
    if (!text->empty()) {
      auto addr = gw::IpAddress::parse(*text);
      if (!addr) {
        std::fprintf(stderr, "gwctl: %s: %s\n", flag, addr.error().message.c_str());
        return std::nullopt;
      }
      *field = *addr;
    }
  }
  if (!port.empty()) {
    auto ports = parsed(gw::parsePortRange(port, "--port"));
    if (!ports) {
      return std::nullopt;
    }
    q.port = *ports;
  }
  return q;
}

int conntrackCommand(const Globals& g, std::vector<std::string> args) {
  std::string verb = "list";
  if (!args.empty() && !args.front().starts_with("-")) {
    verb = args.front();
    args.erase(args.begin());
  }
  po::options_description o;
  std::string proto, src, dst, port;
  o.add_options()("proto", po::value(&proto))("src", po::value(&src))("dst", po::value(&dst))(
      "port", po::value(&port));
  parseSub(args, o, {});
  auto query = conntrackQuery(proto, src, dst, port);
  if (!query) {
    return 1;
  }
  std::string filter = queryOf(*query);
  if (verb == "list" || verb == "ls") {
    auto r = call<std::vector<api::FlowInfo>>(g, "GET", api::kConntrackPath + filter);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw, [&] {
      gw::Table t({"PROTO", "ORIGINAL", "REPLY", "STATE", "AGE", "IDLE", "PACKETS", "BYTES"});
      auto tuple = [](const api::FlowTupleInfo& x) {
        return x.src.str() + ":" + std::to_string(x.sport) + " -> " + x.dst.str() + ":" +
               std::to_string(x.dport);
      };
      for (const auto& f : r->value) {
        char age[32], idle[32];
        std::snprintf(age, sizeof age, "%.0fs", f.ageSeconds);
        std::snprintf(idle, sizeof idle, "%.0fs", f.idleSeconds);
        t.add({f.proto, tuple(f.orig), tuple(f.reply), f.state, age, idle,
               std::to_string(f.packets), std::to_string(f.bytes)});
      }
      t.print(std::cout);
    });
  }
  if (verb == "delete" || verb == "del" || verb == "flush") {
    if (verb == "flush") {
      if (!filter.empty()) {
        return usageError("conntrack flush takes no filter (use conntrack delete)");
      }
      filter = queryOf(api::ConntrackQuery{.all = "1"});
    } else if (filter.empty()) {
      return usageError("conntrack delete needs a filter (--proto, --src, --dst, --port)");
    }
    auto r = call<api::FlowsDeleted>(g, "DELETE", api::kConntrackPath + filter);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, r->raw,
                       [&] { std::cout << r->value.deleted << " flows deleted\n"; });
  }
  return usageError("conntrack: unknown verb '" + verb + "'");
}

int statsCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("stats takes no arguments");
  }
  auto r = call<api::StatsInfo>(g, "GET", api::kStatsPath);
  if (!r) {
    return 1;
  }
  return printJsonOr(g, r->raw, [&] {
    const auto& s = r->value;
    if (!s.datapathLoaded) {
      std::cout << "eBPF data path not loaded (degraded): only the proxy's counters\n\n";
    }
    std::cout << "conntrack entries " << s.conntrack.entries << " of " << s.conntrack.capacity
              << "\n\n";
    gw::Table reasons({"REASON", "PACKETS"});
    for (const auto& [name, count] : s.reasons) {
      reasons.add({name, std::to_string(count)});
    }
    reasons.print(std::cout);
    std::cout << "\n";
    gw::Table rules({"RULE", "EXPOSE", "CONNS", "PACKETS", "BYTES", "DROPS"});
    for (const auto& x : s.rules) {
      rules.add({std::to_string(x.id), x.rule, std::to_string(x.connections),
                 std::to_string(x.packets), std::to_string(x.bytes), std::to_string(x.drops)});
    }
    rules.print(std::cout);
    if (!s.proxy.empty()) {
      std::cout << "\n";
      gw::Table proxied({"RULE", "PROXIED", "ACCEPTED", "ACTIVE", "LIMIT-REFUSED",
                         "BACKEND-FAILED", "BYTES-IN", "BYTES-OUT"});
      for (const auto& x : s.proxy) {
        proxied.add({std::to_string(x.id), x.rule, std::to_string(x.accepted),
                     std::to_string(x.active), std::to_string(x.refusedLimit),
                     std::to_string(x.backendFailed), std::to_string(x.bytesIn),
                     std::to_string(x.bytesOut)});
      }
      proxied.print(std::cout);
    }
  });
}

int statusCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("status takes no arguments");
  }
  auto r = call<api::StatusInfo>(g, "GET", api::kStatusPath);
  if (!r) {
    return 1;
  }
  // As `systemctl is-system-running` answers "degraded": scripts can tell without parsing.
  int code = r->value.state == "degraded" ? kExitDegraded : 0;
  printJsonOr(g, r->raw, [&] {
    const auto& s = r->value;
    std::cout << "gatewayd " << s.version << " pid " << s.pid << "\n"
              << "netns      " << (s.netns.empty() ? "(own)" : s.netns) << "\n"
              << "uplink     " << s.uplink.name << " " << api::toJson(s.uplink.addresses).dump()
              << "\n"
              << "namespaces " << s.namespaces << "\n"
              << "exposes    " << s.exposes << "\n"
              << "data path  "
              << (s.datapath.loaded ? "eBPF, XDP " + s.datapath.xdp.value_or("?")
                                    : "not loaded: " + s.datapath.error.value_or("?"))
              << "\n"
              << "uptime     " << s.uptimeSeconds << " s\n";
    if (s.state == "degraded") {
      std::cout << "state      DEGRADED: without the eBPF data path TCP exposes go through the "
                   "proxy, UDP exposes and masquerade are refused\n";
    }
  });
  return code;
}

} // namespace

int main(int argc, char** argv) {
  Globals g;
  std::vector<std::string> rest;
  // Global options may stand anywhere (`gwctl ns list -j`); everything else is the command.
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-j" || a == "--json") {
      g.json = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--socket") {
      if (i + 1 >= argc) {
        return usageError("--socket needs a PATH");
      }
      g.socket = argv[++i];
    } else if (a.starts_with("--socket=")) {
      g.socket = a.substr(9);
    } else {
      rest.push_back(a);
    }
  }
  if (rest.empty()) {
    return usageError("no command given");
  }
  std::string command = rest.front();
  rest.erase(rest.begin());
  try {
    if (command == "ns") {
      return nsCommand(g, rest);
    }
    if (command == "status") {
      return statusCommand(g, rest);
    }
    if (command == "expose") {
      return exposeCommand(g, rest);
    }
    if (command == "unexpose") {
      return unexposeCommand(g, rest);
    }
    if (command == "list" || command == "ls") {
      return listCommand(g, rest);
    }
    if (command == "masquerade") {
      return masqueradeCommand(g, rest);
    }
    if (command == "conntrack") {
      return conntrackCommand(g, rest);
    }
    if (command == "stats") {
      return statsCommand(g, rest);
    }
    if (command == "down") {
      if (!rest.empty()) {
        return usageError("down takes no arguments");
      }
      auto r = call<api::DownResult>(g, "POST", api::kDownPath);
      if (!r) {
        return 1;
      }
      return printJsonOr(g, r->raw, [] { std::cout << "gatewayd is down; everything it made is removed\n"; });
    }
  } catch (const po::error& e) {
    return usageError(command + ": " + e.what());
  }
  return usageError("unknown command '" + command + "'");
}
