// SPDX-License-Identifier: MIT
// gwctl: the command line client of gatewayd. A thin layer: parse, call the API, print.
#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <expected>
#include <fstream>
#include <functional>
#include <sstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
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
  // How long to wait for each answer: well past what gatewayd takes for one request (5 s to
  // read it, its work, 5 s to write the answer), so a slow answer is waited for.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

constexpr const char* kUsage = R"(usage: gwctl [--socket PATH] [-j|--json] [--timeout SECONDS] COMMAND ...
commands:
  status                                  show the daemon's state (exit 3: degraded)
  ns add NAME [--bridge BR] [--subnet CIDR] [--subnet6 CIDR | --no-ipv6]
                                          create a namespace wired to the gateway
  ns del NAME                             remove it and everything `ns add` made
  ns list                                 list managed namespaces
  expose HOSTPORT[-END] TARGET [--proto tcp|udp] [--host-ip IP] [--mode auto|ebpf|proxy]
         [--proxy-protocol v2]            TARGET: NS:PORT[-END], IP:PORT[-END] or [IPv6]:PORT[-END]
                                          or /NETNS/PATH:PORT[-END] (e.g. /proc/PID/ns/net:80)
         [--family 4|6|both]              the client families it answers on (default both)
         [--owner OWNER]                  rules removed together by `unexpose --owner`
  expose --file FILE|-                    many at once: lines "HOSTPORT TARGET [tcp|udp]"
  unexpose HOSTPORT[-END] [--proto tcp|udp] [--host-ip IP] [--family 4|6] [--keep-flows]
  unexpose --owner OWNER                  every rule of OWNER and its flows
  list [--owner OWNER]                    list exposes: which path serves each family, counters
  masquerade add CIDR [--out IFNAME] [--filtering endpoint-independent] | del CIDR | list
  conntrack [list] [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack delete [--proto P] [--src IP] [--dst IP] [--port N]
  conntrack flush
  stats                                   packets by reason, per-rule counters
  down                                    remove everything gatewayd made, then stop it
Listings are read page by page and printed as one table (or one JSON array with -j).
exit: 0 done; 1 failed or refused; 2 bad usage; 3 status: degraded; 4 a change got no answer
and gwctl could not find out whether it is in place (see its message)
)";

// `gwctl status` while gatewayd serves without its eBPF data path.
constexpr int kExitDegraded = 3;
// A change went unanswered (a timeout, a lost connection) and reading gatewayd's listings
// could not tell whether it is in place. When they can tell, gwctl exits 0 or 1 as they say.
constexpr int kExitUnknown = 4;

int usageError(const std::string& message) {
  std::fprintf(stderr, "gwctl: %s (see gwctl --help)\n", message.c_str());
  return 2;
}

// The JSON of an answer, or gatewayd's error message (the answer's status is >= 300, or it
// is not JSON).
gw::Result<json> answerJson(const gw::http::Response& response) {
  json parsed = json::parse(response.body, nullptr, false);
  if (response.status >= 300) {
    auto error = api::fromJson<api::ErrorBody>(parsed, "error answer");
    return gw::fail(error ? error->error : "HTTP " + std::to_string(response.status));
  }
  if (parsed.is_discarded()) {
    return gw::fail("gatewayd sent a reply that is not JSON");
  }
  return parsed;
}

// An answer decoded into T; the error says gwctl does not understand it.
template <class T>
gw::Result<T> decodeAnswer(const json& raw) {
  auto value = api::fromJson<T>(raw, "gatewayd's answer");
  if (!value) {
    return gw::fail("gatewayd sent an answer gwctl does not understand: " +
                    value.error().str());
  }
  return value;
}

// Calls the API; prints the error and returns nullopt on failure.
std::optional<json> callRaw(const Globals& g, const std::string& method,
                            const std::string& target, const json& body = nullptr) {
  auto response =
      gw::callApi(g.socket, method, target, body.is_null() ? "" : body.dump(), g.timeout);
  if (!response) {
    std::fprintf(stderr, "gwctl: %s\n", response.error().str().c_str());
    return std::nullopt;
  }
  auto parsed = answerJson(*response);
  if (!parsed) {
    std::fprintf(stderr, "gwctl: %s\n", parsed.error().message.c_str());
    return std::nullopt;
  }
  return std::move(*parsed);
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
  auto value = decodeAnswer<T>(*raw);
  if (!value) {
    std::fprintf(stderr, "gwctl: %s\n", value.error().message.c_str());
    return std::nullopt;
  }
  return Answer<T>{std::move(*raw), std::move(*value)};
}

