// SPDX-License-Identifier: MIT
// The IPv6 data path on crafted packets: DNAT6 and NAT66 (TCP, UDP, ICMPv6 echo), hairpin,
// extension headers, fragments and peer redirect. As BpfProgramTest: verdict, exact output
// bytes (built translated, so their checksums are the reference), checksums and map state.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>

#include "tests/bpf/BpfHarness.h"
#include "tests/bpf/PacketBuilder.h"

namespace gw::test {
namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIcmp6 = 58;
constexpr uint32_t kRule = 7;
constexpr uint8_t kEchoRequest = 128;
constexpr uint8_t kEchoReply = 129;

// The IPv4 topology of BpfProgramTest, and its IPv6 twin: fd00:88::/64 behind the bridge.
const uint32_t kUplink4 = ipv4("198.51.100.1");
const uint32_t kNs1v4 = ipv4("10.88.0.2");
const Addr6 kClient = ipv6("2001:db8:1::5");
const Addr6 kUplink = ipv6("2001:db8:2::1");
const Addr6 kBridge = ipv6("fd00:88::1");
const Addr6 kNs1 = ipv6("fd00:88::2");
const Addr6 kNs2 = ipv6("fd00:88::3");
const Addr6 kRemote = ipv6("2001:db8:9::9");
const Addr6 kAny{};

constexpr uint8_t kNs1Mac[6] = {0x02, 0x11, 0x11, 0x11, 0x11, 0x01};
constexpr uint8_t kNs1HostMac[6] = {0x02, 0x22, 0x22, 0x22, 0x22, 0x01};

Ip6 ip6(const Addr6& s, const Addr6& d, std::vector<Ext6> ext = {}) {
  Ip6 r;
  r.saddr = s;
  r.daddr = d;
  r.ext = std::move(ext);
  return r;
}

class Ipv6ProgramTest : public ::testing::Test {
protected:
  static gw_config baseConfig() {
    gw_config cfg{};
    cfg.uplink_ifindex = 1; // PROG_TEST_RUN runs skbs on loopback
    cfg.uplink_addr.v4 = kUplink4;
    cfg.snat_port_min = 61000;
    cfg.snat_port_max = 65535;
    return cfg;
  }

  void SetUp() override {
    h_ = std::make_unique<BpfHarness>();
    ASSERT_TRUE(h_->loadError().empty()) << "BPF programs do not load: " << h_->loadError();
    h_->setConfig(baseConfig());
    h_->setConfig6(kUplink, kBridge);
    h_->addLocal(kUplink4);
    h_->addLocal6(kUplink);
    h_->addLocal6(kBridge);
    // one rule, both families, as `gwctl expose 8080 ns1:80` installs it
    h_->addExpose(0, 8080, kTcp, kNs1v4, 80, kRule);
    h_->addExpose6(kAny, 8080, kTcp, kNs1, 80, kRule);
    h_->addExpose6(kAny, 5353, kUdp, kNs1, 53, kRule + 1);
    h_->addMasq6(ipv6("fd00:88::"), 64);
  }

  void expectRun(Prog prog, const Bytes& in, uint32_t verdict, const Bytes& expected) {
    RunResult r = h_->run(prog, in);
    ASSERT_EQ(r.err, 0) << "test run failed";
    EXPECT_EQ(r.verdict, verdict);
    EXPECT_EQ(r.out, expected) << "got:\n" << hexDump(r.out) << "\nwant:\n" << hexDump(expected);
    Decoded6 d = decode6(r.out);
    EXPECT_TRUE(d.ipv6);
    EXPECT_TRUE(d.l4CsumOk) << "IPv6 l4 checksum";
  }

  // Runs and decodes a translation whose port the test cannot know in advance.
  Decoded6 runDecoded(Prog prog, const Bytes& in) {
    RunResult r = h_->run(prog, in);
    EXPECT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, static_cast<uint32_t>(TC_ACT_OK));
    Decoded6 d = decode6(r.out);
    EXPECT_TRUE(d.ipv6 && d.l4CsumOk);
    return d;
  }

