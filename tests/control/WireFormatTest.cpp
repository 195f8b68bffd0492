// SPDX-License-Identifier: MIT
// The API's wire format as users' scripts see it (curl --unix-socket): paths, methods, status
// codes, the exact keys of every response object and each value's JSON type, and the metric
// names of /metrics. Written against the daemon as it was before its internals were reworked:
// a change here is a change of the contract, not a refactoring.
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "tests/control/ConntrackFill.h"
#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

// OptionalString: a string where present; absent is fine (e.g. a namespace's IPv6 side).
enum class Type { String, Unsigned, Float, Boolean, Array, Object, OptionalString };
using Shape = std::vector<std::pair<std::string, Type>>;

const char* typeName(Type t) {
  switch (t) {
  case Type::String: return "string";
  case Type::Unsigned: return "unsigned number";
  case Type::Float: return "float number";
  case Type::Boolean: return "boolean";
  case Type::Array: return "array";
  case Type::Object: return "object";
  case Type::OptionalString: return "string";
  }
  return "?";
}

bool hasType(const json& v, Type t) {
  switch (t) {
  case Type::String: return v.is_string();
  case Type::Unsigned: return v.is_number_unsigned();
  case Type::Float: return v.is_number_float();
  case Type::Boolean: return v.is_boolean();
  case Type::Array: return v.is_array();
  case Type::Object: return v.is_object();
  case Type::OptionalString: return v.is_string();
  }
  return false;
}

// Fails on a missing key, an extra key or a value of another type.
void expectShape(const json& j, const Shape& shape, const std::string& where) {
  ASSERT_TRUE(j.is_object()) << where << " is not an object: " << j.dump();
  std::set<std::string> expected;
  for (const auto& [key, type] : shape) {
    expected.insert(key);
    if (!j.contains(key)) {
      EXPECT_EQ(type, Type::OptionalString) << where << ": missing key '" << key << "' in " << j.dump();
    } else {
      EXPECT_TRUE(hasType(j[key], type))
          << where << "." << key << " should be a " << typeName(type) << ": " << j[key].dump();
    }
  }
  for (const auto& [key, value] : j.items()) {
    EXPECT_TRUE(expected.contains(key)) << where << ": extra key '" << key << "' in " << j.dump();
  }
}

void expectArrayOf(const json& j, const Shape& shape, const std::string& where) {
  ASSERT_TRUE(j.is_array()) << where << " is not an array: " << j.dump();
  for (size_t i = 0; i < j.size(); ++i) {
    expectShape(j[i], shape, where + "[" + std::to_string(i) + "]");
  }
}

const Shape kError = {{"error", Type::String}};
const Shape kStatus = {
    {"version", Type::String},   {"pid", Type::Unsigned},           {"netns", Type::String},
    {"uplink", Type::Object},    {"socket", Type::String},          {"stateDir", Type::String},
    {"bpffs", Type::String},     {"uptimeSeconds", Type::Unsigned}, {"namespaces", Type::Unsigned},
    {"bridges", Type::Unsigned}, {"exposes", Type::Unsigned},       {"datapath", Type::Object},
    {"state", Type::String}}; // added: "running" or "degraded"
// added: "address6" when the uplink has a global IPv6 address.
const Shape kStatusUplink = {{"name", Type::String},
                             {"ifindex", Type::Unsigned},
                             {"addresses", Type::Array},
                             {"address6", Type::OptionalString}};
const Shape kStatusDatapath = {
    {"loaded", Type::Boolean}, {"xdp", Type::String}, {"tc", Type::String},
    {"adopted", Type::Boolean}};
const Shape kStatusNoDatapath = {{"loaded", Type::Boolean}, {"error", Type::String}};
// added: "address6", "prefix6", "gateway6" when the namespace has IPv6.
const Shape kNamespaceAdded = {{"name", Type::String},
                               {"address", Type::String},
                               {"prefix", Type::String},
                               {"gateway", Type::String},
                               {"link", Type::String},
                               {"address6", Type::OptionalString},
                               {"prefix6", Type::OptionalString},
                               {"gateway6", Type::OptionalString}};
const Shape kNamespaceListed = {{"name", Type::String},   {"address", Type::String},
                                {"prefix", Type::String}, {"gateway", Type::String},
                                {"link", Type::String},   {"wiring", Type::String},
                                {"bridge", Type::String}, {"state", Type::String},
                                {"address6", Type::OptionalString},
                                {"prefix6", Type::OptionalString},
                                {"gateway6", Type::OptionalString}};
const Shape kNamespaceDeleted = {{"name", Type::String}, {"deleted", Type::Boolean}};
// added: "family" (both | 4 | 6) and "families" (the path of each).
const Shape kExposeAdded = {{"id", Type::Unsigned},       {"proto", Type::String},
                            {"hostPort", Type::String},   {"target", Type::String},
                            {"targetAddr", Type::String}, {"path", Type::String},
                            {"why", Type::String},        {"family", Type::String},
                            {"families", Type::Array}};
