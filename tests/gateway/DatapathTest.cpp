// SPDX-License-Identifier: MIT
// The eBPF data path end to end: a throwaway client ns -> gateway ns -> server ns topology,
// real traffic through the programs that gw::Datapath loads and attaches in the gateway ns.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/types.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "netns/Link.h"
#include "netns/Namespace.h"
#include "netns/Netlink.h"
#include "tests/support/TestSupport.h"
#include "gateway/datapath/Bpffs.h"
#include "gateway/datapath/BpfDatapath.h"
#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/ConntrackTable.h"
#include "bpf/gw_abi.h"

namespace gw {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::CommandResult;
using test::TestNamespace;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

// An HTTP server that answers every GET with the client address it saw (and logs it).
const char* kEchoServer = R"(
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        sys.stderr.write('client ' + self.client_address[0] + '\n')
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
)";

// A private temp dir; with mountBpffs, a bpffs on it, unmounted on destruction.
class TempBpffs {
public:
  TempBpffs() {
    char tmpl[] = "/tmp/gwdp-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempBpffs() {
    ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }

private:
  std::string dir_;
};

// client ns (198.18.0.2) --uplink veth-- gateway ns --endpoint veth-- server ns (10.88.0.2)
class DatapathTopology : public ::testing::Test {
protected:
  static void SetUpTestSuite() { test::sweepLeftovers(); }

  void SetUp() override {
    const auto& p = test::prefix();
    client_.emplace(p + "cli");
    gateway_.emplace(p + "gw");
    server_.emplace(p + "srv");
    const std::string& gw = gateway_->name();
    const std::string& cli = client_->name();
    const std::string& srv = server_->name();
    std::string script =
        "set -e\n"
        "ip -n " + gw + " link add up0 type veth peer name eth0 netns " + cli + "\n"
        "ip -n " + gw + " link add ep0 type veth peer name eth0 netns " + srv + "\n"
        "ip -n " + gw + " addr add 198.18.0.1/24 dev up0\n"
        "ip -n " + gw + " addr add 10.88.0.1/24 dev ep0\n"
        "ip -n " + gw + " link set up0 up\n"
        "ip -n " + gw + " link set ep0 up\n"
        "ip -n " + cli + " addr add 198.18.0.2/24 dev eth0\n"
        "ip -n " + cli + " link set eth0 up\n"
        "ip -n " + srv + " addr add 10.88.0.2/24 dev eth0\n"
        "ip -n " + srv + " link set eth0 up\n"
        "ip -n " + srv + " route add default via 10.88.0.1\n"
        "ip netns exec " + gw + " sysctl -qw net.ipv4.ip_forward=1\n"
        "ip netns exec " + gw + " sysctl -qw net.ipv4.conf.all.rp_filter=0\n"
        "ip netns exec " + gw + " sysctl -qw net.ipv4.conf.default.rp_filter=0\n"
        "ip netns exec " + gw + " sysctl -qw net.ipv4.conf.up0.rp_filter=0\n"
        "ip netns exec " + gw + " sysctl -qw net.ipv4.conf.ep0.rp_filter=0\n";
    auto r = test::sh(script);
    ASSERT_TRUE(r.ok()) << r.err;
    // The client has no route to 10.88/16: only the gateway's translations connect them.
    auto inGw = NetnsGuard::enter(gw);
    ASSERT_TRUE(inGw) << inGw.error().str();
    uplink_ = static_cast<int>(if_nametoindex("up0"));
    endpoint_ = static_cast<int>(if_nametoindex("ep0"));
    ASSERT_GT(uplink_, 0);
    ASSERT_GT(endpoint_, 0);
  }

  void TearDown() override {
    servers_.clear();
    for (const auto& log : logs_) {
      std::filesystem::remove(log);
    }
    // Namespaces go in reverse order of creation (std::optional members reset explicitly).
    server_.reset();
    gateway_.reset();
    client_.reset();
  }

  // Opens a Datapath from inside the gateway ns; later calls work from any thread.
  std::unique_ptr<BpfDatapath> openDatapath(DatapathConfig config = {}) {
    auto inGw = NetnsGuard::enter(gateway_->name());
    EXPECT_TRUE(inGw) << inGw.error().str();
    if (!inGw) {
      return nullptr;
    }
    auto dp = BpfDatapath::open(config);
    EXPECT_TRUE(dp) << dp.error().str();
    return dp ? std::move(*dp) : nullptr;
  }

  // Uplink + endpoint attached, expose 6000 -> 10.88.0.2:8080 (rule 7), masquerade 10.88/16.
  void configure(Datapath& dp) {
    auto ok = dp.attachUplink(uplink_, ip("198.18.0.1"));
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.attachEndpoint(endpoint_);
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.addLocalAddress(ip("198.18.0.1"));
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.addLocalAddress(ip("10.88.0.1"));
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.setHairpinAddress(ip("10.88.0.1"));
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.addExpose(ExposeEntry{IPPROTO_TCP, {}, 6000, ip("10.88.0.2"), 8080, 7});
    ASSERT_TRUE(ok) << ok.error().str();
    ok = dp.addMasquerade(*IpPrefix::parse("10.88.0.0/16"), 0);
    ASSERT_TRUE(ok) << ok.error().str();
  }

  // Starts the echo server in a namespace and waits until it listens.
  void startEchoServer(const TestNamespace& ns, const std::string& addr, int port) {
    std::string log = "/tmp/" + ns.name() + "-" + std::to_string(port) + ".log";
    std::filesystem::remove(log);
    logs_.push_back(log);
    servers_.push_back(Child::spawn(
        {"ip", "netns", "exec", ns.name(), "/usr/bin/python3", "-u", "-c", kEchoServer, addr,
         std::to_string(port)},
        log));
    bool up = test::waitFor(
        [&] { return ns.sh("ss -Hltn 'sport = :" + std::to_string(port) + "' | grep -q .").ok(); },
        10s);
    ASSERT_TRUE(up) << "echo server on " << ns.name() << " " << addr << ":" << port;
  }

  // GET from the client ns; the body is the address the server saw ("" on failure).
  std::string fetch(const std::string& url, std::chrono::seconds timeout = 5s) {
    auto r = client_->sh("curl -sS --max-time " + std::to_string(timeout.count()) + " " + url);
    return r.ok() ? trim(r.out) : "";
  }

  CommandResult inGateway(const std::string& script) { return gateway_->sh(script); }

  bool hasTcFilter(const std::string& dev, const std::string& dir) {
    auto r = inGateway("tc filter show dev " + dev + " " + dir);
    return r.out.find("bpf") != std::string::npos;
  }
  bool hasClsact(const std::string& dev) {
    return inGateway("tc qdisc show dev " + dev).out.find("clsact") != std::string::npos;
  }
  bool hasXdp(const std::string& dev) {
    auto out = inGateway("ip -d link show dev " + dev).out;
    return out.find("xdp") != std::string::npos && out.find("prog/xdp") != std::string::npos;
  }

