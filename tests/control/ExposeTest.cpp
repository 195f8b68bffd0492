// SPDX-License-Identifier: MIT
// The eBPF data path through gatewayd: the tutorial scenario, masquerade, UDP, the four ways
// to reach an exposed port, conntrack, clashes. Real servers and clients in namespaces.
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "netns/Link.h"
#include "netns/Namespace.h"
#include "netns/Netlink.h"
#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

class ExposeTest : public ServiceFixture {
protected:
  // python3 http.server in `ns` on `port`, serving a file "whoami" that holds `ns`.
  Child& httpServer(const std::string& ns, int port) {
    std::string root = dir_ + "/www-" + ns + "-" + std::to_string(port);
    std::filesystem::create_directories(root);
    std::ofstream(root + "/whoami") << ns;
    std::string log = root + ".log";
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "python3", "-u", "-m",
                                     "http.server", std::to_string(port), "--bind", "0.0.0.0",
                                     "--directory", root},
                                    log));
    bool up = waitFor([&] {
      return shIn(ns, "curl -s -m1 -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/")
          .ok();
    });
    EXPECT_TRUE(up) << "http server in " << ns << " did not start";
    return servers_.back();
  }
  std::string serverLog(const std::string& ns, int port) {
    return readFile(dir_ + "/www-" + ns + "-" + std::to_string(port) + ".log");
  }
  // curl from `ns`; returns the body, "" on failure.
  std::string curlFrom(const std::string& ns, const std::string& url) {
    auto r = shIn(ns, "curl -s -m 5 " + url);
    return r.ok() ? r.out : std::string();
  }

  void startMappedPeer(const std::string& ns, const std::string& answer, const std::string& log);

  std::vector<Child> servers_;
};

TEST_F(ExposeTest, TutorialScenarioTwoServersOn8080) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  httpServer(n1, 8080);
  httpServer(n2, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6001", n2 + ":8080"}).ok());
  std::string base = std::string("http://") + kUplinkAddr;
  EXPECT_EQ(curlFrom(ext(), base + ":6000/whoami"), n1);
  EXPECT_EQ(curlFrom(ext(), base + ":6001/whoami"), n2);
  // Each server saw the real client address, as with iptables DNAT.
  EXPECT_NE(serverLog(n1, 8080).find(std::string(kExternalAddr) + " - -"), std::string::npos)
      << serverLog(n1, 8080);
  EXPECT_NE(serverLog(n2, 8080).find(std::string(kExternalAddr) + " - -"), std::string::npos);
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["path"], "ebpf");
  EXPECT_GE(list[0]["connections"].get<int>(), 1);
  EXPECT_GT(list[0]["packets"].get<int>(), 0);
  // No netfilter anywhere in the gateway host.
  auto nft = shIn(gwh(), "nft list ruleset");
  EXPECT_TRUE(nft.ok());
  EXPECT_EQ(nft.out, "");
  auto ipt = shIn(gwh(), "iptables-save | grep -v '^#' || true");
  EXPECT_EQ(ipt.out, "");
  // Unexpose stops it.
  ASSERT_TRUE(gwctl({"unexpose", "6000"}).ok());
  EXPECT_EQ(curlFrom(ext(), base + ":6000/whoami"), "");
  EXPECT_EQ(curlFrom(ext(), base + ":6001/whoami"), n2);
}

TEST_F(ExposeTest, MasqueradeTcpAndPingFromANamespace) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(ext(), 9090); // the "internet" host
  EXPECT_TRUE(pingFrom(n1, kExternalAddr));
  EXPECT_EQ(curlFrom(n1, std::string("http://") + kExternalAddr + ":9090/whoami"), ext());
  // The outside saw the uplink address, not 10.88.x.
  auto log = serverLog(ext(), 9090);
  EXPECT_NE(log.find(std::string(kUplinkAddr) + " - -"), std::string::npos) << log;
  EXPECT_EQ(log.find("10.88."), std::string::npos) << log;
  auto flows = gwctlJson({"conntrack", "--dst", kExternalAddr});
  bool sawIcmp = false;
  bool sawTcp = false;
  for (const auto& f : flows) {
    sawIcmp |= f["proto"] == "icmp";
    sawTcp |= f["proto"] == "tcp" && f["reply"]["dst"] == kUplinkAddr;
  }
  EXPECT_TRUE(sawIcmp) << flows.dump();
  EXPECT_TRUE(sawTcp) << flows.dump();
  auto masq = gwctlJson({"masquerade", "list"});
  ASSERT_EQ(masq.size(), 2u);
  EXPECT_EQ(masq[0]["source"], "10.88.0.0/16");
  EXPECT_EQ(masq[1]["source"], "fd00:88::/64"); // the IPv6 pool: NAT66
}

TEST_F(ExposeTest, UdpRequestResponseThroughDnat) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", n1, "socat", "UDP4-RECVFROM:7000,fork", "EXEC:/bin/cat"}));
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  bool answered = waitFor([&] {
    auto r = shIn(ext(), std::string("echo ping-udp | socat -T1 - UDP4:") + kUplinkAddr + ":7000");
    return r.out == "ping-udp\n";
  });
  EXPECT_TRUE(answered);
  auto flows = gwctlJson({"conntrack", "--proto", "udp"});
  ASSERT_FALSE(flows.empty());
  EXPECT_EQ(flows[0]["orig"]["dport"], 7000);
  EXPECT_EQ(flows[0]["reply"]["sport"], 7000);
  EXPECT_EQ(flows[0]["state"], "UDP");
}

