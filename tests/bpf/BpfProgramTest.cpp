// SPDX-License-Identifier: MIT
// The data-path programs on crafted packets: verdict, exact output bytes (the expected frame
// is built translated, so its checksums are the reference), checksums, and map state.
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
constexpr uint8_t kIcmp = 1;
constexpr uint32_t kRule = 7;
constexpr uint8_t kNoNextHeader = 59;

// The topology the tests imagine: a client on the internet, the gateway's uplink address,
// the bridge (hairpin) address, two namespaces and a remote server.
const uint32_t kClient = ipv4("203.0.113.5");
const uint32_t kUplink = ipv4("198.51.100.1");
const uint32_t kBridge = ipv4("10.88.0.1");
const uint32_t kNs1 = ipv4("10.88.0.2");
const uint32_t kNs2 = ipv4("10.88.0.3");
const uint32_t kRemote = ipv4("192.0.2.9");
const uint32_t kRouter = ipv4("192.0.2.254");

Ip4 ip(uint32_t s, uint32_t d) {
  Ip4 r;
  r.saddr = s;
  r.daddr = d;
  return r;
}

const Addr6 kClient6 = ipv6("2001:db8:1::5");
const Addr6 kUplink6 = ipv6("2001:db8:2::1");

Ip6 ip6(const Addr6& s, const Addr6& d, std::vector<Ext6> ext = {}) {
  Ip6 r;
  r.saddr = s;
  r.daddr = d;
  r.ext = std::move(ext);
  return r;
}

class BpfProgramTest : public ::testing::Test {
protected:
  // The gateway every test starts from; tests change a field and set it again.
  static gw_config baseConfig() {
    gw_config cfg{};
    cfg.uplink_ifindex = 1; // PROG_TEST_RUN runs skbs on loopback
    cfg.uplink_addr.v4 = kUplink;
    cfg.hairpin_addr.v4 = kBridge;
    cfg.snat_port_min = 61000;
    cfg.snat_port_max = 65535;
    return cfg;
  }

  void SetUp() override {
    h_ = std::make_unique<BpfHarness>();
    // A verifier rejection is a bug, not a missing feature: fail, never skip.
    ASSERT_TRUE(h_->loadError().empty()) << "BPF programs do not load: " << h_->loadError();
    h_->setConfig(baseConfig());
    h_->addLocal(kUplink);
    h_->addLocal(kBridge);
    h_->addExpose(0, 8080, kTcp, kNs1, 80, kRule);
    h_->addExpose(0, 5353, kUdp, kNs1, 53, kRule + 1);
    h_->addMasq(ipv4("10.88.0.0"), 16);
  }

  // Runs and checks verdict + exact output.
  void expectRun(Prog prog, const Bytes& in, uint32_t verdict, const Bytes& expected) {
    RunResult r = h_->run(prog, in);
    ASSERT_EQ(r.err, 0) << "test run failed";
    EXPECT_EQ(r.verdict, verdict);
    EXPECT_EQ(r.out, expected) << reasons() << "got:\n"
                               << hexDump(r.out) << "\nwant:\n"
                               << hexDump(expected);
    Decoded d = decode(r.out);
    if (d.ipv4) {
      EXPECT_TRUE(d.allCsumOk()) << "ip " << d.ipCsumOk << " l4 " << d.l4CsumOk << " inner "
                                 << d.innerIpCsumOk;
      EXPECT_TRUE(d.innerL4CsumOk);
    }
    Decoded6 d6 = decode6(r.out);
    if (d6.ipv6) {
      EXPECT_TRUE(d6.l4CsumOk) << "IPv6 l4 checksum";
    }
  }

  std::string reasons() {
    std::string s = "reasons:";
    for (int i = 0; i < GW_REASON_MAX; ++i) {
      s += " " + std::to_string(h_->reason(static_cast<gw_reason>(i)));
    }
    return s + "\n";
  }

  std::unique_ptr<BpfHarness> h_;
};

// ---- DNAT: an exposed port reached from the internet ----

TEST_F(BpfProgramTest, DnatFirstPacketCreatesBothEntries) {
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpSyn));

  auto origKey = BpfHarness::key(kClient, kUplink, 40001, 8080, kTcp);
  auto replyKey = BpfHarness::key(kNs1, kClient, 80, 40001, kTcp);
  auto orig = h_->ct(origKey);
  auto reply = h_->ct(replyKey);
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->dir, GW_CT_DIR_ORIG);
  EXPECT_EQ(orig->nat, GW_NAT_DNAT);
  EXPECT_EQ(orig->new_daddr.v4, kNs1);
  EXPECT_EQ(ntohs(orig->new_dport), 80);
  EXPECT_EQ(orig->rule_id, kRule);
  EXPECT_EQ(orig->tcp_flags, GW_CT_SEEN_SYN);
  EXPECT_EQ(orig->packets, 1u);
  EXPECT_EQ(0, std::memcmp(&orig->peer, &replyKey, sizeof(replyKey)));
  EXPECT_EQ(reply->dir, GW_CT_DIR_REPLY);
  EXPECT_EQ(reply->new_saddr.v4, kUplink);
  EXPECT_EQ(ntohs(reply->new_sport), 8080);
  EXPECT_EQ(reply->new_daddr.v4, kClient);
  EXPECT_EQ(0, std::memcmp(&reply->peer, &origKey, sizeof(origKey)));
  EXPECT_EQ(h_->ctCount(), 2u);
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 1u);
  EXPECT_EQ(h_->rule(kRule).connections, 1u);
  EXPECT_EQ(h_->rule(kRule).packets, 1u);
}

TEST_F(BpfProgramTest, DnatEstablishedAndReplies) {
  h_->run(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn));
  // the reply at the namespace's veth
  expectRun(Prog::EndpointIngress,
            tcpFrame(ip(kNs1, kClient), 80, 40001, kTcpSyn | kTcpAck), TC_ACT_OK,
            tcpFrame(ip(kUplink, kClient), 8080, 40001, kTcpSyn | kTcpAck));
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck, {1, 2}),
            TC_ACT_OK, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpAck, {1, 2}));
  // a reply that was not translated at the veth is translated on the way out
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs1, kClient), 80, 40001, kTcpAck | kTcpFin),
            TC_ACT_OK, tcpFrame(ip(kUplink, kClient), 8080, 40001, kTcpAck | kTcpFin));

  auto orig = h_->ct(BpfHarness::key(kClient, kUplink, 40001, 8080, kTcp));
  auto reply = h_->ct(BpfHarness::key(kNs1, kClient, 80, 40001, kTcp));
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->packets, 2u);
  EXPECT_EQ(orig->tcp_flags, GW_CT_SEEN_SYN | GW_CT_SEEN_ACK);
  EXPECT_EQ(reply->packets, 2u);
  EXPECT_EQ(reply->tcp_flags, GW_CT_SEEN_SYNACK | GW_CT_SEEN_ACK | GW_CT_SEEN_FIN);
  EXPECT_GE(reply->last_seen_ns, reply->created_ns);
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 2u);
  EXPECT_EQ(h_->rule(kRule).packets, 4u);
}

TEST_F(BpfProgramTest, DnatExactAddressRuleAndLocalCheck) {
  uint32_t other = ipv4("198.51.100.77"); // not owned by the gateway
  h_->addExpose(other, 9000, kTcp, kNs2, 90, 9);
  // exact address entries match without being local
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, other), 40001, 9000, kTcpSyn), TC_ACT_OK,
            tcpFrame(ip(kClient, kNs2), 40001, 90, kTcpSyn));
  // the wildcard entry (port 8080) only for local addresses
  Bytes in = tcpFrame(ip(kClient, other), 40001, 8080, kTcpSyn);
  expectRun(Prog::UplinkIngress, in, TC_ACT_OK, in);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), 1u);
}

TEST_F(BpfProgramTest, IpOptionsHonoured) {
  Ip4 in = ip(kClient, kUplink);
  in.options = {0x01, 0x01, 0x01, 0x01, 0x07, 0x07, 0x04, 0x00}; // NOPs + record route
  Ip4 out = in;
  out.daddr = kNs1;
  expectRun(Prog::UplinkIngress, tcpFrame(in, 40001, 8080, kTcpSyn), TC_ACT_OK,
            tcpFrame(out, 40001, 80, kTcpSyn));
}

