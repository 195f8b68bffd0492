// SPDX-License-Identifier: MIT
// ICMP errors, fragments and SNAT exhaustion through gatewayd, end to end: time exceeded from a
// router beyond the gateway and port unreachable from the outside host reach the masqueraded
// namespace; 4000-byte datagrams cross DNAT and masquerade as fragments and come back whole;
// a client whose SNAT port cannot be allocated gets a RST / ICMP answer, not silence.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

constexpr const char* kFarNet = "198.19.0.0/24";
constexpr const char* kExtFarSide = "198.19.0.1";
constexpr const char* kFarAddr = "198.19.0.2"; // two hops beyond the gateway host

// Sends one UDP datagram (connected socket, IP_RECVERR) with the given TTL and prints the
// first ICMP error the kernel queued for it: "origin type code offender". Retries a few
// times; each wait is bounded.
constexpr const char* kUdpProbe = R"(
import select, socket, struct, sys
IP_RECVERR = 11
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, socket.IP_TTL, int(sys.argv[3]))
s.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
s.connect((sys.argv[1], int(sys.argv[2])))
for _ in range(5):
    s.send(b"probe")
    p = select.poll()
    p.register(s, select.POLLERR)
    if not p.poll(1000):
        continue
    _, anc, _, _ = s.recvmsg(512, 512, socket.MSG_ERRQUEUE)
    for level, kind, data in anc:
        if level == socket.SOL_IP and kind == IP_RECVERR:
            _, origin, icmp_type, code = struct.unpack_from("=IBBB", data)
            print(origin, icmp_type, code, socket.inet_ntoa(data[20:24]))
            sys.exit(0)
print("no error")
sys.exit(1)
)";

// A UDP echo server: every datagram goes back to its sender as it came.
constexpr const char* kUdpEcho = R"(
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
)";

// Sends N bytes to an echo server and prints "whole" when the same N bytes come back.
constexpr const char* kUdpBig = R"(
import socket, sys
data = bytes(i % 251 for i in range(int(sys.argv[3])))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for _ in range(3):
    s.sendto(data, (sys.argv[1], int(sys.argv[2])))
    try:
        d, _ = s.recvfrom(65535)
    except socket.timeout:
        continue
    print("whole" if d == data else "mangled %d" % len(d))
    sys.exit(0)
print("timeout")
sys.exit(1)
)";

// Sends N bytes to an echo server as hand-made IP fragments (a raw socket), last one first, and
// prints "whole" when the same N bytes come back; with "no-first", sends every fragment but
// the first, prints "sent" and waits for nothing.
constexpr const char* kUdpOutOfOrder = R"(
import random, socket, struct, sys
dst, dport, size, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = bytes(i % 251 for i in range(size))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect((dst, dport))
src, sport = u.getsockname()
u.settimeout(2)
udp = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
frags = []
for off in range(0, len(udp), 1480):
    part = udp[off:off + 1480]
    more = 0x2000 if off + 1480 < len(udp) else 0
    frags.append(((off // 8) | more, part))
for _ in range(3):
    ident = random.randint(1, 65535)
    for frag_off, part in (frags[::-1] if mode == "reversed" else frags[1:]):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, frag_off, 64, 17, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        raw.sendto(hdr + part, (dst, 0))
    if mode != "reversed":
        print("sent")
        sys.exit(0)
    try:
        d = u.recv(65535)
    except socket.timeout:
        continue
    print("whole" if d == data else "mangled %d" % len(d))
    sys.exit(0)
print("timeout")
sys.exit(1)
)";

// From a fixed source port: a TCP connect, or a UDP request on a connected socket. Prints
// "connected"/"answered", "refused", "unreachable" (EHOSTUNREACH) or "timeout".
constexpr const char* kFromPort = R"(
import errno, socket, sys
proto, dst, dport, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", sport))
s.settimeout(5)
try:
    s.connect((dst, dport))
    if proto == "tcp":
        print("connected")
    else:
        s.send(b"hello")
        s.recv(100)
        print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("unreachable" if e.errno == errno.EHOSTUNREACH else errno.errorcode[e.errno])
)";

// Holds TCP listeners and bound UDP sockets on the given ports (the gateway host's own
// sockets, which SNAT must not take ports from).
constexpr const char* kHoldPorts = R"(
import socket, sys, time
held = []
for port in map(int, sys.argv[1:]):
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", port))
    t.listen()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    held += [t, u]
while True:
    time.sleep(3600)
)";

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

