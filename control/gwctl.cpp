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

#include "control/ApiClient.h"
#include "control/Http.h"
#include "control/Table.h"

namespace po = boost::program_options;
using nlohmann::json;

namespace {

struct Globals {
  std::string socket = gw::kDefaultSocket;
  bool json = false;
};

constexpr const char* kUsage = R"(usage: gwctl [--socket PATH] [-j|--json] COMMAND ...
commands:
  status                                  show the daemon's state
  ns add NAME [--bridge BR] [--subnet CIDR]
                                          create a namespace wired to the gateway
  ns del NAME                             remove it and everything `ns add` made
  ns list                                 list managed namespaces
  expose HOSTPORT[-END] TARGET [--proto tcp|udp] [--host-ip IP] [--mode auto|ebpf|proxy]
         [--proxy-protocol v2]            TARGET: NS:PORT[-END], IP:PORT[-END] or [IPv6]:PORT[-END]
  expose --file FILE|-                    many at once: lines "HOSTPORT TARGET [tcp|udp]"
  unexpose HOSTPORT[-END] [--proto tcp|udp]
  list                                    list exposes: which path serves each, counters
  masquerade add CIDR [--out IFNAME] | del CIDR | list
  conntrack [list] [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack delete [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack flush
  stats                                   packets by reason, per-rule counters
  down                                    remove everything gatewayd made, then stop it
)";

int usageError(const std::string& message) {
  std::fprintf(stderr, "gwctl: %s (see gwctl --help)\n", message.c_str());
  return 2;
}

// Calls the API; prints the error and returns nullopt on failure.
std::optional<json> call(const Globals& g, const std::string& method, const std::string& target,
                         const json& body = nullptr) {
  auto response = gw::callApi(g.socket, method, target, body.is_null() ? "" : body.dump());
  if (!response) {
    std::fprintf(stderr, "gwctl: %s\n", response.error().str().c_str());
    return std::nullopt;
  }
  json parsed = json::parse(response->body, nullptr, false);
  if (response->status >= 300) {
    std::string message = parsed.is_object() && parsed.contains("error")
                              ? parsed["error"].get<std::string>()
                              : "HTTP " + std::to_string(response->status);
    std::fprintf(stderr, "gwctl: %s\n", message.c_str());
    return std::nullopt;
  }
  if (parsed.is_discarded()) {
    std::fprintf(stderr, "gwctl: gatewayd sent a reply that is not JSON\n");
    return std::nullopt;
  }
  return parsed;
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
    auto r = call(g, "GET", "/v1/namespaces");
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] {
      gw::Table t({"NAME", "ADDRESS", "GATEWAY", "LINK", "BRIDGE", "STATE"});
      for (const auto& n : *r) {
        t.add({n["name"], n["prefix"], n["gateway"], n["link"],
               n["bridge"].get<std::string>().empty() ? "-" : n["bridge"], n["state"]});
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
    json body = {{"name", name}};
    if (!bridge.empty()) {
      body["bridge"] = bridge;
    }
    if (!subnet.empty()) {
      body["subnet"] = subnet;
    }
    auto r = call(g, "POST", "/v1/namespaces", body);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] {
      std::cout << "namespace " << (*r)["name"].get<std::string>() << " at "
                << (*r)["prefix"].get<std::string>() << " via "
                << (*r)["gateway"].get<std::string>() << " (" << (*r)["link"].get<std::string>()
                << ")\n";
    });
  }
  if (verb == "del" || verb == "delete" || verb == "rm") {
    if (args.size() != 1) {
      return usageError("ns del takes exactly one NAME");
    }
    auto r = call(g, "DELETE", "/v1/namespaces/" + gw::http::percentEncode(args[0]));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] { std::cout << "namespace " << args[0] << " deleted\n"; });
  }
  return usageError("ns: unknown verb '" + verb + "'");
}

std::string toQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) {
      continue;
    }
    q += (q.empty() ? "?" : "&") + k + "=" + gw::http::percentEncode(v);
  }
  return q;
}

