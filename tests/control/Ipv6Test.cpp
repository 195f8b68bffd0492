// SPDX-License-Identifier: MIT
// Dual-stack namespaces (control plane): `ns add` gives an IPv6 address from a ULA pool, a
// default route and forwarding in the gateway host, checked with iproute2 and a real ping.
#include <string>
#include <vector>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

// The IPv6 addresses (global scope) of `dev` inside `ns`, "addr/len", and whether any of them
// is tentative (DAD not done) or failed DAD.
struct Addresses6 {
  std::vector<std::string> addrs;
  bool tentative = false;
};

Addresses6 addresses6Of(const std::string& ns, const std::string& dev) {
  Addresses6 out;
  for (const auto& link : ipJson({"-n", ns, "-6", "addr", "show", "dev", dev, "scope", "global"})) {
    for (const auto& a : link.value("addr_info", json::array())) {
      if (!a.contains("local")) {
        continue; // iproute2 6.1 ends the list with an empty object
      }
      out.addrs.push_back(a["local"].get<std::string>() + "/" +
                          std::to_string(a["prefixlen"].get<int>()));
      out.tentative = out.tentative || a.value("tentative", false) || a.value("dadfailed", false);
    }
  }
  return out;
}

class Ipv6Test : public ServiceFixture {};