  std::unique_ptr<BpfHarness> h_;
};

// ---- DNAT6: an exposed port reached over IPv6 ----

TEST_F(Ipv6ProgramTest, DnatFirstPacketEstablishedAndReply) {
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kClient, kNs1), 40001, 80, kTcpSyn));
  auto origKey = BpfHarness::key6(kClient, kUplink, 40001, 8080, kTcp);
  auto replyKey = BpfHarness::key6(kNs1, kClient, 80, 40001, kTcp);
  auto orig = h_->ct(origKey);
  auto reply = h_->ct(replyKey);
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->nat, GW_NAT_DNAT);
  EXPECT_EQ(orig->rule_id, kRule);
  EXPECT_EQ(0, std::memcmp(orig->new_daddr.bytes, kNs1.data(), 16));
  EXPECT_EQ(0, std::memcmp(&orig->peer, &replyKey, sizeof(replyKey)));
  EXPECT_EQ(0, std::memcmp(reply->new_saddr.bytes, kUplink.data(), 16));
  EXPECT_EQ(0, std::memcmp(&reply->peer, &origKey, sizeof(origKey)));
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 1u);

  expectRun(Prog::EndpointIngress, tcp6Frame(ip6(kNs1, kClient), 80, 40001, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcp6Frame(ip6(kUplink, kClient), 8080, 40001, kTcpSyn | kTcpAck));
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpAck, {1, 2}),
            TC_ACT_OK, tcp6Frame(ip6(kClient, kNs1), 40001, 80, kTcpAck, {1, 2}));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 2u);
  EXPECT_EQ(h_->rule(kRule).connections, 1u);
  EXPECT_EQ(h_->ctCount(), 2u);
}

TEST_F(Ipv6ProgramTest, DnatUdp) {
  expectRun(Prog::UplinkIngress, udp6Frame(ip6(kClient, kUplink), 40009, 5353, {9, 8, 7}),
            TC_ACT_OK, udp6Frame(ip6(kClient, kNs1), 40009, 53, {9, 8, 7}));
  expectRun(Prog::EndpointIngress, udp6Frame(ip6(kNs1, kClient), 53, 40009, {6}), TC_ACT_OK,
            udp6Frame(ip6(kUplink, kClient), 5353, 40009, {6}));
}

// One rule, two families: each packet reaches the target of its own family.
TEST_F(Ipv6ProgramTest, EachFamilyReachesItsOwnTarget) {
  Ip4 v4;
  v4.saddr = ipv4("203.0.113.5");
  v4.daddr = kUplink4;
  Ip4 v4Out = v4;
  v4Out.daddr = kNs1v4;
  RunResult r = h_->run(Prog::UplinkIngress, tcpFrame(v4, 40001, 8080, kTcpSyn));
  EXPECT_EQ(r.out, tcpFrame(v4Out, 40001, 80, kTcpSyn));
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kClient, kNs1), 40001, 80, kTcpSyn));
  EXPECT_EQ(h_->ctCount(), 4u);
}

// An address-limited rule (--host-ip) answers there only; the gateway's other addresses and
// addresses that are not its own are left alone.
TEST_F(Ipv6ProgramTest, DnatExactAddressAndLocalCheck) {
  const Addr6 kOther = ipv6("2001:db8:2::77");
  h_->addExpose6(kUplink, 9000, kTcp, kNs2, 90, kRule + 2);
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink), 40001, 9000, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kClient, kNs2), 40001, 90, kTcpSyn));
  Bytes viaBridge = tcp6Frame(ip6(kClient, kBridge), 40001, 9000, kTcpSyn);
  expectRun(Prog::UplinkIngress, viaBridge, TC_ACT_OK, viaBridge);
  Bytes notOurs = tcp6Frame(ip6(kClient, kOther), 40001, 8080, kTcpSyn);
  expectRun(Prog::UplinkIngress, notOurs, TC_ACT_OK, notOurs);
}