std::string str(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
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
  json batch = json::array();
  std::string line;
  for (int n = 1; std::getline(*src, line); ++n) {
    std::istringstream words(line);
    std::string port, target, proto;
    if (!(words >> port) || port.starts_with("#")) {
      continue;
    }
    if (!(words >> target)) {
      std::fprintf(stderr, "gwctl: %s line %d: expected HOSTPORT TARGET [tcp|udp]\n",
                   file.c_str(), n);
      return 1;
    }
    words >> proto;
    batch.push_back({{"hostPort", port}, {"target", target}, {"proto", proto.empty() ? "tcp" : proto}});
  }
  auto r = call(g, "POST", "/v1/exposes", batch);
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] { std::cout << "exposed " << r->size() << " rules\n"; });
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
  json body = {{"hostPort", port}, {"target", target}, {"proto", proto}, {"mode", mode}};
  if (!hostIp.empty()) {
    body["hostIp"] = hostIp;
  }
  if (!proxyProtocol.empty()) {
    body["proxyProtocol"] = proxyProtocol;
  }
  auto r = call(g, "POST", "/v1/exposes", body);
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] {
    std::cout << "exposed " << str((*r)["proto"]) << " " << str((*r)["hostPort"]) << " -> "
              << str((*r)["target"]) << " (" << str((*r)["targetAddr"]) << ") via "
              << str((*r)["path"]) << "\n";
  });
}

int unexposeCommand(const Globals& g, const std::vector<std::string>& args) {
  po::options_description o;
  std::string port, proto;
  o.add_options()("port", po::value(&port)->required())(
      "proto", po::value(&proto)->default_value("tcp"));
  po::positional_options_description p;
  p.add("port", 1);
  parseSub(args, o, p);
  auto r = call(g, "DELETE", "/v1/exposes" + toQuery({{"port", port}, {"proto", proto}}));
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] { std::cout << "unexposed " << proto << " " << port << "\n"; });
}

int listCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("list takes no arguments");
  }
  auto r = call(g, "GET", "/v1/exposes");
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] {
    gw::Table t({"ID", "PROTO", "HOST", "TARGET", "ADDRESS", "PATH", "CONNS", "PACKETS", "BYTES"});
    for (const auto& e : *r) {
      t.add({str(e["id"]), str(e["proto"]), str(e["hostIp"]) + ":" + str(e["hostPort"]),
             str(e["target"]), str(e["targetAddr"]) + ":" + str(e["targetPort"]), str(e["path"]),
             str(e["connections"]), str(e["packets"]), str(e["bytes"])});
    }
    t.print(std::cout);
    for (const auto& e : *r) {
      std::cout << "  rule " << str(e["id"]) << ": " << str(e["why"]) << "\n";
    }
  });
}

