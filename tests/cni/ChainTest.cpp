// SPDX-License-Identifier: MIT
// gateway-portmap chained after Debian's bridge + host-local, driven as a runtime drives a
// conflist (each plugin exec'd with the CNI_* environment and its config on stdin, the
// previous result passed on), with gatewayd serving the node (the gateway-host namespace):
// a container's port published by ADD is reached from outside through the uplink, DEL takes
// it away, and DEL again succeeds. Root: label service.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

constexpr const char* kCniPath = "/usr/lib/cni";

class CniChainTest : public ServiceFixture {
protected:
  // Runs one plugin inside the node (the gateway-host namespace) as a runtime would.
  CommandResult plugin(const std::string& binary, const std::string& command,
                       const json& config) {
    std::string stdinFile = dir_ + "/cni-stdin.json";
    std::ofstream(stdinFile) << config.dump();
    return run({"ip", "netns", "exec", gwh(), "env", "CNI_COMMAND=" + command,
                "CNI_CONTAINERID=" + containerId_, "CNI_NETNS=/run/netns/" + container_,
                "CNI_IFNAME=eth0", std::string("CNI_PATH=") + kCniPath, "sh", "-c",
                "exec " + binary + " < " + stdinFile});
  }

  // dualStack: an IPv6 range beside the IPv4 one, as a dual-stack network has.
  json bridgeConfig(bool dualStack = false) const {
    json ranges = json::array({json::array({{{"subnet", "10.99.0.0/24"}}})});
    json routes = json::array({{{"dst", "0.0.0.0/0"}}});
    if (dualStack) {
      ranges.push_back(json::array({{{"subnet", "fd00:99::/64"}}}));
      routes.push_back({{"dst", "::/0"}});
    }
    return {{"cniVersion", "1.0.0"},
            {"name", "gwtest"},
            {"type", "bridge"},
            {"bridge", "cni-gwt0"},
            {"isGateway", true},
            {"ipMasq", false},
            {"ipam",
             {{"type", "host-local"},
              {"ranges", ranges},
              {"dataDir", dir_ + "/cni-ipam"},
              {"routes", routes}}}};
  }

  json portmapConfig(const json& prevResult) const {
    return {{"cniVersion", "1.0.0"},
            {"name", "gwtest"},
            {"type", "gateway-portmap"},
            {"socket", socket_},
            {"capabilities", {{"portMappings", true}}},
            {"runtimeConfig",
             {{"portMappings",
               json::array({{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}})}}},
            {"prevResult", prevResult}};
  }

  std::string container_;
  std::string containerId_ = "c0ffee0123456789";
  std::unique_ptr<TestNamespace> containerNs_;
  std::vector<Child> servers_;
};

TEST_F(CniChainTest, AddPublishesThePortDelTakesItAway) {
  if (!std::filesystem::exists(std::string(kCniPath) + "/bridge")) {
    GTEST_FAIL() << "containernetworking-plugins missing: run deploy/install-deps.sh";
  }
  startDaemon();
  containerNs_ = std::make_unique<TestNamespace>(prefix() + "ctr");
  container_ = containerNs_->name();

  auto bridge = plugin(std::string(kCniPath) + "/bridge", "ADD", bridgeConfig());
  ASSERT_TRUE(bridge.ok()) << bridge.out << bridge.err;
  json prev = json::parse(bridge.out);
  auto added = plugin(GATEWAY_PORTMAP_PATH, "ADD", portmapConfig(prev));
  ASSERT_TRUE(added.ok()) << added.out << added.err;
  EXPECT_EQ(json::parse(added.out), prev) << "prevResult passed back";

  std::string root = dir_ + "/www-ctr";
  std::filesystem::create_directories(root);
  std::ofstream(root + "/whoami") << "container";
  servers_.push_back(Child::spawn({"ip", "netns", "exec", container_, "python3", "-m",
                                   "http.server", "80", "--bind", "0.0.0.0", "--directory",
                                   root}));
  ASSERT_TRUE(waitFor([&] {
    return shIn(container_, "curl -s -m1 -o /dev/null http://127.0.0.1:80/").ok();
  }));
  std::string url = std::string("http://") + kUplinkAddr + ":8080/whoami";
  auto viaGateway = shIn(ext(), "curl -s -m5 " + url);
  EXPECT_EQ(viaGateway.out, "container") << viaGateway.err;
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0].value("owner", ""), "cni/gwtest/" + containerId_ + "/eth0");

  auto check = plugin(GATEWAY_PORTMAP_PATH, "CHECK", portmapConfig(prev));
  EXPECT_TRUE(check.ok()) << check.out << check.err;

  auto del = plugin(GATEWAY_PORTMAP_PATH, "DEL", portmapConfig(prev));
  ASSERT_TRUE(del.ok()) << del.out << del.err;
  EXPECT_TRUE(gwctlJson({"list"}).empty());
  EXPECT_NE(shIn(ext(), "curl -s -m2 " + url).out, "container");
  auto again = plugin(GATEWAY_PORTMAP_PATH, "DEL", portmapConfig(prev));
  EXPECT_TRUE(again.ok()) << again.out << again.err;
  auto bridgeDel = plugin(std::string(kCniPath) + "/bridge", "DEL", bridgeConfig());
  EXPECT_TRUE(bridgeDel.ok()) << bridgeDel.out << bridgeDel.err;
}

