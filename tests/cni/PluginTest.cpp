// SPDX-License-Identifier: MIT
// Each command from fixture stdin and environment against the fake gateway.
#include <gtest/gtest.h>

#include <cstdio>
#include <sys/wait.h>

#include "cni/ApiGateway.h"
#include "tests/cni/FakeGateway.h"
#include "tests/cni/Fixtures.h"

namespace gw::cni::test {
namespace {

IpAddress ip(std::string_view text) { return *IpAddress::parse(text); }

OwnedExpose expose(std::optional<IpAddress> hostIp, uint16_t hostPort, Proto proto,
                   std::string_view target, uint16_t targetPort) {
  return OwnedExpose{hostIp, hostPort, proto, ip(target), targetPort};
}

Json errorOf(const Outcome& o) {
  EXPECT_NE(o.exitCode, 0) << o.out;
  return Json::parse(o.out);
}

TEST(CniVersion, AnswersWhateverTheEnvironmentHolds) {
  for (auto stdinText : {R"({"cniVersion":"1.0.0"})", "", "not json"}) {
    Harness h;
    // libcni probes with dummy values.
    h.vars = {{"CNI_COMMAND", "VERSION"}, {"CNI_CONTAINERID", "dummy"},
              {"CNI_NETNS", "dummy"},     {"CNI_IFNAME", "dummy"},
              {"CNI_PATH", "dummy"}};
    auto o = h.run(stdinText);
    EXPECT_EQ(o.exitCode, 0);
    auto j = Json::parse(o.out);
    EXPECT_EQ(j["cniVersion"], "1.1.0");
    EXPECT_EQ(j["supportedVersions"], Json::parse(R"(["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"])"));
    EXPECT_TRUE(h.sockets.empty()) << "VERSION contacted gatewayd";
  }
}

TEST(CniAdd, PodmanMappingsBothFamilies) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto o = h.run(addConfig(podmanMappings()).dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  EXPECT_EQ(h.sockets, std::vector<std::string>{"/run/gateway/gateway.sock"});
  std::vector<OwnedExpose> want = {
      expose(std::nullopt, 8080, Proto::Tcp, "10.88.0.3", 80),
      expose(std::nullopt, 8080, Proto::Tcp, "fd00:88::3", 80),
      expose(ip("127.0.0.1"), 8081, Proto::Tcp, "10.88.0.3", 80), // hostIP limits the family
      expose(std::nullopt, 5353, Proto::Udp, "10.88.0.3", 53),
      expose(std::nullopt, 5353, Proto::Udp, "fd00:88::3", 53),
  };
  EXPECT_EQ(h.gateway.owners[podmanOwner()], want);
  EXPECT_EQ(h.gateway.calls, std::vector<std::string>{"add"}); // one request per owner
}

TEST(CniAdd, NerdctlAnyIpv4AndContainerdUpperCase) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  // nerdctl writes 0.0.0.0 for "any" (IPv4 only, as portmap reads it); containerd passes
  // Kubernetes' "TCP"; "::1" is one IPv6 host address.
  auto mappings = Json::parse(R"([
    {"hostPort": 80, "containerPort": 8080, "protocol": "tcp", "hostIP": "0.0.0.0"},
    {"hostPort": 443, "containerPort": 8443, "protocol": "TCP"},
    {"hostPort": 9000, "containerPort": 9000, "protocol": "udp", "hostIP": "::1"},
    {"hostPort": 9001, "containerPort": 9001}
  ])");
  auto o = h.run(addConfig(mappings).dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  std::vector<OwnedExpose> want = {
      expose(std::nullopt, 80, Proto::Tcp, "10.88.0.3", 8080),
      expose(std::nullopt, 443, Proto::Tcp, "10.88.0.3", 8443),
      expose(std::nullopt, 443, Proto::Tcp, "fd00:88::3", 8443),
      expose(ip("::1"), 9000, Proto::Udp, "fd00:88::3", 9000),
      expose(std::nullopt, 9001, Proto::Tcp, "10.88.0.3", 9001),
      expose(std::nullopt, 9001, Proto::Tcp, "fd00:88::3", 9001),
  };
  EXPECT_EQ(h.gateway.owners[podmanOwner()], want);
}

TEST(CniAdd, PrevResultPassedBackUnchanged) {
  // Key order, unknown keys and a 0.4.0-style "version" field all come back as they were.
  auto prev = Json::parse(R"({"dns": {"nameservers": ["10.88.0.1"]}, "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x", "mac": "aa:bb:cc:dd:ee:ff"}],
    "ips": [{"version": "4", "address": "10.88.0.9/16", "interface": 0}],
    "x-vendor": {"z": 1, "a": [true, null, 2.5]}})");
  for (auto mappings : {podmanMappings(), Json::array()}) {
    Harness h;
    h.vars = attachmentEnv("ADD");
    auto o = h.run(addConfig(mappings, prev, "1.1.0").dump());
    ASSERT_EQ(o.exitCode, 0) << o.out;
    EXPECT_EQ(o.out, prev.dump() + "\n");
  }
}