// A long-lived UDP flow (same client port throughout) follows the rule: unexpose removes the
// rule's flows, so once the port is exposed to another target the flow reaches that one; with
// --keep-flows it goes on reaching the old target until it expires.
TEST_F(ExposeTest, UnexposeRemovesTheRulesFlowsUnlessKeepFlows) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  for (const auto& ns : {n1, n2}) {
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "socat", "UDP4-RECVFROM:7000,fork",
                                     "SYSTEM:echo " + ns}));
  }
  auto ask = [&] {
    return shIn(ext(), std::string("echo hi | socat -T1 - UDP4:") + kUplinkAddr +
                           ":7000,sourceport=40000")
        .out;
  };
  // The first answer within a bounded wait (a loaded machine may miss socat's 1 s): which
  // server it came from is what is checked.
  auto answer = [&] {
    std::string a;
    (void)waitFor([&] { return !(a = ask()).empty(); });
    return a;
  };
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  ASSERT_TRUE(waitFor([&] { return ask() == n1 + "\n"; }));

  ASSERT_TRUE(gwctl({"unexpose", "7000", "--proto", "udp", "--keep-flows"}).ok());
  EXPECT_FALSE(gwctlJson({"conntrack", "--proto", "udp", "--port", "7000"}).empty());
  ASSERT_TRUE(gwctl({"expose", "7000", n2 + ":7000", "--proto", "udp"}).ok());
  EXPECT_EQ(answer(), n1 + "\n") << "the kept flow still reaches the old target";

  ASSERT_TRUE(gwctl({"unexpose", "7000", "--proto", "udp"}).ok());
  EXPECT_TRUE(gwctlJson({"conntrack", "--proto", "udp", "--port", "7000"}).empty());
  ASSERT_TRUE(gwctl({"expose", "7000", n2 + ":7000", "--proto", "udp"}).ok());
  EXPECT_EQ(answer(), n2 + "\n") << "a new flow for the new rule";
}

// IPv4 BIG TCP on every veth of `ns`: GSO packets up to 185,000 bytes, whose tot_len is 0.
void enableBigTcp(const std::string& ns) {
  auto fd = openNamespace(ns);
  ASSERT_TRUE(fd) << fd.error().str();
  auto inside = NetnsGuard::enter(fd->get());
  ASSERT_TRUE(inside) << inside.error().str();
  auto nl = Netlink::open();
  ASSERT_TRUE(nl) << nl.error().str();
  auto links = listLinks(*nl);
  ASSERT_TRUE(links) << links.error().str();
  for (const auto& link : *links) {
    if (link.kind == "veth") {
      auto set = setLinkIpv4GsoGroMax(*nl, link.index, 185000);
      ASSERT_TRUE(set) << ns << " " << link.name << ": " << set.error().str();
    }
  }
}

// The IPv4 GSO size of link `name` in namespace `ns`; 0 when it cannot be read.
uint32_t ipv4GsoMaxOf(const std::string& ns, const std::string& name) {
  auto nl = Netlink::openIn(ns);
  if (!nl) {
    return 0;
  }
  auto link = getLink(*nl, name);
  return link ? link->gsoIpv4MaxSize : 0;
}

// With BIG TCP the kernel hands tc packets over 64 KiB with an IPv4 tot_len of 0: they are
// translated both ways (uplink in, namespace link out), not dropped as malformed. The admin
// makes the uplink BIG; the links `ns add` makes follow it.
TEST_F(ExposeTest, BigTcpPacketsAreTranslatedNotDropped) {
  for (const auto& ns : {ext(), gwh()}) {
    enableBigTcp(ns);
  }
  startDaemon();
  std::string n1 = nsName("n1");
  auto added = gwctl({"ns", "add", n1});
  ASSERT_TRUE(added.ok()) << added.err;
  EXPECT_EQ(ipv4GsoMaxOf(n1, "eth0"), 185000u) << "the namespace end follows the uplink";
  {
    auto nl = Netlink::openIn(gwh());
    ASSERT_TRUE(nl) << nl.error().str();
    auto links = listLinks(*nl);
    ASSERT_TRUE(links) << links.error().str();
    int veths = 0;
    for (const auto& link : *links) {
      if (link.kind == "veth" || link.kind == "bridge") {
        veths += link.kind == "veth";
        EXPECT_EQ(link.gsoIpv4MaxSize, 185000u) << link.name << " follows the uplink";
        EXPECT_EQ(link.groIpv4MaxSize, 185000u) << link.name << " follows the uplink";
      }
    }
    EXPECT_EQ(veths, 2) << "the uplink and n1's host end";
  }
  constexpr long kBytes = 64L << 20;
  servers_.push_back(Child::spawn({"ip", "netns", "exec", n1, "socat",
                                   "TCP4-LISTEN:8097,fork,reuseaddr", "SYSTEM:wc -c"}));
  servers_.push_back(Child::spawn({"ip", "netns", "exec", n1, "socat",
                                   "TCP4-LISTEN:8098,fork,reuseaddr",
                                   "SYSTEM:head -c " + std::to_string(kBytes) + " /dev/zero"}));
  ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -Hltn | grep -q ':8098 '").ok(); }));
  ASSERT_TRUE(gwctl({"expose", "6009", n1 + ":8097"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6010", n1 + ":8098"}).ok());
  std::string up = std::string(kUplinkAddr);
  auto upload = shIn(ext(), "head -c " + std::to_string(kBytes) +
                                " /dev/zero | socat -t10 - TCP4:" + up + ":6009",
                     std::chrono::seconds(60));
  EXPECT_EQ(upload.out, std::to_string(kBytes) + "\n") << upload.err;
  auto download = shIn(ext(), "socat -u TCP4:" + up + ":6010 - | wc -c", std::chrono::seconds(60));
  EXPECT_EQ(download.out, std::to_string(kBytes) + "\n") << download.err;
  auto stats = gwctlJson({"stats"});
  EXPECT_EQ(stats["reasons"]["drop_malformed"], 0) << stats["reasons"].dump();
  // (Before tot_len 0 was read from the skb: ~470 drops and 15 s instead of ~1 s here.)
}

// Bursts of 40 datagrams sent as one UDP GSO buffer (UDP_SEGMENT): each burst crosses the veths
// as one packet of 48,000 bytes. The receiver answers each burst once all 40 came intact.
constexpr const char* kUdpGsoSender = R"(
import socket, sys
dst, port, bursts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seg = bytes(i % 251 for i in range(1200))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(17, 103, 1200)  # SOL_UDP, UDP_SEGMENT
s.settimeout(5)
for b in range(bursts):
    s.sendto(seg * 40, (dst, port))
    if s.recv(100) != b"40":
        print("burst", b, "incomplete")
        sys.exit(1)
print("bursts", bursts)
)";

constexpr const char* kUdpGsoReceiver = R"(
import socket
seg = bytes(i % 251 for i in range(1200))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7005))
while True:
    good = 0
    while good < 40:
        d, a = s.recvfrom(65535)
        good += d == seg
    s.sendto(b"40", a)
)";

