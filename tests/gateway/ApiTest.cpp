// SPDX-License-Identifier: MIT
// The API's edges without a daemon: the router's answers (404/405/400, the status an error
// kind gets, path parameters) and the codec's reading of requests.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/Api.h"
#include "gateway/api/Router.h"

namespace gw {
namespace {

using nlohmann::json;

http::Request request(std::string method, std::string target, std::string body = {}) {
  return {.method = std::move(method),
          .target = std::move(target),
          .headers = {},
          .body = std::move(body)};
}

std::string errorOf(const http::Response& response) {
  return json::parse(response.body).at("error").get<std::string>();
}

// ---- the router

class Routes : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add("GET", "/v1/things", [this](const Call& c) {
      ++calls_;
      return jsonResponse(200, c.query());
    });
    router_.add("POST", "/v1/things", [this](const Call& c) {
      ++calls_;
      return jsonResponse(201, c.body);
    });
    router_.add("DELETE", "/v1/things/{}", [this](const Call& c) {
      ++calls_;
      return jsonResponse(200, json{{"param", c.param}});
    });
    router_.add("POST", "/v1/fail", [this](const Call& c) {
      ++calls_;
      const std::string kind = c.body.value("kind", "");
      Error e = kind == "invalid"       ? invalid("bad").error()
                : kind == "notfound"    ? notFound("gone").error()
                : kind == "conflict"    ? conflict("taken").error()
                : kind == "unavailable" ? unavailable("down").error()
                                        : Error{EIO, "broke"};
      return errorResponse(e);
    });
  }

  Router router_;
  int calls_ = 0;
};