// flannel's 0.3.1 (prevResult ips with "version", as 0.3.x results are): published as at
// 1.0.0; CHECK came with 0.4.0, so at 0.3.1 it is refused by version.
TEST(CniAdd, FlannelAt031) {
  auto prev = Json::parse(R"({"cniVersion": "0.3.1",
    "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
    "ips": [{"version": "4", "address": "10.244.1.7/24", "gateway": "10.244.1.1",
             "interface": 1}]})");
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto o = h.run(addConfig(podmanMappings(), prev, "0.3.1").dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  EXPECT_EQ(o.out, prev.dump() + "\n");
  EXPECT_EQ(h.gateway.owners[podmanOwner()].size(), 3u);
  Harness check;
  check.vars = attachmentEnv("CHECK");
  auto c = check.run(addConfig(podmanMappings(), prev, "0.3.1").dump());
  EXPECT_EQ(c.exitCode, 1);
  EXPECT_NE(c.out.find("has no CHECK"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("\"code\":1"), std::string::npos) << c.out;
}

TEST(CniAdd, ResultGetsCniVersionWhenPrevResultHasNone) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto prev = bridgeResult();
  prev.erase("cniVersion");
  auto o = h.run(addConfig(podmanMappings(), prev, "1.1.0").dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  auto out = Json::parse(o.out);
  EXPECT_EQ(out["cniVersion"], "1.1.0");
  out.erase("cniVersion");
  EXPECT_EQ(out, prev);
}

TEST(CniAdd, NoMappingsAsksNothing) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto c = config();
  c["prevResult"] = bridgeResult();
  auto o = h.run(c.dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  EXPECT_EQ(Json::parse(o.out), bridgeResult());
  EXPECT_TRUE(h.sockets.empty());
}

TEST(CniAdd, OnlyTheContainersInterface) {
  // The bridge's own address (no sandbox) and a second container interface are not targets;
  // the first address of a family wins.
  auto prev = Json::parse(R"({"cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0"}, {"name": "eth1", "sandbox": "/run/netns/x"},
                   {"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"interface": 0, "address": "10.88.0.1/16"},
            {"interface": 1, "address": "10.99.0.5/16"},
            {"address": "10.77.0.5/16"},
            {"interface": 2, "address": "10.88.0.7/16"},
            {"interface": 2, "address": "10.88.0.8/16"}]})");
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto o = h.run(addConfig(Json::parse(R"([{"hostPort":80,"containerPort":80}])"), prev).dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  EXPECT_EQ(h.gateway.owners[podmanOwner()],
            std::vector<OwnedExpose>{expose(std::nullopt, 80, Proto::Tcp, "10.88.0.7", 80)});
}

TEST(CniAdd, PortTakenByAnotherOwner) {
  Harness h;
  Owner other{"podman", "other", "eth0"};
  h.gateway.owners[other] = {expose(std::nullopt, 5353, Proto::Udp, "10.88.0.4", 53)};
  h.vars = attachmentEnv("ADD");
  auto o = h.run(addConfig(podmanMappings()).dump());
  auto e = errorOf(o);
  EXPECT_EQ(e["code"], 100);
  EXPECT_EQ(e["cniVersion"], "1.0.0");
  EXPECT_NE(e["msg"].get<std::string>().find("5353"), std::string::npos) << e["msg"];
  EXPECT_FALSE(h.gateway.owners.contains(podmanOwner())); // nothing half-made
  EXPECT_EQ(h.gateway.owners.size(), 1u);
}

TEST(CniAdd, GatewayFailuresAsCodes) {
  struct Case {
    Fault fault;
    int code;
    bool cleanedUp; // the answer may have been lost after gatewayd acted: take it back
  };
  for (auto c : {Case{Fault::Unreachable, 11, true}, Case{Fault::Unavailable, 11, false},
                 Case{Fault::Unsupported, 102, false}, Case{Fault::Rejected, 101, false},
                 Case{Fault::Internal, 104, true}}) {
    Harness h;
    h.gateway.failWith = c.fault;
    h.vars = attachmentEnv("ADD");
    auto e = errorOf(h.run(addConfig(podmanMappings()).dump()));
    EXPECT_EQ(e["code"], c.code) << e;
    EXPECT_EQ(h.gateway.calls.size(), c.cleanedUp ? 2u : 1u) << e;
    if (c.cleanedUp) {
      EXPECT_EQ(h.gateway.calls.back(), "delete");
    }
  }
}

TEST(CniAdd, NeedsPrevResult) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  auto c = config();
  c["runtimeConfig"]["portMappings"] = podmanMappings();
  auto e = errorOf(h.run(c.dump()));
  EXPECT_EQ(e["code"], 7);
  EXPECT_NE(e["msg"].get<std::string>().find("prevResult"), std::string::npos);
}