  std::optional<Flow> findFlow(Datapath& dp, uint8_t proto, const IpAddress& origSrc) {
    auto flows = dp.listFlows();
    EXPECT_TRUE(flows) << flows.error().str();
    if (!flows) {
      return std::nullopt;
    }
    for (const auto& f : *flows) {
      if (f.proto == proto && f.orig.src == origSrc && !f.orphan) {
        return f;
      }
    }
    return std::nullopt;
  }

  std::optional<TestNamespace> client_;
  std::optional<TestNamespace> gateway_;
  std::optional<TestNamespace> server_;
  std::vector<Child> servers_;
  std::vector<std::string> logs_;
  int uplink_ = 0;
  int endpoint_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Pure logic, no kernel.

TEST(DatapathLogic, ParsesXdpModes) {
  EXPECT_EQ(parseXdpMode("auto").value(), XdpMode::Auto);
  EXPECT_EQ(parseXdpMode("native").value(), XdpMode::Native);
  EXPECT_EQ(parseXdpMode("generic").value(), XdpMode::Generic);
  EXPECT_EQ(parseXdpMode("off").value(), XdpMode::Off);
  EXPECT_FALSE(parseXdpMode("fast"));
  EXPECT_EQ(toString(XdpMode::Generic), "generic");
}

TEST(DatapathLogic, DefaultTimeoutsMeetRfcMinimums) {
  CtTimeouts t;
  EXPECT_TRUE(checkRfcMinimums(t));
  t.udp = 30s;
  EXPECT_FALSE(checkRfcMinimums(t));
}

TEST(DatapathLogic, TcpStatesFromSeenFlags) {
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_SYN, 0), "SYN_SENT");
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_SYN, GW_CT_SEEN_SYNACK), "SYN_RECV");
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_SYN | GW_CT_SEEN_ACK,
                      GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK),
            "ESTABLISHED");
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_ACK | GW_CT_SEEN_FIN, GW_CT_SEEN_ACK), "FIN_WAIT");
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_FIN, GW_CT_SEEN_FIN), "CLOSE");
  EXPECT_EQ(flowState(IPPROTO_TCP, GW_CT_SEEN_ACK, GW_CT_SEEN_RST), "CLOSE");
  EXPECT_EQ(flowState(IPPROTO_UDP, 0, 0), "UDP");
  EXPECT_EQ(flowState(IPPROTO_ICMP, 0, 0), "ICMP");
  CtTimeouts t;
  EXPECT_EQ(flowTimeout(IPPROTO_TCP, "ESTABLISHED", t), t.tcpEstablished);
  EXPECT_EQ(flowTimeout(IPPROTO_TCP, "SYN_SENT", t), t.tcpSyn);
  EXPECT_EQ(flowTimeout(IPPROTO_TCP, "FIN_WAIT", t), t.tcpTransitory);
  EXPECT_EQ(flowTimeout(IPPROTO_UDP, "UDP", t), t.udp);
  EXPECT_EQ(flowTimeout(IPPROTO_ICMP, "ICMP", t), t.icmp);
}

TEST(DatapathLogic, PairsHalvesIntoOneFlow) {
  gw_ct_key orig{};
  orig.saddr.v4 = htonl(0xc6120002); // 198.18.0.2
  orig.daddr.v4 = htonl(0xc6120001); // 198.18.0.1
  orig.sport = htons(40000);
  orig.dport = htons(6000);
  orig.proto = IPPROTO_TCP;
  orig.family = GW_AF_INET;
  gw_ct_key reply{};
  reply.saddr.v4 = htonl(0x0a580002); // 10.88.0.2
  reply.daddr.v4 = htonl(0xc6120002);
  reply.sport = htons(8080);
  reply.dport = htons(40000);
  reply.proto = IPPROTO_TCP;
  reply.family = GW_AF_INET;
  gw_ct_entry o{};
  o.dir = GW_CT_DIR_ORIG;
  o.nat = GW_NAT_DNAT;
  o.rule_id = 7;
  o.peer = reply;
  o.tcp_flags = GW_CT_SEEN_SYN | GW_CT_SEEN_ACK;
  o.packets = 5;
  o.created_ns = 100;
  o.last_seen_ns = 1000;
  gw_ct_entry r{};
  r.dir = GW_CT_DIR_REPLY;
  r.peer = orig;
  r.tcp_flags = GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK;
  r.packets = 4;
  r.created_ns = 100;
  r.last_seen_ns = 2000;
  Flow f = makeFlow(reply, r, &o, 5000); // handed the reply half: still shown from orig
  EXPECT_EQ(f.orig.src, ip("198.18.0.2"));
  EXPECT_EQ(f.orig.dport, 6000);
  EXPECT_EQ(f.reply.src, ip("10.88.0.2"));
  EXPECT_EQ(f.reply.sport, 8080);
  EXPECT_EQ(f.state, "ESTABLISHED");
  EXPECT_EQ(f.ruleId, 7u);
  EXPECT_EQ(f.origCounters.packets, 5u);
  EXPECT_EQ(f.replyCounters.packets, 4u);
  EXPECT_EQ(f.age, std::chrono::nanoseconds(3000));
  EXPECT_FALSE(f.orphan);
  FlowFilter filter;
  filter.port = 8080;
  EXPECT_TRUE(filter.matches(f));
  filter.proto = IPPROTO_UDP;
  EXPECT_FALSE(filter.matches(f));
  Flow lone = makeFlow(orig, o, nullptr, 5000);
  EXPECT_TRUE(lone.orphan);
}

TEST(DatapathLogic, DecodesAnIpv6FlowFromItsKeyBytes) {
  // The bytes the BPF side writes for a NAT66 flow: fd00:88::2:40000 -> 2001:db8::5:443 out,
  // the reply 2001:db8::5:443 -> fd00:18::1:40000 (the uplink's address).
  auto tcp6 = [](const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    gw_ct_key k{};
    std::memcpy(k.saddr.bytes, ip(src).bytes.data(), 16);
    std::memcpy(k.daddr.bytes, ip(dst).bytes.data(), 16);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = IPPROTO_TCP;
    k.family = GW_AF_INET6;
    return k;
  };
  gw_ct_key orig = tcp6("fd00:88::2", 40000, "2001:db8::5", 443);
  gw_ct_key reply = tcp6("2001:db8::5", 443, "fd00:18::1", 40000);
  gw_ct_entry o{};
  o.dir = GW_CT_DIR_ORIG;
  o.nat = GW_NAT_SNAT;
  o.peer = reply;
  o.tcp_flags = GW_CT_SEEN_SYN | GW_CT_SEEN_ACK;
  o.created_ns = o.last_seen_ns = 100;
  gw_ct_entry r{};
  r.dir = GW_CT_DIR_REPLY;
  r.peer = orig;
  r.tcp_flags = GW_CT_SEEN_SYNACK;
  r.created_ns = r.last_seen_ns = 200;
  Flow f = makeFlow(orig, o, &r, 1000);
  EXPECT_EQ(f.orig.src, ip("fd00:88::2"));
  EXPECT_EQ(f.orig.dst, ip("2001:db8::5"));
  EXPECT_EQ(f.orig.sport, 40000);
  EXPECT_EQ(f.reply.src, ip("2001:db8::5"));
  EXPECT_EQ(f.reply.dst, ip("fd00:18::1"));
  EXPECT_TRUE(f.orig.src.isV6());
  EXPECT_EQ(f.state, "ESTABLISHED");
  EXPECT_EQ(f.nat, GW_NAT_SNAT);
  FlowKey k = flowKeyOf(reply, r); // the reply half names its flow by the orig tuple
  EXPECT_EQ(k, flowKey(f));
  FlowFilter filter;
  filter.src = ip("fd00:88::2");
  EXPECT_TRUE(filter.matches(f));
  filter.src = ip("10.88.0.2"); // the same first bytes in another family is another address
  EXPECT_FALSE(filter.matches(f));
  // ICMPv6 echo flows share the ICMP timeout.
  EXPECT_EQ(flowState(IPPROTO_ICMPV6, 0, 0), "ICMP");
  CtTimeouts t;
  EXPECT_EQ(flowTimeout(IPPROTO_ICMPV6, "ICMP", t), t.icmp);
}