// Hop-by-hop and destination options before TCP: the transport header is found behind them
// and the checksum (pseudo header) stays right.
TEST_F(Ipv6ProgramTest, DnatBehindExtensionHeaders) {
  std::vector<Ext6> chain = {hopByHop(), destOptions({1, 2, 0, 0})};
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink, chain), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kClient, kNs1, chain), 40001, 80, kTcpSyn));
}

// ---- NAT66: masquerade ----

TEST_F(Ipv6ProgramTest, SnatKeepsPortThenReplies) {
  expectRun(Prog::UplinkEgress, tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpSyn), TC_ACT_OK,
            tcp6Frame(ip6(kUplink, kRemote), 40002, 443, kTcpSyn));
  auto orig = h_->ct(BpfHarness::key6(kNs1, kRemote, 40002, 443, kTcp));
  auto reply = h_->ct(BpfHarness::key6(kRemote, kUplink, 443, 40002, kTcp));
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->nat, GW_NAT_SNAT);
  EXPECT_EQ(0, std::memcmp(reply->new_daddr.bytes, kNs1.data(), 16));
  expectRun(Prog::UplinkIngress,
            tcp6Frame(ip6(kRemote, kUplink), 443, 40002, kTcpSyn | kTcpAck), TC_ACT_OK,
            tcp6Frame(ip6(kRemote, kNs1), 443, 40002, kTcpSyn | kTcpAck));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_SNAT), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 1u);
  // masquerade flows keep their source at the veth: the uplink translates them
  Bytes fromNs = tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpAck);
  expectRun(Prog::EndpointIngress, fromNs, TC_ACT_OK, fromNs);
}

TEST_F(Ipv6ProgramTest, SnatClashGetsPortInRangeAndKeepsIt) {
  runDecoded(Prog::UplinkEgress, udp6Frame(ip6(kNs1, kRemote), 40002, 53, {1}));
  Decoded6 d = runDecoded(Prog::UplinkEgress, udp6Frame(ip6(kNs2, kRemote), 40002, 53, {2}));
  EXPECT_TRUE(d.saddr == kUplink);
  EXPECT_GE(d.sport, 61000);
  EXPECT_LE(d.sport, 65535);
  expectRun(Prog::UplinkIngress, udp6Frame(ip6(kRemote, kUplink), 53, d.sport, {3}), TC_ACT_OK,
            udp6Frame(ip6(kRemote, kNs2), 53, 40002, {3}));
  // endpoint-independent mapping: the port it got holds towards another destination
  Decoded6 later =
      runDecoded(Prog::UplinkEgress, udp6Frame(ip6(kNs2, kClient), 40002, 123, {4}));
  EXPECT_EQ(later.sport, d.sport);
}

TEST_F(Ipv6ProgramTest, SourcesOutsideTheMasqueradePassUntouched) {
  Bytes other = tcp6Frame(ip6(ipv6("fd00:99::2"), kRemote), 40002, 443, kTcpSyn);
  expectRun(Prog::UplinkEgress, other, TC_ACT_OK, other);
  // the gateway host's own link-local traffic is never translated
  Bytes linkLocal = udp6Frame(ip6(ipv6("fe80::1"), kRemote), 546, 547, {1});
  expectRun(Prog::UplinkEgress, linkLocal, TC_ACT_OK, linkLocal);
  EXPECT_EQ(h_->ctCount(), 0u);
}

