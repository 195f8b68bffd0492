// SPDX-License-Identifier: MIT
// Bad input: each is refused with the spec's code and a message naming what was wrong, and
// gatewayd is never asked.
#include <gtest/gtest.h>

#include <functional>

#include "tests/cni/FakeGateway.h"
#include "tests/cni/Fixtures.h"

namespace gw::cni::test {
namespace {

struct BadInput {
  const char* name;
  std::function<void(std::map<std::string, std::string>&)> env; // changes to ADD's
  std::function<std::string()> stdinText;
  int code;
  const char* msgHas;
};

std::string addWith(const char* mappingsJson) {
  return addConfig(Json::parse(mappingsJson)).dump();
}

std::string podmanAdd() { return addConfig(podmanMappings()).dump(); }

std::string configWithout(const char* key) {
  auto c = addConfig(podmanMappings());
  c.erase(key);
  return c.dump();
}

std::string configWith(const char* key, Json value) {
  auto c = addConfig(podmanMappings());
  c[key] = std::move(value);
  return c.dump();
}

auto keepEnv = [](std::map<std::string, std::string>&) {};
auto unset(const char* name) {
  return [name](std::map<std::string, std::string>& v) { v.erase(name); };
}
auto setEnv(const char* name, const char* value) {
  return [name, value](std::map<std::string, std::string>& v) { v[name] = value; };
}

const BadInput kBadInputs[] = {
    {"NoCommand", unset("CNI_COMMAND"), podmanAdd, 4, "CNI_COMMAND is not set"},
    {"EmptyCommand", setEnv("CNI_COMMAND", ""), podmanAdd, 4, "CNI_COMMAND is not set"},
    {"UnknownCommand", setEnv("CNI_COMMAND", "add"), podmanAdd, 4, "unknown CNI_COMMAND 'add'"},
    {"NoContainerId", unset("CNI_CONTAINERID"), podmanAdd, 4, "CNI_CONTAINERID is not set"},
    {"BadContainerId", setEnv("CNI_CONTAINERID", "-x/y"), podmanAdd, 4, "CNI_CONTAINERID '-x/y'"},
    {"NoIfName", unset("CNI_IFNAME"), podmanAdd, 4, "CNI_IFNAME is not set"},
    {"BadIfName", setEnv("CNI_IFNAME", "eth0/1"), podmanAdd, 4, "CNI_IFNAME 'eth0/1'"},
    {"LongIfName", setEnv("CNI_IFNAME", "abcdefghijklmnop"), podmanAdd, 4, "CNI_IFNAME"},
    {"NoNetnsForAdd", unset("CNI_NETNS"), podmanAdd, 4, "CNI_NETNS is not set"},
    {"NoPath", unset("CNI_PATH"), podmanAdd, 4, "CNI_PATH is not set"},
    {"BadArgs", setEnv("CNI_ARGS", "IgnoreUnknown=1;junk"), podmanAdd, 4,
     "'junk' is not KEY=VALUE"},
    {"NotJson", keepEnv, [] { return std::string("{\"cniVersion\":"); }, 6, "not JSON"},
    {"EmptyStdin", keepEnv, [] { return std::string(); }, 6, "not JSON"},
    {"JsonArray", keepEnv, [] { return std::string("[]"); }, 6, "not a JSON object"},
    {"NoCniVersion", keepEnv, [] { return configWithout("cniVersion"); }, 7, "\"cniVersion\""},
    {"OldCniVersion", keepEnv, [] { return configWith("cniVersion", "0.2.0"); }, 1,
     "cniVersion '0.2.0' is not supported"},
    {"NoName", keepEnv, [] { return configWithout("name"); }, 7, "config has no \"name\""},
    {"NameNotString", keepEnv, [] { return configWith("name", 5); }, 7, "\"name\" is not a string"},
    {"EmptySocket", keepEnv, [] { return configWith("socket", ""); }, 7, "\"socket\" ''"},
    {"RelativeSocket", keepEnv, [] { return configWith("socket", "gw.sock"); }, 7,
     "not an absolute path"},
    {"SocketNotString", keepEnv, [] { return configWith("socket", true); }, 7, "\"socket\""},
    {"RuntimeConfigNotObject", keepEnv, [] { return configWith("runtimeConfig", "x"); }, 7,
     "runtimeConfig is not an object"},
    {"MappingsNotArray", keepEnv, [] { return addWith(R"({"hostPort": 80})"); }, 7,
     "portMappings is not an array"},
    {"MappingNotObject", keepEnv, [] { return addWith("[80]"); }, 7,
     "portMappings[0] is not an object"},
    {"UnknownProtocol", keepEnv,
     [] { return addWith(R"([{"hostPort":80,"containerPort":80,"protocol":"sctp"}])"); }, 7,
     "portMappings[0].protocol 'sctp' is not supported"},
    {"HostPortZero", keepEnv, [] { return addWith(R"([{"hostPort":0,"containerPort":80}])"); },
     7, "portMappings[0].hostPort 0 is out of range"},
    {"ContainerPortTooBig", keepEnv,
     [] { return addWith(R"([{"hostPort":80,"containerPort":70000}])"); }, 7,
     "portMappings[0].containerPort 70000 is out of range"},
    {"NegativePort", keepEnv, [] { return addWith(R"([{"hostPort":-1,"containerPort":80}])"); },
     7, "hostPort -1 is out of range"},
    {"PortAsString", keepEnv,
     [] { return addWith(R"([{"hostPort":"80","containerPort":80}])"); }, 7,
     "hostPort is not an integer"},
    {"PortFraction", keepEnv,
     [] { return addWith(R"([{"hostPort":80.5,"containerPort":80}])"); }, 7,
     "hostPort is not an integer"},
    {"NoContainerPort", keepEnv, [] { return addWith(R"([{"hostPort":80}])"); }, 7,
     "portMappings[0].containerPort is missing"},
    {"SecondMappingBad", keepEnv,
     [] { return addWith(R"([{"hostPort":80,"containerPort":80},{"hostPort":81}])"); }, 7,
     "portMappings[1].containerPort"},
    {"BadHostIp", keepEnv,
     [] { return addWith(R"([{"hostPort":80,"containerPort":80,"hostIP":"300.1.1.1"}])"); }, 7,
     "portMappings[0].hostIP"},
    {"PrevResultNotObject", keepEnv, [] { return configWith("prevResult", "x"); }, 7,
     "prevResult is not an object"},
    {"PrevResultNoIps", keepEnv, [] { return configWith("prevResult", Json::object()); }, 7,
     "prevResult has no \"ips\""},
    {"PrevResultBadAddress", keepEnv,
     [] {
       auto p = bridgeResult();
       p["ips"][0]["address"] = "10.88.0.3"; // no prefix length
       return configWith("prevResult", p);
     },
     7, "prevResult.ips[0].address"},
    {"PrevResultBadInterfaceIndex", keepEnv,
     [] {
       auto p = bridgeResult();
       p["ips"][1]["interface"] = 7;
       return configWith("prevResult", p);
     },
     7, "prevResult.ips[1].interface 7"},
    {"NoAddressOfTheHostIpFamily", keepEnv,
     [] {
       auto p = bridgeResult();
       p["ips"].erase(1); // IPv4 only
       return addConfig(
                  Json::parse(R"([{"hostPort":80,"containerPort":80,"hostIP":"::1"}])"), p)
           .dump();
     },
     7, "no IPv6 address"},
    {"NoContainerAddress", setEnv("CNI_IFNAME", "eth9"), podmanAdd, 7,
     "the container has no address"},
};

class CniBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CniBadInput, RefusedWithCodeAndField) {
  const auto& c = GetParam();
  Harness h;
  h.vars = attachmentEnv("ADD");
  c.env(h.vars);
  auto o = h.run(c.stdinText());
  EXPECT_NE(o.exitCode, 0);
  auto j = Json::parse(o.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << o.out;
  EXPECT_EQ(j["code"], c.code) << o.out;
  ASSERT_TRUE(j["msg"].is_string()) << o.out;
  EXPECT_NE(j["msg"].get<std::string>().find(c.msgHas), std::string::npos)
      << "msg: " << j["msg"] << " lacks: " << c.msgHas;
  ASSERT_TRUE(j["cniVersion"].is_string()) << o.out;
  EXPECT_TRUE(h.sockets.empty()) << "asked gatewayd despite bad input";
}

INSTANTIATE_TEST_SUITE_P(All, CniBadInput, ::testing::ValuesIn(kBadInputs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CniParse, ErrorCarriesTheConfigsVersion) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  h.vars.erase("CNI_IFNAME");
  auto o = h.run(addConfig(podmanMappings(), bridgeResult(), "0.4.0").dump());
  EXPECT_EQ(Json::parse(o.out)["cniVersion"], "0.4.0");
  auto bad = h.run("{");
  EXPECT_EQ(Json::parse(bad.out)["cniVersion"], "1.1.0"); // ours, when stdin says none
}

TEST(CniParse, ArgsAndDelEnvironment) {
  auto env = attachmentEnv("DEL");
  env.erase("CNI_NETNS");
  auto lookup = [&](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional(it->second);
  };
  auto e = parseEnvironment(Command::Del, lookup);
  ASSERT_TRUE(e) << e.error().msg;
  EXPECT_EQ(e->netns, "");
  using Args = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(e->args, (Args{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "web"}}));
}

} // namespace
} // namespace gw::cni::test