TEST(CniDel, WithoutPrevResultRepeatedAndNetnsGone) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  ASSERT_EQ(h.run(addConfig(podmanMappings()).dump()).exitCode, 0);
  Owner other{"podman", "other", "eth0"};
  h.gateway.owners[other] = {expose(std::nullopt, 9999, Proto::Tcp, "10.88.0.4", 80)};
  h.vars = attachmentEnv("DEL");
  h.vars.erase("CNI_NETNS");
  auto c = config();
  // Mappings DEL does not need are not judged (a DEL must not fail on them).
  c["runtimeConfig"]["portMappings"] = Json::parse(R"([{"hostPort": 0}])");
  for (int i = 0; i < 2; ++i) {
    auto o = h.run(c.dump());
    EXPECT_EQ(o.exitCode, 0) << o.out;
    EXPECT_EQ(o.out, "");
    EXPECT_FALSE(h.gateway.owners.contains(podmanOwner()));
  }
  EXPECT_TRUE(h.gateway.owners.contains(other));
  EXPECT_EQ(h.gateway.deleted, (std::vector<Owner>{podmanOwner(), podmanOwner()}));
}

TEST(CniDel, GatewayDownIsTryAgainLater) {
  Harness h;
  h.gateway.failWith = Fault::Unreachable;
  h.vars = attachmentEnv("DEL");
  EXPECT_EQ(errorOf(h.run(config().dump()))["code"], 11);
  h.gateway.failWith = Fault::Internal;
  EXPECT_EQ(errorOf(h.run(config().dump()))["code"], 104);
  // A gatewayd without owner support has none of this container's: DEL succeeds.
  h.gateway.failWith = Fault::Unsupported;
  auto o = h.run(config().dump());
  EXPECT_EQ(o.exitCode, 0) << o.out;
}

