// SPDX-License-Identifier: MIT
// gwctl: the command line client of gatewayd. A thin layer: parse, call the API, print.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ApiClient.h"
#include "Http.h"
#include "Table.h"

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
  } catch (const po::error& e) {
    return usageError(command + ": " + e.what());
  }
  return usageError("unknown command '" + command + "'");
}