// ---------------------------------------------------------------------------------------------
// Filesystems.

TEST(Bpffs, BelowAnUnmountedSystemDirMountsThereAndReleasesIt) {
  // As /sys/fs/bpf on a host without bpffs: a plain directory; pins go below it.
  TempBpffs tmp;
  std::string system = tmp.dir() + "/sysfs-bpf";
  std::filesystem::create_directories(system);
  std::string pins = system + "/gateway";
  auto mounted = ensureBpffs(pins, system);
  ASSERT_TRUE(mounted) << mounted.error().str();
  EXPECT_EQ(*mounted, system) << "mounted on the system dir, as tc and bpftool do";
  EXPECT_TRUE(isBpffs(system).value());
  EXPECT_TRUE(isBpffs(pins).value());
  auto again = ensureBpffs(pins, system);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(*again, "") << "already there: nothing more mounted";

  // Another tool's pin keeps the mount; once it is gone the release takes it down.
  std::filesystem::create_directories(system + "/theirs-dir");
  auto kept = releaseBpffs(pins, *mounted);
  ASSERT_TRUE(kept) << kept.error().str();
  EXPECT_FALSE(std::filesystem::exists(pins));
  EXPECT_TRUE(isBpffs(system).value()) << "others' entries stay mounted";
  std::filesystem::remove(system + "/theirs-dir");
  auto released = releaseBpffs(pins, *mounted);
  ASSERT_TRUE(released) << released.error().str();
  EXPECT_FALSE(isBpffs(system).value());
  auto mounts = test::sh("grep -c ' " + system + " bpf ' /proc/mounts");
  EXPECT_EQ(trim(mounts.out), "0");
}

TEST(Bpffs, OutsideTheSystemDirMountsOnTheDirectory) {
  TempBpffs tmp;
  std::string pins = tmp.dir() + "/pins";
  auto mounted = ensureBpffs(pins, tmp.dir() + "/elsewhere");
  ASSERT_TRUE(mounted) << mounted.error().str();
  EXPECT_EQ(*mounted, pins);
  EXPECT_TRUE(isBpffs(pins).value());
  auto released = releaseBpffs(pins, *mounted);
  ASSERT_TRUE(released) << released.error().str();
  EXPECT_FALSE(std::filesystem::exists(pins));
}

TEST(Bpffs, MountsOnceAndNestsDirectories) {
  TempBpffs tmp;
  auto before = isBpffs(tmp.dir());
  ASSERT_TRUE(before) << before.error().str();
  ASSERT_FALSE(*before);
  auto ok = ensureBpffs(tmp.dir());
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_TRUE(isBpffs(tmp.dir()).value());
  ok = ensureBpffs(tmp.dir()); // already bpffs: no second mount
  ASSERT_TRUE(ok) << ok.error().str();
  ok = ensureBpffs(tmp.dir() + "/a/b"); // inside a bpffs: plain mkdir
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_TRUE(isBpffs(tmp.dir() + "/a/b").value());
  auto mounts = test::sh("grep -c ' " + tmp.dir() + " bpf ' /proc/mounts");
  EXPECT_EQ(trim(mounts.out), "1");
  std::filesystem::remove(tmp.dir() + "/a/b");
  std::filesystem::remove(tmp.dir() + "/a");
}

TEST(Bpffs, FindsCgroup2) {
  auto cg = findCgroup2();
  ASSERT_TRUE(cg) << cg.error().str();
  EXPECT_TRUE(std::filesystem::exists(*cg + "/cgroup.procs")) << *cg;
}

// ---------------------------------------------------------------------------------------------
// Traffic.