TEST(CniCheck, MatchesMissingAndExtra) {
  Harness h;
  h.vars = attachmentEnv("ADD");
  ASSERT_EQ(h.run(addConfig(podmanMappings()).dump()).exitCode, 0);
  h.vars = attachmentEnv("CHECK");
  auto ok = h.run(addConfig(podmanMappings()).dump());
  EXPECT_EQ(ok.exitCode, 0) << ok.out;
  EXPECT_EQ(ok.out, "");

  auto& mine = h.gateway.owners[podmanOwner()];
  mine.erase(mine.begin()); // 8080 -> 10.88.0.3:80 gone
  mine.push_back(expose(std::nullopt, 7000, Proto::Tcp, "10.88.0.3", 7000));
  auto e = errorOf(h.run(addConfig(podmanMappings()).dump()));
  EXPECT_EQ(e["code"], 103);
  auto details = e["details"].get<std::string>();
  EXPECT_NE(details.find("missing *:8080/tcp -> 10.88.0.3:80"), std::string::npos) << details;
  EXPECT_NE(details.find("unexpected *:7000/tcp -> 10.88.0.3:7000"), std::string::npos)
      << details;

  auto noPrev = config();
  noPrev["runtimeConfig"]["portMappings"] = podmanMappings();
  EXPECT_EQ(errorOf(h.run(noPrev.dump()))["code"], 7);
}

TEST(CniStatus, UpDownAndUnavailable) {
  Harness h;
  h.vars = {{"CNI_COMMAND", "STATUS"}}; // no attachment variables
  auto c = config("1.1.0");
  c["socket"] = "/run/other/gateway.sock";
  auto up = h.run(c.dump());
  EXPECT_EQ(up.exitCode, 0) << up.out;
  EXPECT_EQ(up.out, "");
  EXPECT_EQ(h.sockets.back(), "/run/other/gateway.sock");
  for (auto fault : {Fault::Unreachable, Fault::Unavailable, Fault::Internal}) {
    h.gateway.failWith = fault;
    auto e = errorOf(h.run(c.dump()));
    EXPECT_EQ(e["code"], 50);
    EXPECT_EQ(e["cniVersion"], "1.1.0");
  }
  // STATUS is a 1.1.0 command.
  EXPECT_EQ(errorOf(h.run(config("1.0.0").dump()))["code"], 1);
}

TEST(CniStatus, RealClientWithGatewaydDown) {
  auto c = config("1.1.0");
  c["socket"] = "/nonexistent-gateway-test/gateway.sock";
  std::unique_ptr<ApiGateway> gateway;
  auto connect = [&](const std::string& socket) -> Gateway& {
    gateway = std::make_unique<ApiGateway>(socket);
    return *gateway;
  };
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> std::optional<std::string> {
      auto it = vars.find(name);
      return it == vars.end() ? std::nullopt : std::optional(it->second);
    };
  };
  auto status = run(c.dump(), env({{"CNI_COMMAND", "STATUS"}}), connect);
  auto e = errorOf(status);
  EXPECT_EQ(e["code"], 50);
  EXPECT_NE(e["msg"].get<std::string>().find("/nonexistent-gateway-test/gateway.sock"),
            std::string::npos)
      << e["msg"];
  auto add = addConfig(podmanMappings(), bridgeResult(), "1.1.0");
  add["socket"] = c["socket"];
  EXPECT_EQ(errorOf(run(add.dump(), env(attachmentEnv("ADD")), connect))["code"], 11);
}