TEST_F(Ipv6ProgramTest, Icmp6EchoSnat) {
  expectRun(Prog::UplinkEgress, icmp6EchoFrame(ip6(kNs1, kRemote), kEchoRequest, 0x4242, 1, {1}),
            TC_ACT_OK, icmp6EchoFrame(ip6(kUplink, kRemote), kEchoRequest, 0x4242, 1, {1}));
  expectRun(Prog::UplinkIngress, icmp6EchoFrame(ip6(kRemote, kUplink), kEchoReply, 0x4242, 1, {1}),
            TC_ACT_OK, icmp6EchoFrame(ip6(kRemote, kNs1), kEchoReply, 0x4242, 1, {1}));
  auto orig = h_->ct(BpfHarness::key6(kNs1, kRemote, 0x4242, 0, kIcmp6));
  ASSERT_TRUE(orig);
  // the same id from another namespace gets another id
  Decoded6 d = runDecoded(Prog::UplinkEgress,
                          icmp6EchoFrame(ip6(kNs2, kRemote), kEchoRequest, 0x4242, 1));
  EXPECT_GE(d.sport, 61000) << "the echo id";
  expectRun(Prog::UplinkIngress, icmp6EchoFrame(ip6(kRemote, kUplink), kEchoReply, d.sport, 1),
            TC_ACT_OK, icmp6EchoFrame(ip6(kRemote, kNs2), kEchoReply, 0x4242, 1));
}

// Neighbour discovery, router messages and echo replies without a flow are never touched.
TEST_F(Ipv6ProgramTest, NeighbourDiscoveryAndStrayRepliesAreNeverTouched) {
  for (uint8_t type : {133, 134, 135, 136, 137}) {
    Bytes nd = ethFrame(
        ip6Packet(ip6(kNs1, kRemote), kIcmp6,
                  icmp6Message(ip6(kNs1, kRemote), type, 0, Bytes(20, 0))),
        kEtherTypeIpv6);
    for (Prog prog : {Prog::UplinkEgress, Prog::UplinkIngress, Prog::EndpointIngress}) {
      expectRun(prog, nd, TC_ACT_OK, nd);
    }
  }
  Bytes stray = icmp6EchoFrame(ip6(kNs1, kRemote), kEchoReply, 7, 1);
  expectRun(Prog::UplinkEgress, stray, TC_ACT_OK, stray);
  EXPECT_EQ(h_->ctCount(), 0u);
}

// ---- hairpin and namespace to namespace ----

TEST_F(Ipv6ProgramTest, HairpinSnatsToTheBridgeAddress) {
  expectRun(Prog::EndpointIngress, tcp6Frame(ip6(kNs1, kUplink), 40005, 8080, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kBridge, kNs1), 40005, 80, kTcpSyn));
  auto orig = h_->ct(BpfHarness::key6(kNs1, kUplink, 40005, 8080, kTcp));
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->nat, GW_NAT_DNAT | GW_NAT_SNAT);
  expectRun(Prog::EndpointIngress, tcp6Frame(ip6(kNs1, kBridge), 80, 40005, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcp6Frame(ip6(kUplink, kNs1), 8080, 40005, kTcpSyn | kTcpAck));
}