TEST_F(DatapathTopology, ExposedPortReachesServerWithClientAddress) {
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  startEchoServer(*server_, "10.88.0.2", 8080);

  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  auto log = test::sh("cat /tmp/" + server_->name() + "-8080.log");
  EXPECT_NE(log.out.find("client 198.18.0.2"), std::string::npos) << log.out;

  auto flow = findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2"));
  ASSERT_TRUE(flow) << "no flow listed";
  EXPECT_EQ(flow->orig.dst, ip("198.18.0.1"));
  EXPECT_EQ(flow->orig.dport, 6000);
  EXPECT_EQ(flow->reply.src, ip("10.88.0.2"));
  EXPECT_EQ(flow->reply.sport, 8080);
  EXPECT_EQ(flow->reply.dst, ip("198.18.0.2"));
  EXPECT_EQ(flow->ruleId, 7u);
  EXPECT_TRUE(flow->nat & GW_NAT_DNAT);
  EXPECT_GT(flow->origCounters.packets, 0u);
  EXPECT_GT(flow->replyCounters.packets, 0u);
  EXPECT_FALSE(flow->state.empty());

  auto st = dp->stats();
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_EQ(st->reasons.size(), static_cast<size_t>(GW_REASON_MAX));
  EXPECT_EQ(st->reasons[GW_REASON_NAT_DNAT].name, "nat_dnat");
  EXPECT_GT(st->reasons[GW_REASON_NAT_DNAT].packets, 0u);
  ASSERT_EQ(st->rules.size(), 1u);
  EXPECT_EQ(st->rules[0].ruleId, 7u);
  EXPECT_GT(st->rules[0].packets, 0u);
  EXPECT_GE(st->rules[0].connections, 1u);
  EXPECT_GE(st->ctEntries, 2u);
  EXPECT_EQ(st->ctCapacity, static_cast<size_t>(GW_CT_MAX_ENTRIES));

  auto exposes = dp->listExposes();
  ASSERT_TRUE(exposes) << exposes.error().str();
  ASSERT_EQ(exposes->size(), 1u);
  EXPECT_EQ((*exposes)[0].hostPort, 6000);
  EXPECT_EQ((*exposes)[0].targetAddr, ip("10.88.0.2"));

  // Deleting the rule stops new connections and removes its flows.
  auto ok = dp->deleteExpose({IPPROTO_TCP, AF_INET, {}, 6000});
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_FALSE(findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2")));
  EXPECT_EQ(fetch("http://198.18.0.1:6000/", 2s), "");
}

TEST_F(DatapathTopology, EndpointTrafficGoesStraightIntoTheNamespace) {
  // tc only: XDP (Auto takes native on veth) would translate established flows before tc
  // and pass them to the stack.
  DatapathConfig config;
  config.xdp = XdpMode::Off;
  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  configure(*dp);
  auto inSrv = Netlink::openIn(server_->name());
  ASSERT_TRUE(inSrv) << inSrv.error().str();
  auto srvLink = getLink(*inSrv, "eth0");
  ASSERT_TRUE(srvLink) << srvLink.error().str();
  auto inGw = Netlink::openIn(gateway_->name());
  ASSERT_TRUE(inGw) << inGw.error().str();
  auto epLink = getLink(*inGw, "ep0");
  ASSERT_TRUE(epLink) << epLink.error().str();
  auto ok = dp->addEndpoint(ip("10.88.0.2"), endpoint_, srvLink->mac, epLink->mac);
  ASSERT_TRUE(ok) << ok.error().str();
  startEchoServer(*server_, "10.88.0.2", 8080);

  // Packets handed to the namespace's eth0 by bpf_redirect_peer are never sent on ep0.
  auto epTx = [&] {
    auto r = inGateway("cat /sys/class/net/ep0/statistics/tx_packets");
    return r.ok() ? std::stoull(trim(r.out)) : 0ULL;
  };
  auto redirects = [&] {
    auto st = dp->stats();
    return st ? st->reasons[GW_REASON_REDIRECT].packets : 0;
  };
  uint64_t txBefore = epTx();
  uint64_t redirBefore = redirects();
  constexpr uint64_t kFetches = 5;
  for (uint64_t i = 0; i < kFetches; ++i) {
    EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  }
  // A fetch sends the server at least SYN, ACK, request and FIN: 4 packets, 20 in all. What
  // the gateway host sends itself (an ARP answer, IPv6 router solicitations) still leaves on ep0.
  EXPECT_LT(epTx() - txBefore, 8u);
  EXPECT_GE(redirects() - redirBefore, 4u * kFetches);

  // Without the entry the FIB path takes over: the same traffic now leaves on ep0.
  ok = dp->deleteEndpoint(ip("10.88.0.2"));
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->deleteEndpoint(ip("10.88.0.2"));
  EXPECT_TRUE(ok) << "deleting an absent endpoint: " << ok.error().str();
  txBefore = epTx();
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  EXPECT_GE(epTx() - txBefore, 4u);
  EXPECT_FALSE(dp->addEndpoint(ip("10.88.0.2"), 0, srvLink->mac, epLink->mac));
}

TEST_F(DatapathTopology, ResetRuleStatsZeroesEveryCpuOfOneRule) {
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  int fd = dp->mapFd("gw_stats_rule");
  ASSERT_GE(fd, 0);
  int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  // Counters as a deleted rule 7 left them, on every CPU, and rule 8's, which must stay.
  std::vector<gw_rule_stats> old(static_cast<size_t>(ncpus), gw_rule_stats{5, 500, 1, 2});
  for (uint32_t id : {7u, 8u}) {
    ASSERT_EQ(bpf_map_update_elem(fd, &id, old.data(), BPF_ANY), 0);
  }
  auto ok = dp->resetRuleStats(7);
  ASSERT_TRUE(ok) << ok.error().str();

  std::vector<gw_rule_stats> now(static_cast<size_t>(ncpus));
  uint32_t seven = 7;
  ASSERT_EQ(bpf_map_lookup_elem(fd, &seven, now.data()), 0);
  for (const auto& s : now) {
    EXPECT_EQ(s.packets + s.bytes + s.connections + s.drops, 0u);
  }
  // Rule id 7 reused: stats() starts it from zero; rule 8 kept its totals.
  ok = dp->addExpose(ExposeEntry{IPPROTO_TCP, {}, 6000, ip("10.88.0.2"), 8080, 7});
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->addExpose(ExposeEntry{IPPROTO_TCP, {}, 6001, ip("10.88.0.2"), 8081, 8});
  ASSERT_TRUE(ok) << ok.error().str();
  auto st = dp->stats();
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_EQ(st->rules.size(), 2u);
  EXPECT_EQ(st->rules[0].ruleId, 7u);
  EXPECT_EQ(st->rules[0].packets, 0u);
  EXPECT_EQ(st->rules[0].bytes, 0u);
  EXPECT_EQ(st->rules[0].connections, 0u);
  EXPECT_EQ(st->rules[0].drops, 0u);
  EXPECT_EQ(st->rules[1].ruleId, 8u);
  EXPECT_EQ(st->rules[1].packets, 5u * static_cast<uint64_t>(ncpus));
  EXPECT_EQ(st->rules[1].drops, 2u * static_cast<uint64_t>(ncpus));

  EXPECT_FALSE(dp->resetRuleStats(GW_RULE_MAX));
}

TEST_F(DatapathTopology, MasqueradeRewritesSourceToUplink) {
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  startEchoServer(*client_, "198.18.0.2", 7000);

  auto ping = server_->sh("ping -c1 -W2 198.18.0.2");
  EXPECT_TRUE(ping.ok()) << ping.out << ping.err;
  auto seen = server_->sh("curl -sS --max-time 5 http://198.18.0.2:7000/");
  EXPECT_EQ(trim(seen.out), "198.18.0.1") << seen.err;

  auto tcp = findFlow(*dp, IPPROTO_TCP, ip("10.88.0.2"));
  ASSERT_TRUE(tcp);
  EXPECT_TRUE(tcp->nat & GW_NAT_SNAT);
  EXPECT_EQ(tcp->orig.dst, ip("198.18.0.2"));
  EXPECT_EQ(tcp->reply.dst, ip("198.18.0.1")); // the reply comes back to the uplink address
  // The source port is kept when free (RFC 4787 port preservation), else from the SNAT range.
  EXPECT_TRUE(tcp->reply.dport == tcp->orig.sport || tcp->reply.dport >= GW_SNAT_PORT_MIN)
      << tcp->reply.dport;
  auto icmp = findFlow(*dp, IPPROTO_ICMP, ip("10.88.0.2"));
  ASSERT_TRUE(icmp);
  EXPECT_EQ(icmp->state, "ICMP");

  // Without the masquerade rule the server's packets leave untranslated and get no answer.
  auto ok = dp->deleteMasquerade(*IpPrefix::parse("10.88.0.0/16"));
  ASSERT_TRUE(ok) << ok.error().str();
  auto flushed = dp->flushFlows();
  ASSERT_TRUE(flushed) << flushed.error().str();
  EXPECT_GE(*flushed, 2u);
  EXPECT_FALSE(server_->sh("ping -c1 -W1 198.18.0.2").ok());
}

TEST_F(DatapathTopology, GarbageCollectionAndFlowDeletion) {
  DatapathConfig config;
  config.timeouts.icmp = 1s;
  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  configure(*dp);
  startEchoServer(*server_, "10.88.0.2", 8080);

  ASSERT_TRUE(server_->sh("ping -c1 -W2 198.18.0.2").ok());
  ASSERT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  ASSERT_TRUE(findFlow(*dp, IPPROTO_ICMP, ip("10.88.0.2")));
  ASSERT_TRUE(findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2")));

  // Nothing is old enough yet.
  auto gc = dp->collectGarbage();
  ASSERT_TRUE(gc) << gc.error().str();
  EXPECT_EQ(*gc, 0u);

  std::this_thread::sleep_for(1500ms);
  gc = dp->collectGarbage();
  ASSERT_TRUE(gc) << gc.error().str();
  EXPECT_EQ(*gc, 1u); // the ICMP flow; the TCP one has minutes left
  EXPECT_FALSE(findFlow(*dp, IPPROTO_ICMP, ip("10.88.0.2")));
  ASSERT_TRUE(findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2")));

  FlowFilter other;
  other.proto = IPPROTO_UDP;
  auto n = dp->deleteFlows(other);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_EQ(*n, 0u);
  FlowFilter mine;
  mine.proto = IPPROTO_TCP;
  mine.src = ip("198.18.0.2");
  n = dp->deleteFlows(mine);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_GE(*n, 1u);
  auto flows = dp->listFlows();
  ASSERT_TRUE(flows);
  EXPECT_TRUE(flows->empty());
  auto st = dp->stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->ctEntries, 0u);

  // A half whose peer vanished is listed as an orphan and collected after a grace period.
  ASSERT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  auto flow = findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2"));
  ASSERT_TRUE(flow);
  gw_ct_key replyKey{};
  replyKey.saddr.v4 = htonl(flow->reply.src.v4HostOrder());
  replyKey.daddr.v4 = htonl(flow->reply.dst.v4HostOrder());
  replyKey.sport = htons(flow->reply.sport);
  replyKey.dport = htons(flow->reply.dport);
  replyKey.proto = IPPROTO_TCP;
  replyKey.family = GW_AF_INET;
  ASSERT_EQ(bpf_map_delete_elem(dp->mapFd("gw_ct_v4"), &replyKey), 0);
  flows = dp->listFlows();
  ASSERT_TRUE(flows);
  ASSERT_EQ(flows->size(), 1u);
  EXPECT_TRUE((*flows)[0].orphan);
  std::this_thread::sleep_for(2100ms);
  gc = dp->collectGarbage();
  ASSERT_TRUE(gc) << gc.error().str();
  EXPECT_EQ(*gc, 1u);
  st = dp->stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->ctEntries, 0u);
}

// conntrackEntries() reads the kernel's element count; it must agree with a walk of the map
// through inserts, deletes and LRU evictions.
TEST_F(DatapathTopology, ConntrackEntriesMatchAWalkOfTheMap) {
  DatapathConfig config;
  config.ctEntries = 4096;
  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  int fd = dp->mapFd("gw_ct_v4");
  auto walk = [fd] {
    gw_ct_key key{};
    gw_ct_key next{};
    const gw_ct_key* cursor = nullptr;
    size_t n = 0;
    while (bpf_map_get_next_key(fd, cursor, &next) == 0) {
      ++n;
      key = next;
      cursor = &key;
    }
    return n;
  };
  auto keyOf = [](uint32_t i) {
    gw_ct_key k{};
    k.saddr.v4 = htonl(0x64400000u + i);
    k.daddr.v4 = htonl(0xc6120001);
    k.sport = htons(40000);
    k.dport = htons(6000);
    k.proto = IPPROTO_TCP;
    k.family = GW_AF_INET;
    return k;
  };
  auto expectCount = [&](size_t want) {
    auto n = dp->conntrackEntries();
    ASSERT_TRUE(n) << n.error().str();
    EXPECT_EQ(*n, want);
    auto st = dp->stats();
    ASSERT_TRUE(st) << st.error().str();
    EXPECT_EQ(st->ctEntries, want);
    EXPECT_EQ(st->ctCapacity, 4096u);
  };
  expectCount(0);
  gw_ct_entry entry{};
  for (uint32_t i = 0; i < 1000; ++i) {
    auto k = keyOf(i);
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &entry, BPF_ANY), 0);
  }
  expectCount(1000);
  for (uint32_t i = 0; i < 300; ++i) {
    auto k = keyOf(i);
    ASSERT_EQ(bpf_map_delete_elem(fd, &k), 0);
  }
  expectCount(700);
  // Twice the capacity: the LRU map evicts to make room.
  for (uint32_t i = 1000; i < 9192; ++i) {
    auto k = keyOf(i);
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &entry, BPF_ANY), 0);
  }
  size_t walked = walk();
  EXPECT_LE(walked, 4096u);
  expectCount(walked);
  auto flushed = dp->flushFlows();
  ASSERT_TRUE(flushed) << flushed.error().str();
  expectCount(0);
}

