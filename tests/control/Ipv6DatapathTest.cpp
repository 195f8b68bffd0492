// SPDX-License-Identifier: MIT
// IPv6 through gatewayd's eBPF data path, with real clients and servers: the tutorial over
// IPv6 (two servers on [::]:8080 at host ports 6000/6001), NAT66 for TCP, ping and UDP, the
// four ways to reach an exposed port, PMTU discovery and tracepath through a 1280-byte link
// beyond the uplink, fragmented UDP, and no netfilter anywhere.
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

constexpr const char* kUplink6 = kUplinkAddr6;
constexpr const char* kExternal6 = kExternalAddr6;
// Beyond the outside host: a network it routes to over a 1280-byte link.
constexpr const char* kFarRouter6 = "fd00:19::1";
constexpr const char* kFar6 = "fd00:19::2";

// Answers each UDP datagram with "<its length> <the sender's address>" (IPv6 socket).
constexpr const char* kUdpEcho6 = R"PY(
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(("%d %s" % (len(data), peer[0])).encode(), peer)
)PY";

// Sends one datagram of argv[3] bytes to [argv[1]]:argv[2] and prints the answer and where it
// came from.
constexpr const char* kUdpAsk6 = R"PY(
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"x" * int(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
data, peer = s.recvfrom(65535)
print(data.decode(), peer[0], peer[1])
)PY";

// Sends a UDP datagram of argv[3] bytes to [argv[1]]:argv[2] in 1232-byte IPv6 fragments
// from a raw socket, the later ones first ("reversed"), and prints the answer to it (the
// fragments' source port is a connected UDP socket's, which gets the answer).
constexpr const char* kUdpOutOfOrder6 = R"PY(
import random, socket, struct, sys
dst, dport, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = b"x" * size
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.connect((dst, dport))
src, sport = u.getsockname()[:2]
u.settimeout(2)
s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
udp = struct.pack("!HHHH", sport, dport, 8 + size, 0) + data
c = csum(s6 + d6 + struct.pack("!I3xB", len(udp), 17) + udp) or 0xffff
udp = udp[:6] + struct.pack("!H", c) + udp[8:]
frags = [(off | (off + 1232 < len(udp)), udp[off:off + 1232]) for off in range(0, len(udp), 1232)]
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(3):
    ident = random.randint(1, 2**32 - 1)
    for fo, part in frags[::-1]:
        fh = struct.pack("!BBHI", 17, 0, fo, ident)
        hdr = struct.pack("!IHBB16s16s", 6 << 28, len(fh) + len(part), 44, 64, s6, d6)
        raw.sendto(hdr + fh + part, (dst, 0))
    try:
        print(u.recv(65535).decode())
        sys.exit(0)
    except socket.timeout:
        continue
print("timeout")
sys.exit(1)
)PY";