TEST_F(Ipv6ProgramTest, NamespaceToNamespaceThroughTheUplinkAddress) {
  expectRun(Prog::EndpointIngress, tcp6Frame(ip6(kNs2, kUplink), 40004, 8080, kTcpSyn),
            TC_ACT_OK, tcp6Frame(ip6(kNs2, kNs1), 40004, 80, kTcpSyn));
  expectRun(Prog::EndpointIngress, tcp6Frame(ip6(kNs1, kNs2), 80, 40004, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcp6Frame(ip6(kUplink, kNs2), 8080, 40004, kTcpSyn | kTcpAck));
}

// RFC 4787 REQ-9 for IPv6: a namespace reaches another's mapping through the uplink address.
TEST_F(Ipv6ProgramTest, HairpinToAMasqueradeMapping) {
  expectRun(Prog::UplinkEgress, udp6Frame(ip6(kNs1, kRemote), 40002, 3478, {1}), TC_ACT_OK,
            udp6Frame(ip6(kUplink, kRemote), 40002, 3478, {1}));
  expectRun(Prog::EndpointIngress, udp6Frame(ip6(kNs2, kUplink), 5000, 40002, {2}), TC_ACT_OK,
            udp6Frame(ip6(kBridge, kNs1), 5000, 40002, {2}));
  Bytes unsolicited = udp6Frame(ip6(kClient, kUplink), 9, 40002, {5});
  expectRun(Prog::UplinkIngress, unsolicited, TC_ACT_OK, unsolicited);
}

// ---- ICMPv6 errors about translated flows (RFC 4443) ----

const Addr6 kRouter = ipv6("2001:db8:9::fe");

// PMTU discovery from a namespace: "packet too big" about its masqueraded TCP flow comes
// back to the namespace with the quote as the namespace sent it.
TEST_F(Ipv6ProgramTest, PacketTooBigAboutAMasqueradedFlow) {
  h_->run(Prog::UplinkEgress, tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpAck, Bytes(64, 1)));
  Bytes quoteOut = l3Of(tcp6Frame(ip6(kUplink, kRemote), 40002, 443, kTcpAck, Bytes(64, 1)));
  Bytes quoteIn = l3Of(tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpAck, Bytes(64, 1)));
  expectRun(Prog::UplinkIngress, icmp6ErrorFrame(ip6(kRouter, kUplink), 2, 0, quoteOut),
            TC_ACT_OK, icmp6ErrorFrame(ip6(kRouter, kNs1), 2, 0, quoteIn));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_ICMP_ERROR), 1u);
}

// traceroute -6 from a namespace: UDP probes with hop limit 1, time exceeded from a router.
TEST_F(Ipv6ProgramTest, TimeExceededAboutAMasqueradedUdpProbe) {
  Ip6 probe = ip6(kNs1, kRemote);
  probe.hopLimit = 1;
  h_->run(Prog::UplinkEgress, udp6Frame(probe, 40003, 33434, {0, 1, 2, 3}));
  Ip6 sent = probe;
  sent.saddr = kUplink;
  expectRun(Prog::UplinkIngress,
            icmp6ErrorFrame(ip6(kRouter, kUplink), 3, 0,
                            l3Of(udp6Frame(sent, 40003, 33434, {0, 1, 2, 3}))),
            TC_ACT_OK,
            icmp6ErrorFrame(ip6(kRouter, kNs1), 3, 0,
                            l3Of(udp6Frame(probe, 40003, 33434, {0, 1, 2, 3}))));
}

// ping -6 -t 1 from a namespace: the quoted echo request gets its own id back.
TEST_F(Ipv6ProgramTest, TimeExceededAboutAMasqueradedEcho) {
  h_->run(Prog::UplinkEgress, icmp6EchoFrame(ip6(kNs1, kRemote), kEchoRequest, 0x77, 5));
  h_->run(Prog::UplinkEgress, icmp6EchoFrame(ip6(kNs2, kRemote), kEchoRequest, 0x77, 5));
  auto reply = h_->ct(BpfHarness::key6(kRemote, kUplink, 0x77, 0, kIcmp6));
  ASSERT_TRUE(reply) << "ns1 kept its id";
  // ns2's request left with another id: the error about it reaches ns2 with 0x77
  Decoded6 d = runDecoded(Prog::UplinkEgress,
                          icmp6EchoFrame(ip6(kNs2, kRemote), kEchoRequest, 0x77, 6));
  ASSERT_NE(d.sport, 0x77);
  expectRun(Prog::UplinkIngress,
            icmp6ErrorFrame(ip6(kRouter, kUplink), 3, 0,
                            l3Of(icmp6EchoFrame(ip6(kUplink, kRemote), kEchoRequest, d.sport, 6))),
            TC_ACT_OK,
            icmp6ErrorFrame(ip6(kRouter, kNs2), 3, 0,
                            l3Of(icmp6EchoFrame(ip6(kNs2, kRemote), kEchoRequest, 0x77, 6))));
}