// GC on another thread, as the daemon runs it: the walk holds no lock, so the API thread's
// calls go on meanwhile, and every expired flow still goes.
TEST_F(DatapathTopology, GarbageCollectionOnAnotherThreadLetsCallsThrough) {
  DatapathConfig config;
  config.timeouts.tcpEstablished = config.timeouts.tcpTransitory = config.timeouts.tcpSyn = 1s;
  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  int fd = dp->mapFd("gw_ct_v4");
  constexpr uint32_t kFlows = 100000;
  std::vector<gw_ct_key> keys;
  std::vector<gw_ct_entry> values;
  for (uint32_t i = 0; i < kFlows; ++i) {
    gw_ct_key orig{};
    orig.saddr.v4 = htonl(0x64400000u + i);
    orig.daddr.v4 = htonl(0xc6120001);
    orig.sport = htons(40000);
    orig.dport = htons(6000);
    orig.proto = IPPROTO_TCP;
    orig.family = GW_AF_INET;
    gw_ct_key reply = orig;
    std::swap(reply.saddr, reply.daddr);
    std::swap(reply.sport, reply.dport);
    gw_ct_entry o{};
    o.dir = GW_CT_DIR_ORIG;
    o.peer = reply;
    o.created_ns = o.last_seen_ns = 1; // long idle
    gw_ct_entry r = o;
    r.dir = GW_CT_DIR_REPLY;
    r.peer = orig;
    keys.push_back(orig);
    values.push_back(o);
    keys.push_back(reply);
    values.push_back(r);
  }
  auto count = static_cast<uint32_t>(keys.size());
  ASSERT_EQ(bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr), 0);
  ASSERT_EQ(*dp->conntrackEntries(), 2u * kFlows);

  using Clock = std::chrono::steady_clock;
  std::atomic<bool> done = false;
  Result<size_t> collected = 0;
  Clock::duration gcTime{};
  std::jthread gc([&] {
    auto start = Clock::now();
    collected = dp->collectGarbage();
    gcTime = Clock::now() - start;
    done = true;
  });
  Clock::duration worst{};
  size_t calls = 0;
  while (!done) {
    auto start = Clock::now();
    EXPECT_TRUE(dp->addLocalAddress(ip("198.18.0.1")));
    EXPECT_TRUE(dp->conntrackEntries());
    worst = std::max(worst, Clock::now() - start);
    ++calls;
  }
  gc.join();
  ASSERT_TRUE(collected) << collected.error().str();
  EXPECT_EQ(*collected, kFlows);
  EXPECT_EQ(*dp->conntrackEntries(), 0u);
  auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count() / 1000.0;
  };
  std::cout << "GC of " << kFlows << " flows: " << ms(gcTime) << " ms; " << calls
            << " calls meanwhile, the slowest " << ms(worst) << " ms\n";
  EXPECT_GT(calls, 1u);
  EXPECT_LT(worst, gcTime / 2) << "a call waited for most of the GC";
}