class Ipv6DatapathTest : public ServiceFixture {
protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    addUplink6(); // before gatewayd starts: it reads the uplink's addresses then
    // The outside host's first neighbour solicitation for the uplink's IPv6 address goes out
    // only after a second (its first packet there waits): resolve it here, not in a test.
    auto r = shIn(ext(), std::string("ping -6 -c1 -W5 ") + kUplink6);
    ASSERT_TRUE(r.ok()) << r.out << r.err;
  }

  // python3 http.server on [::]:port (dual-stack), serving "whoami" = ns; log kept per server.
  void httpServer(const std::string& ns, int port) {
    std::string root = dir_ + "/www6-" + ns + "-" + std::to_string(port);
    std::filesystem::create_directories(root);
    std::ofstream(root + "/whoami") << ns;
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "python3", "-u", "-m",
                                     "http.server", std::to_string(port), "--bind", "::",
                                     "--directory", root},
                                    root + ".log"));
    bool up = waitFor([&] {
      return shIn(ns, "curl -s -m1 -o /dev/null 'http://[::1]:" + std::to_string(port) + "/'")
          .ok();
    });
    ASSERT_TRUE(up) << "http server in " << ns << " did not start";
  }
  std::string serverLog(const std::string& ns, int port) {
    return readFile(dir_ + "/www6-" + ns + "-" + std::to_string(port) + ".log");
  }
  std::string curlFrom(const std::string& ns, const std::string& url) {
    auto r = shIn(ns, "curl -s -m 5 '" + url + "'");
    return r.ok() ? r.out : std::string();
  }
  static std::string url6(const std::string& addr, int port) {
    return "http://[" + addr + "]:" + std::to_string(port) + "/whoami";
  }

  void udpEcho(const std::string& ns, int port) {
    servers_.push_back(
        Child::spawn({"ip", "netns", "exec", ns, "python3", "-c", kUdpEcho6, std::to_string(port)},
                     dir_ + "/udp6-" + ns + ".log"));
    ASSERT_TRUE(waitFor([&] {
      return shIn(ns, "ss -Hlun 'sport = :" + std::to_string(port) + "'").out.find(
                 std::to_string(port)) != std::string::npos;
    }));
  }
  CommandResult udpAsk(const std::string& ns, const std::string& addr, int port, int bytes) {
    return run({"ip", "netns", "exec", ns, "python3", "-c", kUdpAsk6, addr, std::to_string(port),
                std::to_string(bytes)});
  }

  // A network beyond the outside host (fd00:19::/64 in namespace "far"), reached over a link
  // whose outside end has MTU 1280: the outside host is the router that says "packet too big".
  std::string addFarNetwork() {
    far_ = std::make_unique<TestNamespace>(prefix() + "far");
    std::string far = far_->name();
    auto r = sh("ip -n " + ext() + " link add fr0 mtu 1280 type veth peer name eth0 netns " +
                far + " && ip -n " + ext() + " addr add " + kFarRouter6 + "/64 dev fr0 nodad" +
                " && ip -n " + ext() + " link set fr0 up && ip -n " + far + " addr add " + kFar6 +
                "/64 dev eth0 nodad && ip -n " + far + " link set eth0 up && ip -n " + far +
                " link set lo up && ip -n " + far + " -6 route add default via " + kFarRouter6 +
                " && ip netns exec " + ext() + " sysctl -qw net.ipv6.conf.all.forwarding=1" +
                " && ip -n " + gwh() + " -6 route add fd00:19::/64 via " + kExternal6);
    EXPECT_TRUE(r.ok()) << r.err;
    return far;
  }

  std::vector<Child> servers_;
  std::unique_ptr<TestNamespace> far_;
};

// The tutorial over IPv6: two servers on [::]:8080 reached at host ports 6000 and 6001 of
// the uplink's IPv6 address, each seeing the real client address; IPv4 still answers.
TEST_F(Ipv6DatapathTest, TutorialScenarioOverIpv6) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  httpServer(n1, 8080);
  httpServer(n2, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6001", n2 + ":8080"}).ok());
  EXPECT_EQ(curlFrom(ext(), url6(kUplink6, 6000)), n1);
  EXPECT_EQ(curlFrom(ext(), url6(kUplink6, 6001)), n2);
  EXPECT_EQ(curlFrom(ext(), std::string("http://") + kUplinkAddr + ":6001/whoami"), n2);
  EXPECT_NE(serverLog(n1, 8080).find(kExternal6), std::string::npos) << serverLog(n1, 8080);
  EXPECT_NE(serverLog(n2, 8080).find(kExternal6), std::string::npos) << serverLog(n2, 8080);

  auto stats = gwctlJson({"stats"});
  EXPECT_GE(stats["reasons"].value("nat_dnat", 0), 2) << stats.dump();
  auto flows = gwctlJson({"conntrack", "--src", kExternal6});
  EXPECT_FALSE(flows.empty()) << flows.dump();

  // No netfilter anywhere in the gateway host, in either family.
  EXPECT_EQ(shIn(gwh(), "nft list ruleset").out, "");
  EXPECT_EQ(shIn(gwh(), "ip6tables-save | grep -v '^#' || true").out, "");

  ASSERT_TRUE(gwctl({"unexpose", "6000"}).ok());
  EXPECT_EQ(curlFrom(ext(), url6(kUplink6, 6000)), "");
  EXPECT_EQ(curlFrom(ext(), url6(kUplink6, 6001)), n2);
}