const Shape kExposeListed = {
    {"id", Type::Unsigned},       {"proto", Type::String},         {"hostIp", Type::String},
    {"hostPort", Type::String},   {"target", Type::String},        {"targetAddr", Type::String},
    {"targetPort", Type::String}, {"mode", Type::String},          {"proxyProtocol", Type::String},
    {"path", Type::String},       {"why", Type::String},           {"packets", Type::Unsigned},
    {"bytes", Type::Unsigned},    {"connections", Type::Unsigned}, {"drops", Type::Unsigned},
    {"family", Type::String},     {"families", Type::Array}}; // added: family, families
const Shape kExposeDeleted = {{"id", Type::Unsigned},
                              {"hostPort", Type::String},
                              {"proto", Type::String},
                              {"deleted", Type::Boolean}};
// added: "filtering" (address-and-port-dependent | endpoint-independent).
const Shape kMasqueradeAdded = {
    {"source", Type::String}, {"out", Type::String}, {"filtering", Type::String}};
const Shape kMasqueradeListed = {{"source", Type::String},
                                 {"out", Type::String},
                                 {"automatic", Type::Boolean},
                                 {"filtering", Type::String}};
const Shape kMasqueradeDeleted = {{"source", Type::String}, {"deleted", Type::Boolean}};
const Shape kFlow = {
    {"proto", Type::String},          {"orig", Type::Object},       {"reply", Type::Object},
    {"state", Type::String},          {"idleSeconds", Type::Float}, {"ageSeconds", Type::Float},
    {"packets", Type::Unsigned},      {"bytes", Type::Unsigned},    {"origPackets", Type::Unsigned},
    {"replyPackets", Type::Unsigned}, {"rule", Type::Unsigned},     {"nat", Type::String}};
const Shape kFlowTuple = {{"src", Type::String},
                          {"sport", Type::Unsigned},
                          {"dst", Type::String},
                          {"dport", Type::Unsigned}};
const Shape kDeletedCount = {{"deleted", Type::Unsigned}};
// added: a listing asked with ?limit= or ?after= answers a page; "next" only if more follow.
const Shape kPage = {{"items", Type::Array}, {"next", Type::String}};
const Shape kLastPage = {{"items", Type::Array}};
const Shape kStats = {{"reasons", Type::Object},
                      {"rules", Type::Array},
                      {"conntrack", Type::Object},
                      {"proxy", Type::Array},
                      {"datapathLoaded", Type::Boolean}};
const Shape kStatsRule = {{"id", Type::Unsigned},          {"rule", Type::String},
                          {"packets", Type::Unsigned},     {"bytes", Type::Unsigned},
                          {"connections", Type::Unsigned}, {"drops", Type::Unsigned}};
const Shape kStatsConntrack = {
    {"entries", Type::Unsigned}, {"capacity", Type::Unsigned}, {"pressureSweeps", Type::Unsigned}};

// The data path's named reasons: keys of stats.reasons, labels of gateway_datapath_packets_total.
// (drop_ip_options, reserved and never counted, is gone since the reasons come from one list.)
const std::set<std::string> kReasons = {"pass_not_ip",    "pass_no_match",  "pass_fragment_miss",
                                        "nat_dnat",       "nat_snat",       "nat_reply",
                                        "nat_icmp_error", "ct_created",     "ct_insert_race",
                                        "drop_malformed", "drop_ct_insert", "drop_snat_exhausted",
                                        "drop_csum",      "redirect",
                                        // fragments held before their first (RFC 4787 REQ-14)
                                        "fragment_held",  "drop_fragment_hold_full",
                                        "drop_fragment_too_big", "fragment_released",
                                        "drop_fragment_expired", "drop_fragment_unsendable"};

constexpr const char* kJsonType = "application/json";
constexpr const char* kPrometheusType = "text/plain; version=0.0.4";

struct Reply {
  int status = 0;
  std::string contentType;
  std::string body;
  json doc; // discarded when the body is not JSON
};

// One /metrics sample: name{labels} value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

struct Metrics {
  std::map<std::string, std::string> types; // from # TYPE lines
  std::vector<Sample> samples;

  std::vector<Sample> of(const std::string& name) const {
    std::vector<Sample> out;
    for (const auto& s : samples) {
      if (s.name == name) {
        out.push_back(s);
      }
    }
    return out;
  }
};

Metrics parseMetrics(const std::string& text) {
  Metrics m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      m.types[name] = type;
      continue;
    }
    if (line.empty() || line.starts_with("#")) {
      continue;
    }
    Sample s;
    size_t end = line.find_first_of("{ ");
    s.name = line.substr(0, end);
    size_t pos = end;
    if (pos != std::string::npos && line[pos] == '{') {
      ++pos;
      while (pos < line.size() && line[pos] != '}') {
        size_t eq = line.find('=', pos);
        size_t close = line.find('"', eq + 2);
        if (eq == std::string::npos || close == std::string::npos) {
          ADD_FAILURE() << "malformed metric line: " << line;
          break;
        }
        s.labels[line.substr(pos, eq - pos)] = line.substr(eq + 2, close - eq - 2);
        pos = close + 1;
        if (pos < line.size() && line[pos] == ',') {
          ++pos;
        }
      }
      pos = line.find(' ', pos);
    }
    s.value = pos == std::string::npos ? std::string() : line.substr(pos + 1);
    m.samples.push_back(std::move(s));
  }
  return m;
}