// A whole listing, read page after page: its items and, when asked for, their JSON as the one
// array an unpaged answer is (as json::dump(2) prints it), kept as text: a table of 100,000
// flows as JSON nodes would take gigabytes.
template <class T>
struct Listing {
  std::vector<T> items;
  std::string json;
};

void appendIndented(std::string& out, const std::string& text) {
  out += "  ";
  for (char c : text) {
    out += c;
    if (c == '\n') {
      out += "  ";
    }
  }
}

template <class T>
gw::Result<Listing<T>> fetchListing(const Globals& g, const std::string& path,
                                    const std::string& filter, bool keepJson) {
  Listing<T> out;
  std::optional<std::string> after;
  while (true) {
    std::string target = path + filter + (filter.empty() ? "?" : "&") +
                         "limit=" + std::to_string(api::kMaxPageLimit);
    if (after) {
      target += "&after=" + gw::http::percentEncode(*after);
    }
    auto response = gw::callApi(g.socket, "GET", target, "", g.timeout);
    if (!response) {
      return std::unexpected(response.error());
    }
    auto doc = answerJson(*response);
    if (!doc) {
      return std::unexpected(doc.error());
    }
    // A page is {"items": [...], "next": CURSOR}; a daemon without pages answers one array.
    const json* items = &*doc;
    std::optional<std::string> next;
    if (doc->is_object()) {
      if (!doc->contains("items") || !(*doc)["items"].is_array()) {
        return gw::fail("gatewayd sent a page without items");
      }
      items = &(*doc)["items"];
      if (doc->contains("next") && (*doc)["next"].is_string()) {
        next = (*doc)["next"].get<std::string>();
      }
    }
    for (const auto& item : *items) {
      auto value = decodeAnswer<T>(item);
      if (!value) {
        return std::unexpected(value.error());
      }
      out.items.push_back(std::move(*value));
      if (keepJson) {
        out.json += out.json.empty() ? "[\n" : ",\n";
        appendIndented(out.json, item.dump(2));
      }
    }
    if (!next || next->empty()) {
      break;
    }
    if (next == after) {
      return gw::fail("gatewayd's pages do not advance (next '" + *next + "' again)");
    }
    after = std::move(next);
  }
  out.json = out.json.empty() ? "[]" : out.json + "\n]";
  return out;
}

// A listing for a command to print; prints the error and returns nullopt on failure.
template <class T>
std::optional<Listing<T>> listing(const Globals& g, const std::string& path,
                                  const std::string& filter = {}) {
  auto r = fetchListing<T>(g, path, filter, g.json);
  if (!r) {
    std::fprintf(stderr, "gwctl: %s\n", r.error().str().c_str());
    return std::nullopt;
  }
  return std::move(*r);
}

// What gatewayd's listings show of a change whose answer never came.
struct Finding {
  enum class Verdict { InPlace, NotInPlace, Unknown };
  Verdict verdict = Verdict::Unknown;
  std::string detail;    // what was seen
  json answer = nullptr; // InPlace: the change's answer, rebuilt from the listing
};
using Check = std::function<Finding(const Globals&)>;

Finding inPlace(std::string detail, json answer) {
  return {Finding::Verdict::InPlace, std::move(detail), std::move(answer)};
}
Finding notInPlace(std::string detail) {
  return {Finding::Verdict::NotInPlace, std::move(detail)};
}
Finding unknown(std::string detail) { return {Finding::Verdict::Unknown, std::move(detail)}; }
Finding unreadable(const gw::Error& error) {
  return unknown("gatewayd's listing cannot be read (" + error.str() + ")");
}

