// SPDX-License-Identifier: MIT
// Dual-stack namespaces (control plane): `ns add` gives an IPv6 address from a ULA pool, a
// default route and forwarding in the gateway host, checked with iproute2 and a real ping.
#include <string>
#include <vector>

#include "tests/control/ServiceFixture.h"
#include "tests/control/StateOracle.h"

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

// The control plane fills the IPv6 side of the maps (checked with bpftool, not gatewayd's own
// reader); IPv6 traffic through them is the BPF side's to test.
class Ipv6MapsTest : public StateOracleFixture {
protected:
  // The IPv6 entries of the expose map: (proto, host address or "", port) -> target.
  ExposeMap exposes6() { return exposeMapAt(bpffs(), 10); }
  std::map<std::string, int> masquerades() { return masqueradeMapAt(bpffs()); }
  std::map<std::string, int> endpoints() { return endpointMapAt(bpffs()); }
};

TEST_F(Ipv6MapsTest, NsAddAndExposeFillTheIpv6MapsAndARestartKeepsThem) {
  addUplink6();
  startDaemon();
  auto status = gwctlJson({"status"});
  EXPECT_EQ(status["uplink"].value("address6", ""), kUplinkAddr6);
  EXPECT_EQ(config6At(bpffs()).first, kUplinkAddr6) << "the IPv6 masquerade source";

  std::string a = nsName("a");
  ASSERT_TRUE(gwctl({"ns", "add", a}).ok());
  auto ep = endpoints();
  ASSERT_TRUE(ep.contains("fd00:88::2")) << "the namespace's IPv6 endpoint entry";
  EXPECT_EQ(ep.at("fd00:88::2"), ep.at("10.88.0.2")) << "behind the same veth";
  EXPECT_TRUE(masquerades().contains("fd00:88::/64")) << "NAT66 for the IPv6 pool";
  EXPECT_EQ(config6At(bpffs()).second, "fd00:88::1") << "the IPv6 hairpin source";
  auto local = localMapAt(bpffs());
  EXPECT_TRUE(local.contains(kUplinkAddr6));
  EXPECT_TRUE(local.contains("fd00:88::1"));

  // Both families by default; --family 6 and an IPv6 --host-ip give IPv6 alone.
  ASSERT_TRUE(gwctl({"expose", "6001", a + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6002", a + ":8080", "--family", "6", "--proto", "udp"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6003", a + ":8080", "--host-ip", kUplinkAddr6}).ok());
  ASSERT_TRUE(gwctl({"expose", "6004", "[fd00:88::2]:9090"}).ok());
  ExposeMap want6 = {{{6, "", 6001}, {"fd00:88::2", 8080, 0}},
                     {{17, "", 6002}, {"fd00:88::2", 8080, 0}},
                     {{6, kUplinkAddr6, 6003}, {"fd00:88::2", 8080, 0}},
                     {{6, "", 6004}, {"fd00:88::2", 9090, 0}}};
  auto targetsOnly = [](ExposeMap m) {
    for (auto& [k, v] : m) {
      std::get<2>(v) = 0; // rule ids are gatewayd's to choose
    }
    return m;
  };
  EXPECT_EQ(targetsOnly(exposes6()), want6);
  auto v4 = exposeMapAt(bpffs());
  EXPECT_TRUE(v4.contains({6, "", 6001}));
  EXPECT_FALSE(v4.contains({17, "", 6002}));
  EXPECT_FALSE(v4.contains({6, "", 6003}));
  // The listing says which path serves each family, and why.
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 4u);
  for (const auto& e : list) {
    for (const auto& f : e["families"]) {
      if (f["family"] == "6") {
        EXPECT_EQ(f["path"], "ebpf") << e.dump();
      }
    }
  }
  auto text = gwctl({"list"});
  EXPECT_NE(text.out.find("4:ebpf 6:ebpf"), std::string::npos) << text.out;
  // [v6]:PORT: IPv6 clients through eBPF, IPv4 ones through the proxy.
  EXPECT_NE(text.out.find("4:proxy 6:ebpf"), std::string::npos) << text.out;

  ASSERT_TRUE(gwctl({"masquerade", "add", "fd00:99::/64"}).ok());
  bool listed = false;
  for (const auto& m : gwctlJson({"masquerade", "list"})) {
    listed = listed || m["source"] == "fd00:99::/64";
  }
  EXPECT_TRUE(listed);
  EXPECT_TRUE(masquerades().contains("fd00:99::/64"));
  // Conntrack filters take IPv6 addresses.
  auto flows = gwctl({"conntrack", "--src", "fd00:88::2"});
  EXPECT_TRUE(flows.ok()) << flows.err;

  // A restart (and a kill -9) adopts all of it: the maps unchanged, the agreement checked.
  auto before = exposes6();
  auto masqBefore = masquerades();
  restartDaemon(15);
  EXPECT_EQ(exposes6(), before);
  EXPECT_EQ(masquerades(), masqBefore);
  restartDaemon(9);
  EXPECT_EQ(exposes6(), before);
  EXPECT_EQ(endpoints().count("fd00:88::2"), 1u);
  checkAgreement();

  // Unexpose and ns del take the IPv6 side away.
  for (const char* port : {"6001", "6003", "6004"}) {
    std::vector<std::string> args{"unexpose", port};
    if (std::string(port) == "6003") {
      args.insert(args.end(), {"--host-ip", kUplinkAddr6});
    }
    ASSERT_TRUE(gwctl(args).ok()) << port;
  }
  ASSERT_TRUE(gwctl({"unexpose", "6002", "--proto", "udp"}).ok());
  EXPECT_TRUE(exposes6().empty());
  ASSERT_TRUE(gwctl({"ns", "del", a}).ok());
  EXPECT_FALSE(endpoints().contains("fd00:88::2"));
  EXPECT_FALSE(masquerades().contains("fd00:88::/64"));
  EXPECT_TRUE(masquerades().contains("fd00:99::/64")) << "the hand-added one stays";
  EXPECT_FALSE(localMapAt(bpffs()).contains("fd00:88::1")) << "gone with the bridge";
}

TEST_F(Ipv6MapsTest, WithoutAnUplinkIpv6AddressTheStatusSaysSo) {
  startDaemon();
  auto status = gwctlJson({"status"});
  EXPECT_FALSE(status["uplink"].contains("address6")) << status.dump();
  EXPECT_EQ(config6At(bpffs()).first, "::");
  auto text = gwctl({"status"});
  EXPECT_NE(text.out.find("none (IPv6 masquerade has no source)"), std::string::npos)
      << text.out;
}

} // namespace
} // namespace gw::test