// UDP aggregates (GSO from the sender, GRO forwarding on the gateway's veths) reach tc as one
// packet of many datagrams: translated whole, every datagram arrives intact, none dropped.
TEST_F(ExposeTest, UdpGroForwardedPacketsAreTranslated) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  for (const auto& ns : {ext(), gwh(), n1}) {
    auto on = shIn(ns, "for l in $(ip -o link show type veth | awk -F'[:@ ]+' '{print $2}'); "
                       "do ethtool -K $l gro on rx-udp-gro-forwarding on || exit 1; done");
    ASSERT_TRUE(on.ok()) << ns << ": " << on.out << on.err;
  }
  servers_.push_back(
      Child::spawn({"ip", "netns", "exec", n1, "python3", "-c", kUdpGsoReceiver}));
  ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -Hlun 'sport = :7005' | grep -q .").ok(); }));
  ASSERT_TRUE(gwctl({"expose", "7005", n1 + ":7005", "--proto", "udp"}).ok());
  auto sent = run({"ip", "netns", "exec", ext(), "python3", "-c", kUdpGsoSender, kUplinkAddr,
                   "7005", "25"},
                  std::chrono::seconds(60));
  EXPECT_EQ(sent.out, "bursts 25\n") << sent.err;
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 1u);
  // 1,000 datagrams in and 25 answers out: far fewer packets means they crossed aggregated
  EXPECT_LT(list[0]["packets"].get<uint64_t>(), 500u) << list.dump();
  auto stats = gwctlJson({"stats"});
  EXPECT_EQ(stats["reasons"]["drop_malformed"], 0) << stats["reasons"].dump();
}

// RFC 5780 behaviour discovery, as a user would check a NAT: coturn's STUN server outside (two
// addresses, two ports: CHANGE-REQUEST works) and its turnutils_natdiscovery in a masqueraded
// namespace. The gateway must classify as endpoint-independent mapping with hairpinning, and
// as the filtering that `masquerade add --filtering` chose.
TEST_F(ExposeTest, Rfc5780DiscoveryClassifiesTheGateway) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  constexpr const char* kOtherExternal = "198.18.0.3";
  ASSERT_TRUE(shIn(ext(), std::string("ip addr add ") + kOtherExternal + "/24 dev eth0").ok());
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", ext(), "turnserver", "-n", "--stun-only", "--listening-ip",
       kExternalAddr, "--listening-ip", kOtherExternal, "--listening-port", "3478",
       "--no-tls", "--no-dtls", "--no-cli", "--simple-log", "--log-file", dir_ + "/turn.log",
       "--pidfile", dir_ + "/turn.pid"},
      dir_ + "/turnserver.out"));
  ASSERT_TRUE(waitFor([&] {
    return shIn(ext(), "ss -Hlun | grep -q '" + std::string(kOtherExternal) + ":3479 '").ok();
  })) << readFile(dir_ + "/turnserver.out");
  auto discover = [&](const std::string& mode) {
    return shIn(n1, "turnutils_natdiscovery " + mode + " " + kExternalAddr,
                std::chrono::seconds(30));
  };
  auto mapping = discover("-m");
  EXPECT_NE(mapping.out.find("NAT with Endpoint Independent Mapping"), std::string::npos)
      << mapping.out << mapping.err;
  auto hairpin = discover("-H");
  EXPECT_NE(hairpin.out.find("successful hairpinning"), std::string::npos)
      << hairpin.out << hairpin.err;
  auto filtering = discover("-f");
  EXPECT_NE(filtering.out.find("Address and Port Dependent Filtering"), std::string::npos)
      << filtering.out << filtering.err;

  ASSERT_TRUE(gwctl({"masquerade", "add", "10.88.0.0/16", "--filtering",
                     "endpoint-independent"})
                  .ok());
  auto open = discover("-f");
  EXPECT_NE(open.out.find("Endpoint Independent Filtering"), std::string::npos)
      << open.out << open.err;
}

// A UDP peer in `ns` as STUN/ICE clients are: from port 40002 it talks to an echo server
// outside (port 3478) until answered, which gives it a masquerade mapping, then answers the
// first datagram that reaches it with `answer`, logging "DATA ADDRESS PORT" of it to `log`.
void ExposeTest::startMappedPeer(const std::string& ns, const std::string& answer,
                                 const std::string& log) {
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", ext(), "socat", "UDP4-RECVFROM:3478,fork", "EXEC:/bin/cat"}));
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", ns, "python3", "-c",
       "import socket\n"
       "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',40002))\n"
       "s.settimeout(20)\n"
       "while True:\n"
       " s.sendto(b'out',('" + std::string(kExternalAddr) + "',3478))\n"
       " try: s.recvfrom(100); break\n"
       " except socket.timeout: pass\n"
       "print('ready',flush=True)\n"
       "d,a=s.recvfrom(100);s.sendto(b'" + answer + "',a)\n"
       "print(d.decode(),a[0],a[1],flush=True)\n"},
      log));
  ASSERT_TRUE(waitFor([&] { return readFile(log).find("ready") != std::string::npos; }));
}