class IcmpFragmentTest : public ServiceFixture {
protected:
  // gatewayd and one managed (masqueraded) namespace, 10.88.0.2.
  std::string startWithNamespace() {
    startDaemon();
    std::string n1 = nsName("n1");
    EXPECT_TRUE(gwctl({"ns", "add", n1}).ok());
    return n1;
  }

  // python3 -c SCRIPT ARGS... in `ns`.
  CommandResult py(const std::string& ns, const char* script, std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "netns", "exec", ns, "python3", "-c", script};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, std::chrono::seconds(30));
  }

  void udpEchoServer(const std::string& ns, const std::string& addr, int port) {
    servers_.push_back(Child::spawn(
        {"ip", "netns", "exec", ns, "python3", "-c", kUdpEcho, addr, std::to_string(port)}));
    ASSERT_TRUE(waitFor([&] {
      return shIn(ns, "ss -Hlun 'sport = :" + std::to_string(port) + "' | grep -q .").ok();
    })) << "UDP echo server in " << ns;
  }

  uint64_t reason(const std::string& name) {
    auto stats = gwctlJson({"stats"});
    return stats["reasons"].value(name, 0ULL);
  }

  std::vector<Child> servers_;
};

// (a) Time exceeded from a router beyond the gateway, about a masqueraded packet, is
// translated back (outer destination and the quoted header) and reaches the namespace.
TEST_F(IcmpFragmentTest, TimeExceededFromBeyondTheGatewayReachesTheNamespace) {
  std::string n1 = startWithNamespace();
  // ext becomes a router to a "far" namespace: namespace -> gateway -> ext -> far.
  TestNamespace far(prefix() + "far");
  auto wired = sh("set -e; ip -n " + ext() + " link add eth1 type veth peer name eth0 netns " +
                  far.name() + "; ip -n " + ext() + " addr add " + kExtFarSide +
                  "/24 dev eth1; ip -n " + ext() + " link set eth1 up; ip -n " + far.name() +
                  " addr add " + kFarAddr + "/24 dev eth0; ip -n " + far.name() +
                  " link set eth0 up; ip -n " + far.name() + " route add default via " +
                  kExtFarSide + "; ip netns exec " + ext() +
                  " sysctl -qw net.ipv4.ip_forward=1; ip -n " + gwh() + " route add " +
                  kFarNet + " via " + kExternalAddr);
  ASSERT_TRUE(wired.ok()) << wired.err;
  ASSERT_TRUE(waitFor([&] { return pingFrom(n1, kFarAddr); }, std::chrono::seconds(10)))
      << "no plain route namespace -> far";

  // TTL 2: the gateway forwards it (TTL 1 on the wire, masqueraded), ext cannot.
  std::string out;
  bool exceeded = waitFor(
      [&] {
        out = shIn(n1, std::string("ping -c1 -W2 -t 2 ") + kFarAddr).out;
        return out.find("Time to live exceeded") != std::string::npos;
      },
      std::chrono::seconds(15));
  EXPECT_TRUE(exceeded) << out;
  EXPECT_NE(out.find(std::string("From ") + kExternalAddr), std::string::npos) << out;
  // TTL 1 expires at the gateway itself, which answers from its own address (no NAT).
  auto local = shIn(n1, std::string("ping -c1 -W2 -t 1 ") + kFarAddr).out;
  EXPECT_NE(local.find("Time to live exceeded"), std::string::npos) << local;
  EXPECT_NE(local.find("From 10.88.0.1"), std::string::npos) << local;

  // The same for UDP (traceroute's probes): the quoted ports are translated back too, or
  // the namespace's socket would never see the error. origin 2 = ICMP, type 11.
  auto udp = py(n1, kUdpProbe, {kFarAddr, "33434", "2"});
  EXPECT_EQ(trimmed(udp.out), std::string("2 11 0 ") + kExternalAddr) << udp.err;
  EXPECT_GE(reason("nat_icmp_error"), 2u);
}