// The exposed UDP server answers "port unreachable": the client sees it from the address it
// sent to, about the datagram as it sent it.
TEST_F(Ipv6ProgramTest, PortUnreachableFromTheTargetOfAnExpose) {
  h_->run(Prog::UplinkIngress, udp6Frame(ip6(kClient, kUplink), 40009, 5353, {1, 2}));
  expectRun(Prog::EndpointIngress,
            icmp6ErrorFrame(ip6(kNs1, kClient), 1, 4,
                            l3Of(udp6Frame(ip6(kClient, kNs1), 40009, 53, {1, 2}))),
            TC_ACT_OK,
            icmp6ErrorFrame(ip6(kUplink, kClient), 1, 4,
                            l3Of(udp6Frame(ip6(kClient, kUplink), 40009, 5353, {1, 2}))));
}

// A short quote (48 bytes: the header and 8 bytes of TCP, no checksum) still translates.
TEST_F(Ipv6ProgramTest, AShortQuoteWithoutItsChecksumTranslates) {
  h_->run(Prog::UplinkEgress, tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpSyn));
  expectRun(Prog::UplinkIngress,
            icmp6ErrorFrame(ip6(kRouter, kUplink), 1, 0,
                            l3Of(tcp6Frame(ip6(kUplink, kRemote), 40002, 443, kTcpSyn)), 48),
            TC_ACT_OK,
            icmp6ErrorFrame(ip6(kRouter, kNs1), 1, 0,
                            l3Of(tcp6Frame(ip6(kNs1, kRemote), 40002, 443, kTcpSyn)), 48));
}

TEST_F(Ipv6ProgramTest, ErrorsAboutNoFlowPassUntouched) {
  Bytes stray = icmp6ErrorFrame(ip6(kRouter, kUplink), 2, 0,
                                l3Of(tcp6Frame(ip6(kUplink, kRemote), 40111, 443, kTcpSyn)));
  expectRun(Prog::UplinkIngress, stray, TC_ACT_OK, stray);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_ICMP_ERROR), 0u);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), 1u);
}

// ---- refusals: no SNAT port left (the IPv4 answers, in IPv6) ----

const Addr6 kNs3 = ipv6("fd00:88::4");

class Ipv6ExhaustionTest : public Ipv6ProgramTest {
protected:
  // One SNAT port (61000): ns1 keeps its own port, ns2 takes 61000, ns3 finds nothing.
  void exhaust(const std::function<Bytes(const Addr6&)>& from) {
    gw_config cfg = baseConfig();
    cfg.snat_port_max = 61000;
    h_->setConfig(cfg);
    ASSERT_EQ(h_->run(Prog::UplinkEgress, from(kNs1)).verdict, TC_ACT_OK);
    ASSERT_EQ(h_->run(Prog::UplinkEgress, from(kNs2)).verdict, TC_ACT_OK);
    ASSERT_EQ(h_->ctCount(), 4u);
  }
};

TEST_F(Ipv6ExhaustionTest, TcpSynGetsRstAck) {
  exhaust([](const Addr6& src) { return tcp6Frame(ip6(src, kRemote), 40002, 443, kTcpSyn); });
  Ip6 back = ip6(kRemote, kNs3);
  Tcp rst{.sport = 443, .dport = 40002, .seq = 0, .ack = kTcpDefaultSeq + 1,
          .flags = kTcpRst | kTcpAck};
  expectRun(Prog::UplinkEgress, tcp6Frame(ip6(kNs3, kRemote), 40002, 443, kTcpSyn),
            TC_ACT_REDIRECT,
            swapMacs(ethFrame(ip6Packet(back, kTcp, tcp6Segment(back, rst)), kEtherTypeIpv6)));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_SNAT_EXHAUSTED), 1u);
  EXPECT_EQ(h_->ctCount(), 4u) << "no half-flow left behind";
}

TEST_F(Ipv6ExhaustionTest, UdpAndEchoGetIcmp6Prohibited) {
  exhaust([](const Addr6& src) { return udp6Frame(ip6(src, kRemote), 40002, 53, {1}); });
  Bytes in = udp6Frame(ip6(kNs3, kRemote), 40002, 53, Bytes(100, 0x5a));
  expectRun(Prog::UplinkEgress, in, TC_ACT_REDIRECT,
            swapMacs(icmp6ErrorFrame(ip6(kRemote, kNs3), 1, 1, l3Of(in), 48)));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_SNAT_EXHAUSTED), 1u);
}