TEST_F(Routes, AnUnknownPathIs404AndAnotherMethodOnAKnownOneIs405) {
  auto unknown = router_.route(request("GET", "/v1/nothing"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(errorOf(unknown), "no such endpoint: GET /v1/nothing");
  auto method = router_.route(request("PUT", "/v1/things"));
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(errorOf(method), "method PUT not allowed on /v1/things");
  EXPECT_EQ(router_.route(request("GET", "/v1/things/x")).status, 405);
  // A parameter is one whole segment.
  EXPECT_EQ(router_.route(request("DELETE", "/v1/things/")).status, 404);
  EXPECT_EQ(router_.route(request("DELETE", "/v1/things/a/b")).status, 404);
  EXPECT_EQ(router_.route(request("DELETE", "/v1/thingsx")).status, 404);
  EXPECT_EQ(calls_, 0);
}

TEST_F(Routes, ABodyThatIsNotJsonIs400BeforeTheHandler) {
  auto bad = router_.route(request("POST", "/v1/things", "{\"name\":"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.contentType, "application/json");
  EXPECT_EQ(errorOf(bad), "request body is not valid JSON");
  EXPECT_EQ(calls_, 0);
  // No body is an empty object.
  auto empty = router_.route(request("POST", "/v1/things"));
  EXPECT_EQ(empty.status, 201);
  EXPECT_EQ(json::parse(empty.body), json::object());
  auto ok = router_.route(request("POST", "/v1/things", R"({"name":"a"})"));
  EXPECT_EQ(ok.status, 201);
  EXPECT_EQ(json::parse(ok.body), (json{{"name", "a"}}));
}

TEST_F(Routes, DuplicateKeysAndNulBytesAre400BeforeTheHandler) {
  auto twice = router_.route(request("POST", "/v1/things", R"({"port":"80","port":"6000"})"));
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(errorOf(twice), "request body: key 'port' is given twice in one object");
  auto nestedTwice = router_.route(request("POST", "/v1/things", R"({"a":{"x":1,"x":2}})"));
  EXPECT_EQ(nestedTwice.status, 400);
  auto nul = router_.route(request("POST", "/v1/things", R"({"name":"a\u0000b"})"));
  EXPECT_EQ(nul.status, 400);
  EXPECT_EQ(errorOf(nul), "request body: a string holds a NUL byte");
  auto queryNul = router_.route(request("GET", "/v1/things?src=10.0.0.1%00x"));
  EXPECT_EQ(queryNul.status, 400);
  EXPECT_NE(errorOf(queryNul).find("'src' holds a control byte"), std::string::npos);
  auto queryTwice = router_.route(request("GET", "/v1/things?port=1&port=2"));
  EXPECT_EQ(queryTwice.status, 400);
  EXPECT_EQ(errorOf(queryTwice), "query parameter 'port' is given twice");
  auto paramNul = router_.route(request("DELETE", "/v1/things/a%00b"));
  EXPECT_EQ(paramNul.status, 400);
  EXPECT_EQ(calls_, 0);
  // Nested objects keep their own keys; the same key in two objects is fine.
  auto nested = router_.route(
      request("POST", "/v1/things", R"({"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]})"));
  EXPECT_EQ(nested.status, 201);
  auto query = router_.route(request("GET", "/v1/things?src=10.0.0.1&port=80"));
  EXPECT_EQ(json::parse(query.body), (json{{"src", "10.0.0.1"}, {"port", "80"}}));
}

TEST(RootOnly, AGroupMemberGets403AndRootGetsThrough) {
  Router router;
  router.add("POST", "/v1/down", [](const Call& c) {
    if (auto allowed = c.rootOnly("gwctl down"); !allowed) {
      return errorResponse(allowed.error());
    }
    return jsonResponse(200, json::object());
  });
  auto member = router.route(request("POST", "/v1/down"), Caller::GroupMember);
  EXPECT_EQ(member.status, 403);
  EXPECT_NE(errorOf(member).find("gwctl down is for root only"), std::string::npos);
  EXPECT_EQ(router.route(request("POST", "/v1/down"), Caller::Root).status, 200);
}

TEST_F(Routes, TheErrorKindAloneDecidesTheStatus) {
  for (const auto& [kind, status] : std::vector<std::pair<std::string, int>>{{"invalid", 400},
                                                                             {"notfound", 404},
                                                                             {"conflict", 409},
                                                                             {"unavailable", 503},
                                                                             {"internal", 500}}) {
    auto r = router_.route(request("POST", "/v1/fail", json{{"kind", kind}}.dump()));
    EXPECT_EQ(r.status, status) << kind;
  }
  // errno is in the message, never in the status.
  auto internal = router_.route(request("POST", "/v1/fail", R"({"kind":"internal"})"));
  EXPECT_EQ(errorOf(internal), std::string("broke: ") + std::strerror(EIO));
  EXPECT_EQ(httpStatus(ErrorKind::Conflict), 409);
}

TEST_F(Routes, AParameterSegmentIsPercentDecodedAndTheQueryToo) {
  auto r = router_.route(request("DELETE", "/v1/things/my%20ns%2Fx?force=1"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body).at("param"), "my ns/x");
  auto q = router_.route(request("GET", "/v1/things?port=8080-8081&src=10.0.0.1&x=%41"));
  ASSERT_EQ(q.status, 200);
  EXPECT_EQ(json::parse(q.body), (json{{"port", "8080-8081"}, {"src", "10.0.0.1"}, {"x", "A"}}));
}

// ---- the codec

TEST(ApiCodec, OptionalFieldsAreOmittedWhenEmpty) {
  api::ExposeRequest r{.hostPort = {8080, 8081}, .target = parseTarget("web:80-81").value()};
  json j = api::toJson(r);
  EXPECT_EQ(j, (json{{"hostPort", "8080-8081"},
                     {"target", "web:80-81"},
                     {"proto", "tcp"},
                     {"mode", "auto"},
                     {"proxyProtocol", ""}}));
  r.hostIp = IpAddress::parse("192.0.2.10").value();
  EXPECT_EQ(api::toJson(r).at("hostIp"), "192.0.2.10");

  api::DatapathInfo loaded{.loaded = true, .xdp = "native", .adopted = false};
  EXPECT_EQ(api::toJson(loaded), (json{{"loaded", true}, {"xdp", "native"}, {"adopted", false}}));
}

TEST(ApiCodec, AnEmptyStringForAnOptionalFieldMeansTheDefault) {
  auto r = api::fromJson<api::ExposeRequest>(json{{"hostPort", "8080"},
                                                  {"target", "10.0.0.5:80"},
                                                  {"proto", ""},
                                                  {"hostIp", ""},
                                                  {"mode", ""},
                                                  {"proxyProtocol", ""}});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->proto, Proto::Tcp);
  EXPECT_FALSE(r->hostIp);
  EXPECT_EQ(r->mode, ExposeMode::Auto);
  EXPECT_EQ(r->proxyProtocol, ProxyProtocol::None);
  // null is absent as well.
  auto n = api::fromJson<api::NamespaceAddRequest>(json{{"name", "a"}, {"subnet", nullptr}});
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_FALSE(n->subnet);

  // A required field is not defaulted: "" is read, and refused naming the field.
  auto blank = api::fromJson<api::ExposeRequest>(json{{"hostPort", ""}, {"target", "a:80"}});
  ASSERT_FALSE(blank);
  EXPECT_EQ(blank.error().kind, ErrorKind::Invalid);
  EXPECT_NE(blank.error().str().find("host port"), std::string::npos) << blank.error().str();
  auto missing = api::fromJson<api::ExposeRequest>(json{{"hostPort", "80"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().str(), "missing field 'target'");
}

// Numbers as they come off the wire: a parsed non-negative integer is unsigned in nlohmann's
// json, where json(8080) built in C++ would be signed.
json wire(std::string_view text) {
  return json::parse(text);
}

TEST(ApiCodec, APortRangeMayBeAJsonNumber) {
  auto r = api::fromJson<api::ExposeRequest>(wire(R"({"hostPort": 8080, "target": "a:80"})"));
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->hostPort, (PortRange{8080, 8080}));
  auto q = api::fromJson<api::UnexposeQuery>(wire(R"({"port": "7000-7009", "proto": "udp"})"));
  ASSERT_TRUE(q) << q.error().str();
  EXPECT_EQ(q->port, (PortRange{7000, 7009}));
  EXPECT_EQ(q->proto, Proto::Udp);

  for (const char* bad : {"70000", "0", "-1", "80.5", "true", "\"80-\""}) {
    auto r2 = api::fromJson<api::ExposeRequest>(
        wire(std::string(R"({"target": "a:80", "hostPort": )") + bad + "}"));
    ASSERT_FALSE(r2) << bad;
    EXPECT_EQ(r2.error().kind, ErrorKind::Invalid);
    EXPECT_NE(r2.error().str().find("host port"), std::string::npos) << r2.error().str();
  }
}

TEST(ApiCodec, OutOfRangeIntegersAreRefusedNamingTheField) {
  auto tuple = [](const char* sport) {
    return api::fromJson<api::FlowTupleInfo>(wire(std::string(R"({"src": "10.0.0.1", "dst": )") +
                                                  R"("10.0.0.2", "dport": 80, "sport": )" + sport +
                                                  "}"));
  };
  auto r = tuple("70000");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Invalid);
  EXPECT_EQ(r.error().str(), "field 'sport' must be an integer from 0 to 65535");
  for (const char* bad : {"-1", "1.5", "1e3", "\"80\"", "18446744073709551616"}) {
    auto refused = tuple(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().str().find("'sport'"), std::string::npos) << refused.error().str();
  }
  EXPECT_TRUE(tuple("65535"));
  EXPECT_TRUE(tuple("0"));

  // Signed ones too: an ifindex past int.
  auto uplink = api::fromJson<api::UplinkInfo>(
      wire(R"({"name": "eth0", "ifindex": 3000000000, "addresses": []})"));
  ASSERT_FALSE(uplink);
  EXPECT_NE(uplink.error().str().find("field 'ifindex'"), std::string::npos)
      << uplink.error().str();
}

TEST(ApiCodec, UnknownQueryKeysAreRefused) {
  json query{{"proto", "tcp"}, {"dprot", "80"}};
  auto r = api::rejectUnknownFields<api::ConntrackQuery>(query, "conntrack filter");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Invalid);
  EXPECT_EQ(r.error().str(), "unknown conntrack filter 'dprot'");
  EXPECT_TRUE(api::rejectUnknownFields<api::ConntrackQuery>(
      json{{"proto", "udp"}, {"dport", "53"}, {"all", "1"}}, "conntrack filter"));

  // The values of a query are checked with their flag named.
  auto bad = api::fromJson<api::ConntrackQuery>(json{{"src", "10.0.0.300"}}, "query");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("--src"), std::string::npos) << bad.error().str();
}

TEST(ApiCodec, EnumsHaveOneSpellingBothWays) {
  api::ExposeInfo info{.id = 3,
                       .proto = Proto::Udp,
                       .hostIp = "*",
                       .hostPort = {53, 53},
                       .target = "10.0.0.5:53",
                       .targetAddr = IpAddress::parse("10.0.0.5").value(),
                       .targetPort = {53, 53},
                       .mode = ExposeMode::Ebpf,
                       .path = ServingPath::Ebpf,
                       .why = "eBPF",
                       .packets = 1};
  json j = api::toJson(info);
  EXPECT_EQ(j.at("proto"), "udp");
  EXPECT_EQ(j.at("mode"), "ebpf");
  EXPECT_EQ(j.at("path"), "ebpf");
  auto back = api::fromJson<api::ExposeInfo>(j);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(api::toJson(*back), j);
  j["mode"] = "fast";
  auto bad = api::fromJson<api::ExposeInfo>(j);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("--mode 'fast'"), std::string::npos) << bad.error().str();
}

}  // namespace
}  // namespace gw