// STUN/ICE peers behind the gateway: n1 learns its mapping by talking out, n2 sends to that
// external endpoint and reaches n1, seen from its own mapping (RFC 4787 REQ-9, 9a).
TEST_F(ExposeTest, HairpinToAMasqueradeMapping) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  std::string up = kUplinkAddr;
  std::string peerLog = dir_ + "/peer-a.log";
  ASSERT_NO_FATAL_FAILURE(startMappedPeer(n1, "to-b", peerLog));
  auto b = shIn(n2, "python3 -c \"import socket\n"
                    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',5000))\n"
                    "s.settimeout(5);s.sendto(b'from-b',('" + up + "',40002))\n"
                    "d,a=s.recvfrom(100);print(d.decode(),a[0],a[1])\"");
  EXPECT_EQ(b.out, "to-b " + up + " 40002\n") << b.err;
  EXPECT_TRUE(waitFor([&] {
    return readFile(peerLog).find("from-b " + up + " 5000") != std::string::npos;
  })) << readFile(peerLog);
}

// `masquerade add --filtering endpoint-independent` (RFC 4787 REQ-8): once n1 has a mapping,
// anyone outside reaches it, not only the endpoint n1 talked to.
TEST_F(ExposeTest, EndpointIndependentFilteringLetsAnyoneReachAMapping) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  auto strict = gwctlJson({"masquerade", "list"});
  ASSERT_EQ(strict.size(), 2u); // its IPv4 subnet and the IPv6 pool
  EXPECT_EQ(strict[0]["filtering"], "address-and-port-dependent");
  EXPECT_NE(gwctl({"masquerade", "add", "10.88.0.0/16", "--filtering", "loose"}).status, 0);
  ASSERT_TRUE(gwctl({"masquerade", "add", "10.88.0.0/16", "--filtering", "endpoint-independent"})
                  .ok());
  std::string peerLog = dir_ + "/peer.log";
  ASSERT_NO_FATAL_FAILURE(startMappedPeer(n1, "back", peerLog));
  // From another port than the one n1 talked to.
  auto other = shIn(ext(), std::string("python3 -c \"import socket\n"
                                       "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                       "s.bind(('0.0.0.0',5999));s.settimeout(5)\n"
                                       "s.sendto(b'unsolicited',('") +
                               kUplinkAddr + "',40002));print(s.recvfrom(100)[0].decode())\"");
  EXPECT_EQ(other.out, "back\n") << other.err;
  EXPECT_TRUE(waitFor([&] {
    return readFile(peerLog).find(std::string("unsolicited ") + kExternalAddr + " 5999") !=
           std::string::npos;
  })) << readFile(peerLog);
}

TEST_F(ExposeTest, EveryWayToReachAnExposedPort) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  httpServer(n1, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  std::string uplinkUrl = std::string("http://") + kUplinkAddr + ":6000/whoami";
  // (a) a remote client through the uplink
  EXPECT_EQ(curlFrom(ext(), uplinkUrl), n1);
  // (b) a client on the gateway host itself (cgroup connect4 hook)
  EXPECT_EQ(curlFrom(gwh(), "http://127.0.0.1:6000/whoami"), n1);
  EXPECT_EQ(curlFrom(gwh(), uplinkUrl), n1);
  // (c) a client in another managed namespace
  EXPECT_EQ(curlFrom(n2, uplinkUrl), n1);
  // (d) hairpin: the namespace reaches its own exposed port through the uplink address
  EXPECT_EQ(curlFrom(n1, uplinkUrl), n1);
  auto log = serverLog(n1, 8080);
  EXPECT_NE(log.find(std::string(kExternalAddr) + " - -"), std::string::npos) << log;
  EXPECT_NE(log.find("10.88.0.3 - -"), std::string::npos) << "(c) keeps the client address";
}

TEST_F(ExposeTest, HandWiredNamespaceAndRanges) {
  startDaemon();
  // Wired by hand as in the tutorials: gatewayd finds the address itself.
  std::string hand = nsName("hand");
  TestNamespace handNs(hand);
  auto wired = sh("ip -n " + gwh() + " link add gwt-hand type veth peer name eth0 netns " + hand +
                  " && ip -n " + gwh() + " addr add 192.168.50.1/24 dev gwt-hand && ip -n " +
                  gwh() + " link set gwt-hand up && ip -n " + hand +
                  " addr add 192.168.50.2/24 dev eth0 && ip -n " + hand +
                  " link set eth0 up && ip -n " + hand + " route add default via 192.168.50.1");
  ASSERT_TRUE(wired.ok()) << wired.err;
  httpServer(hand, 8080);
  httpServer(hand, 8081);
  auto r = gwctlJson({"expose", "6100-6101", hand + ":8080-8081"});
  EXPECT_EQ(r["targetAddr"], "192.168.50.2");
  std::string base = std::string("http://") + kUplinkAddr;
  EXPECT_EQ(curlFrom(ext(), base + ":6100/whoami"), hand);
  EXPECT_EQ(curlFrom(ext(), base + ":6101/whoami"), hand);
  EXPECT_NE(serverLog(hand, 8081).find(std::string(kExternalAddr) + " - -"), std::string::npos);
  // Every access path `ns add` namespaces get: the gateway host itself, another namespace,
  // and hairpin from the hand-wired namespace to its own exposed port.
  std::string other = nsName("other");
  ASSERT_TRUE(gwctl({"ns", "add", other}).ok());
  EXPECT_EQ(curlFrom(gwh(), base + ":6100/whoami"), hand);
  EXPECT_EQ(curlFrom(gwh(), "http://127.0.0.1:6100/whoami"), hand);
  EXPECT_EQ(curlFrom(other, base + ":6100/whoami"), hand);
  EXPECT_EQ(curlFrom(hand, base + ":6101/whoami"), hand) << "hairpin";
  auto endpointProgram = [&] { return tcHooked(gwh(), "gwt-hand", true).has("gw_endpoint"); };
  EXPECT_TRUE(endpointProgram());
  // It survives a restart, and goes with the last expose to the namespace.
  stopDaemon();
  startDaemon();
  EXPECT_TRUE(endpointProgram());
  EXPECT_EQ(curlFrom(hand, base + ":6101/whoami"), hand) << "hairpin after a restart";
  // A range is unexposed whole.
  EXPECT_NE(gwctl({"unexpose", "6100"}).status, 0);
  EXPECT_TRUE(gwctl({"unexpose", "6100-6101"}).ok());
  EXPECT_FALSE(endpointProgram());
}