// NAT66: a namespace reaches the outside over IPv6 (TCP and ping), seen from the uplink's
// address; its flows are listed by its own address.
TEST_F(Ipv6DatapathTest, MasqueradeTcpAndPing6FromANamespace) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(ext(), 9090);
  EXPECT_TRUE(shIn(n1, std::string("ping -6 -c1 -W2 ") + kExternal6).ok());
  EXPECT_EQ(curlFrom(n1, url6(kExternal6, 9090)), ext());
  std::string log = serverLog(ext(), 9090);
  EXPECT_NE(log.find(kUplink6), std::string::npos) << log;
  EXPECT_EQ(log.find("fd00:88:"), std::string::npos) << log;
  auto flows = gwctlJson({"conntrack", "--src", "fd00:88::2"});
  bool tcp = false;
  bool icmp = false;
  for (const auto& f : flows) {
    tcp = tcp || f.value("proto", "") == "tcp";
    icmp = icmp || f.value("proto", "").starts_with("icmp");
  }
  EXPECT_TRUE(tcp && icmp) << flows.dump();
}

// UDP both ways: an exposed UDP service answers from the address the client asked, and a
// namespace's UDP goes out masqueraded.
TEST_F(Ipv6DatapathTest, UdpRequestResponseBothWays) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  udpEcho(n1, 5353);
  ASSERT_TRUE(gwctl({"expose", "5353", n1 + ":5353", "--proto", "udp"}).ok());
  auto in = udpAsk(ext(), kUplink6, 5353, 100);
  ASSERT_TRUE(in.ok()) << in.err;
  EXPECT_EQ(in.out, std::string("100 ") + kExternal6 + " " + kUplink6 + " 5353\n");

  udpEcho(ext(), 7000);
  auto out = udpAsk(n1, kExternal6, 7000, 10);
  ASSERT_TRUE(out.ok()) << out.err;
  EXPECT_EQ(out.out.substr(0, 3 + std::string(kUplink6).size()), std::string("10 ") + kUplink6);
}

// A datagram larger than the path MTU leaves the namespace in fragments; NAT66 translates the
// first and the later ones follow it, so the outside gets it whole, from the uplink.
TEST_F(Ipv6DatapathTest, FragmentedUdpIsTranslatedWhole) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  udpEcho(ext(), 7001);
  auto r = udpAsk(n1, kExternal6, 7001, 4000);
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out.substr(0, 5 + std::string(kUplink6).size()),
            std::string("4000 ") + kUplink6)
      << r.out;
}

// RFC 4787 REQ-14 over IPv6: fragments that come before their first are held, then sent on
// translated once it came: through DNAT to a namespace, and out through masquerade.
TEST_F(Ipv6DatapathTest, FragmentsBeforeTheirFirstAreHeldThenSentOn) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  udpEcho(n1, 7000);
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  auto dnat = run({"ip", "netns", "exec", ext(), "python3", "-c", kUdpOutOfOrder6, kUplink6,
                   "7000", "4000"});
  EXPECT_EQ(dnat.out, std::string("4000 ") + kExternal6 + "\n") << dnat.err;

  udpEcho(ext(), 7001);
  auto masq = run({"ip", "netns", "exec", n1, "python3", "-c", kUdpOutOfOrder6, kExternal6,
                   "7001", "4000"});
  EXPECT_EQ(masq.out, std::string("4000 ") + kUplink6 + "\n") << masq.err;
  auto reasons = gwctlJson({"stats"})["reasons"];
  EXPECT_GE(reasons.value("fragment_held", 0), 4) << reasons.dump();
  EXPECT_GE(reasons.value("fragment_released", 0), 4) << reasons.dump();
}