bool isNumber(const std::string& text) {
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

class WireFormatTest : public ServiceFixture {
protected:
  // One request through curl, as a user's script would send it.
  Reply api(const std::string& method, const std::string& target, const std::string& body = {}) {
    std::vector<std::string> argv = {"curl", "-sS", "--unix-socket", socket_, "-X", method,
                                     "-w", "\n%{http_code} %{content_type}"};
    if (!body.empty()) {
      argv.insert(argv.end(),
                  {"-H", std::string("Content-Type: ") + kJsonType, "--data-binary", body});
    }
    argv.push_back("http://gw" + target);
    auto r = run(argv);
    EXPECT_TRUE(r.ok()) << method << " " << target << ": " << r.err;
    Reply reply;
    size_t nl = r.out.rfind('\n');
    if (nl == std::string::npos) {
      return reply;
    }
    reply.body = r.out.substr(0, nl);
    std::string trailer = r.out.substr(nl + 1);
    size_t space = trailer.find(' ');
    reply.status = std::atoi(trailer.substr(0, space).c_str());
    reply.contentType = space == std::string::npos ? std::string() : trailer.substr(space + 1);
    reply.doc = json::parse(reply.body, nullptr, false);
    return reply;
  }

  // The status code, a JSON content type and a body that parses; returns the body.
  json expectJson(const Reply& r, int status, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.body;
    EXPECT_EQ(r.contentType, kJsonType) << what;
    EXPECT_FALSE(r.doc.is_discarded()) << what << ": not JSON: " << r.body;
    return r.doc;
  }

  void expectError(const Reply& r, int status, const std::string& what) {
    SCOPED_TRACE(what);
    expectShape(expectJson(r, status, what), kError, what);
  }

  // A UDP echo server in `ns`: one process for every datagram.
  void udpEcho(const std::string& ns, int port) {
    servers_.push_back(
        Child::spawn({"ip", "netns", "exec", ns, "python3", "-c",
                      "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "s.bind(('0.0.0.0', " +
                          std::to_string(port) +
                          "))\n"
                          "while True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n"}));
    ASSERT_TRUE(waitFor(
        [&] { return shIn(ns, "ss -lun | grep -q ':" + std::to_string(port) + " '").ok(); }));
  }

  std::vector<Child> servers_;
};

TEST_F(WireFormatTest, EveryEndpointAnswersItsShape) {
  startDaemon();
  auto status = expectJson(api("GET", "/v1/status"), 200, "GET /v1/status");
  if (!status["datapath"].value("loaded", false)) {
    GTEST_SKIP() << "the eBPF data path did not load: " << status["datapath"].dump();
  }
  expectShape(status, kStatus, "status");
  expectShape(status["uplink"], kStatusUplink, "status.uplink");
  for (const auto& a : status["uplink"]["addresses"]) {
    EXPECT_TRUE(a.is_string()) << status["uplink"].dump();
  }
  expectShape(status["datapath"], kStatusDatapath, "status.datapath");

  // Namespaces: a bridged one and a point-to-point one.
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  auto added = expectJson(api("POST", "/v1/namespaces", json{{"name", n1}}.dump()), 201,
                          "POST /v1/namespaces");
  expectShape(added, kNamespaceAdded, "namespace added");
  EXPECT_TRUE(added.contains("address6")) << "a namespace on gw0 is dual-stack by default";
  auto p2p = expectJson(
      api("POST", "/v1/namespaces", json{{"name", n2}, {"subnet", "192.168.77.0/24"}}.dump()), 201,
      "POST /v1/namespaces p2p");
  expectShape(p2p, kNamespaceAdded, "p2p namespace added");
  EXPECT_FALSE(p2p.contains("address6")) << "point-to-point has IPv6 only with --subnet6";
  auto namespaces = expectJson(api("GET", "/v1/namespaces"), 200, "GET /v1/namespaces");
  expectArrayOf(namespaces, kNamespaceListed, "namespaces");
  ASSERT_EQ(namespaces.size(), 2u);
  EXPECT_EQ(namespaces[0]["wiring"], "bridge");
  EXPECT_EQ(namespaces[0]["state"], "up");
  EXPECT_EQ(namespaces[1]["wiring"], "p2p");
  EXPECT_EQ(namespaces[1]["bridge"], "");

  // Exposes: hostPort as a string, a JSON number, a range; a batch; a proxied one; UDP.
  auto expose = [&](const json& body) {
    auto r = expectJson(api("POST", "/v1/exposes", body.dump()), 201, "POST " + body.dump());
    expectShape(r, kExposeAdded, "expose " + body.dump());
    return r;
  };
  EXPECT_EQ(expose({{"hostPort", "6000"}, {"target", n1 + ":8080"}})["hostPort"], "6000");
  auto number = expose({{"hostPort", 6001}, {"target", n1 + ":8081"}});
  EXPECT_EQ(number["hostPort"], "6001"); // a number comes back as a string
  EXPECT_EQ(number["proto"], "tcp");
  EXPECT_EQ(number["path"], "ebpf");
  auto range = expose({{"hostPort", "7000-7002"}, {"target", n1 + ":8000-8002"}});
  EXPECT_EQ(range["hostPort"], "7000-7002");
  auto proxied = expose({{"hostPort", "6200"}, {"target", n1 + ":8080"}, {"mode", "proxy"}});
  EXPECT_EQ(proxied["path"], "proxy");
  udpEcho(n1, 5000);
  auto udp = expose({{"hostPort", "5000"}, {"target", n1 + ":5000"}, {"proto", "udp"}});
  EXPECT_EQ(udp["proto"], "udp");
  json batchBody =
      json::array({{{"hostPort", "6100"}, {"target", n1 + ":8080"}},
                   {{"hostPort", "6101"}, {"target", n1 + ":8080"}, {"proto", "udp"}}});
  auto batch = expectJson(api("POST", "/v1/exposes", batchBody.dump()), 201, "POST batch");
  expectArrayOf(batch, kExposeAdded, "batch");
  EXPECT_EQ(batch.size(), 2u);
  auto exposes = expectJson(api("GET", "/v1/exposes"), 200, "GET /v1/exposes");
  expectArrayOf(exposes, kExposeListed, "exposes");
  EXPECT_EQ(exposes.size(), 7u);
  for (const auto& e : exposes) {
    if (e["hostPort"] == "7000-7002") {
      EXPECT_EQ(e["targetPort"], "8000-8002");
      EXPECT_EQ(e["hostIp"], "*");
      EXPECT_EQ(e["mode"], "auto");
      EXPECT_EQ(e["proxyProtocol"], "");
    }
    if (e["hostPort"] == "6200") {
      EXPECT_EQ(e["mode"], "proxy");
      EXPECT_EQ(e["path"], "proxy");
    }
  }

  // A UDP flow through the expose of 5000 gives conntrack something to list.
  ASSERT_TRUE(waitFor([&] {
    auto r = shIn(ext(), std::string("echo wire | socat -T1 - UDP4:") + kUplinkAddr + ":5000");
    return r.out == "wire\n";
  })) << "no UDP answer through the expose";
  json flows;
  ASSERT_TRUE(waitFor([&] {
    flows = api("GET", "/v1/conntrack?proto=udp").doc;
    return flows.is_array() && !flows.empty();
  })) << flows.dump();
  auto all = expectJson(api("GET", "/v1/conntrack"), 200, "GET /v1/conntrack");
  expectArrayOf(all, kFlow, "conntrack");
  for (const auto& f : all) {
    expectShape(f["orig"], kFlowTuple, "conntrack.orig");
    expectShape(f["reply"], kFlowTuple, "conntrack.reply");
  }
  const json& flow = flows[0];
  EXPECT_EQ(flow["proto"], "udp");
  EXPECT_EQ(flow["state"], "UDP");
  EXPECT_EQ(flow["nat"], "dnat");
  EXPECT_EQ(flow["rule"], udp["id"]);
  EXPECT_EQ(flow["orig"]["dst"], kUplinkAddr);
  EXPECT_EQ(flow["orig"]["dport"], 5000);
  // Every filter by its query name, all matching this flow.
  std::string sport = std::to_string(flow["orig"]["sport"].get<unsigned>());
  auto filtered =
      expectJson(api("GET", std::string("/v1/conntrack?proto=udp&src=") + kExternalAddr +
                                "&dst=" + kUplinkAddr + "&port=5000&dport=5000&sport=" + sport),
                 200, "GET /v1/conntrack with filters");
  expectArrayOf(filtered, kFlow, "filtered conntrack");
  EXPECT_EQ(filtered.size(), 1u) << filtered.dump();

  auto stats = expectJson(api("GET", "/v1/stats"), 200, "GET /v1/stats");
  expectShape(stats, kStats, "stats");
  std::set<std::string> reasons;
  for (const auto& [name, packets] : stats["reasons"].items()) {
    reasons.insert(name);
    EXPECT_TRUE(packets.is_number_unsigned()) << name << ": " << packets.dump();
  }
  EXPECT_EQ(reasons, kReasons);
  expectArrayOf(stats["rules"], kStatsRule, "stats.rules");
  EXPECT_FALSE(stats["rules"].empty());
  expectShape(stats["conntrack"], kStatsConntrack, "stats.conntrack");

  auto scrape = api("GET", "/metrics");
  EXPECT_EQ(scrape.status, 200);
  EXPECT_EQ(scrape.contentType, kPrometheusType);
  auto metrics = parseMetrics(scrape.body);
  const std::vector<std::pair<std::string, std::string>> families = {
      {"gateway_up", "gauge"},
      {"gateway_namespaces", "gauge"},
      {"gateway_datapath_loaded", "gauge"},
      {"gateway_expose_packets_total", "counter"},
      {"gateway_expose_bytes_total", "counter"},
      {"gateway_expose_connections_total", "counter"},
      {"gateway_expose_drops_total", "counter"},
      {"gateway_datapath_packets_total", "counter"},
      {"gateway_conntrack_entries", "gauge"},
      {"gateway_conntrack_capacity", "gauge"},
      {"gateway_conntrack_pressure_sweeps_total", "counter"},
      {"gateway_conntrack_sweep_seconds", "gauge"},
      {"gateway_conntrack_sweep_interval_seconds", "gauge"},
      {"gateway_snat_ports_in_use", "gauge"},
      {"gateway_proxy_connections_active", "gauge"},
      {"gateway_proxy_backend_failures_total", "counter"}};
  std::set<std::string> names;
  for (const auto& s : metrics.samples) {
    names.insert(s.name);
    EXPECT_TRUE(isNumber(s.value)) << s.name << " value '" << s.value << "'";
  }
  std::set<std::string> expectedNames;
  for (const auto& [name, type] : families) {
    expectedNames.insert(name);
    EXPECT_EQ(metrics.types[name], type) << name;
  }
  EXPECT_EQ(names, expectedNames) << scrape.body;
  for (const auto& name : {"gateway_up", "gateway_namespaces", "gateway_datapath_loaded"}) {
    auto samples = metrics.of(name);
    ASSERT_EQ(samples.size(), 1u) << name;
    EXPECT_TRUE(samples[0].labels.empty()) << name;
  }
  EXPECT_EQ(metrics.of("gateway_up")[0].value, "1");
  EXPECT_EQ(metrics.of("gateway_namespaces")[0].value, "2");
  for (const auto& name : {"gateway_expose_packets_total", "gateway_expose_bytes_total",
                           "gateway_expose_connections_total", "gateway_expose_drops_total"}) {
    auto samples = metrics.of(name);
    EXPECT_EQ(samples.size(), exposes.size()) << name;
    for (const auto& s : samples) {
      std::set<std::string> labels;
      for (const auto& [key, value] : s.labels) {
        labels.insert(key);
      }
      EXPECT_EQ(labels, (std::set<std::string>{"rule", "proto", "host_port", "target", "path"}))
          << name;
    }
  }
  bool sawRange = false;
  for (const auto& s : metrics.of("gateway_expose_packets_total")) {
    if (s.labels.at("host_port") == "7000-7002") {
      sawRange = true;
      EXPECT_EQ(s.labels.at("rule"), std::to_string(range["id"].get<unsigned>()));
      EXPECT_EQ(s.labels.at("proto"), "tcp");
      EXPECT_EQ(s.labels.at("target"), n1 + ":8000-8002");
      EXPECT_EQ(s.labels.at("path"), "ebpf");
    }
  }
  EXPECT_TRUE(sawRange) << scrape.body;
  std::set<std::string> reasonLabels;
  for (const auto& s : metrics.of("gateway_datapath_packets_total")) {
    reasonLabels.insert(s.labels.at("reason"));
  }
  EXPECT_EQ(reasonLabels, kReasons);

  // Masquerade: add, list (automatic ones of `ns add` included), delete.
  auto masq = expectJson(api("POST", "/v1/masquerade", json{{"source", "10.99.0.0/16"}}.dump()),
                         201, "POST /v1/masquerade");
  expectShape(masq, kMasqueradeAdded, "masquerade added");
  EXPECT_EQ(masq["out"], "up0");
  auto masqs = expectJson(api("GET", "/v1/masquerade"), 200, "GET /v1/masquerade");
  expectArrayOf(masqs, kMasqueradeListed, "masquerades");
  size_t automatic = 0;
  for (const auto& m : masqs) {
    automatic += m["automatic"].get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(masqs.size(), 4u) << masqs.dump();
  EXPECT_EQ(automatic, 3u) << masqs.dump(); // both namespaces' IPv4 subnet and the IPv6 pool
  expectShape(
      expectJson(api("DELETE", "/v1/masquerade?source=10.99.0.0/16"), 200, "DELETE /v1/masquerade"),
      kMasqueradeDeleted, "masquerade deleted");

  // Deletions.
  auto ctDeleted =
      expectJson(api("DELETE", "/v1/conntrack?proto=udp"), 200, "DELETE /v1/conntrack?proto=udp");
  expectShape(ctDeleted, kDeletedCount, "conntrack deleted");
  EXPECT_GE(ctDeleted["deleted"].get<unsigned>(), 1u);
  expectShape(expectJson(api("DELETE", "/v1/conntrack?all=1"), 200, "DELETE /v1/conntrack?all=1"),
              kDeletedCount, "conntrack flushed");
  auto unexposed =
      expectJson(api("DELETE", "/v1/exposes?port=7000-7002&proto=tcp"), 200, "DELETE /v1/exposes");
  expectShape(unexposed, kExposeDeleted, "expose deleted");
  EXPECT_EQ(unexposed["hostPort"], "7000-7002");
  expectShape(
      expectJson(api("DELETE", "/v1/exposes?port=5000&proto=udp"), 200, "DELETE /v1/exposes udp"),
      kExposeDeleted, "udp expose deleted");
  auto nsDeleted = expectJson(api("DELETE", "/v1/namespaces/" + n2), 200, "DELETE /v1/namespaces");
  expectShape(nsDeleted, kNamespaceDeleted, "namespace deleted");
  EXPECT_EQ(nsDeleted["name"], n2);

  auto down = expectJson(api("POST", "/v1/down"), 200, "POST /v1/down");
  EXPECT_EQ(down, (json{{"down", true}}));
  EXPECT_TRUE(waitFor([&] { return !daemon_.running(); })) << "gatewayd still runs after down";
}

TEST_F(WireFormatTest, ErrorsAnswerTheirStatusCodes) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_EQ(api("POST", "/v1/namespaces", json{{"name", n1}}.dump()).status, 201);
  ASSERT_EQ(
      api("POST", "/v1/exposes", json{{"hostPort", "6000"}, {"target", n1 + ":80"}}.dump()).status,
      201);

  // Malformed JSON bodies.
  expectError(api("POST", "/v1/namespaces", "{not json"), 400, "malformed namespace body");
  expectError(api("POST", "/v1/exposes", "[{\"hostPort\": "), 400, "malformed expose body");
  expectError(api("POST", "/v1/masquerade", "nope"), 400, "malformed masquerade body");

  // Unknown endpoints.
  for (const auto& target : {"/v1/nope", "/v2/status", "/", "/v1"}) {
    expectError(api("GET", target), 404, std::string("GET ") + target);
  }

  // Wrong methods on known paths.
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/status"},
                                                        {"PUT", "/v1/status"},
                                                        {"PUT", "/v1/namespaces"},
                                                        {"DELETE", "/v1/namespaces"},
                                                        {"POST", "/v1/namespaces/" + n1},
                                                        {"PUT", "/v1/exposes"},
                                                        {"PATCH", "/v1/masquerade"},
                                                        {"POST", "/v1/conntrack"},
                                                        {"DELETE", "/v1/stats"}}) {
    expectError(api(method, target), 405, method + " " + target);
  }

  // Clashes.
  json clash = {{"hostPort", "6000"}, {"target", n1 + ":81"}};
  expectError(api("POST", "/v1/exposes", clash.dump()), 409, "same host port twice");
  json overlap = {{"hostPort", "5999-6001"}, {"target", n1 + ":80-82"}};
  expectError(api("POST", "/v1/exposes", overlap.dump()), 409, "overlapping range");
  json batch = json::array({{{"hostPort", "6300"}, {"target", n1 + ":80"}}, clash});
  expectError(api("POST", "/v1/exposes", batch.dump()), 409, "a clash inside a batch");
  EXPECT_EQ(api("GET", "/v1/exposes").doc.size(), 1u) << "the batch was applied in part";
  expectError(api("POST", "/v1/namespaces", json{{"name", n1}}.dump()), 409, "namespace twice");
  ASSERT_EQ(api("POST", "/v1/masquerade", json{{"source", "10.99.0.0/16"}}.dump()).status, 201);
  expectError(api("POST", "/v1/masquerade", json{{"source", "10.99.0.0/16"}}.dump()), 409,
              "masquerade twice");

  // Unknown names.
  expectError(api("DELETE", "/v1/namespaces/" + prefix() + "nosuch"), 404, "unknown namespace");
  expectError(api("DELETE", "/v1/exposes?port=6999"), 404, "nothing exposed there");
  expectError(api("DELETE", "/v1/exposes?port=6000&proto=udp"), 404, "exposed on tcp only");
  expectError(api("DELETE", "/v1/masquerade?source=10.66.0.0/16"), 404, "unknown masquerade");

  // Bad field values, and fields of the wrong JSON type.
  std::string target = n1 + ":80";
  for (const auto& body :
       std::vector<json>{{{"hostPort", "0"}, {"target", target}},
                         {{"hostPort", "70000"}, {"target", target}},
                         {{"hostPort", "6010-6005"}, {"target", target}},
                         {{"hostPort", "6010-6011"}, {"target", target}}, // lengths differ
                         {{"hostPort", -1}, {"target", target}},
                         {{"hostPort", 6010.5}, {"target", target}},
                         {{"hostPort", true}, {"target", target}},
                         {{"target", target}},
                         {{"hostPort", "6010"}},
                         {{"hostPort", "6010"}, {"target", "nonsense"}},
                         {{"hostPort", "6010"}, {"target", target}, {"proto", "sctp"}},
                         {{"hostPort", "6010"}, {"target", target}, {"mode", "fast"}},
                         {{"hostPort", "6010"}, {"target", target}, {"proxyProtocol", "v1"}},
                         {{"hostPort", "6010"}, {"target", target}, {"hostIp", "banana"}},
                         json::array({{{"hostPort", "6010"}, {"target", target}}, 1}),
                         json("6010"),
                         // added: a misspelt or unknown field is refused, not ignored
                         {{"hostPort", "6010"}, {"target", target}, {"hostip", "10.0.0.1"}},
                         json::array({{{"hostPort", "6010"}, {"target", target}},
                                      {{"hostPort", "6011"}, {"target", target}, {"x", 1}}})}) {
    expectError(api("POST", "/v1/exposes", body.dump()), 400, "expose " + body.dump());
  }
  EXPECT_EQ(api("GET", "/v1/exposes").doc.size(), 1u);
  for (const auto& body : std::vector<json>{{{"name", "bad name!"}},
                                            {{"name", 7}},
                                            json::object(),
                                            {{"name", prefix() + "x"}, {"subnet", "banana"}}}) {
    expectError(api("POST", "/v1/namespaces", body.dump()), 400, "namespace " + body.dump());
  }
  for (const auto& body :
       std::vector<json>{{{"source", "banana"}}, json::object(), {{"source", "fe80::/64"}},
                         {{"source", "10.66.0.0/16"}, {"out", "eth0"}}}) { // "out": outIf
    expectError(api("POST", "/v1/masquerade", body.dump()), 400, "masquerade " + body.dump());
  }
  expectError(api("DELETE", "/v1/masquerade"), 400, "masquerade delete without a source");
  expectError(api("DELETE", "/v1/exposes"), 400, "unexpose without a port");
  expectError(api("DELETE", "/v1/exposes?port=abc"), 400, "unexpose a bad port");
  expectError(api("DELETE", "/v1/exposes?port=6000&proto=sctp"), 400, "unexpose a bad proto");
  for (const auto& query :
       {"proto=sctp", "src=banana", "dst=1.2.3", "port=0", "sport=70000", "dport=1-2", "bogus=1"}) {
    expectError(api("GET", std::string("/v1/conntrack?") + query), 400,
                std::string("conntrack ") + query);
  }
  expectError(api("DELETE", "/v1/conntrack"), 400, "conntrack delete without a filter");
  EXPECT_TRUE(daemon_.running());
}

// added: listings in pages. ?limit=N&after=CURSOR, with the filters they had; the cursor is
// the last item's key; without either parameter the answer is still one array.
TEST_F(WireFormatTest, ListingsAnswerPages) {
  startDaemon({"--gc-interval", "3600"});
  auto status = expectJson(api("GET", "/v1/status"), 200, "GET /v1/status");
  if (!status["datapath"].value("loaded", false)) {
    GTEST_SKIP() << "the eBPF data path did not load: " << status["datapath"].dump();
  }
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_EQ(api("POST", "/v1/namespaces", json{{"name", n1}}.dump()).status, 201);
  ASSERT_EQ(api("POST", "/v1/namespaces", json{{"name", n2}}.dump()).status, 201);
  for (const auto& body : std::vector<json>{
           {{"hostPort", "6002"}, {"target", n1 + ":80"}},
           {{"hostPort", "6000"}, {"target", n1 + ":80"}},
           {{"hostPort", "6001"}, {"target", n1 + ":80"}, {"proto", "udp"}},
           {{"hostPort", "6001"}, {"target", n1 + ":80"}, {"hostIp", kUplinkAddr}},
           {{"hostPort", "7000-7009"}, {"target", n2 + ":7000-7009"}}}) {
    ASSERT_EQ(api("POST", "/v1/exposes", body.dump()).status, 201) << body.dump();
  }

  // Follows a listing's pages from `query`; returns every item in the order listed.
  auto follow = [&](const std::string& path, const std::string& query, size_t limit,
                    const Shape& itemShape, std::vector<std::string>* cursors = nullptr) {
    json all = json::array();
    std::string after;
    for (int pages = 0; pages < 20; ++pages) {
      std::string target = path + "?" + query + (query.empty() ? "" : "&") +
                           "limit=" + std::to_string(limit);
      if (!after.empty()) {
        target += "&after=" + after;
      }
      auto page = expectJson(api("GET", target), 200, "GET " + target);
      bool last = !page.contains("next");
      expectShape(page, last ? kLastPage : kPage, target);
      expectArrayOf(page["items"], itemShape, target + " items");
      EXPECT_LE(page["items"].size(), limit) << target;
      for (const auto& item : page["items"]) {
        all.push_back(item);
      }
      if (last) {
        return all;
      }
      after = page["next"].get<std::string>();
      if (cursors != nullptr) {
        cursors->push_back(after);
      }
    }
    ADD_FAILURE() << path << ": the pages do not end";
    return all;
  };

  // Exposes, by proto, host address (* first) and port; the cursor names the last one.
  EXPECT_TRUE(api("GET", "/v1/exposes").doc.is_array()) << "the unpaged answer is an array";
  std::vector<std::string> cursors;
  auto exposes = follow("/v1/exposes", "", 2, kExposeListed, &cursors);
  std::vector<std::string> order;
  for (const auto& e : exposes) {
    order.push_back(e["proto"].get<std::string>() + "/" + e["hostIp"].get<std::string>() + "/" +
                    e["hostPort"].get<std::string>());
  }
  EXPECT_EQ(order, (std::vector<std::string>{"tcp/*/6000", "tcp/*/6002", "tcp/*/7000-7009",
                                             "tcp/" + std::string(kUplinkAddr) + "/6001",
                                             "udp/*/6001"}));
  EXPECT_EQ(cursors, (std::vector<std::string>{"tcp/*/6002",
                                               "tcp/" + std::string(kUplinkAddr) + "/6001"}));
  // A limit above the largest page is served as the largest page.
  auto big = expectJson(api("GET", "/v1/exposes?limit=1000000"), 200, "limit 1000000");
  expectShape(big, kLastPage, "limit 1000000");
  EXPECT_EQ(big["items"].size(), 5u);
  auto after = expectJson(api("GET", "/v1/exposes?after=tcp/*/6002"), 200, "after alone");
  EXPECT_EQ(after["items"].size(), 3u) << "after without limit pages from there";

  // Namespaces, by name.
  EXPECT_TRUE(api("GET", "/v1/namespaces").doc.is_array());
  auto namespaces = follow("/v1/namespaces", "", 1, kNamespaceListed);
  ASSERT_EQ(namespaces.size(), 2u);
  EXPECT_EQ(namespaces[0]["name"], n1);
  EXPECT_EQ(namespaces[1]["name"], n2);

  // Conntrack: 30 flows written into the map, 10 to a page, with and without filters.
  ASSERT_EQ(fillConntrack(dir_ + "/bpffs/gw_ct_v4", kUplinkAddr, 0, 30), "");
  EXPECT_TRUE(api("GET", "/v1/conntrack").doc.is_array());
  cursors.clear();
  auto flows = follow("/v1/conntrack", "", 10, kFlow, &cursors);
  ASSERT_EQ(flows.size(), 30u);
  EXPECT_EQ(flows[0]["orig"]["src"], "100.64.0.0");
  EXPECT_EQ(flows[29]["orig"]["src"], "100.64.0.29");
  EXPECT_EQ(flows[0]["state"], "ESTABLISHED");
  EXPECT_EQ(cursors, (std::vector<std::string>{
                         "tcp/100.64.0.9/40000/" + std::string(kUplinkAddr) + "/6000",
                         "tcp/100.64.0.19/40000/" + std::string(kUplinkAddr) + "/6000"}));
  EXPECT_EQ(follow("/v1/conntrack", "proto=tcp&port=6000", 7, kFlow).size(), 30u);
  EXPECT_EQ(follow("/v1/conntrack", "proto=udp", 7, kFlow).size(), 0u);
  auto one = follow("/v1/conntrack", "src=100.64.0.17&dport=6000", 10, kFlow);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["orig"]["src"], "100.64.0.17");

  // Bad paging parameters: 400 naming the parameter.
  auto expectNamed = [&](const std::string& target, const std::string& name) {
    auto r = api("GET", target);
    expectError(r, 400, target);
    EXPECT_NE(r.doc.value("error", "").find(name), std::string::npos)
        << target << ": " << r.body;
  };
  for (const auto& path : {"/v1/exposes", "/v1/conntrack", "/v1/namespaces"}) {
    std::string p = path;
    for (const auto& limit : {"0", "-1", "abc", "1.5", "4294967296", "10x"}) {
      expectNamed(p + "?limit=" + limit, "limit");
    }
  }
  for (const auto& cursor : {"banana", "tcp/*", "tcp/*/0", "sctp/*/6000", "tcp/1.2.3/6000",
                             "tcp/*/6000/1"}) {
    expectNamed(std::string("/v1/exposes?limit=2&after=") + cursor, "after");
  }
  for (const auto& cursor :
       {"banana", "tcp/1.2.3.4/1/5.6.7.8", "tcp/1.2.3.4/1/5.6.7.8/70000", "x/1.2.3.4/1/5.6.7.8/2",
        "tcp/1.2.3.4/-1/5.6.7.8/2", "tcp/1.2.3/1/5.6.7.8/2"}) {
    expectNamed(std::string("/v1/conntrack?limit=2&after=") + cursor, "after");
  }
  expectNamed("/v1/exposes?limit=2&page=3", "page");
  expectNamed("/v1/namespaces?offset=3", "offset");
  expectNamed("/v1/conntrack?limit=2&bogus=1", "bogus");
  auto del = api("DELETE", "/v1/conntrack?proto=tcp&limit=5");
  expectError(del, 400, "a conntrack delete with a limit");
  EXPECT_NE(del.doc.value("error", "").find("limit"), std::string::npos) << del.body;
  EXPECT_EQ(follow("/v1/conntrack", "", 100, kFlow).size(), 30u) << "the bad delete deleted";
  EXPECT_TRUE(daemon_.running());
}

TEST_F(WireFormatTest, StatusWithoutTheDatapath) {
  startDaemon({}, {"GATEWAY_FAILPOINTS=datapath-load"});
  auto status = expectJson(api("GET", "/v1/status"), 200, "GET /v1/status");
  expectShape(status, kStatus, "status");
  expectShape(status["datapath"], kStatusNoDatapath, "status.datapath");
  EXPECT_EQ(status["datapath"]["loaded"], false);
  auto metrics = parseMetrics(api("GET", "/metrics").body);
  ASSERT_EQ(metrics.of("gateway_datapath_loaded").size(), 1u);
  EXPECT_EQ(metrics.of("gateway_datapath_loaded")[0].value, "0");
}

} // namespace
} // namespace gw::test