// The tutorial's own wiring: a bridge, a veth per namespace, named namespaces. Once a rule
// covers them they get what `ns add` gives: packets handed straight into their eth0
// (bpf_redirect_peer: the host end of the veth never transmits them) and the endpoint program
// on the host end of their veth; a veth rewired by hand is found again.
TEST_F(ExposeTest, TutorialNamespacesOnABridgeGetThePeerPath) {
  startDaemon();
  std::string n1 = nsName("t1");
  std::string n2 = nsName("t2");
  TestNamespace ns1(n1);
  TestNamespace ns2(n2);
  auto wire = [&](const std::string& ns, const std::string& hostEnd, const std::string& addr) {
    return sh("ip -n " + gwh() + " link add " + hostEnd + " type veth peer name eth0 netns " + ns +
              " && ip -n " + gwh() + " link set " + hostEnd + " master gwt-br up && ip -n " + ns +
              " addr add " + addr + "/24 dev eth0 && ip -n " + ns + " link set eth0 up && ip -n " +
              ns + " link set lo up && ip -n " + ns + " route add default via 10.77.0.1");
  };
  auto br = sh("ip -n " + gwh() + " link add gwt-br type bridge && ip -n " + gwh() +
               " addr add 10.77.0.1/24 dev gwt-br && ip -n " + gwh() + " link set gwt-br up");
  ASSERT_TRUE(br.ok()) << br.err;
  auto w1 = wire(n1, "gwt-t1", "10.77.0.2");
  ASSERT_TRUE(w1.ok()) << w1.err;
  auto w2 = wire(n2, "gwt-t2", "10.77.0.3");
  ASSERT_TRUE(w2.ok()) << w2.err;
  httpServer(n1, 8080);
  httpServer(n2, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6001", n2 + ":8080"}).ok());
  auto forwardOf = [&](const std::string& port) {
    for (const auto& e : gwctlJson({"list"})) {
      if (e["hostPort"] == port) {
        return e["families"][0].value("forward", std::string("(none)"));
      }
    }
    return std::string("(no rule)");
  };
  EXPECT_EQ(forwardOf("6000"), "peer");
  EXPECT_EQ(forwardOf("6001"), "peer");
  auto txPackets = [&](const std::string& dev) {
    auto j = json::parse(sh("ip -n " + gwh() + " -j -s link show dev " + dev).out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0]["stats64"]["tx"]["packets"].get<uint64_t>() : 0;
  };
  std::string base = std::string("http://") + kUplinkAddr;
  uint64_t before = txPackets("gwt-t1");
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(curlFrom(ext(), base + ":6000/whoami"), n1);
  }
  EXPECT_EQ(curlFrom(ext(), base + ":6001/whoami"), n2);
  // 10 connections are more than 50 packets towards n1; none left by the host end.
  EXPECT_LT(txPackets("gwt-t1") - before, 10u) << "packets went through the bridge";
  auto program = [&](const std::string& dev) {
    return tcHooked(gwh(), dev, true).has("gw_endpoint");
  };
  EXPECT_TRUE(program("gwt-t1"));
  EXPECT_TRUE(program("gwt-t2"));
  // Between the two (hairpin through the uplink's address) and from the host itself.
  EXPECT_EQ(curlFrom(n2, base + ":6000/whoami"), n1);
  // The host's own sockets reach n2 through the bridge: the counter does count.
  uint64_t viaBridge = txPackets("gwt-t2");
  EXPECT_EQ(curlFrom(gwh(), base + ":6001/whoami"), n2);
  EXPECT_GE(txPackets("gwt-t2") - viaBridge, 4u);
  // n2 rewired by hand (a new veth, a new host end): found again within gatewayd's tick.
  auto gone = sh("ip -n " + gwh() + " link del gwt-t2");
  ASSERT_TRUE(gone.ok()) << gone.err;
  auto again = wire(n2, "gwt-t2b", "10.77.0.3");
  ASSERT_TRUE(again.ok()) << again.err;
  EXPECT_TRUE(waitFor([&] { return program("gwt-t2b"); }, std::chrono::seconds(10)));
  EXPECT_EQ(forwardOf("6001"), "peer");
  EXPECT_EQ(curlFrom(ext(), base + ":6001/whoami"), n2);
  // The last rule of n1 gone: its host end loses the program and n1 the peer path.
  ASSERT_TRUE(gwctl({"unexpose", "6000"}).ok());
  EXPECT_FALSE(program("gwt-t1"));
  EXPECT_TRUE(program("gwt-t2b"));
}