int masqueradeCommand(const Globals& g, std::vector<std::string> args) {
  std::string verb = args.empty() ? "list" : args.front();
  if (!args.empty()) {
    args.erase(args.begin());
  }
  if (verb == "list" || verb == "ls") {
    auto r = call(g, "GET", "/v1/masquerade");
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] {
      gw::Table t({"SOURCE", "OUT", "FROM"});
      for (const auto& m : *r) {
        t.add({str(m["source"]), str(m["out"]), m["automatic"] ? "ns add" : "masquerade add"});
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
    json body = {{"source", cidr}};
    if (!out.empty()) {
      body["outIf"] = out;
    }
    auto r = call(g, "POST", "/v1/masquerade", body);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] {
      std::cout << "masquerading " << str((*r)["source"]) << " out " << str((*r)["out"]) << "\n";
    });
  }
  if (verb == "del" || verb == "delete" || verb == "rm") {
    parseSub(args, o, p);
    auto r = call(g, "DELETE", "/v1/masquerade" + toQuery({{"source", cidr}}));
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] { std::cout << "masquerade " << cidr << " deleted\n"; });
  }
  return usageError("masquerade: unknown verb '" + verb + "'");
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
  std::string query = toQuery({{"proto", proto}, {"src", src}, {"dst", dst}, {"port", port}});
  if (verb == "list" || verb == "ls") {
    auto r = call(g, "GET", "/v1/conntrack" + query);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] {
      gw::Table t({"PROTO", "ORIGINAL", "REPLY", "STATE", "AGE", "IDLE", "PACKETS", "BYTES"});
      auto tuple = [](const json& x) {
        return str(x["src"]) + ":" + str(x["sport"]) + " -> " + str(x["dst"]) + ":" +
               str(x["dport"]);
      };
      for (const auto& f : *r) {
        char age[32], idle[32];
        std::snprintf(age, sizeof age, "%.0fs", f["ageSeconds"].get<double>());
        std::snprintf(idle, sizeof idle, "%.0fs", f["idleSeconds"].get<double>());
        t.add({str(f["proto"]), tuple(f["orig"]), tuple(f["reply"]), str(f["state"]), age, idle,
               str(f["packets"]), str(f["bytes"])});
      }
      t.print(std::cout);
    });
  }
  if (verb == "delete" || verb == "del" || verb == "flush") {
    if (verb == "flush") {
      if (!query.empty()) {
        return usageError("conntrack flush takes no filter (use conntrack delete)");
      }
      query = "?all=1";
    } else if (query.empty()) {
      return usageError("conntrack delete needs a filter (--proto, --src, --dst, --port)");
    }
    auto r = call(g, "DELETE", "/v1/conntrack" + query);
    if (!r) {
      return 1;
    }
    return printJsonOr(g, *r, [&] { std::cout << str((*r)["deleted"]) << " flows deleted\n"; });
  }
  return usageError("conntrack: unknown verb '" + verb + "'");
}

int statsCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("stats takes no arguments");
  }
  auto r = call(g, "GET", "/v1/stats");
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] {
    std::cout << "conntrack entries " << str((*r)["conntrack"]["entries"]) << " of "
              << str((*r)["conntrack"]["capacity"]) << "\n\n";
    gw::Table reasons({"REASON", "PACKETS"});
    for (const auto& [name, count] : (*r)["reasons"].items()) {
      reasons.add({name, str(count)});
    }
    reasons.print(std::cout);
    std::cout << "\n";
    gw::Table rules({"RULE", "EXPOSE", "CONNS", "PACKETS", "BYTES", "DROPS"});
    for (const auto& x : (*r)["rules"]) {
      rules.add({str(x["id"]), str(x["rule"]), str(x["connections"]), str(x["packets"]),
                 str(x["bytes"]), str(x["drops"])});
    }
    rules.print(std::cout);
  });
}

int statusCommand(const Globals& g, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return usageError("status takes no arguments");
  }
  auto r = call(g, "GET", "/v1/status");
  if (!r) {
    return 1;
  }
  return printJsonOr(g, *r, [&] {
    const auto& s = *r;
    std::cout << "gatewayd " << s["version"].get<std::string>() << " pid " << s["pid"] << "\n"
              << "netns      " << (s["netns"].get<std::string>().empty() ? "(own)" : s["netns"])
              << "\n"
              << "uplink     " << s["uplink"]["name"].get<std::string>() << " "
              << s["uplink"]["addresses"].dump() << "\n"
              << "namespaces " << s["namespaces"] << "\n"
              << "exposes    " << s["exposes"] << "\n"
              << "data path  "
              << (s["datapath"]["loaded"] ? "eBPF, XDP " + str(s["datapath"]["xdp"])
                                          : "not loaded: " + str(s["datapath"]["error"]))
              << "\n"
              << "uptime     " << s["uptimeSeconds"] << " s\n";
  });
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
      auto r = call(g, "POST", "/v1/down");
      if (!r) {
        return 1;
      }
      return printJsonOr(g, *r, [] { std::cout << "gatewayd is down; everything it made is removed\n"; });
    }
  } catch (const po::error& e) {
    return usageError(command + ": " + e.what());
  }
  return usageError("unknown command '" + command + "'");
}