// A change: its answer, or the exit code to leave with. When the request reached gatewayd
// but no answer came back, gwctl does not guess: it says so, reads the listing `check` looks
// at and reports what that shows. gatewayd serves requests in the order they came, so the
// listing is read after the change was dealt with (or after the daemon that had it died).
template <class T>
std::expected<Answer<T>, int> change(const Globals& g, const std::string& method,
                                     const std::string& target, const json& body,
                                     const Check& check) {
  auto sent =
      gw::sendApi(g.socket, method, target, body.is_null() ? "" : body.dump(), g.timeout);
  if (!sent.response && !sent.sent) { // it never reached gatewayd whole: nothing changed
    std::fprintf(stderr, "gwctl: %s\n", sent.response.error().str().c_str());
    return std::unexpected(1);
  }
  if (sent.response) {
    auto raw = answerJson(*sent.response);
    auto value = raw ? decodeAnswer<T>(*raw) : gw::Result<T>(std::unexpected(raw.error()));
    if (!value) {
      std::fprintf(stderr, "gwctl: %s\n", value.error().message.c_str());
      return std::unexpected(1);
    }
    return Answer<T>{std::move(*raw), std::move(*value)};
  }
  std::fprintf(stderr,
               "gwctl: no answer from gatewayd (%s): the outcome is unknown; reading its "
               "listing to see whether the change is in place\n",
               sent.response.error().str().c_str());
  Finding found = check(g);
  switch (found.verdict) {
  case Finding::Verdict::InPlace: {
    auto value = decodeAnswer<T>(found.answer);
    if (value) {
      std::fprintf(stderr, "gwctl: the change is in place: %s\n", found.detail.c_str());
      return Answer<T>{std::move(found.answer), std::move(*value)};
    }
    break;
  }
  case Finding::Verdict::NotInPlace:
    std::fprintf(stderr, "gwctl: the change is not in place, it failed: %s\n",
                 found.detail.c_str());
    return std::unexpected(1);
  case Finding::Verdict::Unknown:
    break;
  }
  std::fprintf(stderr, "gwctl: whether the change is in place is still unknown: %s\n",
               found.detail.c_str());
  return std::unexpected(kExitUnknown);
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

template <class T>
int printListingOr(const Globals& g, const Listing<T>& list, const std::function<void()>& human) {
  if (g.json) {
    std::cout << list.json << "\n";
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
    auto r = listing<api::NamespaceInfo>(g, api::kNamespacesPath);
    if (!r) {
      return 1;
    }
    return printListingOr(g, *r, [&] {
      gw::Table t({"NAME", "ADDRESS", "GATEWAY", "LINK", "BRIDGE", "STATE", "ADDRESS6"});
      for (const auto& n : r->items) {
        t.add({n.name, n.prefix.str(), n.gateway.str(), n.link,
               n.bridge.empty() ? "-" : n.bridge, n.state,
               n.prefix6 ? n.prefix6->str() : "-"});
      }
      t.print(std::cout);
    });
  }
  if (verb == "add") {
    po::options_description o;
    std::string name, bridge, subnet, subnet6;
    bool noIpv6 = false;
    o.add_options()("name", po::value(&name)->required())("bridge", po::value(&bridge))(
        "subnet", po::value(&subnet))("subnet6", po::value(&subnet6))(
        "no-ipv6", po::bool_switch(&noIpv6));
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
    if (!subnet6.empty()) {
      auto prefix = parsed(gw::IpPrefix::parse(subnet6));
      if (!prefix) {
        return 1;
      }
      request.subnet6 = *prefix;
    }
    request.noIpv6 = noIpv6;
    auto r = change<api::NamespaceAdded>(
        g, "POST", api::kNamespacesPath, api::toJson(request), [name](const Globals& g) {
          auto list = fetchListing<api::NamespaceInfo>(g, api::kNamespacesPath, "", false);
          if (!list) {
            return unreadable(list.error());
          }
          for (const auto& n : list->items) {
            if (n.name == name) {
              return inPlace("namespace " + name + " is listed",
                             api::toJson(api::NamespaceAdded{n.name, n.address, n.prefix,
                                                             n.gateway, n.link, n.address6,
                                                             n.prefix6, n.gateway6}));
            }
          }
          return notInPlace("no namespace " + name + " is listed");
        });
    if (!r) {
      return r.error();
    }
    return printJsonOr(g, r->raw, [&] {
      const auto& n = r->value;
      std::cout << "namespace " << n.name << " at " << n.prefix.str() << " via "
                << n.gateway.str() << " (" << n.link << ")\n";
      if (n.prefix6 && n.gateway6) {
        std::cout << "  and " << n.prefix6->str() << " via " << n.gateway6->str() << "\n";
      }
    });
  }
  if (verb == "del" || verb == "delete" || verb == "rm") {
    if (args.size() != 1) {
      return usageError("ns del takes exactly one NAME");
    }
    std::string name = args[0];
    auto r = change<api::NamespaceDeleted>(
        g, "DELETE", std::string(api::kNamespacesPath) + "/" + gw::http::percentEncode(name),
        nullptr, [name](const Globals& g) {
          auto list = fetchListing<api::NamespaceInfo>(g, api::kNamespacesPath, "", false);
          if (!list) {
            return unreadable(list.error());
          }
          for (const auto& n : list->items) {
            if (n.name == name) {
              return notInPlace("namespace " + name + " is still listed");
            }
          }
          return inPlace("no namespace " + name + " is listed",
                         api::toJson(api::NamespaceDeleted{name, true}));
        });
    if (!r) {
      return r.error();
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
                                                const std::string& proxyProtocol = {},
                                                const std::string& family = {}) {
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
  if (!family.empty()) {
    auto f = gw::parseIpFamilies(family);
    if (!f) {
      return fail(f.error());
    }
    request.family = *f;
  }
  return request;
}

// "tcp *:6000" for an expose's host side, as `gwctl list` shows it.
std::string hostSide(gw::Proto proto, const std::string& hostIp, const gw::PortRange& ports) {
  return std::string(gw::protoName(proto)) + " " + hostIp + ":" + ports.str();
}

// Whether the exposes of `batch` are in place (all, with their targets); the answer is rebuilt
// as the single expose's or the batch's.
Check exposesInPlace(std::vector<api::ExposeRequest> batch, bool single) {
  return [batch = std::move(batch), single](const Globals& g) {
    auto list = fetchListing<api::ExposeInfo>(g, api::kExposesPath, "", false);
    if (!list) {
      return unreadable(list.error());
    }
    json answers = json::array();
    std::string missing;
    // One pass over the listing, not one per request: a batch may be every port.
    std::map<std::tuple<gw::Proto, std::string, std::string>, const api::ExposeInfo*> listed;
    for (const auto& e : list->items) {
      listed[{e.proto, e.hostIp, e.hostPort.str()}] = &e;
    }
    for (const auto& rq : batch) {
      std::string hostIp = rq.hostIp ? rq.hostIp->str() : "*";
      std::string where = hostSide(rq.proto, hostIp, rq.hostPort);
      auto it = listed.find({rq.proto, hostIp, rq.hostPort.str()});
      const api::ExposeInfo* found = it != listed.end() ? it->second : nullptr;
      if (found == nullptr || found->target != rq.target.text) {
        missing = found == nullptr ? "nothing is exposed on " + where
                                   : where + " goes to " + found->target + ", not " +
                                         rq.target.text;
        continue;
      }
      answers.push_back(api::toJson(api::ExposeAdded{.id = found->id,
                                                     .proto = found->proto,
                                                     .hostPort = found->hostPort,
                                                     .target = found->target,
                                                     .targetAddr = found->targetAddr,
                                                     .path = found->path,
                                                     .why = found->why,
                                                     .family = found->family,
                                                     .families = found->families}));
    }
    if (answers.size() == batch.size()) {
      const auto& first = batch.front();
      std::string seen =
          single ? hostSide(first.proto, first.hostIp ? first.hostIp->str() : "*",
                            first.hostPort) +
                       " -> " + first.target.text + " is listed"
                 : "all " + std::to_string(batch.size()) + " exposes are listed";
      return inPlace(seen, single ? answers[0] : answers);
    }
    if (answers.empty()) {
      return notInPlace(missing);
    }
    // A batch is all or nothing: part of it there means someone else changed these ports.
    return unknown(std::to_string(answers.size()) + " of " + std::to_string(batch.size()) +
                   " are listed; " + missing);
  };
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
  auto body = api::toJson(batch);
  auto r = change<std::vector<api::ExposeAdded>>(g, "POST", api::kExposesPath, body,
                                                 exposesInPlace(std::move(batch), false));
  if (!r) {
    return r.error();
  }
  return printJsonOr(g, r->raw, [&] { std::cout << "exposed " << r->value.size() << " rules\n"; });
}

int exposeCommand(const Globals& g, const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "--file") {
    return exposeBatch(g, args[1]);
  }
  po::options_description o;
  std::string port, target, proto, hostIp, mode, proxyProtocol, family, owner;
  o.add_options()("port", po::value(&port)->required())("target", po::value(&target)->required())(
      "proto", po::value(&proto)->default_value("tcp"))("host-ip", po::value(&hostIp))(
      "mode", po::value(&mode)->default_value("auto"))(
      "proxy-protocol", po::value(&proxyProtocol))("family", po::value(&family))(
      "owner", po::value(&owner));
  po::positional_options_description p;
  p.add("port", 1).add("target", 1);
  parseSub(args, o, p);
  auto request = exposeRequest("", port, target, proto, hostIp, mode, proxyProtocol, family);
  if (!request) {
    return 1;
  }
  if (!owner.empty()) {
    auto o = parsed(gw::parseExposeOwner(owner));
    if (!o) {
      return 1;
    }
    request->owner = *o;
  }
  auto r = change<api::ExposeAdded>(g, "POST", api::kExposesPath, api::toJson(*request),
                                    exposesInPlace({*request}, true));
  if (!r) {
    return r.error();
  }
  return printJsonOr(g, r->raw, [&] {
    const auto& e = r->value;
    std::cout << "exposed " << gw::protoName(e.proto) << " " << e.hostPort.str() << " -> "
              << e.target << " (" << e.targetAddr.str() << ") via " << gw::toString(e.path)
              << "\n";
    for (const auto& f : e.families) {
      std::cout << "  IPv" << gw::toString(f.family) << ": " << gw::toString(f.path)
                << (f.targetAddr ? " to " + f.targetAddr->str() : std::string()) << "\n";
    }
  });
}

// `unexpose --owner OWNER`: every rule of the owner, all or none; none left is fine.
int unexposeOwner(const Globals& g, const std::string& text) {
  auto owner = parsed(gw::parseExposeOwner(text));
  if (!owner) {
    return 1;
  }
  auto r = change<api::OwnerDeleted>(
      g, "DELETE", std::string(api::kOwnersPath) + "/" + gw::http::percentEncode(owner->text),
      nullptr,
      [owner = *owner](const Globals& g) {
        auto list = fetchListing<api::ExposeInfo>(g, api::kExposesPath, "", false);
        if (!list) {
          return unreadable(list.error());
        }
        for (const auto& e : list->items) {
          if (e.owner == owner) {
            return notInPlace("rule " + std::to_string(e.id) + " of " + owner.text +
                              " is still listed");
          }
        }
        return inPlace("nothing of " + owner.text + " is exposed",
                       api::toJson(api::OwnerDeleted{.owner = owner, .deleted = 0}));
      });
  if (!r) {
    return r.error();
  }
  return printJsonOr(g, r->raw, [&] {
    std::cout << "unexposed " << r->value.deleted << " rules of " << owner->text << "\n";
  });
}

int unexposeCommand(const Globals& g, const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "--owner") {
    return unexposeOwner(g, args[1]);
  }
  po::options_description o;
  std::string port, proto, hostIp, family;
  bool keepFlows = false;
  o.add_options()("port", po::value(&port)->required())(
      "proto", po::value(&proto)->default_value("tcp"))("host-ip", po::value(&hostIp))(
      "keep-flows", po::bool_switch(&keepFlows))("family", po::value(&family));
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
  if (!family.empty()) {
    auto f = parsed(gw::parseIpFamilies(family));
    if (!f) {
      return 1;
    }
    query.family = *f;
  }
  auto r = change<api::ExposeDeleted>(
      g, "DELETE", api::kExposesPath + queryOf(query), nullptr, [query](const Globals& g) {
        auto list = fetchListing<api::ExposeInfo>(g, api::kExposesPath, "", false);
        if (!list) {
          return unreadable(list.error());
        }
        for (const auto& e : list->items) {
          bool asked = !query.family || *query.family == gw::IpFamilies::Both ||
                       std::ranges::any_of(e.families, [&](const api::FamilyServing& f) {
                         return f.family == *query.family && f.path != gw::ServingPath::None;
                       });
          if (asked && e.proto == query.proto && e.hostPort == query.port &&
              (!query.hostIp || e.hostIp == query.hostIp->str())) {
            return notInPlace(hostSide(e.proto, e.hostIp, e.hostPort) + " -> " + e.target +
                              " is still listed");
          }
        }
        // The rule's id went with the answer: 0 says it is not known.
        return inPlace("nothing is exposed on " + std::string(gw::protoName(query.proto)) + " " +
                           query.port.str(),
                       api::toJson(api::ExposeDeleted{
                           .id = 0, .hostPort = query.port, .proto = query.proto, .deleted = true}));
      });
  if (!r) {
    return r.error();
  }
  return printJsonOr(g, r->raw, [&] { std::cout << "unexposed " << proto << " " << port << "\n"; });
}

int listCommand(const Globals& g, const std::vector<std::string>& args) {
  std::optional<gw::ExposeOwner> owner;
  if (args.size() == 2 && args[0] == "--owner") {
    auto o = parsed(gw::parseExposeOwner(args[1]));
    if (!o) {
      return 2;
    }
    owner = *o;
  } else if (!args.empty()) {
    return usageError("list takes no arguments but --owner OWNER");
  }
  auto r = listing<api::ExposeInfo>(g, api::kExposesPath);
  if (!r) {
    return 1;
  }
  if (owner) {
    std::erase_if(r->items, [&](const api::ExposeInfo& e) { return e.owner != owner; });
    json kept = json::array();
    for (const auto& e : r->items) {
      kept.push_back(api::toJson(e));
    }
    r->json = kept.dump(2);
  }
  return printListingOr(g, *r, [&] {
    gw::Table t({"ID", "PROTO", "HOST", "TARGET", "ADDRESS", "PATH", "CONNS", "PACKETS", "BYTES"});
    // "4:ebpf 6:ebpf": the path of each family the rule answers on.
    auto paths = [](const api::ExposeInfo& e) {
      std::string out;
      for (const auto& f : e.families) {
        out += (out.empty() ? "" : " ") + std::string(gw::toString(f.family)) + ":" +
               std::string(gw::toString(f.path));
      }
      return out.empty() ? std::string(gw::toString(e.path)) : out;
    };
    for (const auto& e : r->items) {
      t.add({std::to_string(e.id), std::string(gw::protoName(e.proto)),
             e.hostIp + ":" + e.hostPort.str(), e.target,
             e.targetAddr.str() + ":" + e.targetPort.str(), paths(e),
             std::to_string(e.connections), std::to_string(e.packets),
             std::to_string(e.bytes)});
    }
    t.print(std::cout);
    for (const auto& e : r->items) {
      if (e.families.empty()) {
        std::cout << "  rule " << e.id << ": " << e.why << "\n";
      }
      if (e.owner) {
        std::cout << "  rule " << e.id << " owner: " << e.owner->text << "\n";
      }
      for (const auto& f : e.families) {
        std::cout << "  rule " << e.id << " IPv" << gw::toString(f.family) << ": " << f.why
                  << (f.targetAddr && f.path == gw::ServingPath::Ebpf
                          ? " (to " + f.targetAddr->str() + ")"
                          : std::string())
                  << (f.forward == gw::Forwarding::Route
                          ? "; through the gateway host's routing: no veth of its namespace "
                            "ends on the gateway host"
                          : std::string())
                  << "\n";
      }
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
      gw::Table t({"SOURCE", "OUT", "FROM", "FILTERING"});
      for (const auto& m : r->value) {
        t.add({m.source.str(), m.out, m.automatic ? "ns add" : "masquerade add",
               std::string(gw::toString(m.filtering))});
      }
      t.print(std::cout);
    });
  }
  po::options_description o;
  std::string cidr, out, filtering;
  o.add_options()("cidr", po::value(&cidr)->required())("out", po::value(&out))(
      "filtering", po::value(&filtering));
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
    if (!filtering.empty()) {
      auto f = parsed(gw::parseFiltering(filtering));
      if (!f) {
        return 1;
      }
      request.filtering = *f;
    }
    auto r = change<api::MasqueradeAdded>(
        g, "POST", api::kMasqueradePath, api::toJson(request), [request](const Globals& g) {
          auto list = fetchListing<api::MasqueradeInfo>(g, api::kMasqueradePath, "", false);
          if (!list) {
            return unreadable(list.error());
          }
          for (const auto& m : list->items) {
            if (!m.automatic && m.source == request.source) {
              return inPlace("masquerade " + m.source.str() + " out " + m.out + " is listed",
                             api::toJson(api::MasqueradeAdded{m.source, m.out, m.filtering}));
            }
          }
          return notInPlace("no masquerade " + request.source.str() + " is listed");
        });
    if (!r) {
      return r.error();
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
    auto r = change<api::MasqueradeDeleted>(
        g, "DELETE", api::kMasqueradePath + queryOf(query), nullptr, [query](const Globals& g) {
          auto list = fetchListing<api::MasqueradeInfo>(g, api::kMasqueradePath, "", false);
          if (!list) {
            return unreadable(list.error());
          }
          for (const auto& m : list->items) {
            if (!m.automatic && m.source == query.source) {
              return notInPlace("masquerade " + m.source.str() + " is still listed");
            }
          }
          return inPlace("no masquerade " + query.source.str() + " is listed",
                         api::toJson(api::MasqueradeDeleted{query.source, true}));
        });
    if (!r) {
      return r.error();
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
    auto r = listing<api::FlowInfo>(g, api::kConntrackPath, filter);
    if (!r) {
      return 1;
    }
    return printListingOr(g, *r, [&] {
      gw::Table t({"PROTO", "ORIGINAL", "REPLY", "STATE", "AGE", "IDLE", "PACKETS", "BYTES"});
      // addr:port, an IPv6 address in brackets ([fd00:88::2]:40000).
      auto end = [](const gw::IpAddress& a, uint16_t port) {
        return (a.isV6() ? "[" + a.str() + "]" : a.str()) + ":" + std::to_string(port);
      };
      auto tuple = [&](const api::FlowTupleInfo& x) {
        return end(x.src, x.sport) + " -> " + end(x.dst, x.dport);
      };
      for (const auto& f : r->items) {
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
    auto r = change<api::FlowsDeleted>(g, "DELETE", api::kConntrackPath + filter, nullptr,
                                       [](const Globals&) {
                                         return unknown(
                                             "traffic makes and ends flows all the time, so a "
                                             "listing cannot tell; deleting again is harmless");
                                       });
    if (!r) {
      return r.error();
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
              << "uplink v6  "
              << (s.uplink.address6 ? s.uplink.address6->str()
                                    : "none (IPv6 masquerade has no source)")
              << "\n"
              << "namespaces " << s.namespaces << "\n"
              << "exposes    " << s.exposes << "\n"
              << "data path  "
              << (s.datapath.loaded
                      ? "eBPF, XDP " + s.datapath.xdp.value_or("?") +
                            (s.datapath.tc ? ", tc hooks " + *s.datapath.tc : "")
                      : "not loaded: " + s.datapath.error.value_or("?"))
              << "\n"
              << "pins       " << (s.bpffs.empty() ? "(none: --bpffs '')" : s.bpffs)
              << (s.bpffsFallback ? " (" + *s.bpffsFallback + ")" : std::string()) << "\n"
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
    } else if (a == "--timeout" || a.starts_with("--timeout=")) {
      std::string value;
      if (a == "--timeout") {
        if (i + 1 >= argc) {
          return usageError("--timeout needs SECONDS");
        }
        value = argv[++i];
      } else {
        value = a.substr(10);
      }
      unsigned seconds = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          seconds == 0 || seconds > 86400) {
        return usageError("--timeout '" + value + "': expected whole seconds, 1 to 86400");
      }
      g.timeout = std::chrono::seconds(seconds);
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
      auto r = change<api::DownResult>(g, "POST", api::kDownPath, nullptr, [](const Globals& g) {
        if (gw::callApi(g.socket, "GET", api::kStatusPath, "", g.timeout)) {
          return notInPlace("gatewayd still answers");
        }
        return unknown("gatewayd no longer answers, but whether it removed everything first is "
                       "not known (`gatewayd --cleanup` removes what its state names)");
      });
      if (!r) {
        return r.error();
      }
      return printJsonOr(g, r->raw, [] { std::cout << "gatewayd is down; everything it made is removed\n"; });
    }
  } catch (const po::error& e) {
    return usageError(command + ": " + e.what());
  }
  return usageError("unknown command '" + command + "'");
}