TEST_F(ExposeTest, ClashesAndBadInputAreRefused) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  auto twice = gwctl({"expose", "6000", n1 + ":9090"});
  EXPECT_NE(twice.status, 0);
  EXPECT_NE(twice.err.find("6000"), std::string::npos) << twice.err;
  auto overlap = gwctl({"expose", "5999-6001", n1 + ":7999-8001"});
  EXPECT_NE(overlap.status, 0);
  // The same port over UDP is another rule.
  EXPECT_TRUE(gwctl({"expose", "6000", n1 + ":8080", "--proto", "udp"}).ok());
  // A host port held by a local socket of the gateway host.
  servers_.push_back(
      Child::spawn({"ip", "netns", "exec", gwh(), "socat", "TCP-LISTEN:6500,reuseaddr", "-"}));
  ASSERT_TRUE(waitFor([&] { return shIn(gwh(), "ss -ltn | grep -q ':6500 '").ok(); }));
  auto busy = gwctl({"expose", "6500", n1 + ":8080"});
  EXPECT_NE(busy.status, 0);
  EXPECT_NE(busy.err.find("in use"), std::string::npos) << busy.err;
  for (const auto& [args, mention] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"expose", "0", n1 + ":80"}, "'0'"},
           {{"expose", "70000", n1 + ":80"}, "70000"},
           {{"expose", "6010-6005", n1 + ":80"}, "6010-6005"},
           {{"expose", "6010", "nosuchns:80"}, "nosuchns"},
           {{"expose", "6010", n1 + ":80x"}, "80x"},
           {{"expose", "6010-6011", n1 + ":80"}, "one to one"},
           {{"expose", "6010", n1 + ":80", "--proto", "sctp"}, "sctp"},
           {{"unexpose", "6999"}, "6999"},
       }) {
    auto r = gwctl(args);
    EXPECT_NE(r.status, 0) << args[1];
    EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
  }
  EXPECT_EQ(gwctlJson({"list"}).size(), 2u);
}

TEST_F(ExposeTest, ConntrackListsDeletesAndExpires) {
  startDaemon({"--ct-tcp-transitory", "2", "--ct-tcp-syn", "2", "--ct-udp", "2", "--ct-icmp",
               "2", "--gc-interval", "1"});
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(n1, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  std::string url = std::string("http://") + kUplinkAddr + ":6000/whoami";
  ASSERT_EQ(curlFrom(ext(), url), n1);
  auto flows = gwctlJson({"conntrack", "list", "--port", "6000"});
  ASSERT_EQ(flows.size(), 1u);
  const auto& f = flows[0];
  EXPECT_EQ(f["proto"], "tcp");
  EXPECT_EQ(f["orig"]["src"], kExternalAddr);
  EXPECT_EQ(f["orig"]["dst"], kUplinkAddr);
  EXPECT_EQ(f["orig"]["dport"], 6000);
  EXPECT_EQ(f["reply"]["src"], "10.88.0.2");
  EXPECT_EQ(f["reply"]["sport"], 8080);
  EXPECT_GT(f["packets"].get<int>(), 4);
  EXPECT_GT(f["bytes"].get<int>(), 100);
  // Closed flows expire after the transitory timeout and the sweep removes them.
  EXPECT_TRUE(waitFor([&] { return gwctlJson({"conntrack", "--port", "6000"}).empty(); },
                      std::chrono::seconds(15)));
  // delete with a filter, and flush.
  ASSERT_EQ(curlFrom(ext(), url), n1);
  EXPECT_TRUE(pingFrom(n1, kExternalAddr));
  EXPECT_FALSE(gwctlJson({"conntrack"}).empty());
  auto del = gwctlJson({"conntrack", "delete", "--proto", "icmp"});
  EXPECT_GE(del["deleted"].get<int>(), 1);
  EXPECT_TRUE(gwctlJson({"conntrack", "--proto", "icmp"}).empty());
  EXPECT_TRUE(gwctl({"conntrack", "flush"}).ok());
  EXPECT_TRUE(gwctlJson({"conntrack"}).empty());
  auto stats = gwctlJson({"stats"});
  EXPECT_GT(stats["reasons"]["nat_dnat"].get<int>(), 0);
  EXPECT_GT(stats["reasons"]["ct_created"].get<int>(), 0);
  EXPECT_EQ(stats["conntrack"]["entries"], 0);
}

} // namespace
} // namespace gw::test

namespace gw::test {
namespace {

// A server that reads a PROXY protocol v2 header and answers with the client address in it.
constexpr const char* kProxyV2Echo = R"(
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    head = c.recv(16, socket.MSG_WAITALL)
    ok = head[:12] == b"\r\n\r\n\x00\r\nQUIT\n"
    body = c.recv(struct.unpack("!H", head[14:16])[0], socket.MSG_WAITALL) if ok else b""
    c.sendall((socket.inet_ntoa(body[0:4]) if ok else "no-proxy-header").encode())
    c.close()
)";

class ProxyExposeTest : public ExposeTest {
protected:
  // python3 http.server bound to a loopback address only: the eBPF path cannot reach it.
  void loopbackServer(const std::string& ns, int port, const std::string& bind = "127.0.0.1") {
    std::string root = dir_ + "/lo-" + ns;
    std::filesystem::create_directories(root);
    std::ofstream(root + "/whoami") << ns;
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "python3", "-m", "http.server",
                                     std::to_string(port), "--bind", bind, "--directory",
                                     root}));
    std::string host = bind.find(':') == std::string::npos ? bind : "[" + bind + "]";
    ASSERT_TRUE(waitFor([&] {
      return shIn(ns, "curl -s -m1 -o /dev/null http://" + host + ":" + std::to_string(port))
          .ok();
    }));
  }
};