TEST_F(BpfProgramTest, UdpZeroChecksumStaysZero) {
  expectRun(Prog::UplinkIngress, udpFrame(ip(kClient, kUplink), 40001, 5353, {9, 9, 9}, true),
            TC_ACT_OK, udpFrame(ip(kClient, kNs1), 40001, 53, {9, 9, 9}, true));
  expectRun(Prog::EndpointIngress, udpFrame(ip(kNs1, kClient), 53, 40001, {8}, true),
            TC_ACT_OK, udpFrame(ip(kUplink, kClient), 5353, 40001, {8}, true));
  // and a real checksum is updated, not zeroed
  expectRun(Prog::UplinkIngress, udpFrame(ip(kClient, kUplink), 40001, 5353, {1}), TC_ACT_OK,
            udpFrame(ip(kClient, kNs1), 40001, 53, {1}));
}

// ---- SNAT: masquerade on the way out ----

TEST_F(BpfProgramTest, SnatKeepsPortThenReplies) {
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs1, kRemote), 40002, 443, kTcpSyn), TC_ACT_OK,
            tcpFrame(ip(kUplink, kRemote), 40002, 443, kTcpSyn));
  auto orig = h_->ct(BpfHarness::key(kNs1, kRemote, 40002, 443, kTcp));
  auto reply = h_->ct(BpfHarness::key(kRemote, kUplink, 443, 40002, kTcp));
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->nat, GW_NAT_SNAT);
  EXPECT_EQ(reply->new_daddr.v4, kNs1);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_SNAT), 1u);

  expectRun(Prog::UplinkIngress, tcpFrame(ip(kRemote, kUplink), 443, 40002, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcpFrame(ip(kRemote, kNs1), 443, 40002, kTcpSyn | kTcpAck));
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs1, kRemote), 40002, 443, kTcpAck), TC_ACT_OK,
            tcpFrame(ip(kUplink, kRemote), 40002, 443, kTcpAck));
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_SNAT), 2u);
  // masquerade flows keep their source at the veth: the uplink translates them
  Bytes fromNs = tcpFrame(ip(kNs1, kRemote), 40002, 443, kTcpAck);
  expectRun(Prog::EndpointIngress, fromNs, TC_ACT_OK, fromNs);
}

TEST_F(BpfProgramTest, SnatClashGetsPortInRange) {
  h_->run(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40002, 53, {1}));
  // a second namespace with the same source port to the same server
  RunResult r = h_->run(Prog::UplinkEgress, udpFrame(ip(kNs2, kRemote), 40002, 53, {2}));
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.verdict, TC_ACT_OK);
  Decoded d = decode(r.out);
  EXPECT_TRUE(d.allCsumOk());
  EXPECT_EQ(d.saddr, kUplink);
  EXPECT_GE(d.sport, 61000);
  EXPECT_LE(d.sport, 65535);
  EXPECT_EQ(r.out, udpFrame(ip(kUplink, kRemote), d.sport, 53, {2}));
  auto reply = h_->ct(BpfHarness::key(kRemote, kUplink, 53, d.sport, kUdp));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->new_daddr.v4, kNs2);
  EXPECT_EQ(ntohs(reply->new_dport), 40002);
  expectRun(Prog::UplinkIngress, udpFrame(ip(kRemote, kUplink), 53, d.sport, {3}), TC_ACT_OK,
            udpFrame(ip(kRemote, kNs2), 53, 40002, {3}));
  EXPECT_EQ(h_->ctCount(), 4u);
}

// RFC 4787 REQ-1 after a clash: the source that was moved off its own port keeps the port it
// got for every destination, although its own port would be free towards a new one.
TEST_F(BpfProgramTest, SnatMappingStaysEndpointIndependentAfterAClash) {
  const uint32_t kRemote2 = ipv4("192.0.2.77");
  h_->run(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40002, 53, {1}));
  auto out = [&](const Bytes& in) { return decode(h_->run(Prog::UplinkEgress, in).out); };
  Decoded first = out(udpFrame(ip(kNs2, kRemote), 40002, 53, {2}));
  ASSERT_NE(first.sport, 40002) << "the clash moved it";
  for (uint32_t remote : {kRemote2, kRouter}) {
    Decoded later = out(udpFrame(ip(kNs2, remote), 40002, 123, {3}));
    EXPECT_EQ(later.saddr, kUplink);
    EXPECT_EQ(later.sport, first.sport) << "same external port for another destination";
  }
  // The first source keeps its own port everywhere too.
  Decoded own = out(udpFrame(ip(kNs1, kRemote2), 40002, 123, {4}));
  EXPECT_EQ(own.sport, 40002);
  // A TCP flow from the same address and port is another mapping.
  Decoded tcp = out(tcpFrame(ip(kNs2, kRemote2), 40002, 443, kTcpSyn));
  EXPECT_EQ(tcp.sport, 40002);
}

// ---- SNAT port exhaustion: counted, and answered back the way the packet came ----

const uint32_t kNs3 = ipv4("10.88.0.4");

// An answer's IPv4 header as reject.h builds it.
Ip4 answerIp(uint32_t s, uint32_t d) {
  Ip4 r = ip(s, d);
  r.id = 0;
  return r;
}

Bytes rstFrame(uint32_t s, uint32_t d, const Tcp& tcp) {
  Ip4 r = answerIp(s, d);
  return swapMacs(ethFrame(ipPacket(r, kTcp, tcpSegment(r, tcp))));
}

// ICMP destination unreachable, administratively prohibited, quoting 20 + 8 bytes of `in`.
Bytes prohibitedFrame(uint32_t s, uint32_t d, const Bytes& in) {
  return swapMacs(icmpErrorFrame(answerIp(s, d), 3, 13, l3Of(in), 28));
}

class SnatExhaustionTest : public BpfProgramTest {
protected:
  // One SNAT port (61000); the original source port 40002 (or echo id) towards kRemote:dport
  // is taken by kNs1 and 61000 by kNs2, so kNs3 finds nothing.
  void exhaust(const std::function<Bytes(uint32_t)>& from) {
    gw_config cfg = baseConfig();
    cfg.snat_port_max = 61000;
    h_->setConfig(cfg);
    size_t before = h_->ctCount();
    ASSERT_EQ(h_->run(Prog::UplinkEgress, from(kNs1)).verdict, TC_ACT_OK);
    ASSERT_EQ(h_->run(Prog::UplinkEgress, from(kNs2)).verdict, TC_ACT_OK);
    ASSERT_EQ(h_->ctCount(), before + 4);
  }
};

TEST_F(SnatExhaustionTest, TcpSynGetsRstAck) {
  exhaust([](uint32_t src) { return tcpFrame(ip(src, kRemote), 40002, 443, kTcpSyn); });
  // RFC 9293: no ACK on the segment, so seq 0 and ACK of everything it occupied (the SYN)
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs3, kRemote), 40002, 443, kTcpSyn),
            TC_ACT_REDIRECT,
            rstFrame(kRemote, kNs3,
                     Tcp{.sport = 443, .dport = 40002, .seq = 0, .ack = kTcpDefaultSeq + 1,
                         .flags = kTcpRst | kTcpAck}));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_SNAT_EXHAUSTED), 1u);
  EXPECT_EQ(h_->ctCount(), 4u); // no half-flow left behind
  // data and FIN count too
  expectRun(Prog::UplinkEgress,
            tcpFrame(ip(kNs3, kRemote), 40002, 443, kTcpSyn | kTcpFin, {1, 2, 3, 4, 5}),
            TC_ACT_REDIRECT,
            rstFrame(kRemote, kNs3,
                     Tcp{.sport = 443, .dport = 40002, .seq = 0, .ack = kTcpDefaultSeq + 7,
                         .flags = kTcpRst | kTcpAck}));
}

TEST_F(SnatExhaustionTest, TcpSegmentWithAckGetsRstAtItsAck) {
  exhaust([](uint32_t src) { return tcpFrame(ip(src, kRemote), 40002, 443, kTcpSyn); });
  // a segment of a flow the gateway no longer knows (expired): RST with seq = its ACK
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs3, kRemote), 40002, 443, kTcpAck, {9, 9, 9}),
            TC_ACT_REDIRECT,
            rstFrame(kRemote, kNs3,
                     Tcp{.sport = 443, .dport = 40002, .seq = kTcpDefaultAck, .flags = kTcpRst}));
}

TEST_F(SnatExhaustionTest, RstAndIpOptionsAreNotAnswered) {
  exhaust([](uint32_t src) { return tcpFrame(ip(src, kRemote), 40002, 443, kTcpSyn); });
  Bytes rst = tcpFrame(ip(kNs3, kRemote), 40002, 443, kTcpRst | kTcpAck);
  expectRun(Prog::UplinkEgress, rst, TC_ACT_SHOT, rst);
  Ip4 withOptions = ip(kNs3, kRemote);
  withOptions.options = {1, 1, 1, 0}; // NOP NOP NOP EOL
  Bytes opt = tcpFrame(withOptions, 40002, 443, kTcpSyn);
  expectRun(Prog::UplinkEgress, opt, TC_ACT_SHOT, opt);
  EXPECT_EQ(h_->reason(GW_REASON_DROP_SNAT_EXHAUSTED), 2u);
  EXPECT_EQ(h_->ctCount(), 4u);
}