// ---- fragments ----

// The first fragment opens (or finds) the flow; a later one follows it by the fragment
// header's identification, addresses only.
TEST_F(Ipv6ProgramTest, LaterFragmentsFollowTheirFlow) {
  Bytes udp = udp6Datagram(ip6(kClient, kUplink), 40009, 5353, Bytes(40, 7));
  Bytes first(udp.begin(), udp.begin() + 24);
  Bytes rest(udp.begin() + 24, udp.end());
  Bytes udpOut = udp6Datagram(ip6(kClient, kNs1), 40009, 53, Bytes(40, 7));
  Bytes firstOut(udpOut.begin(), udpOut.begin() + 24);

  auto frag = [](const Addr6& s, const Addr6& d, uint16_t off, bool more, const Bytes& l4) {
    return ethFrame(ip6Packet(ip6(s, d, {fragmentHeader(off, more, 0xabcdef01)}), kUdp, l4),
                    kEtherTypeIpv6);
  };
  RunResult r = h_->run(Prog::UplinkIngress, frag(kClient, kUplink, 0, true, first));
  EXPECT_EQ(r.out, frag(kClient, kNs1, 0, true, firstOut));
  r = h_->run(Prog::UplinkIngress, frag(kClient, kUplink, 24, false, rest));
  EXPECT_EQ(r.out, frag(kClient, kNs1, 24, false, rest));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 2u);
}

// RFC 4787 REQ-14 for IPv6: a later fragment before its first is held as it came (key: the
// datagram's addresses, 32-bit identification and protocol, and the offset) until the first
// comes; the first's program then names the datagram on gw_frag_events.
TEST_F(Ipv6ProgramTest, ALaterFragmentBeforeItsFirstIsHeldUntilTheFirstComes) {
  constexpr uint32_t kId = 0x10203040;
  Bytes udp = udp6Datagram(ip6(kClient, kUplink), 40009, 5353, Bytes(40, 7));
  Bytes udpOut = udp6Datagram(ip6(kClient, kNs1), 40009, 53, Bytes(40, 7));
  auto frag = [](const Addr6& s, const Addr6& d, uint16_t off, bool more, Bytes l4) {
    return ethFrame(ip6Packet(ip6(s, d, {fragmentHeader(off, more, kId)}), kUdp, l4),
                    kEtherTypeIpv6);
  };
  Bytes later = frag(kClient, kUplink, 24, false, Bytes(udp.begin() + 24, udp.end()));
  RunResult held = h_->run(Prog::UplinkIngress, later);
  ASSERT_EQ(held.err, 0);
  EXPECT_EQ(held.verdict, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), 1u);

  gw_frag_held6_key hk{};
  std::memcpy(hk.datagram.saddr.bytes, kClient.data(), 16);
  std::memcpy(hk.datagram.daddr.bytes, kUplink.data(), 16);
  hk.datagram.id = htonl(kId);
  hk.datagram.proto = kUdp;
  hk.offset = 24 / 8;
  gw_frag_held copy{};
  ASSERT_EQ(bpf_map_lookup_elem(h_->mapFd("gw_frag_held6"), &hk, &copy), 0);
  Bytes l3 = l3Of(later);
  ASSERT_EQ(copy.len, l3.size());
  EXPECT_EQ(Bytes(copy.packet, copy.packet + copy.len), l3);
  gw_frag_wait wait{};
  ASSERT_EQ(bpf_map_lookup_elem(h_->mapFd("gw_frag_wait6"), &hk.datagram, &wait), 0);
  EXPECT_EQ(wait.held, 1u);

  std::vector<gw_frag6_key> events;
  auto onEvent = [](void* ctx, void* data, size_t size) {
    if (size == sizeof(gw_frag6_key)) {
      gw_frag6_key k;
      std::memcpy(&k, data, sizeof(k));
      static_cast<std::vector<gw_frag6_key>*>(ctx)->push_back(k);
    }
    return 0;
  };
  ring_buffer* rb = ring_buffer__new(h_->mapFd("gw_frag_events"), onEvent, &events, nullptr);
  ASSERT_NE(rb, nullptr);
  RunResult first =
      h_->run(Prog::UplinkIngress, frag(kClient, kUplink, 0, true, Bytes(udp.begin(), udp.begin() + 24)));
  EXPECT_EQ(first.out, frag(kClient, kNs1, 0, true, Bytes(udpOut.begin(), udpOut.begin() + 24)));
  EXPECT_EQ(ring_buffer__consume(rb), 1);
  ring_buffer__free(rb);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::memcmp(&events[0], &hk.datagram, sizeof(gw_frag6_key)), 0);
  // the flow its first recorded is what gatewayd's release translates the held one by
  gw_ct_key flow{};
  ASSERT_EQ(bpf_map_lookup_elem(h_->mapFd("gw_frag_v6"), &hk.datagram, &flow), 0);
  auto want = BpfHarness::key6(kClient, kUplink, 40009, 5353, kUdp);
  EXPECT_EQ(std::memcmp(&flow, &want, sizeof(flow)), 0);
}