TEST_F(ProxyExposeTest, ProxyModeReachesAServerBoundToLoopback) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  loopbackServer(n1, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6002", n1 + ":8080", "--mode", "proxy"}).ok());
  std::string base = std::string("http://") + kUplinkAddr;
  EXPECT_EQ(curlFrom(ext(), base + ":6000/whoami"), ""); // eBPF reaches 10.88.0.2 only
  EXPECT_EQ(curlFrom(ext(), base + ":6002/whoami"), n1);
  EXPECT_EQ(curlFrom(gwh(), "http://127.0.0.1:6002/whoami"), n1);
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]["path"], "proxy");
  EXPECT_NE(list[1]["why"].get<std::string>().find("--mode proxy"), std::string::npos);
  EXPECT_GE(list[1]["connections"].get<int>(), 2);
  ASSERT_TRUE(gwctl({"unexpose", "6002"}).ok());
  EXPECT_EQ(curlFrom(ext(), base + ":6002/whoami"), "");
  EXPECT_NE(gwctl({"expose", "6003", n1 + ":53", "--mode", "proxy", "--proto", "udp"}).status, 0);
}

TEST_F(ProxyExposeTest, BackendFailuresAreCountedInStats) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  // Nothing listens on 8089 in n1: every proxied connection fails at its backend.
  ASSERT_TRUE(gwctl({"expose", "6004", n1 + ":8089", "--mode", "proxy"}).ok());
  std::string url = std::string("http://") + kUplinkAddr + ":6004/";
  EXPECT_EQ(curlFrom(ext(), url), "");
  EXPECT_EQ(curlFrom(ext(), url), "");
  nlohmann::json proxy;
  EXPECT_TRUE(waitFor([&] {
    proxy = gwctlJson({"stats"})["proxy"];
    return proxy.size() == 1 && proxy[0]["backendFailed"].get<int>() >= 2;
  })) << proxy.dump();
  EXPECT_EQ(proxy[0]["rule"], "tcp 6004 -> " + n1 + ":8089");
  auto text = gwctl({"stats"});
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text.out.find("BACKEND-FAILED"), std::string::npos) << text.out;
  auto scrape = run({"curl", "-s", "--unix-socket", socket_, "http://gw/metrics"});
  EXPECT_NE(scrape.out.find("gateway_proxy_backend_failures_total{rule=\""), std::string::npos)
      << scrape.out;
}

// Started with the usual soft limit of 1,024 descriptors, gatewayd raises it to the hard limit,
// so the proxy holds thousands of connections (two descriptors each), not ~500.
TEST_F(ProxyExposeTest, TheProxyHoldsThousandsOfIdleConnections) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max < 8192) {
    GTEST_SKIP() << "hard RLIMIT_NOFILE " << saved.rlim_max << " is too low for this test";
  }
  rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  startDaemon(); // inherits 1,024
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  auto pid = gwctlJson({"status"})["pid"].get<int>();
  auto limits = readFile("/proc/" + std::to_string(pid) + "/limits");
  std::string want = std::to_string(saved.rlim_max);
  auto line = limits.substr(limits.find("Max open files"));
  line = line.substr(0, line.find('\n'));
  std::istringstream fields(line.substr(std::string("Max open files").size()));
  std::string soft, hard;
  fields >> soft >> hard;
  EXPECT_EQ(soft, want) << line;
  EXPECT_EQ(hard, want) << line;

  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  const int n = 3000;
  std::string raise = "import resource;h=resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
                      "resource.setrlimit(resource.RLIMIT_NOFILE,(h,h))\n";
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", n1, "python3", "-c",
       raise + "import socket\n"
               "l=socket.socket();l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
               "l.bind(('127.0.0.1',8095));l.listen(4096);c=[]\n"
               "while True: c.append(l.accept()[0])\n"}));
  ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -Hltn | grep -q 127.0.0.1:8095").ok(); }));
  ASSERT_TRUE(gwctl({"expose", "6007", n1 + ":8095", "--mode", "proxy"}).ok());
  auto clients = Child::spawn(
      {"ip", "netns", "exec", ext(), "python3", "-c",
       raise + "import socket,time\nc=[]\n"
               "for i in range(" + std::to_string(n) + "):\n"
               " s=socket.socket();s.connect(('" + std::string(kUplinkAddr) + "',6007));"
               "c.append(s)\n"
               "time.sleep(600)\n"});
  nlohmann::json proxy;
  bool held = waitFor(
      [&] {
        proxy = gwctlJson({"stats"})["proxy"];
        return proxy.size() == 1 && proxy[0]["active"].get<int>() == n;
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(held) << proxy.dump();
  EXPECT_EQ(proxy[0]["backendFailed"], 0);
  clients.stop();
}

TEST_F(ProxyExposeTest, ANamespaceServerOnIpv6LoopbackOnlyIsReached) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  loopbackServer(n1, 8082, "::1");
  ASSERT_TRUE(gwctl({"expose", "6011", n1 + ":8082", "--mode", "proxy"}).ok());
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":6011/whoami"), n1);
  EXPECT_EQ(gwctlJson({"list"})[0]["drops"].get<int>(), 0); // the refused 127.0.0.1 is not one
}