TEST_F(SnatExhaustionTest, UdpGetsIcmpProhibited) {
  exhaust([](uint32_t src) { return udpFrame(ip(src, kRemote), 40002, 53, {1}); });
  Bytes in = udpFrame(ip(kNs3, kRemote), 40002, 53, Bytes(100, 0x5a));
  expectRun(Prog::UplinkEgress, in, TC_ACT_REDIRECT, prohibitedFrame(kRemote, kNs3, in));
  Decoded d = decode(h_->run(Prog::UplinkEgress, in).out);
  EXPECT_EQ(d.icmpType, 3);
  EXPECT_EQ(d.icmpCode, 13);
  EXPECT_EQ(d.innerSaddr, kNs3);
  EXPECT_EQ(d.innerSport, 40002);
  EXPECT_EQ(h_->reason(GW_REASON_DROP_SNAT_EXHAUSTED), 2u);
  EXPECT_EQ(h_->ctCount(), 4u);
}

TEST_F(SnatExhaustionTest, EchoAndTcpFirstFragmentGetIcmpProhibited) {
  exhaust([](uint32_t src) { return icmpEchoFrame(ip(src, kRemote), 8, 0x4242, 1); });
  Bytes echo = icmpEchoFrame(ip(kNs3, kRemote), 8, 0x4242, 1, {1, 2, 3, 4});
  expectRun(Prog::UplinkEgress, echo, TC_ACT_REDIRECT, prohibitedFrame(kRemote, kNs3, echo));

  exhaust([](uint32_t src) { return tcpFrame(ip(src, kRemote), 40002, 443, kTcpSyn); });
  Ip4 first = ip(kNs3, kRemote);
  auto frags = fragmentFrames(first, kTcp, tcpSegment(first, 40002, 443, kTcpSyn, Bytes(40)),
                              32);
  expectRun(Prog::UplinkEgress, frags[0], TC_ACT_REDIRECT,
            prohibitedFrame(kRemote, kNs3, frags[0]));
}

TEST_F(SnatExhaustionTest, HairpinAtTheNamespaceLinkGetsRst) {
  exhaust([](uint32_t src) { return udpFrame(ip(src, kRemote), 40002, 53, {1}); });
  // the hairpin reply tuples {ns1:80 -> bridge:40005} and {... -> bridge:61000} are taken
  gw_ct_entry taken{};
  h_->ctInsert(BpfHarness::key(kNs1, kBridge, 80, 40005, kTcp), taken);
  h_->ctInsert(BpfHarness::key(kNs1, kBridge, 80, 61000, kTcp), taken);
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kUplink), 40005, 8080, kTcpSyn),
            TC_ACT_REDIRECT,
            rstFrame(kUplink, kNs1,
                     Tcp{.sport = 8080, .dport = 40005, .seq = 0, .ack = kTcpDefaultSeq + 1,
                         .flags = kTcpRst | kTcpAck}));
  EXPECT_EQ(h_->rule(kRule).drops, 1u);
  EXPECT_EQ(h_->ctCount(), 6u);
}

TEST_F(BpfProgramTest, NotMasqueradedPassesUntouched) {
  Bytes in = tcpFrame(ip(ipv4("172.16.0.1"), kRemote), 40002, 443, kTcpSyn);
  expectRun(Prog::UplinkEgress, in, TC_ACT_OK, in);
  EXPECT_EQ(h_->ctCount(), 0u);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), 1u);
}

TEST_F(BpfProgramTest, IcmpEchoSnat) {
  expectRun(Prog::UplinkEgress, icmpEchoFrame(ip(kNs1, kRemote), 8, 0x4242, 1, {1, 2, 3}),
            TC_ACT_OK, icmpEchoFrame(ip(kUplink, kRemote), 8, 0x4242, 1, {1, 2, 3}));
  expectRun(Prog::UplinkIngress, icmpEchoFrame(ip(kRemote, kUplink), 0, 0x4242, 1, {1, 2, 3}),
            TC_ACT_OK, icmpEchoFrame(ip(kRemote, kNs1), 0, 0x4242, 1, {1, 2, 3}));
  // the same id from another namespace gets another id
  RunResult r = h_->run(Prog::UplinkEgress, icmpEchoFrame(ip(kNs2, kRemote), 8, 0x4242, 1));
  Decoded d = decode(r.out);
  EXPECT_TRUE(d.allCsumOk());
  EXPECT_GE(d.sport, 61000);
  expectRun(Prog::UplinkIngress, icmpEchoFrame(ip(kRemote, kUplink), 0, d.sport, 1), TC_ACT_OK,
            icmpEchoFrame(ip(kRemote, kNs2), 0, 0x4242, 1));
}

// ---- ICMP errors about translated flows ----

TEST_F(BpfProgramTest, IcmpErrorAboutSnatFlow) {
  // traceroute from a namespace: UDP with TTL 1, answered by a router with time exceeded
  Ip4 probe = ip(kNs1, kRemote);
  probe.ttl = 1;
  h_->run(Prog::UplinkEgress, udpFrame(probe, 40003, 33434, {0, 1, 2, 3}));
  Ip4 sent = probe;
  sent.saddr = kUplink;
  Bytes quoteOut = l3Of(udpFrame(sent, 40003, 33434, {0, 1, 2, 3}));
  Bytes quoteIn = l3Of(udpFrame(probe, 40003, 33434, {0, 1, 2, 3}));
  expectRun(Prog::UplinkIngress, icmpErrorFrame(ip(kRouter, kUplink), 11, 0, quoteOut),
            TC_ACT_OK, icmpErrorFrame(ip(kRouter, kNs1), 11, 0, quoteIn));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_ICMP_ERROR), 1u);
}

TEST_F(BpfProgramTest, IcmpErrorNeitherRefreshesNorEndsItsFlow) {
  h_->run(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40003, 53, {1}));
  auto key = BpfHarness::key(kNs1, kRemote, 40003, 53, kUdp);
  auto replyKey = BpfHarness::key(kRemote, kUplink, 53, 40003, kUdp);
  auto before = h_->ct(key);
  auto replyBefore = h_->ct(replyKey);
  ASSERT_TRUE(before && replyBefore);
  Bytes quote = l3Of(udpFrame(ip(kUplink, kRemote), 40003, 53, {1}));
  for (uint8_t type : {3, 11}) {
    RunResult r =
        h_->run(Prog::UplinkIngress, icmpErrorFrame(ip(kRemote, kUplink), type, 3, quote));
    ASSERT_EQ(r.verdict, TC_ACT_OK);
  }
  EXPECT_EQ(h_->reason(GW_REASON_NAT_ICMP_ERROR), 2u);
  auto after = h_->ct(key);
  auto replyAfter = h_->ct(replyKey);
  ASSERT_TRUE(after && replyAfter); // not ended
  EXPECT_EQ(after->last_seen_ns, before->last_seen_ns); // not refreshed
  EXPECT_EQ(replyAfter->last_seen_ns, replyBefore->last_seen_ns);
  EXPECT_EQ(replyAfter->packets, replyBefore->packets);
}

TEST_F(BpfProgramTest, IcmpErrorAboutDnatFlowFromTarget) {
  h_->run(Prog::UplinkIngress, udpFrame(ip(kClient, kUplink), 40001, 5353, {5}));
  // the namespace answers "port unreachable" quoting what it received
  Bytes quoteIn = l3Of(udpFrame(ip(kClient, kNs1), 40001, 53, {5}));
  Bytes quoteOut = l3Of(udpFrame(ip(kClient, kUplink), 40001, 5353, {5}));
  expectRun(Prog::UplinkEgress, icmpErrorFrame(ip(kNs1, kClient), 3, 3, quoteIn), TC_ACT_OK,
            icmpErrorFrame(ip(kUplink, kClient), 3, 3, quoteOut));
}