// The fallback for kernels without bpf_map_sum_elem_count counts the same.
TEST(ConntrackTable, WalkingCountsWhatTheKernelCounts) {
  BpfObjectsOptions options;
  options.ctEntries = 4096;
  auto objects = BpfObjects::load(options);
  ASSERT_TRUE(objects) << objects.error().str();
  ASSERT_NE((*objects)->ctCounter(), nullptr) << "kernel 6.6+ has bpf_map_sum_elem_count";
  ConntrackTable table(**objects);
  int fd = (*objects)->mapFd("gw_ct_v4");
  gw_ct_entry entry{};
  for (uint32_t i = 0; i < 6000; ++i) {
    gw_ct_key k{};
    k.saddr.v4 = htonl(0x64400000u + i);
    k.proto = IPPROTO_UDP;
    k.family = GW_AF_INET;
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &entry, BPF_ANY), 0);
    if (i % 1500 == 0 || i == 5999) {
      auto counted = table.count();
      auto walked = table.countByWalking();
      ASSERT_TRUE(counted) << counted.error().str();
      ASSERT_TRUE(walked) << walked.error().str();
      EXPECT_EQ(*counted, *walked) << "after " << i + 1 << " inserts";
    }
  }
}

TEST_F(DatapathTopology, TeardownLeavesNoHooks) {
  // A clsact that existed before us stays; one we create goes.
  ASSERT_TRUE(inGateway("tc qdisc add dev ep0 clsact").ok());
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  EXPECT_TRUE(hasTcFilter("up0", "ingress"));
  EXPECT_TRUE(hasTcFilter("up0", "egress"));
  EXPECT_TRUE(hasTcFilter("ep0", "ingress"));
  if (dp->uplinkXdpMode() == XdpMode::Native) {
    EXPECT_TRUE(hasXdp("up0"));
  }
  auto ok = dp->detachEndpoint(endpoint_);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_FALSE(hasTcFilter("ep0", "ingress"));
  EXPECT_TRUE(hasClsact("ep0"));
  ok = dp->attachEndpoint(endpoint_);
  ASSERT_TRUE(ok) << ok.error().str();

  ok = dp->teardown();
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_FALSE(hasTcFilter("up0", "ingress"));
  EXPECT_FALSE(hasTcFilter("up0", "egress"));
  EXPECT_FALSE(hasTcFilter("ep0", "ingress"));
  EXPECT_FALSE(hasClsact("up0"));
  EXPECT_TRUE(hasClsact("ep0"));
  EXPECT_FALSE(hasXdp("up0"));

  // The destructor of an unpinned Datapath tears down too.
  dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  EXPECT_TRUE(hasTcFilter("up0", "ingress"));
  dp.reset();
  EXPECT_FALSE(hasTcFilter("up0", "ingress"));
  EXPECT_FALSE(hasTcFilter("ep0", "ingress"));
  EXPECT_FALSE(hasXdp("up0"));
}

TEST_F(DatapathTopology, TheRuleMapsListWhatTheyHold) {
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  auto ok = dp->addMasquerade(*IpPrefix::parse("10.1.2.3/24"), endpoint_);
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->addMasquerade(*IpPrefix::parse("192.0.2.7/32"), 0);
  ASSERT_TRUE(ok) << ok.error().str();
  std::array<uint8_t, 6> peer{2, 0, 0, 0, 0, 2};
  std::array<uint8_t, 6> host{2, 0, 0, 0, 0, 1};
  ok = dp->addEndpoint(ip("10.88.0.2"), endpoint_, peer, host);
  ASSERT_TRUE(ok) << ok.error().str();

  // The masquerade map is an LPM trie: the kernel has no batched lookup for it.
  auto masq = dp->listMasquerades();
  ASSERT_TRUE(masq) << masq.error().str();
  EXPECT_EQ(*masq, (std::vector<MasqueradeEntry>{{*IpPrefix::parse("10.1.2.0/24"), endpoint_},
                                                 {*IpPrefix::parse("10.88.0.0/16"), 0},
                                                 {*IpPrefix::parse("192.0.2.7/32"), 0}}));
  auto endpoints = dp->listEndpoints();
  ASSERT_TRUE(endpoints) << endpoints.error().str();
  EXPECT_EQ(*endpoints, (std::vector<EndpointEntry>{{ip("10.88.0.2"), endpoint_, peer, host}}));
  auto attached = dp->listEndpointAttachments();
  ASSERT_TRUE(attached) << attached.error().str();
  EXPECT_EQ(*attached, std::vector<int>{endpoint_}) << "the uplink is not an endpoint";
  auto local = dp->listLocalAddresses();
  ASSERT_TRUE(local) << local.error().str();
  EXPECT_EQ(*local, (std::vector<IpAddress>{ip("10.88.0.1"), ip("198.18.0.1")}));

  ok = dp->deleteMasquerade(*IpPrefix::parse("10.1.2.0/24"));
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->deleteEndpoint(ip("10.88.0.2"));
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->detachEndpoint(endpoint_);
  ASSERT_TRUE(ok) << ok.error().str();
  ok = dp->deleteLocalAddress(ip("10.88.0.1"));
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(dp->listLocalAddresses().value_or(std::vector<IpAddress>{}),
            std::vector<IpAddress>{ip("198.18.0.1")});
  EXPECT_EQ(dp->listMasquerades().value_or(std::vector<MasqueradeEntry>{}).size(), 2u);
  EXPECT_TRUE(dp->listEndpoints().value_or(std::vector<EndpointEntry>{{}}).empty());
  EXPECT_TRUE(dp->listEndpointAttachments().value_or(std::vector<int>{0}).empty());
}

