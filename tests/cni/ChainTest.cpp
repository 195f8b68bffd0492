// SPDX-License-Identifier: MIT
// gateway-portmap chained after Debian's bridge + host-local, driven as a runtime drives a
// conflist (each plugin exec'd with the CNI_* environment and its config on stdin, the
// previous result passed on), with gatewayd serving the node (the gateway-host namespace):
// a container's port published by ADD is reached from outside through the uplink, DEL takes
// it away, and DEL again succeeds. Root: label service.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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

  json bridgeConfig() const {
    return {{"cniVersion", "1.0.0"},
            {"name", "gwtest"},
            {"type", "bridge"},
            {"bridge", "cni-gwt0"},
            {"isGateway", true},
            {"ipMasq", false},
            {"ipam",
             {{"type", "host-local"},
              {"subnet", "10.99.0.0/24"},
              {"dataDir", dir_ + "/cni-ipam"},
              {"routes", json::array({{{"dst", "0.0.0.0/0"}}})}}}};
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

} // namespace
} // namespace gw::test