TEST_F(BpfProgramTest, IcmpErrorAboutEchoAndTcpQuote) {
  h_->run(Prog::UplinkEgress, icmpEchoFrame(ip(kNs1, kRemote), 8, 0x99, 1));
  Bytes qOut = l3Of(icmpEchoFrame(ip(kUplink, kRemote), 8, 0x99, 1));
  Bytes qIn = l3Of(icmpEchoFrame(ip(kNs1, kRemote), 8, 0x99, 1));
  Ip4 fragNeeded = ip(kRouter, kUplink);
  expectRun(Prog::UplinkIngress, icmpErrorFrame(fragNeeded, 3, 4, qOut), TC_ACT_OK,
            icmpErrorFrame(ip(kRouter, kNs1), 3, 4, qIn));

  h_->run(Prog::UplinkEgress, tcpFrame(ip(kNs1, kRemote), 40009, 443, kTcpSyn));
  Bytes tOut = l3Of(tcpFrame(ip(kUplink, kRemote), 40009, 443, kTcpSyn));
  Bytes tIn = l3Of(tcpFrame(ip(kNs1, kRemote), 40009, 443, kTcpSyn));
  expectRun(Prog::UplinkIngress, icmpErrorFrame(ip(kRouter, kUplink), 3, 1, tOut), TC_ACT_OK,
            icmpErrorFrame(ip(kRouter, kNs1), 3, 1, tIn));
  // an 8-byte quote (RFC 792 minimum): addresses and ports still follow
  expectRun(Prog::UplinkIngress, icmpErrorFrame(ip(kRouter, kUplink), 3, 1, tOut, 28),
            TC_ACT_OK, icmpErrorFrame(ip(kRouter, kNs1), 3, 1, tIn, 28));
}

TEST_F(BpfProgramTest, IcmpErrorAboutSnatFlowFromNamespaceLeftToUplink) {
  h_->run(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40003, 53, {1}));
  // the namespace refuses the reply: the veth leaves it (masquerade is the uplink's job)
  Bytes quoteIn = l3Of(udpFrame(ip(kRemote, kNs1), 53, 40003, {2}));
  Bytes err = icmpErrorFrame(ip(kNs1, kRemote), 3, 3, quoteIn);
  expectRun(Prog::EndpointIngress, err, TC_ACT_OK, err);
  Bytes quoteOut = l3Of(udpFrame(ip(kRemote, kUplink), 53, 40003, {2}));
  expectRun(Prog::UplinkEgress, err, TC_ACT_OK,
            icmpErrorFrame(ip(kUplink, kRemote), 3, 3, quoteOut));
}

TEST_F(BpfProgramTest, RepeatedRunsReportDuration) {
  h_->run(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn));
  RunResult r =
      h_->run(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck), 1000);
  ASSERT_EQ(r.err, 0);
  EXPECT_GT(r.durationNs, 0u);
  // repetitions 2..n see the already translated packet: the flow counts exactly one more
  EXPECT_EQ(h_->ct(BpfHarness::key(kClient, kUplink, 40001, 8080, kTcp))->packets, 2u);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), 999u);
}

// ---- fragments ----

TEST_F(BpfProgramTest, FragmentsFollowTheirFlow) {
  Bytes payload(40);
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<uint8_t>(i);
  }
  Ip4 in = ip(kClient, kUplink);
  in.id = 0x7777;
  Ip4 out = ip(kClient, kNs1);
  out.id = 0x7777;
  auto inFrags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 5353, payload, false), 16);
  auto outFrags = fragmentFrames(out, kUdp, udpDatagram(out, 40001, 53, payload, false), 16);
  ASSERT_EQ(inFrags.size(), 3u);
  for (size_t i = 0; i < inFrags.size(); ++i) {
    SCOPED_TRACE(i);
    expectRun(Prog::UplinkIngress, inFrags[i], TC_ACT_OK, outFrags[i]);
  }
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 3u);
}

// The fragment offset of a frame, in 8-byte units.
uint16_t fragOffsetOf(const Bytes& frame) {
  return static_cast<uint16_t>(((frame.at(14 + 6) << 8) | frame.at(14 + 7)) & 0x1fff);
}

gw_frag_key datagramKey(const Ip4& ip, uint8_t proto) {
  gw_frag_key k{};
  k.saddr = ip.saddr;
  k.daddr = ip.daddr;
  k.id = htons(ip.id);
  k.proto = proto;
  return k;
}

// RFC 4787 REQ-14: a later fragment that comes before its first is held, as it came, until
// the first comes; the first's program then names the datagram on gw_frag_events.
TEST_F(BpfProgramTest, ALaterFragmentBeforeItsFirstIsHeldUntilTheFirstComes) {
  Ip4 in = ip(kClient, kUplink);
  in.id = 0x4242;
  Ip4 out = ip(kClient, kNs1);
  out.id = 0x4242;
  auto inFrags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 5353, Bytes(40, 9), false), 16);
  auto outFrags = fragmentFrames(out, kUdp, udpDatagram(out, 40001, 53, Bytes(40, 9), false), 16);
  ASSERT_EQ(inFrags.size(), 3u);

  RunResult held = h_->run(Prog::UplinkIngress, inFrags[2]);
  ASSERT_EQ(held.err, 0);
  EXPECT_EQ(held.verdict, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_FRAGMENT_MISS), 0u);
  gw_frag_held_key hk{};
  hk.datagram = datagramKey(in, kUdp);
  hk.offset = fragOffsetOf(inFrags[2]);
  gw_frag_held copy{};
  ASSERT_EQ(bpf_map_lookup_elem(h_->mapFd("gw_frag_held"), &hk, &copy), 0);
  Bytes l3 = l3Of(inFrags[2]);
  ASSERT_EQ(copy.len, l3.size());
  EXPECT_EQ(Bytes(copy.packet, copy.packet + copy.len), l3);
  gw_frag_wait wait{};
  ASSERT_EQ(bpf_map_lookup_elem(h_->mapFd("gw_frag_wait"), &hk.datagram, &wait), 0);
  EXPECT_EQ(wait.held, 1u);

  std::vector<gw_frag_key> events;
  auto onEvent = [](void* ctx, void* data, size_t size) {
    if (size == sizeof(gw_frag_key)) {
      gw_frag_key k;
      std::memcpy(&k, data, sizeof(k));
      static_cast<std::vector<gw_frag_key>*>(ctx)->push_back(k);
    }
    return 0;
  };
  ring_buffer* rb = ring_buffer__new(h_->mapFd("gw_frag_events"), onEvent, &events, nullptr);
  ASSERT_NE(rb, nullptr);
  expectRun(Prog::UplinkIngress, inFrags[0], TC_ACT_OK, outFrags[0]);
  EXPECT_EQ(ring_buffer__consume(rb), 1);
  ring_buffer__free(rb);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::memcmp(&events[0], &hk.datagram, sizeof(gw_frag_key)), 0);
  // in order from here on: translated, not held
  expectRun(Prog::UplinkIngress, inFrags[1], TC_ACT_OK, outFrags[1]);
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), 1u);
}

// The gateway host's own fragmented traffic: its first fragment is not ours, so the later
// ones pass untouched instead of waiting.
TEST_F(BpfProgramTest, LaterFragmentsOfADatagramNotOursPass) {
  Ip4 in = ip(kClient, kUplink);
  auto frags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 9999, Bytes(40), false), 16);
  expectRun(Prog::UplinkIngress, frags[0], TC_ACT_OK, frags[0]);
  expectRun(Prog::UplinkIngress, frags[1], TC_ACT_OK, frags[1]);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_FRAGMENT_MISS), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), 0u);
}

// gatewayd sends released fragments with GW_MARK_RELEASED: a program they pass again leaves
// one it cannot place alone instead of holding it a second time.
TEST_F(BpfProgramTest, AReleasedFragmentIsNeverHeldAgain) {
  Ip4 in = ip(kClient, kUplink);
  auto frags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 5353, Bytes(40), false), 16);
  for (Prog prog : {Prog::UplinkIngress, Prog::UplinkEgress, Prog::EndpointIngress}) {
    RunResult r = h_->runMarked(prog, frags[1], GW_MARK_RELEASED);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, static_cast<uint32_t>(TC_ACT_OK));
    EXPECT_EQ(r.out, frags[1]);
  }
  EXPECT_EQ(h_->reason(GW_REASON_PASS_FRAGMENT_MISS), 3u);
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), 0u);
}