// ---- XDP fast path ----

TEST_F(Ipv6ProgramTest, XdpTranslatesEstablishedFlowsWithoutExtensionHeaders) {
  Bytes syn = tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpSyn);
  expectRun(Prog::UplinkXdp, syn, XDP_PASS, syn); // no flow yet: tc's job
  h_->run(Prog::UplinkIngress, syn);
  expectRun(Prog::UplinkXdp, tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpAck, {7}),
            XDP_PASS, tcp6Frame(ip6(kClient, kNs1), 40001, 80, kTcpAck, {7}));
  h_->run(Prog::UplinkEgress, udp6Frame(ip6(kNs1, kRemote), 40002, 53, {1}));
  expectRun(Prog::UplinkXdp, udp6Frame(ip6(kRemote, kUplink), 53, 40002, {4, 5}), XDP_PASS,
            udp6Frame(ip6(kRemote, kNs1), 53, 40002, {4, 5}));
  h_->run(Prog::UplinkEgress, icmp6EchoFrame(ip6(kNs1, kRemote), kEchoRequest, 0x55, 3));
  expectRun(Prog::UplinkXdp, icmp6EchoFrame(ip6(kRemote, kUplink), kEchoReply, 0x55, 3),
            XDP_PASS, icmp6EchoFrame(ip6(kRemote, kNs1), kEchoReply, 0x55, 3));
  // extension headers: left to tc as they are
  Bytes withExt =
      tcp6Frame(ip6(kClient, kUplink, {destOptions()}), 40001, 8080, kTcpAck, {8});
  expectRun(Prog::UplinkXdp, withExt, XDP_PASS, withExt);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 2u);
}

// ---- forwarding ----

TEST_F(Ipv6ProgramTest, DnatGoesStraightToTheNamespacePeerWithItsHopLimitAged) {
  gw_config cfg = baseConfig();
  cfg.flags = GW_CFG_FIB_REDIRECT;
  h_->setConfig(cfg);
  h_->addEndpoint6(kNs1, 41, kNs1Mac, kNs1HostMac);
  Ip6 aged = ip6(kClient, kNs1);
  aged.hopLimit = 63;
  Bytes want = tcp6Frame(aged, 40001, 80, kTcpSyn);
  std::memcpy(want.data(), kNs1Mac, 6);
  std::memcpy(want.data() + 6, kNs1HostMac, 6);
  expectRun(Prog::UplinkIngress, tcp6Frame(ip6(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_REDIRECT, want);
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 1u);
}

} // namespace
} // namespace gw::test