TEST_F(ProxyExposeTest, AnIpv6TargetIsServedByTheProxy) {
  startDaemon();
  loopbackServer(gwh(), 8081, "::1");
  // eBPF translates within a family, and DNAT to the host's loopback goes nowhere.
  auto refused = gwctl({"expose", "6010", "[::1]:8081", "--mode", "ebpf"});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("no IPv4 address"), std::string::npos) << refused.err;
  EXPECT_NE(gwctl({"expose", "6010", "::1:8081"}).status, 0); // brackets required
  ASSERT_TRUE(gwctl({"expose", "6010", "[::1]:8081"}).ok());
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":6010/whoami"), gwh());
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["path"], "proxy");
  EXPECT_NE(list[0]["why"].get<std::string>().find("no IPv4 address"), std::string::npos);
  EXPECT_EQ(list[0]["families"][1]["path"], "none") << "IPv6 clients: only at an IPv6 --host-ip";
}

TEST_F(ProxyExposeTest, ProxyProtocolV2TellsTheBackendTheClient) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  servers_.push_back(
      Child::spawn({"ip", "netns", "exec", n1, "python3", "-c", kProxyV2Echo, "8090"}));
  ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -ltn | grep -q ':8090 '").ok(); }));
  ASSERT_TRUE(gwctl({"expose", "6005", n1 + ":8090", "--proxy-protocol", "v2"}).ok());
  std::string told;
  waitFor([&] {
    told = shIn(ext(), std::string("socat -T2 -u TCP4:") + kUplinkAddr + ":6005 -").out;
    return !told.empty();
  });
  EXPECT_EQ(told, kExternalAddr);
  EXPECT_EQ(gwctlJson({"list"})[0]["path"], "proxy");
  EXPECT_NE(gwctl({"expose", "6006", n1 + ":8090", "--proxy-protocol", "v1"}).status, 0);
}

TEST_F(ProxyExposeTest, AutoFallsBackToTheProxyWhenBpfCannotLoad) {
  startDaemon({}, {"GATEWAY_FAILPOINTS=datapath-load"});
  auto status = gwctlJson({"status"});
  EXPECT_EQ(status["datapath"]["loaded"], false);
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  loopbackServer(n1, 8080);
  auto r = gwctlJson({"expose", "6000", n1 + ":8080"});
  EXPECT_EQ(r["path"], "proxy");
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":6000/whoami"), n1);
  auto why = gwctlJson({"list"})[0]["why"].get<std::string>();
  EXPECT_NE(why.find("not loaded"), std::string::npos) << why;
  // --mode ebpf is refused with the reason.
  auto ebpf = gwctl({"expose", "6001", n1 + ":8080", "--mode", "ebpf"});
  EXPECT_NE(ebpf.status, 0);
  EXPECT_NE(ebpf.err.find("not loaded"), std::string::npos) << ebpf.err;
}

} // namespace
} // namespace gw::test

namespace gw::test {
namespace {

TEST_F(ExposeTest, ABatchIsAllOrNothingAndOneCall) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(n1, 8080);
  std::string file = dir_ + "/batch";
  {
    std::ofstream out(file);
    out << "# host port, target, protocol\n";
    for (int port = 7000; port < 7500; ++port) {
      out << port << " " << n1 << ":8080\n";
    }
    out << "9000 " << n1 << ":9000 udp\n";
  }
  auto r = gwctl({"expose", "--file", file});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(gwctlJson({"list"}).size(), 501u);
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":7499/whoami"), n1);
  // A clash in the middle: nothing of that batch is applied.
  {
    std::ofstream out(file);
    out << "8000 " << n1 << ":8080\n7100 " << n1 << ":8080\n";
  }
  auto clash = gwctl({"expose", "--file", file});
  EXPECT_NE(clash.status, 0);
  EXPECT_NE(clash.err.find("#2"), std::string::npos) << clash.err;
  EXPECT_EQ(gwctlJson({"list"}).size(), 501u);
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":8000/whoami"), "");
}

} // namespace
} // namespace gw::test

namespace gw::test {
namespace {

// Sends one datagram from each of N source ports (N new flows), without waiting for answers.
constexpr const char* kUdpFlows = R"(
import socket, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 20000 + i))
    s.sendto(b"x", (dst, port))
    s.close()
)";

TEST_F(ExposeTest, ConntrackAtTenTimesItsCapacityStillServesNewFlows) {
  // 1,024 entries: 512 flows; then 5,120 flows arrive.
  startDaemon({"--ct-entries", "1024", "--gc-interval", "1"});
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  // One process echoing every datagram (socat's fork mode would leave a child per flow).
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", n1, "python3", "-c",
       "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
       "s.bind(('0.0.0.0', 7000))\nwhile True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n"}));
  ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -lun | grep -q ':7000 '").ok(); }));
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  auto flood = shIn(ext(), std::string("python3 -c '") + kUdpFlows + "' " + kUplinkAddr +
                               " 7000 5120",
                    std::chrono::seconds(60));
  ASSERT_TRUE(flood.ok()) << flood.err;
  auto stats = gwctlJson({"stats"});
  EXPECT_LE(stats["conntrack"]["entries"].get<int>(), 1024);
  EXPECT_EQ(stats["conntrack"]["capacity"], 1024);
  EXPECT_GE(stats["reasons"]["ct_created"].get<int>(), 5120);
  // A new flow is still served (LRU makes room)...
  bool answered = waitFor([&] {
    auto r = shIn(ext(), std::string("echo fresh | socat -T1 - UDP4:") + kUplinkAddr + ":7000");
    return r.out == "fresh\n";
  });
  EXPECT_TRUE(answered);
  // ...and the pressure is counted.
  EXPECT_TRUE(waitFor([&] {
    return gwctlJson({"stats"})["conntrack"]["pressureSweeps"].get<int>() > 0;
  })) << gwctlJson({"stats"})["conntrack"].dump();
  auto metrics = run({"curl", "-s", "--unix-socket", socket_, "http://gw/metrics"});
  EXPECT_NE(metrics.out.find("gateway_conntrack_pressure_sweeps_total"), std::string::npos);
}

} // namespace
} // namespace gw::test