// Holding is bounded: GW_FRAG_HOLD_PER_DATAGRAM fragments of one datagram, none larger than a
// slot; what is not held is dropped and counted by its reason.
TEST_F(BpfProgramTest, HoldingIsBoundedPerDatagramAndBySize) {
  Ip4 in = ip(kClient, kUplink);
  in.id = 0x5151;
  size_t count = GW_FRAG_HOLD_PER_DATAGRAM + 2;
  auto frags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 5353, Bytes(8 * count), false), 8);
  ASSERT_GE(frags.size(), count);
  for (size_t i = 1; i <= GW_FRAG_HOLD_PER_DATAGRAM + 1; ++i) {
    RunResult r = h_->run(Prog::UplinkIngress, frags[i]);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, static_cast<uint32_t>(TC_ACT_SHOT));
  }
  EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), GW_FRAG_HOLD_PER_DATAGRAM);
  EXPECT_EQ(h_->reason(GW_REASON_DROP_FRAGMENT_HOLD_FULL), 1u);

  Ip4 big = ip(kClient, kUplink);
  big.id = 0x5252;
  auto bigFrags =
      fragmentFrames(big, kUdp, udpDatagram(big, 40001, 5353, Bytes(5000), false), 2400);
  ASSERT_GT(l3Of(bigFrags[1]).size(), static_cast<size_t>(GW_FRAG_HELD_BYTES));
  RunResult r = h_->run(Prog::UplinkIngress, bigFrags[1]);
  EXPECT_EQ(r.verdict, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_FRAGMENT_TOO_BIG), 1u);
}

// Overlapping later fragments (RFC 1858): whatever their bytes, they get the first's
// addresses and nothing else; a TCP fragment at offset 8, which could only rewrite the first
// one's ports and flags, is dropped.
TEST_F(BpfProgramTest, OverlappingFragmentsAreTranslatedByAddressOnly) {
  Ip4 in = ip(kClient, kUplink);
  in.id = 0x6161;
  Ip4 out = ip(kClient, kNs1);
  out.id = 0x6161;
  auto inFrags = fragmentFrames(in, kUdp, udpDatagram(in, 40001, 5353, Bytes(40, 3), false), 16);
  auto outFrags = fragmentFrames(out, kUdp, udpDatagram(out, 40001, 53, Bytes(40, 3), false), 16);
  expectRun(Prog::UplinkIngress, inFrags[0], TC_ACT_OK, outFrags[0]);
  // a second copy of the middle fragment with other bytes, and one overlapping its end
  Ip4 overlapIn = in;
  overlapIn.fragOffset = 8;
  overlapIn.moreFragments = true;
  Ip4 overlapOut = out;
  overlapOut.fragOffset = 8;
  overlapOut.moreFragments = true;
  for (const Bytes& body : {Bytes(16, 0xee), Bytes(24, 0x11)}) {
    expectRun(Prog::UplinkIngress, ethFrame(ipPacket(overlapIn, kUdp, body)), TC_ACT_OK,
              ethFrame(ipPacket(overlapOut, kUdp, body)));
  }
  Ip4 tcpAt8 = ip(kClient, kUplink);
  tcpAt8.fragOffset = 8;
  Bytes tiny = ethFrame(ipPacket(tcpAt8, kTcp, Bytes(12, 0x02)));
  RunResult r = h_->run(Prog::UplinkIngress, tiny);
  EXPECT_EQ(r.verdict, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_MALFORMED), 1u);
}

// ---- between namespaces, hairpin ----

TEST_F(BpfProgramTest, NamespaceToNamespaceThroughExposedPort) {
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs2, kUplink), 40004, 8080, kTcpSyn),
            TC_ACT_OK, tcpFrame(ip(kNs2, kNs1), 40004, 80, kTcpSyn));
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kNs2), 80, 40004, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcpFrame(ip(kUplink, kNs2), 8080, 40004, kTcpSyn | kTcpAck));
}

TEST_F(BpfProgramTest, HairpinSnatsToBridgeAddress) {
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kUplink), 40005, 8080, kTcpSyn),
            TC_ACT_OK, tcpFrame(ip(kBridge, kNs1), 40005, 80, kTcpSyn));
  auto orig = h_->ct(BpfHarness::key(kNs1, kUplink, 40005, 8080, kTcp));
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->nat, GW_NAT_DNAT | GW_NAT_SNAT);
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kBridge), 80, 40005, kTcpSyn | kTcpAck),
            TC_ACT_OK, tcpFrame(ip(kUplink, kNs1), 8080, 40005, kTcpSyn | kTcpAck));
}

// RFC 4787 REQ-9 / RFC 5382 REQ-8: a namespace reaches another's masquerade mapping through the
// external address, and is seen from its own mapping's port (REQ-9a; the harness's hairpin
// address is a bridge's, gatewayd's is the uplink's).
TEST_F(BpfProgramTest, HairpinToAMasqueradeMapping) {
  // ns1's flow out gives it the mapping uplink:40002.
  expectRun(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40002, 3478, {1}), TC_ACT_OK,
            udpFrame(ip(kUplink, kRemote), 40002, 3478, {1}));
  // ns2 sends to that mapping from 5000: ns1 gets it, from ns2's own mapping.
  expectRun(Prog::EndpointIngress, udpFrame(ip(kNs2, kUplink), 5000, 40002, {2}), TC_ACT_OK,
            udpFrame(ip(kBridge, kNs1), 5000, 40002, {2}));
  expectRun(Prog::EndpointIngress, udpFrame(ip(kNs1, kBridge), 40002, 5000, {3}), TC_ACT_OK,
            udpFrame(ip(kUplink, kNs2), 40002, 5000, {3}));
  // The same for TCP; a port nobody's mapping holds stays the host's.
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs1, kRemote), 40003, 443, kTcpSyn), TC_ACT_OK,
            tcpFrame(ip(kUplink, kRemote), 40003, 443, kTcpSyn));
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs2, kUplink), 5001, 40003, kTcpSyn), TC_ACT_OK,
            tcpFrame(ip(kBridge, kNs1), 5001, 40003, kTcpSyn));
  Bytes nobody = udpFrame(ip(kNs2, kUplink), 5000, 40999, {4});
  expectRun(Prog::EndpointIngress, nobody, TC_ACT_OK, nobody);
  // From outside, an unsolicited packet to a mapping stays filtered (address and port
  // dependent): the uplink is no hairpin hook.
  Bytes unsolicited = udpFrame(ip(kClient, kUplink), 9, 40002, {5});
  expectRun(Prog::UplinkIngress, unsolicited, TC_ACT_OK, unsolicited);
}

// RFC 4787 REQ-8 as an option: with endpoint-independent filtering on ns1's masquerade,
// anyone outside reaches its mapping; ns2's (the default) still lets in replies only.
TEST_F(BpfProgramTest, EndpointIndependentFilteringIsPerMasquerade) {
  h_->addMasq(kNs1, 32, 0, GW_MASQ_F_EIF);
  expectRun(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40002, 3478, {1}), TC_ACT_OK,
            udpFrame(ip(kUplink, kRemote), 40002, 3478, {1}));
  expectRun(Prog::UplinkIngress, udpFrame(ip(kClient, kUplink), 9, 40002, {2}), TC_ACT_OK,
            udpFrame(ip(kClient, kNs1), 9, 40002, {2}));
  expectRun(Prog::UplinkEgress, udpFrame(ip(kNs1, kClient), 40002, 9, {3}), TC_ACT_OK,
            udpFrame(ip(kUplink, kClient), 40002, 9, {3}));
  expectRun(Prog::UplinkEgress, udpFrame(ip(kNs2, kRemote), 40010, 3478, {4}), TC_ACT_OK,
            udpFrame(ip(kUplink, kRemote), 40010, 3478, {4}));
  Bytes filtered = udpFrame(ip(kClient, kUplink), 9, 40010, {5});
  expectRun(Prog::UplinkIngress, filtered, TC_ACT_OK, filtered);
}

// ---- conntrack repair ----

// The peer check runs on one packet in 32 of a direction (conntrack.h): within 64 it is back.
TEST_F(BpfProgramTest, MissingPeerIsRecreated) {
  h_->run(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn));
  auto replyKey = BpfHarness::key(kNs1, kClient, 80, 40001, kTcp);
  auto before = h_->ct(replyKey);
  ASSERT_TRUE(before);
  h_->ctDelete(replyKey);
  for (int i = 0; i < 64 && !h_->ct(replyKey); ++i) {
    expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck),
              TC_ACT_OK, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpAck));
  }
  auto after = h_->ct(replyKey);
  ASSERT_TRUE(after);
  EXPECT_EQ(0, std::memcmp(&after->new_saddr, &before->new_saddr, sizeof(gw_addr)));
  EXPECT_EQ(0, std::memcmp(&after->new_daddr, &before->new_daddr, sizeof(gw_addr)));
  EXPECT_EQ(after->new_sport, before->new_sport);
  EXPECT_EQ(after->new_dport, before->new_dport);
  EXPECT_EQ(after->dir, GW_CT_DIR_REPLY);
  EXPECT_EQ(0, std::memcmp(&after->peer, &before->peer, sizeof(gw_ct_key)));
}