TEST_F(Ipv6Test, NsAddGivesADualStackNamespaceAndNsDelTakesItAway) {
  startDaemon();
  std::string a = nsName("a");
  auto added = gwctlJson({"ns", "add", a});
  EXPECT_EQ(added.value("address", ""), "10.88.0.2");
  EXPECT_EQ(added.value("address6", ""), "fd00:88::2");
  EXPECT_EQ(added.value("prefix6", ""), "fd00:88::2/64");
  EXPECT_EQ(added.value("gateway6", ""), "fd00:88::1");

  // Usable at once: not tentative (no DAD on links we own).
  auto inside = addresses6Of(a, "eth0");
  EXPECT_EQ(inside.addrs, std::vector<std::string>{"fd00:88::2/64"});
  EXPECT_FALSE(inside.tentative);
  auto bridge = addresses6Of(gwh(), "gw0");
  EXPECT_EQ(bridge.addrs, std::vector<std::string>{"fd00:88::1/64"});
  EXPECT_FALSE(bridge.tentative);

  auto routes = ipJson({"-n", a, "-6", "route", "show", "default"});
  ASSERT_EQ(routes.size(), 1u) << routes.dump();
  EXPECT_EQ(routes[0].value("gateway", ""), "fd00:88::1");
  EXPECT_EQ(routes[0].value("dev", ""), "eth0");

  auto ping = shIn(a, "ping -6 -c1 -W2 fd00:88::1");
  EXPECT_EQ(ping.status, 0) << ping.out << ping.err;
  EXPECT_EQ(shIn(gwh(), "cat /proc/sys/net/ipv6/conf/all/forwarding").out, "1\n");
  // the uplink keeps accepting router advertisements with forwarding on (it was 1)
  EXPECT_EQ(shIn(gwh(), "cat /proc/sys/net/ipv6/conf/up0/accept_ra").out, "2\n");

  // The list shows both families; the IPv4 fields are as before.
  auto list = gwctlJson({"ns", "list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].value("prefix", ""), "10.88.0.2/16");
  EXPECT_EQ(list[0].value("address6", ""), "fd00:88::2");
  EXPECT_EQ(list[0].value("prefix6", ""), "fd00:88::2/64");
  EXPECT_EQ(list[0].value("gateway6", ""), "fd00:88::1");

  // A second namespace gets the next address and reaches the first.
  std::string b = nsName("b");
  EXPECT_EQ(gwctlJson({"ns", "add", b}).value("address6", ""), "fd00:88::3");
  EXPECT_EQ(shIn(b, "ping -6 -c1 -W2 fd00:88::2").status, 0);

  ASSERT_TRUE(gwctl({"ns", "del", a}).ok());
  EXPECT_EQ(gwctlJson({"ns", "list"}).size(), 1u);
  ASSERT_TRUE(gwctl({"ns", "del", b}).ok());
  EXPECT_TRUE(gwctlJson({"ns", "list"}).empty());
  // The bridge went with its last namespace, and its IPv6 address with it.
  EXPECT_TRUE(ipJson({"-n", gwh(), "-6", "addr", "show", "to", "fd00:88::/64"}).empty());
}

TEST_F(Ipv6Test, NoIpv6GivesNoneAndSubnet6ChoosesThePool) {
  startDaemon();
  std::string n = nsName("n");
  auto added = gwctlJson({"ns", "add", n, "--no-ipv6"});
  EXPECT_FALSE(added.contains("address6")) << added.dump();
  EXPECT_TRUE(addresses6Of(n, "eth0").addrs.empty());
  EXPECT_TRUE(ipJson({"-n", n, "-6", "route", "show", "default"}).empty());
  EXPECT_FALSE(gwctlJson({"ns", "list"})[0].contains("address6"));

  std::string p = nsName("p");
  auto pp = gwctlJson(
      {"ns", "add", p, "--subnet", "192.168.9.0/24", "--subnet6", "fd00:9::/120"});
  EXPECT_EQ(pp.value("prefix6", ""), "fd00:9::2/120");
  EXPECT_EQ(addresses6Of(p, "eth0").addrs, std::vector<std::string>{"fd00:9::2/120"});
  EXPECT_EQ(addresses6Of(gwh(), pp["link"]).addrs, std::vector<std::string>{"fd00:9::1/120"});
  EXPECT_EQ(shIn(p, "ping -6 -c1 -W2 fd00:9::1").status, 0);
}

TEST_F(Ipv6Test, BadSubnet6IsRefusedByNameAndLeavesNothing) {
  startDaemon();
  std::string q = nsName("q");
  struct Case {
    std::vector<std::string> args;
    std::string mention;
  };
  std::vector<Case> cases = {
      {{"--subnet6", "10.7.0.0/24"}, "--subnet6 10.7.0.0/24: not an IPv6 subnet"},
      {{"--subnet6", "fd00:7::/124"}, "between /8 and /120"},
      {{"--subnet6", "fd00:7::/64", "--no-ipv6"}, "--no-ipv6"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {"ns", "add", q};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = gwctl(argv);
    EXPECT_NE(r.status, 0) << c.mention;
    EXPECT_NE(r.err.find(c.mention), std::string::npos) << r.err;
  }
  // Overlapping pools.
  std::string p = nsName("p");
  ASSERT_TRUE(
      gwctl({"ns", "add", p, "--subnet", "192.168.9.0/24", "--subnet6", "fd00:9::/120"}).ok());
  auto overlap =
      gwctl({"ns", "add", q, "--subnet", "192.168.10.0/24", "--subnet6", "fd00:9::/64"});
  EXPECT_NE(overlap.status, 0);
  EXPECT_NE(overlap.err.find("--subnet6 fd00:9::/64 overlaps namespace " + p), std::string::npos)
      << overlap.err;
  EXPECT_EQ(gwctlJson({"ns", "list"}).size(), 1u);
  EXPECT_FALSE(run({"ip", "netns", "exec", q, "true"}).ok());
}

TEST_F(Ipv6Test, ARestartAdoptsTheIpv6Side) {
  startDaemon();
  std::string a = nsName("a");
  ASSERT_TRUE(gwctl({"ns", "add", a}).ok());
  restartDaemon(15);
  auto list = gwctlJson({"ns", "list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].value("address6", ""), "fd00:88::2");
  EXPECT_EQ(list[0].value("state", ""), "up");
  EXPECT_EQ(addresses6Of(a, "eth0").addrs, std::vector<std::string>{"fd00:88::2/64"});
  EXPECT_EQ(shIn(a, "ping -6 -c1 -W2 fd00:88::1").status, 0);
}

} // namespace
} // namespace gw::test