// The four ways to an exposed port over IPv6: from outside, from the gateway host itself at
// [::1] and at the uplink's address (cgroup hooks), from another namespace, and hairpin.
TEST_F(Ipv6DatapathTest, EveryAccessPath) {
  startDaemon();
  std::string n1 = nsName("n1");
  std::string n2 = nsName("n2");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", n2}).ok());
  httpServer(n1, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  EXPECT_EQ(curlFrom(ext(), url6(kUplink6, 6000)), n1);
  EXPECT_EQ(curlFrom(gwh(), url6("::1", 6000)), n1);
  EXPECT_EQ(curlFrom(gwh(), url6(kUplink6, 6000)), n1);
  EXPECT_EQ(curlFrom(n2, url6(kUplink6, 6000)), n1);
  EXPECT_EQ(curlFrom(n1, url6(kUplink6, 6000)), n1) << "hairpin";
  // the other namespace was seen as itself; hairpin as the gateway
  std::string log = serverLog(n1, 8080);
  EXPECT_NE(log.find("fd00:88::3"), std::string::npos) << log;
  EXPECT_NE(log.find("fd00:88::1"), std::string::npos) << log;
}

// PMTU discovery through NAT66: the outside host forwards to a 1280-byte link and answers a
// larger packet with "packet too big" to the uplink address; translated, it reaches the
// namespace, whose kernel then knows the path MTU. tracepath sees it too.
TEST_F(Ipv6DatapathTest, PacketTooBigReachesTheNamespaceAndTracepathWorks) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  std::string far = addFarNetwork();
  ASSERT_FALSE(HasFailure());
  udpEcho(far, 7002);
  // 1400 bytes do not fit 1280: the first try is lost to "packet too big", after which the
  // namespace fragments to 1280 and the answer comes back.
  udpAsk(n1, kFar6, 7002, 1400);
  bool learned = waitFor([&] {
    return shIn(n1, std::string("ip -6 route get ") + kFar6).out.find("mtu 1280") !=
           std::string::npos;
  });
  EXPECT_TRUE(learned) << shIn(n1, std::string("ip -6 route get ") + kFar6).out;
  auto again = udpAsk(n1, kFar6, 7002, 1400);
  EXPECT_TRUE(again.ok()) << again.err;
  EXPECT_EQ(again.out.substr(0, 5 + std::string(kUplink6).size()),
            std::string("1400 ") + kUplink6);
  auto stats = gwctlJson({"stats"});
  EXPECT_GE(stats["reasons"].value("nat_icmp_error", 0), 1) << stats.dump();

  auto trace = shIn(n1, std::string("tracepath -6 -n -m 5 ") + kFar6, std::chrono::seconds(20));
  EXPECT_NE(trace.out.find(kFar6), std::string::npos) << trace.out << trace.err;
}

// traceroute -6 through NAT66: the hops' time exceeded messages are translated back.
TEST_F(Ipv6DatapathTest, TracerouteSeesTheHopsBeyondTheGateway) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  std::string far = addFarNetwork();
  ASSERT_FALSE(HasFailure());
  auto trace = shIn(n1, std::string("traceroute -6 -n -q1 -w1 -m5 ") + kFar6,
                    std::chrono::seconds(30));
  ASSERT_TRUE(trace.ok()) << trace.err;
  // hops: the gateway (fd00:88::1), the outside host (its address on our link), then far
  EXPECT_NE(trace.out.find(kExternal6), std::string::npos) << trace.out;
  EXPECT_NE(trace.out.find(kFar6), std::string::npos) << trace.out;
}

} // namespace
} // namespace gw::test