// The original half evicted, the reply half kept: the next packet's insert clashes with its
// own flow, which is rebuilt from the reply half instead of the packet being dropped.
TEST_F(BpfProgramTest, EvictedOriginalHalfIsRevivedByItsNextPacket) {
  h_->run(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn));
  auto origKey = BpfHarness::key(kClient, kUplink, 40001, 8080, kTcp);
  ASSERT_TRUE(h_->ct(origKey));
  h_->ctDelete(origKey);
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck),
            TC_ACT_OK, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpAck));
  EXPECT_TRUE(h_->ct(origKey));
  EXPECT_EQ(h_->reason(GW_REASON_DROP_CT_INSERT), 0u);
  EXPECT_EQ(h_->reason(GW_REASON_CT_CREATED), 1u);
}

// ---- straight into a managed namespace (gw_endpoint_v4, bpf_redirect_peer) ----

constexpr uint8_t kNs1Mac[6] = {0x02, 0x11, 0x11, 0x11, 0x11, 0x01};
constexpr uint8_t kNs1HostMac[6] = {0x02, 0x22, 0x22, 0x22, 0x22, 0x01};
constexpr uint8_t kNs2Mac[6] = {0x02, 0x11, 0x11, 0x11, 0x11, 0x02};
constexpr uint8_t kNs2HostMac[6] = {0x02, 0x22, 0x22, 0x22, 0x22, 0x02};

class PeerRedirectTest : public BpfProgramTest {
protected:
  void SetUp() override {
    BpfProgramTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    setRedirect(true);
    h_->addEndpoint(kNs1, 41, kNs1Mac, kNs1HostMac);
    h_->addEndpoint(kNs2, 42, kNs2Mac, kNs2HostMac);
  }

  void setRedirect(bool on) {
    gw_config cfg = baseConfig();
    cfg.flags = on ? GW_CFG_FIB_REDIRECT : 0;
    h_->setConfig(cfg);
  }

  // The frame as the namespace receives it: addressed to its eth0, from the gateway end.
  static Bytes toPeer(Bytes frame, const uint8_t (&dst)[6], const uint8_t (&src)[6]) {
    std::memcpy(frame.data(), dst, 6);
    std::memcpy(frame.data() + 6, src, 6);
    return frame;
  }

  static Ip4 aged(uint32_t s, uint32_t d, uint8_t ttl = 63) {
    Ip4 r = ip(s, d);
    r.ttl = ttl;
    return r;
  }
};

TEST_F(PeerRedirectTest, DnatFromUplinkGoesToTheNamespacePeer) {
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kClient, kNs1), 40001, 80, kTcpSyn), kNs1Mac, kNs1HostMac));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 1u);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 1u);
  EXPECT_EQ(h_->ctCount(), 2u);
  // established packets too, with a payload
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck, {1, 2, 3}),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kClient, kNs1), 40001, 80, kTcpAck, {1, 2, 3}), kNs1Mac,
                   kNs1HostMac));
  expectRun(Prog::UplinkIngress, udpFrame(ip(kClient, kUplink), 40009, 5353, {9, 8, 7}),
            TC_ACT_REDIRECT,
            toPeer(udpFrame(aged(kClient, kNs1), 40009, 53, {9, 8, 7}), kNs1Mac, kNs1HostMac));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 3u);
}

TEST_F(PeerRedirectTest, MasqueradeReplyGoesToTheNamespacePeer) {
  // the way out is uplink egress: never redirected there
  expectRun(Prog::UplinkEgress, tcpFrame(ip(kNs2, kRemote), 40002, 443, kTcpSyn), TC_ACT_OK,
            tcpFrame(ip(kUplink, kRemote), 40002, 443, kTcpSyn));
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kRemote, kUplink), 443, 40002, kTcpSyn | kTcpAck),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kRemote, kNs2), 443, 40002, kTcpSyn | kTcpAck), kNs2Mac,
                   kNs2HostMac));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 1u);
}

TEST_F(PeerRedirectTest, NamespaceToNamespaceBothWays) {
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs2, kUplink), 40004, 8080, kTcpSyn),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kNs2, kNs1), 40004, 80, kTcpSyn), kNs1Mac, kNs1HostMac));
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kNs2), 80, 40004, kTcpSyn | kTcpAck),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kUplink, kNs2), 8080, 40004, kTcpSyn | kTcpAck), kNs2Mac,
                   kNs2HostMac));
  // hairpin: back into the namespace it came from, from the bridge address
  expectRun(Prog::EndpointIngress, tcpFrame(ip(kNs1, kUplink), 40005, 8080, kTcpSyn),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kBridge, kNs1), 40005, 80, kTcpSyn), kNs1Mac, kNs1HostMac));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 3u);
}

TEST_F(PeerRedirectTest, ExpiringTtlIsLeftToTheStack) {
  // translated, but TTL and MACs untouched: the stack routes it and answers time exceeded
  expectRun(Prog::UplinkIngress, tcpFrame(aged(kClient, kUplink, 1), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcpFrame(aged(kClient, kNs1, 1), 40001, 80, kTcpSyn));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 0u);
  expectRun(Prog::UplinkIngress, tcpFrame(aged(kClient, kUplink, 2), 40001, 8080, kTcpAck),
            TC_ACT_REDIRECT,
            toPeer(tcpFrame(aged(kClient, kNs1, 1), 40001, 80, kTcpAck), kNs1Mac, kNs1HostMac));
}

TEST_F(PeerRedirectTest, OnlyWhenForwardingByRedirect) {
  // GW_CFG_FIB_REDIRECT off: everything translated goes to the stack, endpoint or not
  setRedirect(false);
  expectRun(Prog::UplinkIngress, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn),
            TC_ACT_OK, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpSyn));
  EXPECT_EQ(h_->reason(GW_REASON_REDIRECT), 0u);
}

// ---- XDP fast path ----

TEST_F(BpfProgramTest, XdpTranslatesEstablishedOnly) {
  Bytes syn = tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn);
  // no flow yet: untouched, tc creates it
  expectRun(Prog::UplinkXdp, syn, XDP_PASS, syn);
  h_->run(Prog::UplinkIngress, syn);
  expectRun(Prog::UplinkXdp, tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck, {7}),
            XDP_PASS, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpAck, {7}));
  // SNAT replies, UDP with and without checksum, ICMP echo replies
  h_->run(Prog::UplinkEgress, udpFrame(ip(kNs1, kRemote), 40002, 53, {1}));
  expectRun(Prog::UplinkXdp, udpFrame(ip(kRemote, kUplink), 53, 40002, {4, 5}), XDP_PASS,
            udpFrame(ip(kRemote, kNs1), 53, 40002, {4, 5}));
  expectRun(Prog::UplinkXdp, udpFrame(ip(kRemote, kUplink), 53, 40002, {4, 5}, true),
            XDP_PASS, udpFrame(ip(kRemote, kNs1), 53, 40002, {4, 5}, true));
  h_->run(Prog::UplinkEgress, icmpEchoFrame(ip(kNs2, kRemote), 8, 0x55, 3));
  expectRun(Prog::UplinkXdp, icmpEchoFrame(ip(kRemote, kUplink), 0, 0x55, 3), XDP_PASS,
            icmpEchoFrame(ip(kRemote, kNs2), 0, 0x55, 3));
  // a flow missing its peer still translates; the peer is rebuilt within a few packets
  auto replyKey = BpfHarness::key(kNs1, kClient, 80, 40001, kTcp);
  h_->ctDelete(replyKey);
  Bytes ack = tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpAck);
  unsigned sent = 0;
  for (; sent < 64 && !h_->ct(replyKey); ++sent) {
    expectRun(Prog::UplinkXdp, ack, XDP_PASS, tcpFrame(ip(kClient, kNs1), 40001, 80, kTcpAck));
  }
  EXPECT_TRUE(h_->ct(replyKey));
  EXPECT_EQ(h_->reason(GW_REASON_NAT_DNAT), 2u + sent);
  EXPECT_EQ(h_->reason(GW_REASON_NAT_REPLY), 3u);
}

// ---- malformed and foreign input: never a crash, always counted ----

struct BadInput {
  const char* name;
  std::function<Bytes()> frame;
  uint32_t tcVerdict;
  gw_reason reason;
  // PROG_TEST_RUN refuses an skb with an IPv4 ethertype but no room for an IPv4 header
  // (-EINVAL): the stack never hands tc such a packet. XDP still sees it.
  bool tcRunnable = true;
};