TEST_F(DatapathTopology, TheRuleMapsHoldIpv6BesideIpv4) {
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  auto check = [](const Status& ok) { ASSERT_TRUE(ok) << ok.error().str(); };
  check(dp->setUplinkAddress6(ip("fd00:18::1")));
  check(dp->setHairpinAddress(ip("fd00:88::1")));
  auto c6 = dp->config6();
  ASSERT_TRUE(c6) << c6.error().str();
  EXPECT_EQ(c6->first, ip("fd00:18::1"));
  EXPECT_EQ(c6->second, ip("fd00:88::1"));
  // An IPv6 expose on any address and one on an explicit address, beside the IPv4 one on the
  // same port: the family keeps the "any" entries apart.
  check(dp->addExpose(ExposeEntry{IPPROTO_TCP, {}, 6000, ip("fd00:88::2"), 8080, 7}));
  check(dp->addExpose(ExposeEntry{IPPROTO_UDP, ip("fd00:18::1"), 6001, ip("fd00:88::2"), 53, 8}));
  EXPECT_FALSE(dp->addExpose(ExposeEntry{IPPROTO_TCP, ip("198.18.0.1"), 6002, ip("fd00:88::2"),
                                         80, 9}))
      << "a host address of the other family";
  auto exposes = dp->listExposes();
  ASSERT_TRUE(exposes) << exposes.error().str();
  ASSERT_EQ(exposes->size(), 3u);
  EXPECT_EQ((*exposes)[0], (ExposeEntry{IPPROTO_TCP, {}, 6000, ip("10.88.0.2"), 8080, 7}));
  EXPECT_EQ((*exposes)[1], (ExposeEntry{IPPROTO_TCP, {}, 6000, ip("fd00:88::2"), 8080, 7}));
  EXPECT_EQ((*exposes)[2], (ExposeEntry{IPPROTO_UDP, ip("fd00:18::1"), 6001, ip("fd00:88::2"),
                                        53, 8}));
  // Local addresses and endpoints go to the gw_*_v6 twins, listed with the IPv4 ones.
  check(dp->addLocalAddress(ip("fd00:18::1")));
  std::array<uint8_t, 6> peer{2, 0, 0, 0, 0, 2};
  std::array<uint8_t, 6> host{2, 0, 0, 0, 0, 1};
  check(dp->addEndpoint(ip("fd00:88::2"), endpoint_, peer, host));
  check(dp->addMasquerade(*IpPrefix::parse("fd00:88::/64"), 0));
  check(dp->addMasquerade(*IpPrefix::parse("2001:db8::1/128"), endpoint_, true));
  auto local = dp->listLocalAddresses();
  ASSERT_TRUE(local);
  EXPECT_EQ(*local, (std::vector<IpAddress>{ip("10.88.0.1"), ip("198.18.0.1"), ip("fd00:18::1")}));
  auto endpoints = dp->listEndpoints();
  ASSERT_TRUE(endpoints);
  EXPECT_EQ(*endpoints, (std::vector<EndpointEntry>{{ip("fd00:88::2"), endpoint_, peer, host}}));
  auto masq = dp->listMasquerades();
  ASSERT_TRUE(masq);
  EXPECT_EQ(*masq, (std::vector<MasqueradeEntry>{{*IpPrefix::parse("10.88.0.0/16"), 0},
                                                 {*IpPrefix::parse("2001:db8::1/128"), endpoint_,
                                                  true},
                                                 {*IpPrefix::parse("fd00:88::/64"), 0}}));
  // The raw keys are what the BPF side matches on.
  gw_expose_key k{};
  std::memcpy(k.daddr.bytes, ip("fd00:18::1").bytes.data(), 16);
  k.dport = htons(6001);
  k.proto = IPPROTO_UDP;
  k.family = GW_AF_INET6;
  gw_expose_value v{};
  ASSERT_EQ(bpf_map_lookup_elem(dp->mapFd("gw_expose_v4"), &k, &v), 0);
  EXPECT_EQ(std::memcmp(v.target_addr.bytes, ip("fd00:88::2").bytes.data(), 16), 0);
  gw_addr local6{};
  std::memcpy(local6.bytes, ip("fd00:18::1").bytes.data(), 16);
  uint32_t one = 0;
  ASSERT_EQ(bpf_map_lookup_elem(dp->mapFd("gw_local_v6"), &local6, &one), 0);
  EXPECT_EQ(one, 1u);

  check(dp->deleteExpose({IPPROTO_TCP, AF_INET6, {}, 6000}));
  EXPECT_EQ(dp->listExposes().value_or(std::vector<ExposeEntry>{}).size(), 2u)
      << "the IPv4 entry of the port stays";
  check(dp->deleteEndpoint(ip("fd00:88::2")));
  check(dp->deleteLocalAddress(ip("fd00:18::1")));
  check(dp->deleteMasquerade(*IpPrefix::parse("fd00:88::/64")));
  EXPECT_TRUE(dp->listEndpoints().value_or(std::vector<EndpointEntry>{{}}).empty());
  EXPECT_EQ(dp->listMasquerades().value_or(std::vector<MasqueradeEntry>{}).size(), 2u);
  check(dp->setUplinkAddress6({}));
  EXPECT_EQ(dp->config6().value_or(std::pair<IpAddress, IpAddress>{}).first, IpAddress{});
}

TEST_F(DatapathTopology, XdpModes) {
  DatapathConfig config;
  config.xdp = XdpMode::Generic;
  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  configure(*dp);
  EXPECT_EQ(dp->uplinkXdpMode(), XdpMode::Generic);
  EXPECT_NE(inGateway("ip -d link show dev up0").out.find("xdpgeneric"), std::string::npos);
  startEchoServer(*server_, "10.88.0.2", 8080);
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  ASSERT_TRUE(dp->teardown());
  EXPECT_FALSE(hasXdp("up0"));

  config.xdp = XdpMode::Native;
  dp = openDatapath(config);
  ASSERT_TRUE(dp);
  configure(*dp);
  EXPECT_EQ(dp->uplinkXdpMode(), XdpMode::Native);
  EXPECT_TRUE(hasXdp("up0"));
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  ASSERT_TRUE(dp->teardown());

  config.xdp = XdpMode::Off;
  dp = openDatapath(config);
  ASSERT_TRUE(dp);
  configure(*dp);
  EXPECT_EQ(dp->uplinkXdpMode(), XdpMode::Off);
  EXPECT_FALSE(hasXdp("up0"));
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
}