// (b) A masqueraded UDP datagram to a closed port: the outside host's port unreachable is
// translated back and the namespace's socket gets it.
TEST_F(IcmpFragmentTest, PortUnreachableReachesTheNamespace) {
  std::string n1 = startWithNamespace();
  auto r = py(n1, kUdpProbe, {kExternalAddr, "9", "64"});
  EXPECT_EQ(trimmed(r.out), std::string("2 3 3 ") + kExternalAddr) << r.err;
  auto refused = py(n1, kFromPort, {"udp", kExternalAddr, "9", "40200"});
  EXPECT_EQ(trimmed(refused.out), "refused") << refused.err;
  EXPECT_GE(reason("nat_icmp_error"), 2u);
}

// (c) Datagrams larger than the MTU cross the gateway as fragments (later fragments follow
// the first's flow) and arrive whole, both ways, through masquerade and through DNAT.
TEST_F(IcmpFragmentTest, FragmentedDatagramsArriveWholeBothWays) {
  std::string n1 = startWithNamespace();
  // ICMP echo through masquerade: 4000 bytes each way, three fragments each.
  EXPECT_TRUE(waitFor(
      [&] {
        return shIn(n1, std::string("ping -c1 -W2 -M dont -s 4000 ") + kExternalAddr).ok();
      },
      std::chrono::seconds(10)));

  // UDP through masquerade: namespace -> outside echo server.
  udpEchoServer(ext(), kExternalAddr, 7001);
  auto masq = py(n1, kUdpBig, {kExternalAddr, "7001", "4000"});
  EXPECT_EQ(trimmed(masq.out), "whole") << masq.err;

  // UDP through DNAT: outside client -> uplink:7000 -> namespace echo server.
  udpEchoServer(n1, "0.0.0.0", 7000);
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  auto dnat = py(ext(), kUdpBig, {kUplinkAddr, "7000", "4000"});
  EXPECT_EQ(trimmed(dnat.out), "whole") << dnat.err;
}

// (e) RFC 4787 REQ-14: fragments that come before their first are held, not lost, and go on
// once it came: through DNAT to a namespace, to the gateway host's own socket, and out
// through masquerade. Later
// fragments whose first never comes are dropped after GW_FRAG_HOLD_MS, counted.
TEST_F(IcmpFragmentTest, FragmentsBeforeTheirFirstAreHeldThenSentOn) {
  std::string n1 = startWithNamespace();
  udpEchoServer(n1, "0.0.0.0", 7000);
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  auto dnat = py(ext(), kUdpOutOfOrder, {kUplinkAddr, "7000", "4000", "reversed"});
  EXPECT_EQ(trimmed(dnat.out), "whole") << dnat.err;
  // 4008 bytes of UDP: three fragments, the two later ones held
  EXPECT_GE(reason("fragment_held"), 2u);
  EXPECT_GE(reason("fragment_released"), 2u);

  udpEchoServer(gwh(), kUplinkAddr, 7002);
  auto host = py(ext(), kUdpOutOfOrder, {kUplinkAddr, "7002", "4000", "reversed"});
  EXPECT_EQ(trimmed(host.out), "whole") << host.err;
  EXPECT_GE(reason("fragment_released"), 4u);

  // and the other way, through masquerade: held at the namespace's link
  udpEchoServer(ext(), kExternalAddr, 7001);
  auto masq = py(n1, kUdpOutOfOrder, {kExternalAddr, "7001", "4000", "reversed"});
  EXPECT_EQ(trimmed(masq.out), "whole") << masq.err;
  EXPECT_GE(reason("fragment_released"), 6u);

  uint64_t expiredBefore = reason("drop_fragment_expired");
  auto lost = py(ext(), kUdpOutOfOrder, {kUplinkAddr, "7000", "4000", "no-first"});
  ASSERT_EQ(trimmed(lost.out), "sent") << lost.err;
  EXPECT_TRUE(waitFor([&] { return reason("drop_fragment_expired") >= expiredBefore + 2; },
                      std::chrono::seconds(10)))
      << "held fragments whose first never came are dropped and counted";
}