Bytes truncated(Bytes b, size_t n) {
  b.resize(n);
  return b;
}

Bytes patched(Bytes b, size_t off, uint8_t value) {
  b[off] = value;
  return b;
}

Bytes syn() { return tcpFrame(ip(kClient, kUplink), 40001, 8080, kTcpSyn); }

const BadInput kBadInputs[] = {
    {"EthernetAndFourBytes", [] { return truncated(syn(), 14 + 4); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED, false},
    {"TruncatedIp", [] { return truncated(syn(), 14 + 12); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED, false},
    {"TruncatedTcp", [] { return truncated(syn(), 14 + 20 + 10); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"IhlBelowFive", [] { return patched(syn(), 14, 0x44); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"IhlBeyondPacket", [] { return truncated(patched(syn(), 14, 0x4f), 14 + 40); },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"TotalLengthBeyondFrame", [] { return patched(syn(), 14 + 2, 0x10); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"TotalLengthBelowHeader", [] { return patched(patched(syn(), 14 + 2, 0), 14 + 3, 10); },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"TotalLengthCutsTcpHeader",
     [] { return patched(patched(syn(), 14 + 2, 0), 14 + 3, 30); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"NotIpv4Version", [] { return patched(syn(), 14, 0x65); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"Arp", [] { return ethFrame(Bytes(28, 0), 0x0806); }, TC_ACT_OK, GW_REASON_PASS_NOT_IP},
    // IPv6 is parsed; what does not parse is dropped (a well-formed one passes, for now:
    // Ipv6WithUpToEightExtensionHeadersPassesUntouched).
    {"Ipv6VersionZero", [] { return ethFrame(Bytes(60, 0), 0x86dd); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"Ipv6PayloadLengthBeyondFrame",
     [] { return patched(tcp6Frame(ip6(kClient6, kUplink6), 1, 2, kTcpSyn), 14 + 5, 61); },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6NineExtensionHeaders",
     [] {
       return udp6Frame(ip6(kClient6, kUplink6, std::vector<Ext6>(9, destOptions())), 1, 2);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6ExtensionHeaderPastThePayload", // says 16 bytes, 8 are left
     [] {
       Bytes f = ethFrame(ip6Packet(ip6(kClient6, kUplink6, {destOptions()}), kNoNextHeader, {}),
                          kEtherTypeIpv6);
       return patched(f, 14 + 40 + 1, 1);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6ExtensionHeaderCutShort", // the payload ends 4 bytes into a header
     [] {
       Bytes f = ethFrame(ip6Packet(ip6(kClient6, kUplink6), kExtDestOptions, {59, 0, 1, 2}),
                          kEtherTypeIpv6);
       return f;
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6FragmentHeaderCutShort",
     [] {
       return ethFrame(ip6Packet(ip6(kClient6, kUplink6), kExtFragment, {kUdp, 0, 0, 1}),
                       kEtherTypeIpv6);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6HopByHopNotFirst",
     [] { return udp6Frame(ip6(kClient6, kUplink6, {destOptions(), hopByHop()}), 1, 2); },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6TwoFragmentHeaders",
     [] {
       return udp6Frame(ip6(kClient6, kUplink6,
                            {fragmentHeader(0, true, 1), fragmentHeader(0, true, 1)}),
                        1, 2);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6FirstFragmentWithoutItsTcpHeader", // RFC 7112: the chain must reach the L4 header
     [] {
       return ethFrame(ip6Packet(ip6(kClient6, kUplink6, {fragmentHeader(0, true, 7)}), kTcp,
                                 Bytes(12, 0)),
                       kEtherTypeIpv6);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"Ipv6PayloadLengthCutsTcpHeader",
     [] { return patched(tcp6Frame(ip6(kClient6, kUplink6), 1, 2, kTcpSyn), 14 + 5, 10); },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"UnknownProtocol",
     [] { return ethFrame(ipPacket(ip(kClient, kUplink), 47, Bytes(24, 0))); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    {"IcmpTimestamp",
     [] {
       Bytes m(20, 0);
       m[0] = 13;
       return ethFrame(ipPacket(ip(kClient, kUplink), kIcmp, m));
     },
     TC_ACT_OK, GW_REASON_PASS_NO_MATCH},
    {"IcmpErrorWithShortQuote",
     [] { return icmpErrorFrame(ip(kRouter, kUplink), 3, 1, Bytes(12, 0x45)); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    // The corpus of lying headers, flags and fragments (issue 10 §4).
    {"TcpDataOffsetBelowFive", [] { return patched(syn(), 14 + 20 + 12, 0x40); }, TC_ACT_SHOT,
     GW_REASON_DROP_MALFORMED},
    {"TotalLengthCutsUdpHeader",
     [] {
       return patched(patched(udpFrame(ip(kRemote, kUplink), 53, 40002, {1, 2, 3}), 14 + 2, 0),
                      14 + 3, 26);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"TotalLengthCutsIcmpHeader",
     [] {
       return patched(patched(icmpEchoFrame(ip(kRemote, kUplink), 0, 0x55, 3), 14 + 2, 0),
                      14 + 3, 24);
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"LaterFragmentBeforeItsFirst",
     [] {
       Bytes l4 = l3Of(udpFrame(ip(kRemote, kUplink), 53, 40002, Bytes(64, 7)));
       l4.erase(l4.begin(), l4.begin() + 20);
       return fragmentFrames(ip(kRemote, kUplink), kUdp, l4, 32).at(1);
     },
     TC_ACT_SHOT, GW_REASON_FRAGMENT_HELD},
    {"TcpFragmentAtOffsetEight", // RFC 1858: could only overwrite the first one's ports
     [] {
       Ip4 at8 = ip(kRemote, kUplink);
       at8.fragOffset = 8;
       return ethFrame(ipPacket(at8, kTcp, Bytes(12, 0x02)));
     },
     TC_ACT_SHOT, GW_REASON_DROP_MALFORMED},
    {"LaterFragmentLargerThanAHoldSlot",
     [] {
       Ip4 far = ip(kRemote, kUplink);
       far.fragOffset = 1480;
       return ethFrame(ipPacket(far, kUdp, Bytes(GW_FRAG_HELD_BYTES, 0x5a)));
     },
     TC_ACT_SHOT, GW_REASON_DROP_FRAGMENT_TOO_BIG},
    {"IcmpErrorAboutAFlowWeDoNotOwn",
     [] {
       Bytes quoted = l3Of(udpFrame(ip(kUplink, kRemote), 5555, 53, {1}));
       return icmpErrorFrame(ip(kRouter, kUplink), 3, 3, quoted);
     },
     TC_ACT_OK, GW_REASON_PASS_NO_MATCH},
    {"IcmpErrorQuotingAnIcmpError",
     [] {
       Bytes inner = l3Of(icmpErrorFrame(ip(kUplink, kRouter), 3, 3, Bytes(28, 0x45)));
       return icmpErrorFrame(ip(kRouter, kUplink), 11, 0, inner);
     },
     TC_ACT_OK, GW_REASON_PASS_NO_MATCH},
    {"SynFinToAPortNobodyExposed",
     [] { return tcpFrame(ip(kClient, kUplink), 40001, 9999, kTcpSyn | kTcpFin); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    {"EveryTcpFlagToAPortNobodyExposed",
     [] { return tcpFrame(ip(kClient, kUplink), 40001, 9999, 0xff); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    {"NullTcpFlagsToAPortNobodyExposed",
     [] { return tcpFrame(ip(kClient, kUplink), 40001, 9999, 0); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    {"EmptyUdpToAPortNobodyExposed",
     [] { return udpFrame(ip(kClient, kUplink), 40001, 9999); }, TC_ACT_OK,
     GW_REASON_PASS_NO_MATCH},
    {"IpOptionsToAPortNobodyExposed",
     [] {
       Ip4 h = ip(kClient, kUplink);
       h.options = {0x94, 0x04, 0x00, 0x00}; // router alert
       return tcpFrame(h, 40001, 9999, kTcpSyn);
     },
     TC_ACT_OK, GW_REASON_PASS_NO_MATCH},
};

class BadInputTest : public BpfProgramTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(BadInputTest, CountedNeverCrashes) {
  const BadInput& c = GetParam();
  Bytes in = c.frame();
  uint64_t expected = 0;
  for (Prog prog : {Prog::UplinkIngress, Prog::UplinkEgress, Prog::EndpointIngress}) {
    RunResult r = h_->run(prog, in);
    if (!c.tcRunnable) {
      EXPECT_EQ(r.err, -EINVAL);
      continue;
    }
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.verdict, c.tcVerdict);
    EXPECT_EQ(r.out, in) << "a packet we do not handle must not change";
    EXPECT_EQ(h_->reason(c.reason), ++expected);
  }
  RunResult x = h_->run(Prog::UplinkXdp, in);
  ASSERT_EQ(x.err, 0);
  EXPECT_EQ(x.verdict, XDP_PASS);
  EXPECT_EQ(x.out, in);
  EXPECT_EQ(h_->ctCount(), 0u);
}

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

INSTANTIATE_TEST_SUITE_P(Malformed, BadInputTest, ::testing::ValuesIn(kBadInputs),
                         [](const auto& info) { return std::string(info.param.name); });

// The builder's layout and checksums, checked by hand against RFC 8200.
TEST(PacketBuilder6, ChainLayoutAndChecksums) {
  Ip6 h = ip6(kClient6, kUplink6,
              {hopByHop({5, 2, 0, 0}), routingHeader(4, 0, {kUplink6}), destOptions(),
               fragmentHeader(0, true, 0xa1b2c3d4)});
  Bytes f = tcp6Frame(h, 40001, 8080, kTcpSyn, {1, 2, 3});
  ASSERT_EQ(f[12] << 8 | f[13], 0x86dd);
  Bytes l3 = l3Of(f);
  EXPECT_EQ(l3[0] >> 4, 6);
  size_t off = 40;
  uint8_t next = l3[6];
  std::vector<uint8_t> seen;
  while (next != kTcp) {
    seen.push_back(next);
    size_t len = next == kExtFragment ? 8 : (l3[off + 1] + 1u) * 8;
    next = l3[off];
    off += len;
  }
  EXPECT_EQ(seen, (std::vector<uint8_t>{kExtHopByHop, kExtRouting, kExtDestOptions,
                                        kExtFragment}));
  EXPECT_EQ(off, 40u + 8 + 24 + 8 + 8);
  EXPECT_EQ(size_t(l3[4] << 8 | l3[5]), l3.size() - 40);
  EXPECT_EQ(l3[off - 8 + 3], 1) << "M flag";
  EXPECT_EQ(l3[off - 4], 0xa1);
  std::span<const uint8_t> tcp(l3.data() + off, l3.size() - off);
  EXPECT_TRUE(l4Checksum6Ok(tcp, kClient6, kUplink6, kTcp));
  Bytes bad(tcp.begin(), tcp.end());
  bad[4] ^= 1;
  EXPECT_FALSE(l4Checksum6Ok(bad, kClient6, kUplink6, kTcp));

  Decoded6 d = decode6(f);
  ASSERT_TRUE(d.ipv6);
  EXPECT_EQ(d.ext, seen);
  EXPECT_EQ(d.proto, kTcp);
  EXPECT_TRUE(d.fragment);
  EXPECT_FALSE(d.laterFragment);
  EXPECT_EQ(d.fragId, 0xa1b2c3d4u);
  EXPECT_EQ(d.sport, 40001);
  EXPECT_EQ(d.dport, 8080);
  EXPECT_EQ(d.saddr, kClient6);
  Decoded6 later = decode6(ethFrame(
      ip6Packet(ip6(kClient6, kUplink6, {fragmentHeader(8, false, 3)}), kUdp, Bytes(8, 1)),
      kEtherTypeIpv6));
  EXPECT_TRUE(later.ipv6 && later.laterFragment && later.l4CsumOk);
  EXPECT_EQ(later.proto, kUdp);
  Decoded6 whole = decode6(tcp6Frame(ip6(kClient6, kUplink6, {hopByHop()}), 1, 2, kTcpAck));
  EXPECT_TRUE(whole.ipv6 && whole.l4CsumOk);
  Bytes corrupt = tcp6Frame(ip6(kClient6, kUplink6), 1, 2, kTcpAck);
  corrupt.back() ^= 0x40; // the urgent pointer
  EXPECT_FALSE(decode6(corrupt).l4CsumOk);

  Bytes u = l3Of(udp6Frame(ip6(kClient6, kUplink6), 1, 2, {9}));
  EXPECT_TRUE(l4Checksum6Ok(std::span(u).subspan(40), kClient6, kUplink6, kUdp));
  Bytes e = l3Of(icmp6EchoFrame(ip6(kClient6, kUplink6), 128, 0x77, 1));
  EXPECT_EQ(e[6], 58);
  EXPECT_TRUE(l4Checksum6Ok(std::span(e).subspan(40), kClient6, kUplink6, 58));
}

// ---- IPv6: parsed, and for now passed untouched ----

// n extension headers: hop-by-hop first, then routing and destination options, with a
// first-fragment header fourth when firstFragment.
std::vector<Ext6> chainOf(size_t n, bool firstFragment) {
  std::vector<Ext6> ext;
  for (size_t i = 0; i < n; ++i) {
    if (i == 0) {
      ext.push_back(hopByHop({5, 2, 0, 0})); // router alert
    } else if (i == 3 && firstFragment) {
      ext.push_back(fragmentHeader(0, true, 0x01020304));
    } else if (i % 2) {
      ext.push_back(routingHeader(4, 0, {kUplink6}));
    } else {
      ext.push_back(destOptions(Bytes(10, 0))); // Pad1s, padded to 16 bytes
    }
  }
  return ext;
}

TEST_F(BpfProgramTest, Ipv6WithUpToEightExtensionHeadersPassesUntouched) {
  std::vector<Bytes> frames;
  std::vector<Bytes> laterFragments;
  for (size_t n = 0; n <= GW_IP6_MAX_EXT; ++n) {
    for (bool first : {false, true}) {
      Ip6 h = ip6(kClient6, kUplink6, chainOf(n, first));
      frames.push_back(tcp6Frame(h, 40001, 8080, kTcpSyn, {1, 2, 3}));
      frames.push_back(udp6Frame(h, 40001, 5353, {4}));
      frames.push_back(icmp6EchoFrame(h, 128, 0x55, 1));
    }
    if (n > 0) { // a later fragment: the chain ends at its fragment header
      Ip6 h = ip6(kClient6, kUplink6, chainOf(n - 1, false));
      h.ext.push_back(fragmentHeader(1232, false, 0x01020304 + n));
      laterFragments.push_back(ethFrame(ip6Packet(h, kUdp, Bytes(24, 7)), kEtherTypeIpv6));
    }
  }
  // an atomic fragment (offset 0, no M: RFC 6946) and an ICMPv6 error
  frames.push_back(
      udp6Frame(ip6(kClient6, kUplink6, {fragmentHeader(0, false, 9)}), 40001, 5353, {4}));
  frames.push_back(icmp6ErrorFrame(ip6(kUplink6, kClient6), 1, 4,
                                   l3Of(udp6Frame(ip6(kClient6, kUplink6), 5353, 40001))));

  uint64_t passed = 0;
  for (const Bytes& in : frames) {
    SCOPED_TRACE(hexDump(in));
    for (Prog prog : {Prog::UplinkIngress, Prog::UplinkEgress, Prog::EndpointIngress}) {
      expectRun(prog, in, TC_ACT_OK, in);
      // no rule names these addresses: not ours
      EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), ++passed) << progName(prog);
    }
    expectRun(Prog::UplinkXdp, in, XDP_PASS, in);
  }
  // A later fragment before its first is held until the first says whose it is (as IPv4's;
  // Ipv6ProgramTest has the rest), the chain before its fragment header walked.
  uint64_t held = 0;
  for (const Bytes& in : laterFragments) {
    SCOPED_TRACE(hexDump(in));
    for (Prog prog : {Prog::UplinkIngress, Prog::UplinkEgress, Prog::EndpointIngress}) {
      EXPECT_EQ(h_->run(prog, in).verdict, static_cast<uint32_t>(TC_ACT_SHOT));
      EXPECT_EQ(h_->reason(GW_REASON_FRAGMENT_HELD), ++held) << progName(prog);
    }
    expectRun(Prog::UplinkXdp, in, XDP_PASS, in);
  }
  EXPECT_EQ(h_->reason(GW_REASON_DROP_MALFORMED), 0u);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NOT_IP), 0u);
  EXPECT_EQ(h_->ctCount(), 0u);
}

// ---- baseline ----

TEST_F(BpfProgramTest, PassthroughCountsAndPasses) {
  Bytes in = syn();
  expectRun(Prog::PassTc, in, TC_ACT_OK, in);
  expectRun(Prog::PassXdp, in, XDP_PASS, in);
  EXPECT_EQ(h_->reason(GW_REASON_PASS_NO_MATCH), 2u);
}

} // namespace
} // namespace gw::test