TEST(CniGc, RemovesOwnersNotInValidAttachments) {
  Harness h;
  auto e80 = expose(std::nullopt, 80, Proto::Tcp, "10.88.0.3", 80);
  Owner keep{"podman", "keep", "eth0"};
  Owner staleA{"podman", "stale", "eth0"};
  Owner staleB{"podman", "keep", "eth1"}; // same container, another interface
  Owner otherNet{"other", "stale", "eth0"};
  for (const auto& o : {keep, staleA, staleB, otherNet}) {
    h.gateway.owners[o] = {e80};
  }
  h.vars = {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/usr/lib/cni"}};
  auto c = config("1.1.0");
  c["cni.dev/valid-attachments"] =
      Json::parse(R"([{"containerID": "keep", "ifname": "eth0"},
                      {"containerID": "gone-already", "ifname": "eth0"}])");
  auto o = h.run(c.dump());
  ASSERT_EQ(o.exitCode, 0) << o.out;
  EXPECT_EQ(o.out, "");
  std::vector<Owner> left;
  for (const auto& [owner, exposes] : h.gateway.owners) {
    left.push_back(owner);
  }
  EXPECT_EQ(left, (std::vector<Owner>{otherNet, keep}));

  c["cni.dev/valid-attachments"] = Json::array(); // none valid: the network's all go
  ASSERT_EQ(h.run(c.dump()).exitCode, 0);
  EXPECT_EQ(h.gateway.owners.size(), 1u);
  EXPECT_TRUE(h.gateway.owners.contains(otherNet));
}

TEST(CniGc, ReportsWhatItCouldNotRemove) {
  Harness h;
  Owner a{"podman", "a", "eth0"};
  Owner b{"podman", "b", "eth0"};
  h.gateway.owners[a] = {};
  h.gateway.owners[b] = {};
  h.gateway.failDeleteOf = a;
  h.vars = {{"CNI_COMMAND", "GC"}};
  auto c = config("1.1.0");
  c["cni.dev/valid-attachments"] = Json::array();
  auto e = errorOf(h.run(c.dump()));
  EXPECT_EQ(e["code"], 104);
  EXPECT_NE(e["details"].get<std::string>().find("a/eth0"), std::string::npos) << e;
  EXPECT_FALSE(h.gateway.owners.contains(b)); // the rest still went
}

TEST(CniGc, NothingToCollectWithoutOwnerSupport) {
  Harness h;
  h.gateway.failWith = Fault::Unsupported;
  h.vars = {{"CNI_COMMAND", "GC"}};
  auto c = config("1.1.0");
  c["cni.dev/valid-attachments"] = Json::array();
  auto o = h.run(c.dump());
  EXPECT_EQ(o.exitCode, 0) << o.out;
  h.gateway.failWith = Fault::Unreachable;
  EXPECT_EQ(errorOf(h.run(c.dump()))["code"], 11);
}

TEST(CniGc, NeedsTheListAnd110) {
  Harness h;
  h.vars = {{"CNI_COMMAND", "GC"}};
  h.gateway.owners[podmanOwner()] = {};
  EXPECT_EQ(errorOf(h.run(config("1.1.0").dump()))["code"], 7);
  auto old = config("1.0.0");
  old["cni.dev/valid-attachments"] = Json::array();
  EXPECT_EQ(errorOf(h.run(old.dump()))["code"], 1);
  EXPECT_TRUE(h.gateway.owners.contains(podmanOwner()));
  EXPECT_TRUE(h.gateway.calls.empty());
}

// The binary itself: stdin and environment in, JSON and the exit code out.
TEST(CniBinary, VersionAndErrorExit) {
  auto runBinary = [](const std::string& envAssignments, const std::string& input) {
    std::string cmd = "printf '%s' '" + input + "' | env -i " + envAssignments + " " +
                      GATEWAY_PORTMAP_PATH;
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
      out.append(buf, n);
    }
    int status = pclose(p);
    return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  };
  auto [rc, out] = runBinary("CNI_COMMAND=VERSION", "");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(Json::parse(out)["supportedVersions"].size(), 5u);
  auto [rc2, out2] = runBinary("", R"({"cniVersion":"1.0.0"})");
  EXPECT_NE(rc2, 0);
  auto e = Json::parse(out2);
  EXPECT_EQ(e["code"], 4);
  EXPECT_EQ(e["cniVersion"], "1.0.0");
}

} // namespace
} // namespace gw::cni::test