TEST_F(DatapathTopology, PinnedRestartKeepsFlowsAndSwapsPrograms) {
  TempBpffs bpffs;
  DatapathConfig config;
  config.bpffsDir = bpffs.dir() + "/gw";
  // Mount a bpffs on the private dir, pin into a subdir of it.
  auto mounted = ensureBpffs(bpffs.dir());
  ASSERT_TRUE(mounted) << mounted.error().str();

  auto dp = openDatapath(config);
  ASSERT_TRUE(dp);
  EXPECT_FALSE(dp->adopted());
  configure(*dp);
  startEchoServer(*server_, "10.88.0.2", 8080);
  ASSERT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");
  EXPECT_TRUE(std::filesystem::exists(config.bpffsDir + "/gw_ct_v4"));

  // One TCP connection that lives through the whole restart: echo, pause, echo again.
  auto ok = dp->addExpose(ExposeEntry{IPPROTO_TCP, {}, 6001, ip("10.88.0.2"), 9090, 8});
  ASSERT_TRUE(ok) << ok.error().str();
  servers_.push_back(Child::spawn({"ip", "netns", "exec", server_->name(), "socat",
                                   "TCP-LISTEN:9090,bind=10.88.0.2,reuseaddr,fork", "EXEC:cat"}));
  ASSERT_TRUE(
      test::waitFor([&] { return server_->sh("ss -Hltn 'sport = :9090' | grep -q .").ok(); }));
  std::string longLog = "/tmp/" + client_->name() + "-long.log";
  logs_.push_back(longLog);
  const char* longClient = R"(
import socket, sys, time
s = socket.create_connection(('198.18.0.1', 6001), timeout=5)
s.sendall(b'a'); assert s.recv(1) == b'a'
time.sleep(3)
s.sendall(b'b'); assert s.recv(1) == b'b'
print('survived')
)";
  Child longConn = Child::spawn(
      {"ip", "netns", "exec", client_->name(), "/usr/bin/python3", "-u", "-c", longClient},
      longLog);
  auto longFlow = [&] {
    auto flows = dp->listFlows();
    return flows && std::any_of(flows->begin(), flows->end(),
                                [](const Flow& f) { return f.orig.dport == 6001; });
  };
  ASSERT_TRUE(test::waitFor(longFlow, 5s));

  // "Crash": the object goes, the hooks and pins stay, traffic keeps flowing.
  dp.reset();
  EXPECT_TRUE(hasTcFilter("up0", "ingress"));
  EXPECT_TRUE(hasTcFilter("ep0", "ingress"));
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");

  dp = openDatapath(config);
  ASSERT_TRUE(dp);
  EXPECT_TRUE(dp->adopted());
  EXPECT_TRUE(findFlow(*dp, IPPROTO_TCP, ip("198.18.0.2"))) << "flows lost across restart";
  EXPECT_TRUE(longFlow());
  auto exposes = dp->listExposes();
  ASSERT_TRUE(exposes);
  EXPECT_EQ(exposes->size(), 2u);
  // Re-attaching swaps programs in place; nothing is duplicated.
  configure(*dp);
  ASSERT_TRUE(test::waitFor([&] { return !longConn.running(); }, 10s));
  auto survived = test::sh("cat " + longLog);
  EXPECT_NE(survived.out.find("survived"), std::string::npos) << survived.out;
  EXPECT_EQ(trim(inGateway("tc filter show dev up0 ingress | grep -c 'handle 0x'").out), "1");
  EXPECT_EQ(fetch("http://198.18.0.1:6000/"), "198.18.0.2");

  ok = dp->teardown();
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_FALSE(hasTcFilter("up0", "ingress"));
  EXPECT_FALSE(hasTcFilter("ep0", "ingress"));
  EXPECT_FALSE(hasClsact("up0"));
  EXPECT_FALSE(hasXdp("up0"));
  EXPECT_FALSE(std::filesystem::exists(config.bpffsDir));
  EXPECT_EQ(fetch("http://198.18.0.1:6000/", 2s), "");
}

TEST_F(DatapathTopology, RestartTeardownRemovesWhatAnEarlierRunAttached) {
  TempBpffs bpffs;
  DatapathConfig config;
  config.bpffsDir = bpffs.dir();
  auto dp = openDatapath(config); // open mounts the bpffs itself
  ASSERT_TRUE(dp);
  configure(*dp);
  dp.reset();
  ASSERT_TRUE(hasClsact("up0"));
  // A new run that never re-attaches still knows the hooks are ours.
  dp = openDatapath(config);
  ASSERT_TRUE(dp);
  ASSERT_TRUE(dp->teardown());
  EXPECT_FALSE(hasTcFilter("up0", "ingress"));
  EXPECT_FALSE(hasClsact("up0"));
  EXPECT_FALSE(hasClsact("ep0"));
  EXPECT_FALSE(hasXdp("up0"));
}

// A cgroup of our own under the cgroup2 mount, removed on destruction (when empty).
class TestCgroup {
public:
  TestCgroup() {
    auto root = findCgroup2();
    if (root) {
      path_ = *root + "/" + test::prefix() + "dp";
      std::filesystem::create_directory(path_);
    }
  }
  ~TestCgroup() {
    if (!path_.empty()) {
      test::waitFor([&] { return ::rmdir(path_.c_str()) == 0 || errno == ENOENT; }, 5s);
    }
  }
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

TEST_F(DatapathTopology, HostLocalAccessThroughCgroupHooks) {
  TestCgroup cgroup;
  ASSERT_FALSE(cgroup.path().empty()) << "no cgroup2";
  auto dp = openDatapath();
  ASSERT_TRUE(dp);
  configure(*dp);
  startEchoServer(*server_, "10.88.0.2", 8080);
  auto nsFd = openNamespace(gateway_->name());
  ASSERT_TRUE(nsFd) << nsFd.error().str();
  auto cookie = namespaceCookie(nsFd->get());
  ASSERT_TRUE(cookie) << cookie.error().str();

  auto ok = dp->enableHostLocal(*cookie, cgroup.path());
  ASSERT_TRUE(ok) << ok.error().str();
  auto inCgroup = [&](const TestNamespace& ns, const std::string& url) {
    // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup2 mount under it.
    auto r = test::run({"nsenter", "--net=/run/netns/" + ns.name(), "/bin/sh", "-c",
                        "echo $$ > " + cgroup.path() + "/cgroup.procs && exec curl -sS "
                        "--max-time 3 " + url});
    if (!r.ok()) {
      std::cerr << "curl " << url << " in " << ns.name() << ": " << r.err << "\n";
    }
    return r.ok() ? trim(r.out) : "";
  };
  // A gateway-host socket reaching an exposed port on loopback or a local address goes
  // straight to the target; the server sees the gateway's own address on that link.
  EXPECT_EQ(inCgroup(*gateway_, "http://127.0.0.1:6000/"), "10.88.0.1");
  EXPECT_EQ(inCgroup(*gateway_, "http://198.18.0.1:6000/"), "10.88.0.1");
  // Outside the cgroup, or in another namespace, nothing is rewritten.
  EXPECT_FALSE(inGateway("curl -sS --max-time 3 http://127.0.0.1:6000/").ok());
  EXPECT_EQ(inCgroup(*client_, "http://127.0.0.1:6000/"), "");

  ok = dp->disableHostLocal();
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(inCgroup(*gateway_, "http://127.0.0.1:6000/"), "");
  // enable again, then teardown must take the links away too.
  ok = dp->enableHostLocal(*cookie, cgroup.path());
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(inCgroup(*gateway_, "http://127.0.0.1:6000/"), "10.88.0.1");
  ASSERT_TRUE(dp->teardown());
  EXPECT_EQ(inCgroup(*gateway_, "http://127.0.0.1:6000/"), "");
  auto progs = test::sh("bpftool cgroup show " + cgroup.path());
  EXPECT_EQ(progs.out.find("gw_connect4"), std::string::npos) << progs.out;
}

} // namespace
} // namespace gw