// A dual-stack container: its IPv4 and its IPv6 address each get the host port (one rule per
// family, which do not clash), reached from outside over both.
TEST_F(CniChainTest, ADualStackContainerIsPublishedInBothFamilies) {
  addUplink6(); // before gatewayd starts: it reads the uplink's addresses then
  startDaemon();
  containerNs_ = std::make_unique<TestNamespace>(prefix() + "ctr");
  container_ = containerNs_->name();

  auto bridge = plugin(std::string(kCniPath) + "/bridge", "ADD", bridgeConfig(true));
  ASSERT_TRUE(bridge.ok()) << bridge.out << bridge.err;
  json prev = json::parse(bridge.out);
  ASSERT_EQ(prev.value("ips", json::array()).size(), 2u) << prev.dump();
  auto added = plugin(GATEWAY_PORTMAP_PATH, "ADD", portmapConfig(prev));
  ASSERT_TRUE(added.ok()) << added.out << added.err;

  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 2u) << list.dump();
  std::set<std::string> targets;
  for (const auto& e : list) {
    EXPECT_EQ(e.value("owner", ""), "cni/gwtest/" + containerId_ + "/eth0");
    targets.insert(e.value("targetAddr", ""));
  }
  EXPECT_TRUE(targets.contains("10.99.0.2") && targets.contains("fd00:99::2")) << list.dump();

  std::string root = dir_ + "/www-ctr";
  std::filesystem::create_directories(root);
  std::ofstream(root + "/whoami") << "container";
  servers_.push_back(Child::spawn({"ip", "netns", "exec", container_, "python3", "-m",
                                   "http.server", "80", "--bind", "::", "--directory", root}));
  ASSERT_TRUE(waitFor([&] {
    return shIn(container_, "curl -s -m1 -o /dev/null http://127.0.0.1:80/").ok();
  }));
  auto v4 = shIn(ext(), std::string("curl -s -m5 http://") + kUplinkAddr + ":8080/whoami");
  EXPECT_EQ(v4.out, "container") << v4.err;
  auto v6 = shIn(ext(), std::string("curl -s -m5 http://[") + kUplinkAddr6 + "]:8080/whoami");
  EXPECT_EQ(v6.out, "container") << v6.err;
  // The node itself, at its loopback in both families (no route_localnet, no netfilter).
  EXPECT_EQ(shIn(gwh(), "curl -s -m5 http://127.0.0.1:8080/whoami").out, "container");
  EXPECT_EQ(shIn(gwh(), "curl -s -m5 'http://[::1]:8080/whoami'").out, "container");

  auto check = plugin(GATEWAY_PORTMAP_PATH, "CHECK", portmapConfig(prev));
  EXPECT_TRUE(check.ok()) << check.out << check.err;
  auto del = plugin(GATEWAY_PORTMAP_PATH, "DEL", portmapConfig(prev));
  ASSERT_TRUE(del.ok()) << del.out << del.err;
  EXPECT_TRUE(gwctlJson({"list"}).empty());
  auto bridgeDel = plugin(std::string(kCniPath) + "/bridge", "DEL", bridgeConfig(true));
  EXPECT_TRUE(bridgeDel.ok()) << bridgeDel.out << bridgeDel.err;
}

} // namespace
} // namespace gw::test