// (d) SNAT exhaustion answered end to end. The SNAT range is narrowed to one port in the
// pinned config map (gatewayd has no option for it), and the gateway host's own sockets hold
// that port and the client's source port, so a flow from that source port finds no port:
// TCP is refused with a RST, UDP gets "administratively prohibited" (EHOSTUNREACH). A client
// on a free source port still gets through: the refusal is the gateway's, not the server's.
TEST_F(IcmpFragmentTest, SnatExhaustionIsAnsweredNotSilent) {
  std::string n1 = startWithNamespace();
  std::string cfgMap = dir_ + "/bpffs/gw_config_map";
  auto cur = run({"bpftool", "-j", "map", "lookup", "pinned", cfgMap, "key", "hex", "00", "00",
                  "00", "00"});
  ASSERT_TRUE(cur.ok()) << cur.err;
  auto j = json::parse(cur.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << cur.out;
  ASSERT_EQ(j["value"].size(), 56u) << cur.out; // sizeof(struct gw_config)
  std::vector<std::string> update = {"bpftool", "map", "update", "pinned", cfgMap, "key",
                                     "hex",     "00",  "00",     "00",     "00",   "value",
                                     "hex"};
  // snat_port_min and snat_port_max (host order, bytes 48-51) = 61000 (0xee48).
  for (size_t i = 0; i < 56; ++i) {
    unsigned v = std::stoul(j["value"][i].get<std::string>(), nullptr, 16);
    if (i >= 48 && i < 52) {
      v = (i % 2 == 0) ? 0x48 : 0xee;
    }
    char hex[3];
    std::snprintf(hex, sizeof(hex), "%02x", v);
    update.push_back(hex);
  }
  auto upd = run(update);
  ASSERT_TRUE(upd.ok()) << upd.err;

  servers_.push_back(Child::spawn({"ip", "netns", "exec", ext(), "socat",
                                   "TCP-LISTEN:9090,fork,reuseaddr", "EXEC:/bin/cat"}));
  udpEchoServer(ext(), kExternalAddr, 7001);
  servers_.push_back(Child::spawn(
      {"ip", "netns", "exec", gwh(), "python3", "-c", kHoldPorts, "40123", "61000"}));
  ASSERT_TRUE(waitFor([&] {
    return shIn(ext(), "ss -Hltn 'sport = :9090' | grep -q .").ok() &&
           shIn(gwh(), "ss -Hltn 'sport = :61000' | grep -q .").ok() &&
           shIn(gwh(), "ss -Hlun 'sport = :40123' | grep -q .").ok();
  }));

  uint64_t before = reason("drop_snat_exhausted");
  auto tcp = py(n1, kFromPort, {"tcp", kExternalAddr, "9090", "40123"});
  EXPECT_EQ(trimmed(tcp.out), "refused") << tcp.err;
  auto udp = py(n1, kFromPort, {"udp", kExternalAddr, "7001", "40123"});
  EXPECT_EQ(trimmed(udp.out), "unreachable") << udp.err;
  EXPECT_GE(reason("drop_snat_exhausted"), before + 2);

  auto free = py(n1, kFromPort, {"tcp", kExternalAddr, "9090", "40124"});
  EXPECT_EQ(trimmed(free.out), "connected") << free.err;
  auto freeUdp = py(n1, kFromPort, {"udp", kExternalAddr, "7001", "40124"});
  EXPECT_EQ(trimmed(freeUdp.out), "answered") << freeUdp.err;
}

} // namespace
} // namespace gw::test
