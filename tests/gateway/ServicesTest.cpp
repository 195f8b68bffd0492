// SPDX-License-Identifier: MIT
// The rules of gatewayd's services (exposes, namespaces, masquerade, conntrack, metrics)
// against fakes of the kernel: what they refuse, what they make, and what a failure midway
// leaves (nothing).
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/Log.h"
#include "bpf/gw_abi.h"
#include "gateway/services/ConntrackService.h"
#include "gateway/services/ExposeService.h"
#include "gateway/services/MasqueradeService.h"
#include "gateway/services/MetricsService.h"
#include "gateway/services/NamespaceService.h"
#include "tests/gateway/Fakes.h"

namespace gw {
namespace {


IpAddress ip(std::string_view text) {
  return IpAddress::parse(text).value();
}

IpPrefix prefix(std::string_view text) {
  return IpPrefix::parse(text).value();
}

const char* kindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Internal:
      return "Internal";
    case ErrorKind::Invalid:
      return "Invalid";
    case ErrorKind::NotFound:
      return "NotFound";
    case ErrorKind::Conflict:
      return "Conflict";
    case ErrorKind::Unavailable:
      return "Unavailable";
    case ErrorKind::Forbidden:
      return "Forbidden";
  }
  return "?";
}

// That `r` failed with `kind` and a message containing `text`.
template <class T>
::testing::AssertionResult failsWith(const Result<T>& r, ErrorKind kind, std::string_view text) {
  if (r) {
    return ::testing::AssertionFailure() << "succeeded, expected " << kindName(kind);
  }
  if (r.error().kind != kind) {
    return ::testing::AssertionFailure() << kindName(r.error().kind) << " instead of "
                                         << kindName(kind) << ": " << r.error().str();
  }
  if (r.error().str().find(text) == std::string::npos) {
    return ::testing::AssertionFailure() << "no '" << text << "' in: " << r.error().str();
  }
  return ::testing::AssertionSuccess();
}

api::ExposeRequest expose(std::string_view hostPorts, std::string_view target,
                          Proto proto = Proto::Tcp) {
  return {.hostPort = parsePortRange(hostPorts, "host port").value(),
          .target = parseTarget(target).value(),
          .proto = proto};
}

api::ExposeRequest withMode(api::ExposeRequest r, ExposeMode mode) {
  r.mode = mode;
  return r;
}

api::ExposeRequest withHostIp(api::ExposeRequest r, std::string_view addr) {
  r.hostIp = ip(addr);
  return r;
}

api::ExposeRequest withFamily(api::ExposeRequest r, IpFamilies family) {
  r.family = family;
  return r;
}

api::UnexposeQuery unexpose(std::string_view ports, Proto proto = Proto::Tcp) {
  return {.port = parsePortRange(ports, "host port").value(), .proto = proto};
}

constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint8_t kUdp = IPPROTO_UDP;

ExposeKey v4Key(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort) {
  return {proto, AF_INET, hostAddr, hostPort};
}
ExposeKey v6Key(uint8_t proto, const IpAddress& hostAddr, uint16_t hostPort) {
  return {proto, AF_INET6, hostAddr, hostPort};
}

// The daemon's composition (gateway/Gateway.cpp) over fakes.
class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override { log::setLevel(log::Level::Error); }

  void unloadDatapath() { datapath_ = DatapathRef{nullptr, "bpf() refused by the test"}; }

  // A namespace wired by hand, outside gatewayd.
  void handMade(const std::string& name, std::vector<std::string_view> addresses) {
    test::FakeNamespace& ns = topology_.namespaces_[name];
    for (auto a : addresses) {
      ns.addresses.push_back(prefix(a));
    }
  }

  api::NamespaceAdded addNamespace(const std::string& name,
                                   std::optional<std::string_view> subnet = std::nullopt,
                                   std::optional<std::string> bridge = std::nullopt) {
    api::NamespaceAddRequest request{.name = name, .bridge = std::move(bridge)};
    if (subnet) {
      request.subnet = prefix(*subnet);
    }
    auto r = namespaces_.add(request);
    EXPECT_TRUE(r) << r.error().str();
    return r.value_or(api::NamespaceAdded{});
  }

  api::ExposeAdded addExpose(const api::ExposeRequest& request) {
    auto r = exposes_.add(request);
    EXPECT_TRUE(r) << r.error().str();
    return r.value_or(api::ExposeAdded{});
  }

  State state_;
  test::FakeStateSink store_;
  test::FakeDatapath dp_;
  DatapathRef datapath_{&dp_, {}};
  test::FakeTopology topology_;
  test::FakeProxy proxy_;
  ServiceContext ctx_{state_, store_, datapath_, "uplink0"};
  NamespaceService namespaces_{ctx_, topology_};
  ExposeService exposes_{ctx_, topology_, proxy_};
  MasqueradeService masquerades_{ctx_, topology_, [this] { return namespaces_.subnets(); }};
  ConntrackService conntrack_{ctx_};
  MetricsService metrics_{ctx_, exposes_, conntrack_, proxy_};
  HandWiredEndpoints handWired_{ctx_, topology_, [this] {
                                  EndpointWants w = exposes_.handWiredTargets();
                                  for (const auto& m : state_.masquerades) {
                                    w.prefixes.push_back(m.source);
                                  }
                                  return w;
                                }};
};

// ---- exposes

using ExposeRules = ServicesTest;

TEST_F(ExposeRules, ASecondExposeOfTheSameProtoAndPortClashes) {
  addExpose(expose("8080", "10.0.0.5:80"));
  EXPECT_TRUE(failsWith(exposes_.add(expose("8080", "10.0.0.6:80")), ErrorKind::Conflict,
                        "clashes with the expose of 8080 to 10.0.0.5:80"));
  EXPECT_TRUE(failsWith(exposes_.add(expose("8075-8085", "10.0.0.6:75-85")), ErrorKind::Conflict,
                        "clashes"));
  // UDP has ports of its own.
  addExpose(expose("8080", "10.0.0.6:80", Proto::Udp));
  EXPECT_EQ(state_.exposes.size(), 2u);
  EXPECT_EQ(dp_.exposeCount(kTcp, 1, 65535), 1u);
  EXPECT_EQ(dp_.exposeCount(kUdp, 1, 65535), 1u);
  EXPECT_EQ(store_.commits_, 2);
}

TEST_F(ExposeRules, AHostIpClashesWithAnyAddressButNotWithAnotherHostIp) {
  addExpose(withHostIp(expose("9000", "10.0.0.5:80"), "192.0.2.10"));
  addExpose(withHostIp(expose("9000", "10.0.0.6:80"), "192.0.2.11"));
  EXPECT_TRUE(
      failsWith(exposes_.add(expose("9000", "10.0.0.7:80")), ErrorKind::Conflict, "clashes"));

  addExpose(expose("9100", "10.0.0.5:80"));
  EXPECT_TRUE(failsWith(exposes_.add(withHostIp(expose("9100", "10.0.0.6:80"), "192.0.2.10")),
                        ErrorKind::Conflict, "clashes"));
  EXPECT_EQ(dp_.exposes_.size(), 3u);
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, ip("192.0.2.11"), 9000)));
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 9100)));
}

TEST_F(ExposeRules, UnexposeOfAPortOnTwoHostIpsTakesTheHostIpToChoose) {
  addExpose(withHostIp(expose("9000", "10.0.0.5:80"), "192.0.2.10"));
  addExpose(withHostIp(expose("9000", "10.0.0.6:80"), "192.0.2.11"));
  EXPECT_TRUE(failsWith(exposes_.remove(unexpose("9000")), ErrorKind::Conflict,
                        "exposed on 192.0.2.10 and on 192.0.2.11: choose one with --host-ip"));
  auto choose = unexpose("9000");
  choose.hostIp = ip("192.0.2.12");
  EXPECT_TRUE(failsWith(exposes_.remove(choose), ErrorKind::NotFound,
                        "nothing is exposed on host port 192.0.2.12:9000/tcp"));
  choose.hostIp = ip("192.0.2.11");
  ASSERT_TRUE(exposes_.remove(choose));
  EXPECT_EQ(dp_.exposes_.size(), 1u);
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, ip("192.0.2.10"), 9000)));
  // One left: no choice needed.
  ASSERT_TRUE(exposes_.remove(unexpose("9000")));
  EXPECT_TRUE(dp_.exposes_.empty());
}

TEST_F(ExposeRules, UnexposeRemovesTheRulesFlowsUnlessKeepFlows) {
  addExpose(expose("7000-7001", "10.0.0.5:7000-7001"));
  auto keep = unexpose("7000-7001");
  keep.keepFlows = true;
  ASSERT_TRUE(exposes_.remove(keep));
  EXPECT_EQ(dp_.deleteExposeFlows_,
            (std::vector<FlowsOfRule>{FlowsOfRule::Keep, FlowsOfRule::Keep}));
  EXPECT_TRUE(dp_.flowsDeletedTo_.empty());
  addExpose(expose("7000-7001", "10.0.0.5:7000-7001"));
  ASSERT_TRUE(exposes_.remove(unexpose("7000-7001")));
  // A range's ports in one walk of the conntrack table.
  ASSERT_EQ(dp_.flowsDeletedTo_.size(), 1u);
  EXPECT_EQ(dp_.flowsDeletedTo_.back(),
            (std::vector<ExposeKey>{v4Key(kTcp, {}, 7000), v4Key(kTcp, {}, 7001)}));
}

api::ExposeRequest withOwner(api::ExposeRequest r, std::string_view owner) {
  r.owner = parseExposeOwner(owner).value();
  return r;
}

// The CNI plugin's way: rules added with an owner go away together, their flows with them;
// other owners' and unowned rules stay; an owner with nothing left is no error (DEL again).
TEST_F(ExposeRules, AnOwnersRulesAreListedAndRemovedTogether) {
  const ExposeOwner a = parseExposeOwner("cni/abc/eth0").value();
  ASSERT_TRUE(exposes_.addBatch({withOwner(expose("7000", "10.0.0.5:80"), a.text),
                                 withOwner(expose("7001", "10.0.0.5:53", Proto::Udp), a.text)}));
  addExpose(withOwner(expose("7002", "10.0.0.6:80"), "cni/def/eth0"));
  addExpose(expose("7003", "10.0.0.7:80"));
  auto owners = exposes_.owners();
  ASSERT_EQ(owners.size(), 2u);
  EXPECT_EQ(owners[0].owner, a);
  EXPECT_EQ(owners[0].ids.size(), 2u);
  auto listed = exposes_.list();
  ASSERT_EQ(listed.size(), 4u);
  EXPECT_EQ(listed[0].owner, a);
  EXPECT_FALSE(listed[3].owner);

  auto gone = exposes_.removeOwner(a, api::Caller::Root);
  ASSERT_TRUE(gone) << gone.error().str();
  EXPECT_EQ(gone->deleted, 2u);
  EXPECT_EQ(state_.exposes.size(), 2u);
  ASSERT_EQ(dp_.flowsDeletedTo_.size(), 1u) << "one walk for the owner's rules";
  EXPECT_EQ(dp_.flowsDeletedTo_.back(),
            (std::vector<ExposeKey>{v4Key(kTcp, {}, 7000), v4Key(kUdp, {}, 7001)}));
  auto again = exposes_.removeOwner(a, api::Caller::Root);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->deleted, 0u);
  EXPECT_EQ(exposes_.owners().size(), 1u);
  // its ports are free again
  addExpose(expose("7000", "10.0.0.5:80"));
}

// ADD, and ADD again: the owner's set is replaced as a whole; a clash with another owner's
// port changes nothing.
TEST_F(ExposeRules, AnOwnersSetIsReplacedAllOrNothing) {
  const ExposeOwner a = parseExposeOwner("cni/abc/eth0").value();
  ASSERT_TRUE(exposes_.replaceOwner(a, {expose("7000", "10.0.0.5:80")}));
  auto again = exposes_.replaceOwner(a, {expose("7000", "10.0.0.5:80"),
                                         expose("7001", "10.0.0.5:53", Proto::Udp)});
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(state_.exposes.size(), 2u);
  EXPECT_EQ(exposes_.owners().at(0).ids.size(), 2u);
  addExpose(expose("7002", "10.0.0.6:80")); // someone else's port
  auto clash = exposes_.replaceOwner(a, {expose("7000", "10.0.0.5:80"), expose("7002", "10.0.0.5:81")});
  ASSERT_FALSE(clash);
  EXPECT_NE(clash.error().str().find("nothing changed"), std::string::npos) << clash.error().str();
  EXPECT_EQ(state_.exposes.size(), 3u);
  EXPECT_EQ(dp_.exposes_.size(), 3u) << "the owner's two rules are served again";
  store_.failNext_ = true;
  EXPECT_FALSE(exposes_.replaceOwner(a, {expose("7005", "10.0.0.5:80")}));
  EXPECT_EQ(state_.exposes.size(), 3u);
  EXPECT_EQ(dp_.exposes_.size(), 3u);
}

TEST_F(ExposeRules, AFailedCommitOfAnOwnersRemovalKeepsItsRules) {
  const ExposeOwner a = parseExposeOwner("cni/abc/eth0").value();
  addExpose(withOwner(expose("7000-7001", "10.0.0.5:80-81"), a.text));
  store_.failNext_ = true;
  EXPECT_TRUE(failsWith(exposes_.removeOwner(a, api::Caller::Root), ErrorKind::Internal,
                        "injected failure"));
  EXPECT_EQ(state_.exposes.size(), 1u);
  EXPECT_EQ(dp_.exposes_.size(), 2u) << "served again";
}

// IPv4 and IPv6 entries are separate keys: one port may hold a rule per family (the CNI
// plugin's dual-stack container: one expose to its IPv4 address, one to its IPv6 address).
TEST_F(ExposeRules, RulesOfOnePortInDifferentFamiliesDoNotClash) {
  auto v6 = expose("7000", "[fd00::5]:80");
  v6.family = IpFamilies::V6;
  addExpose(expose("7000", "10.0.0.5:80"));
  addExpose(v6);
  EXPECT_TRUE(failsWith(exposes_.add(expose("7000", "10.0.0.6:80")), ErrorKind::Conflict,
                        "clashes"));
  EXPECT_TRUE(failsWith(exposes_.add(v6), ErrorKind::Conflict, "clashes"));
  EXPECT_TRUE(failsWith(exposes_.remove(unexpose("7000")), ErrorKind::Conflict, "--family"));
  auto only6 = unexpose("7000");
  only6.family = IpFamilies::V6;
  ASSERT_TRUE(exposes_.remove(only6));
  ASSERT_EQ(state_.exposes.size(), 1u);
  EXPECT_TRUE(state_.exposes[0].targetAddr.isV4());
  ASSERT_TRUE(exposes_.remove(unexpose("7000")));
}

TEST_F(ExposeRules, TheClashMessageNamesTheNewRangeFirstAndTheExistingOneSecond) {
  addExpose(expose("8075-8085", "10.0.0.5:75-85"));
  EXPECT_TRUE(failsWith(exposes_.add(expose("8080-8090", "10.0.0.6:80-90")), ErrorKind::Conflict,
                        "host port 8080-8090/tcp clashes with the expose of 8075-8085 to "
                        "10.0.0.5:75-85"));
}

TEST_F(ExposeRules, ALocalSocketHoldingAPortIsAConflict) {
  topology_.portsInUse_.insert({Proto::Tcp, 8080});
  EXPECT_TRUE(failsWith(exposes_.add(expose("8079-8081", "10.0.0.5:79-81")), ErrorKind::Conflict,
                        "host port 8080/tcp is already in use by a local socket"));
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(state_.exposes.empty());
  EXPECT_EQ(store_.commits_, 0);
  addExpose(expose("8080", "10.0.0.5:80", Proto::Udp));
}

TEST_F(ExposeRules, RangesOfDifferentLengthsAreInvalid) {
  EXPECT_TRUE(failsWith(exposes_.add(expose("8000-8009", "10.0.0.5:80-85")), ErrorKind::Invalid,
                        "differ in length"));
  EXPECT_TRUE(dp_.exposes_.empty());
}

TEST_F(ExposeRules, AManagedNamespaceTargetIsItsAddress) {
  auto web = addNamespace("web");
  auto added = addExpose(expose("8080", "web:80"));
  EXPECT_EQ(added.targetAddr, ip("10.88.0.2"));
  EXPECT_EQ(added.path, ServingPath::Ebpf);
  ASSERT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 8080)));
  EXPECT_EQ((dp_.exposes_[v4Key(kTcp, IpAddress{}, 8080)].targetAddr), web.address);
  EXPECT_EQ(state_.exposes.back().targetNs, "web");
}

TEST_F(ExposeRules, AHandWiredNamespaceHasTheEndpointProgramUntilItsLastExposeGoes) {
  int veth = topology_.addLink("veth-hand").index;
  topology_.addHostAddress("veth-hand", prefix("198.51.100.1/24"));
  handMade("manual", {"198.51.100.7/24"});
  addExpose(expose("8080", "manual:80"));
  addExpose(expose("8081", "198.51.100.7:81"));
  EXPECT_TRUE(dp_.endpointPrograms_.contains(veth));
  EXPECT_EQ(exposes_.handWiredLinks(), std::set<int>{veth});
  // Targets on the uplink's subnet are reached through the uplink's programs alone.
  addExpose(expose("8082", "192.0.2.77:82"));
  EXPECT_EQ(dp_.endpointPrograms_.size(), 1u);
  ASSERT_TRUE(exposes_.remove(unexpose("8080")));
  EXPECT_TRUE(dp_.endpointPrograms_.contains(veth)) << "8081 still goes there";
  ASSERT_TRUE(exposes_.remove(unexpose("8081")));
  EXPECT_FALSE(dp_.endpointPrograms_.contains(veth));
}

// A namespace wired by hand whose eth0 is a veth ending on the gateway host (id 7 there).
void peer(test::FakeTopology& t, const std::string& ns, int hostIndex, std::string_view addr) {
  t.veths_[hostIndex] = 7;
  t.peered_[ns].id = 7;
  t.peered_[ns].addresses.push_back(PeeredAddress{
      .addr = ip(addr), .hostIndex = hostIndex, .hostMac = {2, 0, 0, 0, 0, 1},
      .peerMac = {2, 0, 0, 0, 0, 2}});
}

TEST_F(ExposeRules, AHandWiredVethGetsThePeerPathWhileARuleCoversItsAddress) {
  exposes_.setPeered([this](const IpAddress& a) { return handWired_.peered(a); });
  handMade("manual", {"198.51.100.7/24"});
  peer(topology_, "manual", 41, "198.51.100.7");
  addExpose(expose("8080", "manual:80"));
  handWired_.refresh();
  ASSERT_TRUE(dp_.endpoints_.contains(ip("198.51.100.7")));
  EXPECT_EQ(dp_.endpoints_[ip("198.51.100.7")].hostIfindex, 41);
  EXPECT_EQ(dp_.endpoints_[ip("198.51.100.7")].peerMac, (std::array<uint8_t, 6>{2, 0, 0, 0, 0, 2}));
  EXPECT_TRUE(dp_.endpointPrograms_.contains(41));
  EXPECT_EQ(handWired_.links(), std::set<int>{41});
  ASSERT_EQ(exposes_.list().size(), 1u);
  EXPECT_EQ(exposes_.list()[0].families.at(0).forward, Forwarding::Peer);
  // Nothing changed: the namespace is not looked into again.
  int scans = topology_.peeredScans_;
  handWired_.refresh();
  EXPECT_EQ(topology_.peeredScans_, scans);
  // Its veth replaced by hand: found again at its new host end.
  topology_.veths_.erase(41);
  topology_.peered_.erase("manual");
  peer(topology_, "manual", 52, "198.51.100.7");
  handWired_.refresh();
  EXPECT_EQ(dp_.endpoints_[ip("198.51.100.7")].hostIfindex, 52);
  EXPECT_EQ(handWired_.links(), std::set<int>{52});
  EXPECT_FALSE(dp_.endpointPrograms_.contains(41));
  // The last rule gone: entry and program go.
  ASSERT_TRUE(exposes_.remove(unexpose("8080")));
  handWired_.refresh();
  EXPECT_FALSE(dp_.endpoints_.contains(ip("198.51.100.7")));
  EXPECT_FALSE(dp_.endpointPrograms_.contains(52));
}

TEST_F(ExposeRules, AnAddressWithoutAVethToTheHostIsRoutedAndSaysSo) {
  exposes_.setPeered([this](const IpAddress& a) { return handWired_.peered(a); });
  handMade("manual", {"198.51.100.7/24"});
  addExpose(expose("8080", "198.51.100.7:80"));
  handWired_.refresh();
  EXPECT_TRUE(dp_.endpoints_.empty());
  EXPECT_EQ(exposes_.list()[0].families.at(0).forward, Forwarding::Route);
  // Its veth came later (ip link add ... netns manual): a request's refresh does not look
  // into namespaces that had none (there may be thousands), gatewayd's tick does.
  peer(topology_, "manual", 41, "198.51.100.7");
  handWired_.refresh();
  EXPECT_TRUE(dp_.endpoints_.empty());
  handWired_.refresh(true);
  EXPECT_TRUE(dp_.endpoints_.contains(ip("198.51.100.7")));
  EXPECT_EQ(exposes_.list()[0].families.at(0).forward, Forwarding::Peer);
}

TEST_F(ExposeRules, APeerBehindTheUplinkIsTheOutsideNotAnEndpoint) {
  // The uplink is a veth too (the lab's, a container's): its programs are the uplink's.
  handMade("outside", {"192.0.2.77/24"});
  peer(topology_, "outside", topology_.links_["uplink0"].index, "192.0.2.77");
  addExpose(expose("8080", "outside:80"));
  handWired_.refresh(true);
  EXPECT_TRUE(dp_.endpoints_.empty());
  EXPECT_TRUE(dp_.endpointPrograms_.empty());
}

TEST_F(ExposeRules, AMasqueradeCoversHandWiredAddressesButNeverAManagedOne) {
  auto web = addNamespace("web");
  handMade("manual", {"198.51.100.7/24"});
  peer(topology_, "manual", 41, "198.51.100.7");
  peer(topology_, "web", 42, "10.88.0.2"); // what a scan of a managed one would find
  auto before = dp_.endpoints_[web.address];
  ASSERT_TRUE(masquerades_.add(api::MasqueradeRequest{.source = prefix("198.51.100.0/24")}));
  ASSERT_TRUE(masquerades_.add(api::MasqueradeRequest{.source = prefix("10.88.0.0/16")}));
  handWired_.refresh();
  EXPECT_EQ(dp_.endpoints_[ip("198.51.100.7")].hostIfindex, 41);
  EXPECT_EQ(dp_.endpoints_[web.address].hostIfindex, before.hostIfindex);
  EXPECT_EQ(handWired_.addresses(), std::set<IpAddress>{ip("198.51.100.7")});
  handWired_.teardown();
  EXPECT_FALSE(dp_.endpoints_.contains(ip("198.51.100.7")));
  EXPECT_TRUE(dp_.endpoints_.contains(web.address));
}

TEST_F(ExposeRules, AGroupMemberPublishesOnlyTargetsInManagedNamespaces) {
  constexpr auto member = api::Caller::GroupMember;
  auto web = addNamespace("web");
  handMade("manual", {"192.0.2.77/24"});
  ASSERT_TRUE(exposes_.add(expose("8080", "web:80"), member));
  ASSERT_TRUE(exposes_.add(expose("8081", web.address.str() + ":80"), member));
  ASSERT_TRUE(exposes_.add(withMode(expose("8082", "web:80"), ExposeMode::Proxy), member));
  for (auto target : {"127.0.0.1:80", "manual:80", "192.0.2.77:80", "[::1]:80"}) {
    EXPECT_TRUE(failsWith(exposes_.add(withMode(expose("9000", target), ExposeMode::Proxy), member),
                          ErrorKind::Forbidden, "for root only"))
        << target;
  }
  // A batch holding one such target is refused whole.
  EXPECT_TRUE(failsWith(exposes_.addBatch({expose("9001", "web:81"), expose("9002", "manual:80")},
                                          member),
                        ErrorKind::Forbidden, "expose #2 of the batch"));
  EXPECT_EQ(state_.exposes.size(), 3u);
  // What root published there, a member may not take down either.
  addExpose(withMode(expose("9000", "127.0.0.1:80"), ExposeMode::Proxy));
  EXPECT_TRUE(failsWith(exposes_.remove(unexpose("9000"), member), ErrorKind::Forbidden,
                        "for root only"));
  ASSERT_TRUE(exposes_.remove(unexpose("8080"), member));
  // Unless the daemon's config says members may publish anything.
  exposes_.setGroupMayPublishAny(true);
  EXPECT_TRUE(exposes_.add(expose("9003", "manual:80"), member));
  EXPECT_TRUE(exposes_.remove(unexpose("9000"), member));
}

TEST_F(ExposeRules, AHandWiredNamespaceTargetIsItsAddressOnASubnetOfTheHost) {
  // 172.16.5.7 comes first but only 192.0.2.77 is on a subnet the host is attached to.
  handMade("manual", {"127.0.0.1/8", "172.16.5.7/24", "192.0.2.77/24"});
  EXPECT_EQ(addExpose(expose("8080", "manual:80")).targetAddr, ip("192.0.2.77"));
  // Without one, its first address that is not loopback.
  handMade("island", {"127.0.0.1/8", "172.16.5.7/24", "172.16.6.7/24"});
  EXPECT_EQ(addExpose(expose("8081", "island:80")).targetAddr, ip("172.16.5.7"));
  handMade("empty", {"127.0.0.1/8"});
  EXPECT_TRUE(failsWith(exposes_.add(expose("8082", "empty:80")), ErrorKind::NotFound,
                        "has no IPv4 or IPv6 address"));
}

TEST_F(ExposeRules, ANetnsPathTargetIsFoundAsAHandWiredNamespace) {
  handMade("/proc/77/ns/net", {"127.0.0.1/8", "192.0.2.77/24"});
  topology_.namespaces_["/proc/77/ns/net"].addresses6 = {prefix("fe80::1/64"),
                                                         prefix("2001:db8::77/64")};
  auto added = addExpose(expose("8080", "/proc/77/ns/net:80"));
  EXPECT_EQ(added.targetAddr, ip("192.0.2.77"));
  EXPECT_EQ(added.path, ServingPath::Ebpf);
  ASSERT_EQ(added.families.size(), 2u);
  EXPECT_EQ(added.families[1].path, ServingPath::Ebpf);
  EXPECT_EQ(added.families[1].targetAddr, ip("2001:db8::77")); // not the link-local one
  EXPECT_EQ(state_.exposes.back().targetNetnsPath, "/proc/77/ns/net");
  EXPECT_TRUE(state_.exposes.back().targetNs.empty());
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 8080)));

  EXPECT_TRUE(failsWith(exposes_.add(expose("8081", "/proc/78/ns/net:80")),
                        ErrorKind::NotFound, "/proc/78/ns/net"));
}

TEST_F(ExposeRules, TheProxyEntersANetnsPathTarget) {
  handMade("/proc/77/ns/net", {"192.0.2.77/24"});
  addExpose(withMode(expose("8080", "/proc/77/ns/net:80"), ExposeMode::Proxy));
  const auto& spec = proxy_.listeners_.at(proxy_.listenerOn(8080).value());
  EXPECT_EQ(spec.targetNetns, "/proc/77/ns/net");
  EXPECT_EQ(spec.targetAddr, "127.0.0.1");
}

TEST_F(ExposeRules, ANetnsPathOfAManagedNamespaceIsThatNamespace) {
  auto web = addNamespace("web");
  topology_.namespaces_["/run/elsewhere/web"].sameAs = "web";
  auto added = addExpose(expose("8080", "/run/elsewhere/web:80"));
  EXPECT_EQ(added.targetAddr, web.address);
  EXPECT_EQ(state_.exposes.back().targetNs, "web");
  EXPECT_TRUE(state_.exposes.back().targetNetnsPath.empty());
}

TEST_F(ExposeRules, ANetnsPathTargetWhoseNamespaceIsGoneIsNotServed) {
  handMade("/proc/77/ns/net", {"192.0.2.77/24"});
  addExpose(expose("8080", "/proc/77/ns/net:80"));
  test::FakeNamespace saved = topology_.namespaces_["/proc/77/ns/net"];
  topology_.namespaces_.erase("/proc/77/ns/net");
  auto listed = exposes_.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].path, ServingPath::None);
  EXPECT_NE(listed[0].why.find("/proc/77/ns/net is gone"), std::string::npos) << listed[0].why;
  EXPECT_FALSE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 8080)));
  // A namespace at that path again: served again.
  topology_.namespaces_["/proc/77/ns/net"] = saved;
  listed = exposes_.list();
  EXPECT_EQ(listed[0].path, ServingPath::Ebpf) << listed[0].why;
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 8080)));
}

TEST_F(ExposeRules, AnUnknownTargetNamespaceIsNotFound) {
  EXPECT_TRUE(failsWith(exposes_.add(expose("8080", "nowhere:80")), ErrorKind::NotFound,
                        "nowhere does not exist"));
  EXPECT_TRUE(failsWith(exposes_.add(withMode(expose("8080", "nowhere:80"), ExposeMode::Proxy)),
                        ErrorKind::NotFound, "nowhere does not exist"));
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(proxy_.listeners_.empty());
}

TEST_F(ExposeRules, RuleIdsComeFromACursorAndAReusedIdStartsFromZero) {
  EXPECT_EQ(addExpose(expose("8080", "10.0.0.5:80")).id, 1u);
  dp_.ruleStats_[1] = {.packets = 50, .bytes = 5000, .connections = 5, .drops = 1};
  ASSERT_TRUE(exposes_.remove(unexpose("8080")));
  // Not id 1 again right away: its flows and counters may still be around.
  EXPECT_EQ(addExpose(expose("8081", "10.0.0.5:80")).id, 2u);
  ASSERT_TRUE(store_.committed_);
  EXPECT_EQ(store_.committed_->nextRuleId, 3u);

  // The cursor wraps at the end of the id space and then reuses 1.
  state_.nextRuleId = GW_RULE_MAX - 1;
  EXPECT_EQ(addExpose(expose("8082", "10.0.0.5:80")).id, uint32_t{GW_RULE_MAX - 1});
  EXPECT_EQ(addExpose(expose("8083", "10.0.0.5:80")).id, 1u);
  EXPECT_EQ(dp_.resets_.back(), 1u);
  auto list = exposes_.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2].id, 1u);
  EXPECT_EQ(list[2].packets, 0u);
  EXPECT_EQ(list[2].connections, 0u);
}

TEST_F(ExposeRules, TheDataPathServesWhenLoaded) {
  auto added = addExpose(expose("8080", "10.0.0.5:80"));
  EXPECT_EQ(added.path, ServingPath::Ebpf);
  EXPECT_NE(added.why.find("eBPF"), std::string::npos) << added.why;
  EXPECT_TRUE(proxy_.listeners_.empty());
  ASSERT_EQ(dp_.exposes_.size(), 1u);
  const ExposeEntry& entry = dp_.exposes_.begin()->second;
  EXPECT_EQ(entry.targetAddr, ip("10.0.0.5"));
  EXPECT_EQ(entry.targetPort, 80);
  EXPECT_EQ(entry.ruleId, added.id);
}

TEST_F(ExposeRules, TheProxyServesModeProxyProxyProtocolAndIpv6) {
  auto proxied = addExpose(withMode(expose("8080", "10.0.0.5:80"), ExposeMode::Proxy));
  EXPECT_EQ(proxied.path, ServingPath::Proxy);
  auto v2 = expose("8081", "10.0.0.5:81");
  v2.proxyProtocol = ProxyProtocol::V2;
  EXPECT_EQ(addExpose(v2).path, ServingPath::Proxy);
  // An IPv6 target: IPv6 clients through eBPF (NAT66), IPv4 ones through the proxy, as
  // eBPF translates within a family.
  auto v6 = addExpose(expose("8082", "[fd00::5]:82"));
  EXPECT_EQ(v6.path, ServingPath::Proxy);
  EXPECT_NE(v6.why.find("IPv4"), std::string::npos) << v6.why;
  ASSERT_EQ(v6.families.size(), 2u);
  EXPECT_EQ(v6.families[1].path, ServingPath::Ebpf);
  ASSERT_EQ(dp_.exposes_.size(), 1u);
  EXPECT_EQ(dp_.exposes_.at(v6Key(kTcp, {}, 8082)).targetAddr, ip("fd00::5"));
  ASSERT_EQ(proxy_.listeners_.size(), 3u);
  const auto& first = proxy_.listeners_.at(proxy_.listenerOn(8080).value());
  EXPECT_EQ(first.listenAddr, "0.0.0.0");
  EXPECT_EQ(first.targetAddr, "10.0.0.5");
  EXPECT_EQ(first.targetPort, 80);
  EXPECT_FALSE(first.proxyProtocolV2);
  EXPECT_TRUE(proxy_.listeners_.at(proxy_.listenerOn(8081).value()).proxyProtocolV2);
  EXPECT_EQ(proxy_.listeners_.at(proxy_.listenerOn(8082).value()).targetAddr, "fd00::5");
}

TEST_F(ExposeRules, TheProxyReachesANamespaceTargetThroughItsLoopback) {
  addNamespace("web");
  auto added = addExpose(withMode(expose("8080", "web:80"), ExposeMode::Proxy));
  EXPECT_EQ(added.targetAddr, ip("127.0.0.1"));
  const auto& spec = proxy_.listeners_.at(proxy_.listenerOn(8080).value());
  EXPECT_EQ(spec.targetNetns, "web");
  EXPECT_EQ(spec.targetAddr, "127.0.0.1");
  EXPECT_EQ(spec.fallbackAddr, "::1");
  // And listens on --host-ip when one is given.
  addExpose(withHostIp(withMode(expose("8081", "web:80"), ExposeMode::Proxy), "192.0.2.10"));
  EXPECT_EQ(proxy_.listeners_.at(proxy_.listenerOn(8081).value()).listenAddr, "192.0.2.10");
}

TEST_F(ExposeRules, WithoutTheDataPathAutoFallsBackToTheProxyAndEbpfIsUnavailable) {
  unloadDatapath();
  auto added = addExpose(expose("8080", "10.0.0.5:80"));
  EXPECT_EQ(added.path, ServingPath::Proxy);
  EXPECT_NE(added.why.find("bpf() refused by the test"), std::string::npos) << added.why;
  EXPECT_TRUE(failsWith(exposes_.add(withMode(expose("8081", "10.0.0.5:80"), ExposeMode::Ebpf)),
                        ErrorKind::Unavailable, "not loaded"));
  EXPECT_EQ(proxy_.listeners_.size(), 1u);
  EXPECT_EQ(state_.exposes.size(), 1u);
  EXPECT_EQ(dp_.addExposeCalls_, 0);
}

TEST_F(ExposeRules, ImpossibleCombinationsAreInvalid) {
  // Not a missing component: no data path would ever serve these.
  auto v4Only = withMode(expose("8080", "[fd00::5]:80"), ExposeMode::Ebpf);
  v4Only.family = IpFamilies::V4;
  EXPECT_TRUE(failsWith(exposes_.add(v4Only), ErrorKind::Invalid, "no IPv4 address"));
  auto v2 = withMode(expose("8080", "10.0.0.5:80"), ExposeMode::Ebpf);
  v2.proxyProtocol = ProxyProtocol::V2;
  EXPECT_TRUE(failsWith(exposes_.add(v2), ErrorKind::Invalid, "--proxy-protocol"));
  EXPECT_TRUE(failsWith(exposes_.add(expose("8080", "10.0.0.5:80", Proto::Icmp)),
                        ErrorKind::Invalid, "--proto"));
  EXPECT_TRUE(failsWith(exposes_.add(withHostIp(expose("8080", "10.0.0.5:80"), "fd00::1")),
                        ErrorKind::Invalid, "--host-ip"));
  EXPECT_TRUE(state_.exposes.empty());
}

TEST_F(ExposeRules, UdpThroughTheProxyIsRefused) {
  EXPECT_TRUE(failsWith(
      exposes_.add(withMode(expose("5353", "10.0.0.5:53", Proto::Udp), ExposeMode::Proxy)),
      ErrorKind::Invalid, "TCP only"));
  auto v4Clients = expose("5353", "[fd00::5]:53", Proto::Udp);
  v4Clients.family = IpFamilies::V4;
  EXPECT_TRUE(failsWith(exposes_.add(v4Clients), ErrorKind::Invalid, "TCP only"));
  unloadDatapath();
  EXPECT_TRUE(failsWith(exposes_.add(expose("5353", "10.0.0.5:53", Proto::Udp)), ErrorKind::Invalid,
                        "TCP only"));
  EXPECT_TRUE(proxy_.listeners_.empty());
  EXPECT_TRUE(state_.exposes.empty());
}

TEST_F(ExposeRules, ARangeWritesOneEntryPerPort) {
  auto added = addExpose(expose("7000-7009", "10.0.0.5:8000-8009"));
  EXPECT_EQ(dp_.exposes_.size(), 10u);
  for (uint16_t i = 0; i < 10; ++i) {
    ExposeKey key{kTcp, AF_INET, IpAddress{}, static_cast<uint16_t>(7000 + i)};
    ASSERT_TRUE(dp_.exposes_.contains(key)) << 7000 + i;
    EXPECT_EQ(dp_.exposes_[key].targetPort, 8000 + i);
    EXPECT_EQ(dp_.exposes_[key].ruleId, added.id);
  }
  // One rule, one id: the range shares its counters.
  EXPECT_EQ(state_.exposes.size(), 1u);
}

TEST_F(ExposeRules, AFailureMidRangeRemovesTheEntriesAlreadyWritten) {
  dp_.failAddExposeAt_ = 4;
  EXPECT_TRUE(failsWith(exposes_.add(expose("7000-7009", "10.0.0.5:8000-8009")),
                        ErrorKind::Internal, "expose 7000-7009"));
  EXPECT_EQ(dp_.addExposeCalls_, 4);
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(state_.exposes.empty());
  EXPECT_EQ(store_.commits_, 0);

  proxy_.failAddListenerAt_ = 3;
  EXPECT_TRUE(failsWith(
      exposes_.add(withMode(expose("7000-7004", "10.0.0.5:8000-8004"), ExposeMode::Proxy)),
      ErrorKind::Internal, "7000-7004"));
  EXPECT_EQ(proxy_.addListenerCalls_, 3);
  EXPECT_TRUE(proxy_.listeners_.empty());
  EXPECT_TRUE(state_.exposes.empty());
}

TEST_F(ExposeRules, ABatchIsAllOrNothing) {
  auto clash = exposes_.addBatch({expose("8080", "10.0.0.5:80"), expose("8080", "10.0.0.6:80")});
  EXPECT_TRUE(failsWith(clash, ErrorKind::Conflict, "#2"));
  EXPECT_TRUE(failsWith(clash, ErrorKind::Conflict, "none of the batch was applied"));
  EXPECT_TRUE(state_.exposes.empty());
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_EQ(store_.commits_, 0);

  // A proxied #1 goes as well when #2 fails in the data path.
  dp_.failAddExposeAt_ = dp_.addExposeCalls_ + 1;
  auto failed = exposes_.addBatch(
      {withMode(expose("8081", "10.0.0.5:80"), ExposeMode::Proxy), expose("8082", "10.0.0.5:80")});
  EXPECT_TRUE(failsWith(failed, ErrorKind::Internal, "#2"));
  EXPECT_TRUE(proxy_.listeners_.empty());
  EXPECT_TRUE(state_.exposes.empty());

  auto ok = exposes_.addBatch({expose("8080", "10.0.0.5:80"), expose("8081", "10.0.0.5:81"),
                               expose("8082-8083", "10.0.0.5:82-83")});
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(store_.commits_, 1);  // one commit for the batch
  EXPECT_EQ(store_.committed_->exposes.size(), 3u);
  EXPECT_EQ(dp_.exposes_.size(), 4u);
}

// A batch looks ports and rule ids up in its own index (beginBatch): the same answers as the
// scan a single expose makes, against the state and against the batch's earlier rules.
TEST_F(ExposeRules, ABatchFindsClashesWithTheStateAndItselfByIndex) {
  addExpose(expose("9000-9009", "10.0.0.5:80-89"));
  addExpose(expose("9100", "10.0.0.5:80", Proto::Udp));
  addExpose(withHostIp(expose("9400", "10.0.0.5:80"), "192.0.2.10"));
  EXPECT_TRUE(failsWith(exposes_.addBatch({expose("8999", "10.0.0.6:80"),
                                           expose("9005", "10.0.0.6:80")}),
                        ErrorKind::Conflict, "clashes with the expose of 9000-9009"));
  EXPECT_TRUE(failsWith(exposes_.addBatch({expose("9200-9205", "10.0.0.6:80-85"),
                                           expose("9203", "10.0.0.7:80")}),
                        ErrorKind::Conflict, "#2"));
  // Another proto, another host address: no clash.
  auto ok = exposes_.addBatch({expose("9100", "10.0.0.6:80"),
                               withHostIp(expose("9400", "10.0.0.6:80"), "192.0.2.11"),
                               expose("9300", "10.0.0.6:80"), expose("9301", "10.0.0.6:80")});
  ASSERT_TRUE(ok) << ok.error().str();
  std::set<uint32_t> ids;
  for (const auto& e : state_.exposes) {
    ids.insert(e.id);
  }
  EXPECT_EQ(ids.size(), state_.exposes.size()) << "a rule id twice";
  EXPECT_EQ(state_.exposes.size(), 7u);
  // The index is the batch's alone: a single expose after it still sees every rule.
  EXPECT_TRUE(failsWith(exposes_.add(expose("9301", "10.0.0.7:80")), ErrorKind::Conflict,
                        "clashes with the expose of 9301"));
}

TEST_F(ExposeRules, AFailedCommitRollsBackTheEntries) {
  store_.failNext_ = true;
  EXPECT_TRUE(failsWith(exposes_.add(expose("7000-7002", "10.0.0.5:80-82")), ErrorKind::Internal,
                        "injected failure"));
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(state_.exposes.empty());

  store_.failNext_ = true;
  EXPECT_FALSE(exposes_.add(withMode(expose("7000", "10.0.0.5:80"), ExposeMode::Proxy)));
  EXPECT_TRUE(proxy_.listeners_.empty());

  store_.failNext_ = true;
  EXPECT_FALSE(exposes_.addBatch({expose("7000", "10.0.0.5:80"), expose("7001", "10.0.0.5:80")}));
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(state_.exposes.empty());
  // And the port is free again.
  addExpose(expose("7000-7002", "10.0.0.5:80-82"));
}

TEST_F(ExposeRules, AFailedCommitOfAnUnexposeKeepsTheExpose) {
  addExpose(expose("7000-7002", "10.0.0.5:80-82"));
  addExpose(withMode(expose("7100", "10.0.0.5:80"), ExposeMode::Proxy));
  store_.failNext_ = true;
  EXPECT_TRUE(
      failsWith(exposes_.remove(unexpose("7000-7002")), ErrorKind::Internal, "injected failure"));
  store_.failNext_ = true;
  EXPECT_FALSE(exposes_.remove(unexpose("7100")));
  // What the state (and state.json) names is still served.
  EXPECT_EQ(state_.exposes.size(), 2u);
  EXPECT_EQ(dp_.exposes_.size(), 3u);
  EXPECT_TRUE(proxy_.listenerOn(7100));
  EXPECT_EQ(exposes_.list().size(), 2u);
}

TEST_F(ExposeRules, UnexposingPartOfARangeNamesTheRange) {
  addExpose(expose("7000-7009", "10.0.0.5:8000-8009"));
  EXPECT_TRUE(failsWith(exposes_.remove(unexpose("7005")), ErrorKind::NotFound,
                        "part of the expose of 7000-7009"));
  EXPECT_TRUE(failsWith(exposes_.remove(unexpose("7000-7009", Proto::Udp)), ErrorKind::NotFound,
                        "nothing is exposed on host port 7000-7009/udp"));
  EXPECT_EQ(dp_.exposes_.size(), 10u);
  auto removed = exposes_.remove(unexpose("7000-7009"));
  ASSERT_TRUE(removed) << removed.error().str();
  EXPECT_TRUE(removed->deleted);
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(store_.committed_->exposes.empty());
}

TEST_F(ExposeRules, UnexposeOfAProxiedExposeClosesItsListeners) {
  addExpose(withMode(expose("7000-7001", "10.0.0.5:80-81"), ExposeMode::Proxy));
  EXPECT_EQ(proxy_.listeners_.size(), 2u);
  ASSERT_TRUE(exposes_.remove(unexpose("7000-7001")));
  EXPECT_TRUE(proxy_.listeners_.empty());
}

TEST_F(ExposeRules, ListMergesDataPathAndProxyCounters) {
  auto ebpf = addExpose(expose("8080", "10.0.0.5:80"));
  auto proxied = addExpose(withMode(expose("8081-8082", "10.0.0.5:81-82"), ExposeMode::Proxy));
  dp_.ruleStats_[ebpf.id] = {.packets = 10, .bytes = 1000, .connections = 3, .drops = 1};
  proxy_.stats_[proxy_.listenerOn(8081).value()] = {
      .accepted = 4, .refusedLimit = 1, .backendFailed = 2, .bytesIn = 100, .bytesOut = 200};
  proxy_.stats_[proxy_.listenerOn(8082).value()] = {.accepted = 1, .bytesIn = 10};

  auto list = exposes_.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, ebpf.id);
  EXPECT_EQ(list[0].path, ServingPath::Ebpf);
  EXPECT_EQ(list[0].packets, 10u);
  EXPECT_EQ(list[0].bytes, 1000u);
  EXPECT_EQ(list[0].connections, 3u);
  EXPECT_EQ(list[0].drops, 1u);
  EXPECT_EQ(list[1].id, proxied.id);
  EXPECT_EQ(list[1].path, ServingPath::Proxy);
  EXPECT_EQ(list[1].connections, 5u);
  EXPECT_EQ(list[1].bytes, 310u);
  EXPECT_EQ(list[1].drops, 3u);
  EXPECT_EQ(list[1].hostPort, (PortRange{8081, 8082}));
  EXPECT_EQ(list[1].targetPort, (PortRange{81, 82}));
  EXPECT_EQ(list[1].hostIp, "*");

  // Counters the caller has read already are used as they are.
  DatapathStats known;
  known.rules.push_back({.ruleId = ebpf.id, .packets = 77});
  EXPECT_EQ(exposes_.list(&known)[0].packets, 77u);
  // A data path that cannot answer leaves the counters at zero, not the listing empty.
  dp_.failStats_ = true;
  EXPECT_EQ(exposes_.list()[0].packets, 0u);
}

TEST_F(ExposeRules, RuleIdsOfAStateFileBeyondTheIdSpaceAreNotAllocatedOver) {
  // A state.json edited by hand: ids are uint32 there, the id space is GW_RULE_MAX.
  ExposeRecord stray;
  stray.id = GW_RULE_MAX + 4464;
  stray.hostPort = stray.hostPortEnd = 9999;
  stray.target = "10.0.0.9:80";
  stray.targetAddr = ip("10.0.0.9");
  stray.targetPort = 80;
  state_.exposes.push_back(stray);
  auto added = addExpose(expose("8080", "10.0.0.5:80"));
  EXPECT_GT(added.id, 0u);
  EXPECT_LT(added.id, uint32_t{GW_RULE_MAX});
}

TEST_F(ExposeRules, WhenEveryRuleIdIsTakenAnotherExposeIsAConflict) {
  for (uint32_t id = 1; id < GW_RULE_MAX; ++id) {
    ExposeRecord e;
    e.id = id;
    e.proto = Proto::Udp;
    e.hostPort = e.hostPortEnd = static_cast<uint16_t>(id);
    state_.exposes.push_back(e);
  }
  EXPECT_TRUE(failsWith(exposes_.add(expose("8080", "10.0.0.5:80")), ErrorKind::Conflict,
                        "no free rule id"));
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_EQ(state_.exposes.size(), size_t{GW_RULE_MAX - 1});
}

TEST_F(ExposeRules, AStartFindsANetnsPathAgainButNotAReusedPid) {
  handMade("/proc/77/ns/net", {"192.0.2.77/24"});
  handMade("/run/cni/abc", {"192.0.2.78/24"});
  addExpose(expose("7000", "/proc/77/ns/net:80"));
  addExpose(expose("7001", "/run/cni/abc:80"));
  EXPECT_NE(state_.exposes[0].targetNetnsCookie, 0u);
  // As after a restart: the map is empty, the namespaces are found again by their paths.
  dp_.exposes_.clear();
  topology_.namespaces_["/run/cni/abc"].addresses = {prefix("192.0.2.79/24")};
  ExposeService restarted{ctx_, topology_, proxy_};
  restarted.reconcile();
  EXPECT_EQ(dp_.exposes_.size(), 2u);
  EXPECT_EQ(state_.exposes[1].targetAddr, ip("192.0.2.79")) << "resolved again";

  // PID 77 now belongs to another process, in another namespace: not that one's port.
  topology_.namespaces_["/proc/77/ns/net"].sameAs = "someone-else";
  dp_.exposes_.clear();
  ExposeService again{ctx_, topology_, proxy_};
  again.reconcile();
  auto listed = again.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].path, ServingPath::None);
  EXPECT_NE(listed[0].why.find("another namespace now"), std::string::npos) << listed[0].why;
  EXPECT_EQ(listed[1].path, ServingPath::Ebpf);
  EXPECT_EQ(dp_.exposes_.size(), 1u);
}

TEST_F(ExposeRules, ReconcileAppliesTheStateAndTeardownRemovesIt) {
  addExpose(expose("7000-7001", "10.0.0.5:80-81"));
  addExpose(withMode(expose("7100", "10.0.0.5:80"), ExposeMode::Proxy));
  dp_.exposes_.clear();
  proxy_.listeners_.clear();
  exposes_.reconcile();
  EXPECT_EQ(dp_.exposes_.size(), 2u);
  EXPECT_EQ(proxy_.listeners_.size(), 1u);

  std::vector<std::string> problems;
  exposes_.teardown(problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_TRUE(dp_.exposes_.empty());
  EXPECT_TRUE(proxy_.listeners_.empty());
  EXPECT_EQ(proxy_.stops_, 1);
  EXPECT_TRUE(state_.exposes.empty());
}

TEST_F(ExposeRules, AnExposeThatCannotCarryTrafficIsRefused) {
  EXPECT_TRUE(failsWith(exposes_.add(withHostIp(expose("8080", "10.0.0.5:80"), "192.0.2.99")),
                        ErrorKind::Invalid, "not an address of the gateway host"));
  EXPECT_TRUE(failsWith(exposes_.add(expose("8081", "127.0.0.1:80")), ErrorKind::Invalid,
                        "loopback"));
  EXPECT_TRUE(dp_.exposes_.empty());
  // Through the proxy the host's loopback is reachable: allowed.
  addExpose(withMode(expose("8082", "127.0.0.1:80"), ExposeMode::Proxy));
}

TEST_F(ExposeRules, ReconcileRemovesMapEntriesThatNoStateNames) {
  addExpose(expose("7000-7001", "10.0.0.5:80-81"));
  // Pinned by a run that crashed after writing the maps, before committing the state.
  ExposeEntry ghost{ipProto(Proto::Tcp), IpAddress{}, 7500, ip("10.0.0.9"), 90, 42};
  ExposeEntry ghostUdp{ipProto(Proto::Udp), IpAddress{}, 7000, ip("10.0.0.9"), 90, 43};
  ExposeEntry ghostHostIp{ipProto(Proto::Tcp), ip("198.18.0.1"), 7000, ip("10.0.0.9"), 90, 44};
  for (const auto& g : {ghost, ghostUdp, ghostHostIp}) {
    dp_.exposes_[v4Key(g.proto, g.hostAddr, g.hostPort)] = g;
  }
  exposes_.reconcile();
  EXPECT_EQ(dp_.exposes_.size(), 2u) << "only the state's two ports stay";
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(ipProto(Proto::Tcp), IpAddress{}, 7000)));
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(ipProto(Proto::Tcp), IpAddress{}, 7001)));
}

TEST_F(ExposeRules, ReconcileRestoresWhatTheMapLacksAndRewritesWhatDiffers) {
  addExpose(expose("7000-7001", "10.0.0.5:80-81"));
  addExpose(withMode(expose("7100", "10.0.0.5:80"), ExposeMode::Proxy));
  dp_.adopted_ = true;
  ExposeEntry right = dp_.exposes_.at(v4Key(kTcp, IpAddress{}, 7000));
  dp_.exposes_.erase(v4Key(kTcp, IpAddress{}, 7001));
  dp_.exposes_[v4Key(kTcp, IpAddress{}, 7000)].targetPort = 9999;  // an older rule's target
  exposes_.reconcile();
  ASSERT_EQ(dp_.exposes_.size(), 2u) << "the proxied expose has no map entry";
  EXPECT_EQ(dp_.exposes_.at(v4Key(kTcp, IpAddress{}, 7000)), right);
  EXPECT_EQ(dp_.exposes_.at(v4Key(kTcp, IpAddress{}, 7001)).targetPort, 81);
}

TEST_F(ExposeRules, AMapThatCannotBeReadIsStillWrittenAndNothingIsRemoved) {
  addExpose(expose("7000", "10.0.0.5:80"));
  ExposeEntry ghost{kTcp, IpAddress{}, 7500, ip("10.0.0.9"), 90, 42};
  dp_.exposes_[v4Key(kTcp, IpAddress{}, 7500)] = ghost;
  dp_.exposes_.erase(v4Key(kTcp, IpAddress{}, 7000));
  dp_.failList_ = true;
  exposes_.reconcile();
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 7000)));
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, IpAddress{}, 7500))) << "not seen, not removed";
}

// ---- namespaces

using NamespaceRules = ServicesTest;

TEST_F(NamespaceRules, AddAllocatesTheNextFreeAddressOnGw0) {
  auto a = addNamespace("a");
  EXPECT_EQ(a.prefix, prefix("10.88.0.2/16"));
  EXPECT_EQ(a.gateway, ip("10.88.0.1"));
  EXPECT_EQ(a.link, "gw-a");
  EXPECT_EQ(addNamespace("b").address, ip("10.88.0.3"));
  EXPECT_EQ(addNamespace("c").address, ip("10.88.0.4"));
  ASSERT_TRUE(namespaces_.remove("b"));
  EXPECT_EQ(addNamespace("d").address, ip("10.88.0.3"));  // the first free one

  ASSERT_TRUE(topology_.bridges_.contains("gw0"));
  EXPECT_TRUE(topology_.hasHostAddress(prefix("10.88.0.1/16")));
  EXPECT_EQ(topology_.wired_.at("a").bridge, "gw0");
  ASSERT_EQ(state_.bridges.size(), 1u);
  EXPECT_EQ(state_.bridges[0].gateway, prefix("10.88.0.1/16"));
  ASSERT_TRUE(store_.committed_);
  EXPECT_EQ(store_.committed_->namespaces.size(), 3u);

  // The data path: the endpoint program on the veth, the subnet masqueraded, and the
  // namespace's address behind the veth with both MACs.
  int index = topology_.links_.at("gw-a").index;
  EXPECT_TRUE(dp_.endpointPrograms_.contains(index));
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.88.0.0/16")), 0);
  ASSERT_TRUE(dp_.endpoints_.contains(ip("10.88.0.2")));
  const auto& endpoint = dp_.endpoints_.at(ip("10.88.0.2"));
  EXPECT_EQ(endpoint.hostIfindex, index);
  EXPECT_EQ(endpoint.hostMac, topology_.links_.at("gw-a").mac);
  EXPECT_EQ(endpoint.peerMac, topology_.namespaces_.at("a").links.at("eth0").mac);
  EXPECT_TRUE(dp_.localAddresses_.contains(ip("192.0.2.10")));
  EXPECT_FALSE(dp_.localAddresses_.contains(ip("127.0.0.1")));
}

TEST_F(NamespaceRules, AddGivesAnIpv6AddressFromTheDefaultUlaPool) {
  auto a = addNamespace("a");
  ASSERT_TRUE(a.prefix6);
  EXPECT_EQ(*a.prefix6, prefix("fd00:88::2/64"));
  EXPECT_EQ(a.address6, ip("fd00:88::2"));
  EXPECT_EQ(a.gateway6, ip("fd00:88::1"));
  EXPECT_EQ(addNamespace("b").address6, ip("fd00:88::3"));
  EXPECT_EQ(addNamespace("c").address6, ip("fd00:88::4"));
  ASSERT_TRUE(namespaces_.remove("b"));
  EXPECT_EQ(addNamespace("d").address6, ip("fd00:88::3")); // the first free one

  EXPECT_TRUE(topology_.hasHostAddress(prefix("fd00:88::1/64")));
  EXPECT_EQ(topology_.namespaces_.at("a").addresses6,
            std::vector<IpPrefix>{prefix("fd00:88::2/64")});
  EXPECT_EQ(topology_.wired_.at("a").hostAddress6, prefix("fd00:88::1/64"));
  ASSERT_TRUE(store_.committed_);
  EXPECT_EQ(store_.committed_->bridges.at(0).gateway6, prefix("fd00:88::1/64"));
  EXPECT_EQ(store_.committed_->namespaces.at(0).address6, prefix("fd00:88::2/64"));

  // The list shows both families; the IPv4 fields are what they were.
  auto list = namespaces_.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].prefix, prefix("10.88.0.2/16"));
  EXPECT_EQ(list[0].prefix6, prefix("fd00:88::2/64"));
  EXPECT_EQ(list[0].gateway6, ip("fd00:88::1"));
  auto json = api::toJson(list[0]);
  EXPECT_EQ(json["address"], "10.88.0.2");
  EXPECT_EQ(json["address6"], "fd00:88::2");
  EXPECT_EQ(json["prefix6"], "fd00:88::2/64");
  EXPECT_EQ(json["gateway6"], "fd00:88::1");
  // The data path has both: the IPv6 endpoint and the IPv6 pool's masquerade (NAT66).
  EXPECT_TRUE(dp_.endpoints_.contains(ip("fd00:88::2")));
  EXPECT_EQ(dp_.masquerades_.size(), 2u);
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("fd00:88::/64")));
}

TEST_F(NamespaceRules, NoIpv6GivesNoneAndTheJsonHasNoIpv6Fields) {
  auto r = namespaces_.add({.name = "a", .noIpv6 = true});
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->address6);
  EXPECT_FALSE(api::toJson(*r).contains("address6"));
  EXPECT_TRUE(topology_.namespaces_.at("a").addresses6.empty());
  EXPECT_FALSE(state_.bridges.at(0).gateway6) << "the bridge made without IPv6 has no pool";
  auto list = namespaces_.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_FALSE(api::toJson(list[0]).contains("address6"));

  // A later add with IPv6 gives that bridge its pool; the earlier namespace stays IPv4 only.
  auto b = addNamespace("b");
  EXPECT_EQ(b.address6, ip("fd00:88::2"));
  EXPECT_EQ(state_.bridges.at(0).gateway6, prefix("fd00:88::1/64"));
  EXPECT_TRUE(topology_.hasHostAddress(prefix("fd00:88::1/64")));
  EXPECT_FALSE(state_.findNamespace("a")->address6);
}

TEST_F(NamespaceRules, Subnet6ChoosesThePoolAndBadOnesAreRefusedByName) {
  auto a = namespaces_.add({.name = "a", .bridge = "br1", .subnet = prefix("10.99.0.0/24"),
                            .subnet6 = prefix("fd00:99::/112")});
  ASSERT_TRUE(a) << a.error().str();
  EXPECT_EQ(a->prefix6, prefix("fd00:99::2/112"));
  EXPECT_EQ(a->gateway6, ip("fd00:99::1"));
  EXPECT_EQ(topology_.bridges_.at("br1").gateway6, prefix("fd00:99::1/112"));
  // A named bridge without --subnet6 has no IPv6.
  auto b = namespaces_.add({.name = "b", .bridge = "br2", .subnet = prefix("10.98.0.0/24")});
  ASSERT_TRUE(b) << b.error().str();
  EXPECT_FALSE(b->address6);
  // Point to point, with --subnet6.
  auto p = namespaces_.add(
      {.name = "p", .subnet = prefix("10.50.0.0/30"), .subnet6 = prefix("fd00:50::/120")});
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->prefix6, prefix("fd00:50::2/120"));
  EXPECT_EQ(p->gateway6, ip("fd00:50::1"));
  EXPECT_TRUE(topology_.hasHostAddress(prefix("fd00:50::1/120")));

  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet6 = prefix("10.77.0.0/24")}),
                        ErrorKind::Invalid, "--subnet6 10.77.0.0/24: not an IPv6 subnet"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet6 = prefix("fd00:77::/124")}),
                        ErrorKind::Invalid, "between /8 and /120"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet6 = prefix("fd00:77::/64"),
                                         .noIpv6 = true}),
                        ErrorKind::Invalid, "--no-ipv6"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .bridge = "br1",
                                         .subnet6 = prefix("fd00:98::/64")}),
                        ErrorKind::Conflict, "already has IPv6 subnet fd00:99::/112"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("10.51.0.0/30"),
                                         .subnet6 = prefix("fd00:99::/64")}),
                        ErrorKind::Conflict, "--subnet6 fd00:99::/64 overlaps bridge br1"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("10.51.0.0/30"),
                                         .subnet6 = prefix("fd00:50::/112")}),
                        ErrorKind::Conflict, "overlaps namespace p"));
  topology_.addHostAddress("uplink0", prefix("2001:db8::10/64"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .bridge = "br3",
                                         .subnet = prefix("10.52.0.0/24"),
                                         .subnet6 = prefix("2001:db8::/48")}),
                        ErrorKind::Conflict, "overlaps 2001:db8::10/64 on uplink0"));
  // The default pool is checked as well: the host holding it refuses the default bridge's.
  topology_.addHostAddress("uplink0", prefix("fd00:88::99/64"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q"}), ErrorKind::Conflict,
                        "the default IPv6 pool fd00:88::/64 overlaps fd00:88::99/64 on uplink0 "
                        "(give --subnet6 CIDR or --no-ipv6)"));
  EXPECT_FALSE(topology_.namespaces_.contains("q"));
  EXPECT_FALSE(topology_.bridges_.contains("br3"));
  EXPECT_FALSE(topology_.bridges_.contains("gw0"));
}

TEST_F(NamespaceRules, AFailedAddTakesBackTheIpv6PoolItGaveABridge) {
  ASSERT_TRUE(namespaces_.add({.name = "a", .noIpv6 = true}));
  topology_.failWireAfterLink_ = true;
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "b"}), ErrorKind::Internal, "rolled back"));
  EXPECT_FALSE(state_.bridges.at(0).gateway6);
  EXPECT_FALSE(topology_.bridges_.at("gw0").gateway6);
  EXPECT_FALSE(topology_.hasHostAddress(prefix("fd00:88::1/64")));
  ASSERT_TRUE(store_.committed_);
  EXPECT_FALSE(store_.committed_->bridges.at(0).gateway6);
  EXPECT_EQ(store_.committed_->namespaces.size(), 1u);
}

TEST_F(NamespaceRules, ReconcileRewiresTheIpv6Side) {
  addNamespace("a");
  topology_.namespaces_.clear();
  topology_.bridges_.clear();
  ASSERT_TRUE(namespaces_.reconcile());
  EXPECT_EQ(topology_.namespaces_.at("a").addresses6,
            std::vector<IpPrefix>{prefix("fd00:88::2/64")});
  EXPECT_EQ(topology_.bridges_.at("gw0").gateway6, prefix("fd00:88::1/64"));
}

TEST_F(NamespaceRules, ANewNamedBridgeNeedsASubnet) {
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "a", .bridge = "br1"}), ErrorKind::Invalid,
                        "give --subnet"));
  EXPECT_TRUE(topology_.bridges_.empty());
  EXPECT_TRUE(topology_.namespaces_.empty());

  auto a = addNamespace("a", "10.99.0.0/24", "br1");
  EXPECT_EQ(a.prefix, prefix("10.99.0.2/24"));
  EXPECT_EQ(a.gateway, ip("10.99.0.1"));
  EXPECT_EQ(topology_.bridges_.at("br1").gateway, prefix("10.99.0.1/24"));
  // Later namespaces join it with or without the same subnet, not with another.
  EXPECT_EQ(addNamespace("b", std::nullopt, "br1").address, ip("10.99.0.3"));
  EXPECT_EQ(addNamespace("c", "10.99.0.0/24", "br1").address, ip("10.99.0.4"));
  EXPECT_TRUE(
      failsWith(namespaces_.add({.name = "d", .bridge = "br1", .subnet = prefix("10.98.0.0/24")}),
                ErrorKind::Conflict, "already has subnet 10.99.0.0/24"));
}

TEST_F(NamespaceRules, APointToPointSubnetMustNotOverlap) {
  auto p = addNamespace("p", "10.50.0.0/30");
  EXPECT_EQ(p.prefix, prefix("10.50.0.2/30"));
  EXPECT_EQ(p.gateway, ip("10.50.0.1"));
  EXPECT_EQ(topology_.wired_.at("p").wiring, Wiring::PointToPoint);
  EXPECT_TRUE(topology_.hasHostAddress(prefix("10.50.0.1/30")));
  EXPECT_TRUE(state_.bridges.empty());

  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("192.0.2.0/30")}),
                        ErrorKind::Conflict, "overlaps 192.0.2.10/24 on uplink0"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("10.50.0.0/29")}),
                        ErrorKind::Conflict, "overlaps namespace p"));
  addNamespace("g");
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("10.88.7.0/30")}),
                        ErrorKind::Conflict, "overlaps bridge gw0"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "q", .subnet = prefix("10.60.0.0/31")}),
                        ErrorKind::Invalid, "/30"));
  EXPECT_FALSE(topology_.namespaces_.contains("q"));
}

TEST_F(NamespaceRules, ANewBridgeSubnetMustNotOverlapEither) {
  addNamespace("p", "10.88.1.0/30");
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "a"}), ErrorKind::Conflict,
                        "bridge subnet 10.88.0.0/16 overlaps namespace p"));
  EXPECT_TRUE(
      failsWith(namespaces_.add({.name = "a", .bridge = "br1", .subnet = prefix("192.0.2.128/25")}),
                ErrorKind::Conflict, "on uplink0"));
  // Refused before anything was made.
  EXPECT_TRUE(topology_.bridges_.empty());
  EXPECT_FALSE(topology_.namespaces_.contains("a"));
}

TEST_F(NamespaceRules, ANamespaceMadeOutsideGatewaydIsAConflict) {
  handMade("legacy", {"192.0.2.50/24"});
  EXPECT_TRUE(
      failsWith(namespaces_.add({.name = "legacy"}), ErrorKind::Conflict, "made outside gatewayd"));
  addNamespace("a");
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "a"}), ErrorKind::Conflict, "already managed"));
  topology_.addLink("gw-b");
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "b"}), ErrorKind::Conflict, "link gw-b"));
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "bad/name"}), ErrorKind::Invalid, "bad/name"));
  EXPECT_EQ(topology_.wireCalls_, 1);
  EXPECT_EQ(topology_.namespaces_.at("legacy").addresses.size(), 1u);
}

TEST_F(NamespaceRules, AFailingWireStepLeavesNothing) {
  topology_.failWireAfterLink_ = true;
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "a"}), ErrorKind::Internal, "rolled back"));
  // The Rollback took the namespace, the veth and the bridge made for it.
  EXPECT_FALSE(topology_.namespaces_.contains("a"));
  EXPECT_FALSE(topology_.links_.contains("gw-a"));
  EXPECT_FALSE(topology_.links_.contains("gw0"));
  EXPECT_TRUE(topology_.bridges_.empty());
  EXPECT_FALSE(topology_.hasHostAddress(prefix("10.88.0.1/16")));
  EXPECT_TRUE(state_.namespaces.empty());
  EXPECT_TRUE(state_.bridges.empty());
  EXPECT_TRUE(dp_.masquerades_.empty());
  // The intent, then its withdrawal: what is durable names nothing.
  EXPECT_EQ(store_.commits_, 2);
  ASSERT_TRUE(store_.committed_);
  EXPECT_TRUE(store_.committed_->namespaces.empty());
  EXPECT_TRUE(store_.committed_->bridges.empty());

  // A bridge that was there before stays.
  topology_.failWireAfterLink_ = false;
  addNamespace("b");
  topology_.failWireAfterLink_ = true;
  EXPECT_FALSE(namespaces_.add({.name = "a"}));
  EXPECT_TRUE(topology_.bridges_.contains("gw0"));
  EXPECT_FALSE(topology_.links_.contains("gw-a"));
  EXPECT_EQ(state_.namespaces.size(), 1u);
}

TEST_F(NamespaceRules, AFailingDataPathStepLeavesNothing) {
  addNamespace("a");
  dp_.failAddEndpoint_ = true;
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "p", .subnet = prefix("10.50.0.0/30")}),
                        ErrorKind::Internal, "data path"));
  EXPECT_FALSE(topology_.namespaces_.contains("p"));
  EXPECT_FALSE(topology_.links_.contains("gw-p"));
  EXPECT_FALSE(dp_.masquerades_.contains(prefix("10.50.0.0/30")));
  EXPECT_EQ(dp_.endpointPrograms_.size(), 1u);
  // The subnet of a namespace still using it keeps its masquerade.
  EXPECT_FALSE(namespaces_.add({.name = "b"}));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.88.0.0/16")));
  EXPECT_EQ(dp_.endpoints_.size(), 2u); // its IPv4 and IPv6 addresses
  EXPECT_EQ(state_.namespaces.size(), 1u);
}

TEST_F(NamespaceRules, AFailingCommitLeavesNothing) {
  store_.failNext_ = true;
  EXPECT_TRUE(failsWith(namespaces_.add({.name = "a"}), ErrorKind::Internal, "saving state"));
  EXPECT_FALSE(topology_.namespaces_.contains("a"));
  EXPECT_FALSE(topology_.links_.contains("gw-a"));
  EXPECT_TRUE(topology_.bridges_.empty());
  EXPECT_TRUE(state_.namespaces.empty());
  EXPECT_TRUE(state_.bridges.empty());
  // Nor anything in the data path that no state names.
  EXPECT_TRUE(dp_.endpoints_.empty());
  EXPECT_TRUE(dp_.endpointPrograms_.empty());
  EXPECT_TRUE(dp_.masquerades_.empty());
  // So the same add works next time.
  EXPECT_EQ(addNamespace("a").address, ip("10.88.0.2"));
}

TEST_F(NamespaceRules, DeletingTheLastNamespaceOfABridgeRemovesBridgeAndMasquerade) {
  addNamespace("a");
  addNamespace("b");
  auto removed = namespaces_.remove("a");
  ASSERT_TRUE(removed) << removed.error().str();
  EXPECT_TRUE(removed->deleted);
  EXPECT_FALSE(topology_.namespaces_.contains("a"));
  EXPECT_FALSE(dp_.endpoints_.contains(ip("10.88.0.2")));
  EXPECT_TRUE(topology_.bridges_.contains("gw0"));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.88.0.0/16")));  // b still uses it
  EXPECT_EQ(topology_.removeBridgeCalls_, 0);

  ASSERT_TRUE(namespaces_.remove("b"));
  EXPECT_FALSE(topology_.bridges_.contains("gw0"));
  EXPECT_FALSE(topology_.links_.contains("gw0"));
  EXPECT_TRUE(state_.bridges.empty());
  EXPECT_TRUE(dp_.masquerades_.empty());
  EXPECT_TRUE(dp_.endpoints_.empty());
  EXPECT_TRUE(dp_.endpointPrograms_.empty());
  ASSERT_TRUE(store_.committed_);
  EXPECT_TRUE(store_.committed_->namespaces.empty());
  EXPECT_TRUE(store_.committed_->bridges.empty());

  addNamespace("p", "10.50.0.0/30");
  ASSERT_TRUE(namespaces_.remove("p"));
  EXPECT_TRUE(dp_.masquerades_.empty());
  EXPECT_FALSE(topology_.hasHostAddress(prefix("10.50.0.1/30")));

  EXPECT_TRUE(failsWith(namespaces_.remove("p"), ErrorKind::NotFound, "not managed"));
  EXPECT_TRUE(failsWith(namespaces_.remove("../etc"), ErrorKind::Invalid, "../etc"));
}

TEST_F(NamespaceRules, DeletingANamespaceKeepsAMasqueradeAddedByHandForItsSubnet) {
  addNamespace("a");
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.88.0.0/16")}));
  ASSERT_TRUE(namespaces_.remove("a"));
  // `masquerade add` asked for it: the state names it, so the data path keeps it.
  ASSERT_EQ(state_.masquerades.size(), 1u);
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.88.0.0/16")));
}

TEST_F(NamespaceRules, ListShowsHealth) {
  addNamespace("a");
  addNamespace("b");
  addNamespace("c");
  topology_.links_.at("gw-b").up = false;
  topology_.namespaces_.erase("c");
  auto list = namespaces_.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].state, "up");
  EXPECT_EQ(list[1].state, "down");
  EXPECT_EQ(list[2].state, "missing: namespace");
  EXPECT_EQ(list[0].wiring, Wiring::Bridge);
  EXPECT_EQ(list[0].bridge, "gw0");
}

TEST_F(NamespaceRules, WithoutTheDataPathNamespacesAreStillWired) {
  unloadDatapath();
  auto a = addNamespace("a");
  EXPECT_EQ(a.address, ip("10.88.0.2"));
  EXPECT_TRUE(topology_.wired_.contains("a"));
  ASSERT_TRUE(namespaces_.remove("a"));
  EXPECT_TRUE(topology_.wired_.empty());
}

TEST_F(NamespaceRules, ReconcileWiresWhatTheStateNames) {
  addNamespace("a");
  addNamespace("p", "10.50.0.0/30");
  State saved = state_;
  // A reboot: the kernel forgot everything, the state did not.
  topology_ = test::FakeTopology();
  dp_ = test::FakeDatapath();
  ASSERT_TRUE(namespaces_.reconcile());
  EXPECT_TRUE(topology_.bridges_.contains("gw0"));
  EXPECT_EQ(topology_.wired_.size(), 2u);
  EXPECT_TRUE(dp_.endpoints_.contains(ip("10.88.0.2")));
  EXPECT_TRUE(dp_.endpoints_.contains(ip("10.50.0.2")));
  EXPECT_TRUE(dp_.endpoints_.contains(ip("fd00:88::2")));
  EXPECT_EQ(dp_.masquerades_.size(), 3u); // the point-to-point one has no IPv6 (no --subnet6)
  EXPECT_EQ(state_.namespaces, saved.namespaces);
  EXPECT_EQ(store_.commits_, 4);  // two an ns add (intent, done); reconciling changes none
}

TEST_F(NamespaceRules, ReconcileRollsBackAnNsAddCutShortByACrash) {
  addNamespace("b");
  // What a crash between the intent and the commit leaves: pending records, kernel objects.
  auto added = namespaces_.add({.name = "a", .bridge = "br1", .subnet = prefix("10.60.0.0/24")});
  ASSERT_TRUE(added) << added.error().str();
  state_.findNamespace("a")->pending = true;
  state_.findBridge("br1")->pending = true;
  ASSERT_TRUE(topology_.namespaces_.contains("a"));
  int commits = store_.commits_;
  ASSERT_TRUE(namespaces_.reconcile());
  EXPECT_FALSE(topology_.namespaces_.contains("a"));
  EXPECT_FALSE(topology_.links_.contains("gw-a"));
  EXPECT_FALSE(topology_.bridges_.contains("br1"));
  EXPECT_FALSE(dp_.endpoints_.contains(ip("10.60.0.2")));
  EXPECT_FALSE(dp_.masquerades_.contains(prefix("10.60.0.0/24")));
  EXPECT_EQ(state_.findNamespace("a"), nullptr);
  EXPECT_EQ(state_.findBridge("br1"), nullptr);
  EXPECT_NE(state_.findNamespace("b"), nullptr) << "the committed one stays";
  EXPECT_TRUE(topology_.namespaces_.contains("b"));
  EXPECT_EQ(store_.commits_, commits + 1) << "the rolled back state is committed";
}

TEST_F(NamespaceRules, ReconcileRemovesEndpointsAndProgramsThatNoNamespaceHas) {
  addNamespace("a");
  addNamespace("b");
  int linkA = topology_.links_.at("gw-a").index;
  int linkB = topology_.links_.at("gw-b").index;
  // What a lost state or a crash leaves: an entry and a program of a namespace long gone,
  // an entry of "a" missing, one of "b" pointing at an old link.
  dp_.adopted_ = true;
  dp_.endpoints_[ip("10.88.0.9")] = {.hostIfindex = 99};
  dp_.endpointPrograms_.insert(99);
  dp_.endpoints_.erase(ip("10.88.0.2"));
  dp_.endpoints_[ip("10.88.0.3")].hostIfindex = 98;
  ASSERT_TRUE(namespaces_.reconcile());
  ASSERT_EQ(dp_.endpoints_.size(), 4u);
  EXPECT_EQ(dp_.endpoints_.at(ip("10.88.0.2")).hostIfindex, linkA);
  EXPECT_EQ(dp_.endpoints_.at(ip("fd00:88::2")).hostIfindex, linkA);
  EXPECT_EQ(dp_.endpoints_.at(ip("10.88.0.3")).hostIfindex, linkB);
  EXPECT_EQ(dp_.endpointPrograms_, (std::set<int>{linkA, linkB}));
}

TEST_F(NamespaceRules, TheLocalAddressMapFollowsTheHostsAddresses) {
  addNamespace("p", "10.60.0.0/24", "br1");
  EXPECT_TRUE(dp_.localAddresses_.contains(ip("10.60.0.1"))) << "the new bridge's address";
  dp_.localAddresses_.insert(ip("10.9.9.9"));  // an address the host had in an earlier run
  ASSERT_TRUE(namespaces_.remove("p"));
  EXPECT_EQ(dp_.localAddresses_, (std::set<IpAddress>{ip("192.0.2.10"), ip("192.0.2.11")}));
}

TEST_F(NamespaceRules, ACrashMidNsAddLeavesNoEntryOnceEveryServiceReconciled) {
  addNamespace("b");
  ASSERT_TRUE(exposes_.add(expose("7000", "b:80")));
  auto added = namespaces_.add({.name = "a", .bridge = "br1", .subnet = prefix("10.60.0.0/24")});
  ASSERT_TRUE(added) << added.error().str();
  state_.findNamespace("a")->pending = true;
  state_.findBridge("br1")->pending = true;
  // Gateway::reconcile's order.
  ASSERT_TRUE(namespaces_.reconcile());
  masquerades_.reconcile();
  exposes_.reconcile();
  EXPECT_EQ(dp_.endpoints_.size(), 2u);
  EXPECT_TRUE(dp_.endpoints_.contains(ip("10.88.0.2")));
  EXPECT_TRUE(dp_.endpoints_.contains(ip("fd00:88::2")));
  EXPECT_EQ(dp_.masquerades_, (std::map<IpPrefix, int>{{prefix("10.88.0.0/16"), 0},
                                                       {prefix("fd00:88::/64"), 0}}));
  EXPECT_EQ(dp_.endpointPrograms_, (std::set<int>{topology_.links_.at("gw-b").index}));
  EXPECT_EQ(dp_.exposes_.size(), 2u); // b's expose, on both families
}

// ---- IPv6 exposes: both families by default, as Docker's -p

TEST_F(ExposeRules, ANamespaceTargetAnswersOnBothFamiliesByDefault) {
  auto web = addNamespace("web");
  auto added = addExpose(expose("6001", "web:8080"));
  EXPECT_EQ(added.family, IpFamilies::Both);
  ASSERT_EQ(added.families.size(), 2u);
  EXPECT_EQ(added.families[0].family, IpFamilies::V4);
  EXPECT_EQ(added.families[0].path, ServingPath::Ebpf);
  EXPECT_EQ(added.families[1].family, IpFamilies::V6);
  EXPECT_EQ(added.families[1].path, ServingPath::Ebpf);
  EXPECT_EQ(added.families[1].targetAddr, ip("fd00:88::2"));
  ASSERT_EQ(dp_.exposes_.size(), 2u);
  EXPECT_EQ(dp_.exposes_.at(v4Key(kTcp, {}, 6001)).targetAddr, web.address);
  const ExposeEntry& v6 = dp_.exposes_.at(v6Key(kTcp, {}, 6001));
  EXPECT_EQ(v6.targetAddr, ip("fd00:88::2"));
  EXPECT_EQ(v6.targetPort, 8080);
  EXPECT_EQ(v6.ruleId, added.id) << "one rule, one id, both families";
  EXPECT_EQ(state_.exposes.back().targetAddr6, ip("fd00:88::2"));
  // The listing says which path serves each family.
  auto listed = api::toJson(exposes_.list().at(0));
  EXPECT_EQ(listed["family"], "both");
  EXPECT_EQ(listed["families"][1]["family"], "6");
  EXPECT_EQ(listed["families"][1]["path"], "ebpf");
  EXPECT_EQ(listed["families"][1]["targetAddr"], "fd00:88::2");
  // Unexpose takes both.
  ASSERT_TRUE(exposes_.remove(unexpose("6001")));
  EXPECT_TRUE(dp_.exposes_.empty());
}

TEST_F(ExposeRules, FamilyFourOrSixInstallsThatFamilyAlone) {
  addNamespace("web");
  addExpose(withFamily(expose("6001", "web:8080"), IpFamilies::V4));
  addExpose(withFamily(expose("6002", "web:8080", Proto::Udp), IpFamilies::V6));
  EXPECT_EQ(dp_.exposeCount(kTcp, 6001, 6001, AF_INET), 1u);
  EXPECT_EQ(dp_.exposeCount(kTcp, 6001, 6001, AF_INET6), 0u);
  EXPECT_EQ(dp_.exposeCount(kUdp, 6002, 6002, AF_INET), 0u);
  EXPECT_EQ(dp_.exposeCount(kUdp, 6002, 6002, AF_INET6), 1u);
  EXPECT_EQ(state_.exposes[1].family, IpFamilies::V6);
}

TEST_F(ExposeRules, ANamespaceWithoutIpv6AnswersOnIpv4AndSaysWhyNotIpv6) {
  auto added = namespaces_.add({.name = "old", .noIpv6 = true});
  ASSERT_TRUE(added) << added.error().str();
  auto both = addExpose(expose("6001", "old:80"));
  ASSERT_EQ(both.families.size(), 2u);
  EXPECT_EQ(both.families[1].path, ServingPath::None);
  EXPECT_NE(both.families[1].why.find("IPv6"), std::string::npos) << both.families[1].why;
  EXPECT_EQ(dp_.exposes_.size(), 1u);
  // Asked by name, a family that cannot be served is refused.
  EXPECT_TRUE(failsWith(exposes_.add(withFamily(expose("6002", "old:80"), IpFamilies::V6)),
                        ErrorKind::Invalid, "IPv6"));
}

TEST_F(ExposeRules, AnIpv6HostIpLimitsTheRuleToIpv6) {
  topology_.addHostAddress("uplink0", prefix("fd00:18::1/64"));
  addNamespace("web");
  auto added = addExpose(withHostIp(expose("6001", "web:8080"), "fd00:18::1"));
  EXPECT_EQ(added.family, IpFamilies::V6);
  ASSERT_EQ(dp_.exposes_.size(), 1u);
  EXPECT_EQ(dp_.exposes_.at(v6Key(kTcp, ip("fd00:18::1"), 6001)).targetAddr, ip("fd00:88::2"));
  // The same port on an IPv4 address does not clash with it.
  addExpose(withHostIp(expose("6001", "web:8080"), "192.0.2.10"));
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, ip("192.0.2.10"), 6001)));
  // An IPv6 --host-ip with --family 4 contradicts itself; one the host lacks serves nobody.
  EXPECT_TRUE(failsWith(exposes_.add(withFamily(withHostIp(expose("6002", "web:8080"),
                                                           "fd00:18::1"),
                                                IpFamilies::V4)),
                        ErrorKind::Invalid, "--family 4"));
  EXPECT_TRUE(failsWith(exposes_.add(withHostIp(expose("6003", "web:8080"), "fd00:99::1")),
                        ErrorKind::Invalid, "not an address of the gateway host"));
  ASSERT_TRUE(exposes_.remove({.port = parsePortRange("6001", "").value(),
                               .hostIp = ip("fd00:18::1")}));
  EXPECT_FALSE(dp_.exposes_.contains(v6Key(kTcp, ip("fd00:18::1"), 6001)));
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, ip("192.0.2.10"), 6001)));
}

TEST_F(ExposeRules, AnIpv6TargetTakesTheEbpfPathForIpv6Clients) {
  auto added = addExpose(withFamily(expose("6001", "[fd00:88::5]:8080", Proto::Udp),
                                    IpFamilies::V6));
  EXPECT_EQ(added.path, ServingPath::Ebpf);
  EXPECT_EQ(added.targetAddr, ip("fd00:88::5"));
  EXPECT_TRUE(proxy_.listeners_.empty());
  EXPECT_EQ(dp_.exposes_.at(v6Key(kUdp, {}, 6001)).targetAddr, ip("fd00:88::5"));
  // --mode proxy keeps it on the proxy (IPv4 clients; IPv6 ones only at an IPv6 --host-ip).
  auto proxied = addExpose(withMode(expose("6002", "[fd00:88::5]:8080"), ExposeMode::Proxy));
  EXPECT_EQ(proxied.path, ServingPath::Proxy);
  EXPECT_EQ(proxied.families.at(1).path, ServingPath::None);
  EXPECT_FALSE(dp_.exposes_.contains(v6Key(kTcp, {}, 6002)));
  // DNAT to the gateway host's own IPv6 loopback goes nowhere: the proxy serves it (IPv4).
  EXPECT_TRUE(failsWith(exposes_.add(withFamily(expose("6003", "[::1]:80"), IpFamilies::V6)),
                        ErrorKind::Invalid, "IPv6 --host-ip"));
  auto loopback = addExpose(expose("6004", "[::1]:80"));
  EXPECT_EQ(loopback.path, ServingPath::Proxy);
  EXPECT_FALSE(dp_.exposes_.contains(v6Key(kTcp, {}, 6004)));
}

TEST_F(ExposeRules, ReconcileReinstallsBothFamiliesAndRemovesIpv6Strays) {
  addNamespace("web");
  addExpose(expose("6001", "web:8080"));
  dp_.adopted_ = true;
  dp_.exposes_.erase(v6Key(kTcp, {}, 6001)); // lost by a crash
  ExposeEntry stray{kTcp, {}, 6500, ip("fd00:88::9"), 80, 99};
  dp_.exposes_[stray.key()] = stray;
  exposes_.reconcile();
  EXPECT_EQ(dp_.exposes_.size(), 2u);
  EXPECT_TRUE(dp_.exposes_.contains(v6Key(kTcp, {}, 6001)));
  EXPECT_FALSE(dp_.exposes_.contains(stray.key()));
}

TEST_F(ExposeRules, AStateRecordFromBeforeIpv6LoadsAsIpv4Only) {
  auto state = fromJson(R"({"version": 1, "nextRuleId": 4, "bridges": [], "namespaces": [],
      "masquerades": [], "exposes": [{"id": 3, "proto": "tcp", "hostPort": 6001,
      "hostPortEnd": 6001, "target": "web:8080", "targetNs": "web",
      "targetAddr": "10.88.0.2", "targetPort": 8080}]})",
                        "state.json");
  ASSERT_TRUE(state) << state.error().str();
  EXPECT_EQ(state->exposes.at(0).family, IpFamilies::V4);
  EXPECT_FALSE(state->exposes.at(0).targetAddr6);
  state_ = *state;
  exposes_.reconcile();
  EXPECT_EQ(dp_.exposes_.size(), 1u);
  EXPECT_TRUE(dp_.exposes_.contains(v4Key(kTcp, {}, 6001)));
}

TEST_F(NamespaceRules, NsAddAndDelInstallAndRemoveTheIpv6EndpointAndMasquerade) {
  addNamespace("a");
  addNamespace("b");
  EXPECT_TRUE(dp_.endpoints_.contains(ip("fd00:88::3")));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("fd00:88::/64")));
  EXPECT_EQ(dp_.hairpin6_, ip("fd00:88::1")) << "the namespaces' IPv6 gateway";
  EXPECT_TRUE(dp_.localAddresses_.contains(ip("fd00:88::1"))) << "the bridge's IPv6 address";
  ASSERT_TRUE(namespaces_.remove("a"));
  EXPECT_FALSE(dp_.endpoints_.contains(ip("fd00:88::2")));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("fd00:88::/64"))) << "b still uses the pool";
  ASSERT_TRUE(namespaces_.remove("b"));
  EXPECT_TRUE(dp_.endpoints_.empty());
  EXPECT_TRUE(dp_.masquerades_.empty());
  EXPECT_FALSE(dp_.localAddresses_.contains(ip("fd00:88::1"))) << "gone with the bridge";
  // --no-ipv6: IPv4 alone.
  ASSERT_TRUE(namespaces_.add({.name = "c", .noIpv6 = true}));
  EXPECT_EQ(dp_.endpoints_.size(), 1u);
  EXPECT_EQ(dp_.masquerades_.size(), 1u);
}

TEST_F(NamespaceRules, TheHostsIpv6AddressesGoToTheLocalMapButNotLinkLocalOnes) {
  topology_.addHostAddress("uplink0", prefix("fd00:18::1/64"));
  topology_.addHostAddress("uplink0", prefix("fe80::1/64"));
  topology_.addHostAddress("lo", prefix("::1/128"));
  ASSERT_TRUE(namespaces_.syncLocalAddresses());
  EXPECT_TRUE(dp_.localAddresses_.contains(ip("fd00:18::1")));
  EXPECT_FALSE(dp_.localAddresses_.contains(ip("fe80::1")));
  EXPECT_FALSE(dp_.localAddresses_.contains(ip("::1")));
  dp_.localAddresses_.insert(ip("fd00:77::1")); // an earlier run's, the host no longer has
  ASSERT_TRUE(namespaces_.syncLocalAddresses());
  EXPECT_FALSE(dp_.localAddresses_.contains(ip("fd00:77::1")));
}


// ---- masquerade

using MasqueradeRules = ServicesTest;

TEST_F(MasqueradeRules, AnIpv6PrefixIsMasqueradedAndListed) {
  auto added = masquerades_.add({.source = prefix("fd00:99::5/64")});
  ASSERT_TRUE(added) << added.error().str();
  EXPECT_EQ(added->source, prefix("fd00:99::/64"));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("fd00:99::/64")));
  auto list = masquerades_.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(api::toJson(list[0])["source"], "fd00:99::/64");
  ASSERT_TRUE(masquerades_.remove({.source = prefix("fd00:99::/64")}));
  EXPECT_TRUE(dp_.masquerades_.empty());
}

TEST_F(MasqueradeRules, AddListRemove) {
  auto added = masquerades_.add({.source = prefix("10.1.2.3/16")});
  ASSERT_TRUE(added) << added.error().str();
  EXPECT_EQ(added->source, prefix("10.1.0.0/16"));  // the network, not the address written
  EXPECT_EQ(added->out, "uplink0");
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.1.0.0/16")), 0);
  auto eth1 = topology_.addLink("eth1");
  auto out = masquerades_.add({.source = prefix("10.2.0.0/16"), .outIf = "eth1"});
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->out, "eth1");
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.2.0.0/16")), eth1.index);
  EXPECT_EQ(store_.committed_->masquerades.size(), 2u);

  auto list = masquerades_.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].source, prefix("10.1.0.0/16"));
  EXPECT_EQ(list[1].out, "eth1");
  EXPECT_FALSE(list[0].automatic);

  auto removed = masquerades_.remove({.source = prefix("10.1.0.0/16")});
  ASSERT_TRUE(removed) << removed.error().str();
  EXPECT_FALSE(dp_.masquerades_.contains(prefix("10.1.0.0/16")));
  EXPECT_EQ(store_.committed_->masquerades.size(), 1u);
  EXPECT_TRUE(failsWith(masquerades_.remove({.source = prefix("10.1.0.0/16")}), ErrorKind::NotFound,
                        "no masquerade for 10.1.0.0/16"));
}

TEST_F(MasqueradeRules, RefusalsHaveTheirKinds) {
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.1.0.0/16")}));
  EXPECT_TRUE(failsWith(masquerades_.add({.source = prefix("10.1.0.0/16")}), ErrorKind::Conflict,
                        "already exists"));
  EXPECT_TRUE(failsWith(masquerades_.add({.source = prefix("10.3.0.0/16"), .outIf = "eth9"}),
                        ErrorKind::NotFound, "--out eth9"));
  unloadDatapath();
  EXPECT_TRUE(failsWith(masquerades_.add({.source = prefix("10.4.0.0/16")}), ErrorKind::Unavailable,
                        "not loaded"));
  EXPECT_EQ(state_.masquerades.size(), 1u);
}

TEST_F(MasqueradeRules, TheAutomaticEntriesOfNamespacesComeFirst) {
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.1.0.0/16")}));
  addNamespace("a");
  addNamespace("b");
  addNamespace("p", "10.50.0.0/30");
  auto list = masquerades_.list();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].source, prefix("10.88.0.0/16"));
  EXPECT_TRUE(list[0].automatic);
  EXPECT_EQ(list[0].out, "uplink0");
  EXPECT_EQ(list[1].source, prefix("fd00:88::/64"));
  EXPECT_TRUE(list[1].automatic);
  EXPECT_EQ(list[2].source, prefix("10.50.0.0/30"));
  EXPECT_TRUE(list[2].automatic);
  EXPECT_EQ(list[3].source, prefix("10.1.0.0/16"));
  EXPECT_FALSE(list[3].automatic);
  // Those go with `ns del`.
  EXPECT_TRUE(failsWith(masquerades_.remove({.source = prefix("10.88.0.0/16")}),
                        ErrorKind::NotFound, "ns del"));
}

TEST_F(MasqueradeRules, RemovingOneThatANamespaceUsesKeepsItInTheDataPath) {
  addNamespace("a");
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.88.0.0/16")}));
  ASSERT_TRUE(masquerades_.remove({.source = prefix("10.88.0.0/16")}));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.88.0.0/16")));
}

TEST_F(MasqueradeRules, ReconcileGivesTheDataPathEveryRule) {
  auto eth1 = topology_.addLink("eth1");
  state_.masquerades = {{prefix("10.1.0.0/16"), "", false}, {prefix("10.2.0.0/16"), "eth1", false}};
  masquerades_.reconcile();
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.1.0.0/16")), 0);
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.2.0.0/16")), eth1.index);
}

TEST_F(MasqueradeRules, ReconcileRemovesEntriesNoStateNamesAndRestoresTheOthers) {
  auto eth1 = topology_.addLink("eth1");
  addNamespace("a");
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.1.0.0/16"), .outIf = "eth1"}));
  dp_.adopted_ = true;
  // A `masquerade add` cut short by a crash, the entry of a namespace lost, one with an old
  // --out.
  dp_.masquerades_[prefix("10.99.0.0/16")] = 0;
  dp_.masquerades_.erase(prefix("10.88.0.0/16"));
  dp_.masquerades_[prefix("10.1.0.0/16")] = 0;
  masquerades_.reconcile();
  EXPECT_EQ(dp_.masquerades_, (std::map<IpPrefix, int>{{prefix("10.1.0.0/16"), eth1.index},
                                                       {prefix("10.88.0.0/16"), 0},
                                                       {prefix("fd00:88::/64"), 0}}));
}

TEST_F(MasqueradeRules, EndpointIndependentFilteringIsKeptAndRestored) {
  addNamespace("a");
  auto added = masquerades_.add(
      {.source = prefix("10.88.0.0/16"), .filtering = Filtering::EndpointIndependent});
  ASSERT_TRUE(added);
  EXPECT_EQ(added->filtering, Filtering::EndpointIndependent);
  EXPECT_TRUE(dp_.endpointIndependent_.contains(prefix("10.88.0.0/16")));
  EXPECT_EQ(masquerades_.list().back().filtering, Filtering::EndpointIndependent);
  // A start with the map's flag lost rewrites it; a second namespace keeps it.
  dp_.adopted_ = true;
  dp_.endpointIndependent_.clear();
  masquerades_.reconcile();
  EXPECT_TRUE(dp_.endpointIndependent_.contains(prefix("10.88.0.0/16")));
  addNamespace("b");
  EXPECT_TRUE(dp_.endpointIndependent_.contains(prefix("10.88.0.0/16")));
  // Removed: the namespaces' subnet goes back to what `ns add` made of it.
  ASSERT_TRUE(masquerades_.remove({.source = prefix("10.88.0.0/16")}));
  EXPECT_FALSE(dp_.endpointIndependent_.contains(prefix("10.88.0.0/16")));
  EXPECT_EQ(dp_.masquerades_.at(prefix("10.88.0.0/16")), 0);
}

TEST_F(MasqueradeRules, AHandAddedRuleForANamespaceSubnetKeepsItsOut) {
  auto eth1 = topology_.addLink("eth1");
  addNamespace("a");
  ASSERT_TRUE(masquerades_.add({.source = prefix("10.88.0.0/16"), .outIf = "eth1"}));
  masquerades_.reconcile();
  EXPECT_EQ(dp_.masquerades_, (std::map<IpPrefix, int>{{prefix("10.88.0.0/16"), eth1.index},
                                                       {prefix("fd00:88::/64"), 0}}));
}

TEST_F(MasqueradeRules, AMapThatCannotBeReadIsStillWrittenAndNothingIsRemoved) {
  state_.masquerades = {{prefix("10.1.0.0/16"), "", false}};
  dp_.masquerades_[prefix("10.99.0.0/16")] = 0;
  dp_.failList_ = true;
  masquerades_.reconcile();
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.1.0.0/16")));
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.99.0.0/16"))) << "not seen, not removed";
}

TEST_F(MasqueradeRules, AFailedCommitChangesNothing) {
  store_.failNext_ = true;
  EXPECT_FALSE(masquerades_.add({.source = prefix("10.1.0.0/16")}));
  EXPECT_TRUE(dp_.masquerades_.empty());
  EXPECT_TRUE(state_.masquerades.empty());

  ASSERT_TRUE(masquerades_.add({.source = prefix("10.1.0.0/16")}));
  store_.failNext_ = true;
  EXPECT_FALSE(masquerades_.remove({.source = prefix("10.1.0.0/16")}));
  EXPECT_EQ(state_.masquerades.size(), 1u);
  EXPECT_TRUE(dp_.masquerades_.contains(prefix("10.1.0.0/16")));
}

// ---- conntrack

using ConntrackRules = ServicesTest;

Flow flow(uint8_t proto, std::string_view src, uint16_t sport, std::string_view dst, uint16_t dport,
          uint8_t nat) {
  Flow f;
  f.proto = proto;
  f.orig = {ip(src), ip(dst), sport, dport};
  f.reply = {ip(dst), ip(src), dport, sport};
  f.state = proto == kTcp ? "ESTABLISHED" : "UDP";
  f.origCounters = {3, 300};
  f.replyCounters = {2, 200};
  f.nat = nat;
  return f;
}

TEST_F(ConntrackRules, FilterPortsMustBeSinglePortsNamingTheFlag) {
  api::ConntrackQuery query{.proto = Proto::Udp,
                            .src = ip("198.51.100.7"),
                            .port = PortRange{53, 53},
                            .dport = PortRange{8080, 8080}};
  auto f = flowFilter(query);
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_EQ(f->proto, kUdp);
  EXPECT_EQ(f->src, ip("198.51.100.7"));
  EXPECT_FALSE(f->dst);
  EXPECT_EQ(f->port, 53);
  EXPECT_FALSE(f->sport);
  EXPECT_EQ(f->dport, 8080);

  EXPECT_TRUE(
      failsWith(flowFilter({.sport = PortRange{80, 81}}), ErrorKind::Invalid, "--sport: '80-81'"));
  EXPECT_TRUE(failsWith(flowFilter({.dport = PortRange{80, 90}}), ErrorKind::Invalid, "--dport"));
  EXPECT_TRUE(failsWith(flowFilter({.port = PortRange{1, 2}}), ErrorKind::Invalid, "--port"));
}

TEST_F(ConntrackRules, DeleteNeedsAFilterOrAll) {
  dp_.flows_ = {flow(kTcp, "198.51.100.7", 40000, "192.0.2.10", 8080, 1),
                flow(kUdp, "198.51.100.8", 40001, "192.0.2.10", 53, 1),
                flow(kTcp, "10.88.0.2", 40002, "1.1.1.1", 443, 2)};
  EXPECT_TRUE(failsWith(conntrack_.remove({}), ErrorKind::Invalid, "needs a filter"));
  EXPECT_TRUE(dp_.deleteFlowsCalls_.empty());
  EXPECT_EQ(dp_.flushCalls_, 0);

  auto some = conntrack_.remove({.dport = PortRange{53, 53}});
  ASSERT_TRUE(some) << some.error().str();
  EXPECT_EQ(some->deleted, 1u);
  ASSERT_EQ(dp_.deleteFlowsCalls_.size(), 1u);
  EXPECT_EQ(dp_.deleteFlowsCalls_[0].dport, 53);

  auto all = conntrack_.remove({.all = "1"});
  ASSERT_TRUE(all) << all.error().str();
  EXPECT_EQ(all->deleted, 2u);
  EXPECT_EQ(dp_.flushCalls_, 1);
  EXPECT_TRUE(dp_.flows_.empty());

  unloadDatapath();
  EXPECT_TRUE(failsWith(conntrack_.remove({.all = "1"}), ErrorKind::Unavailable, "not loaded"));
  EXPECT_TRUE(failsWith(conntrack_.list({}), ErrorKind::Unavailable, "not loaded"));
}

TEST_F(ConntrackRules, ListFiltersAndNamesTheTranslation) {
  dp_.flows_ = {flow(kTcp, "198.51.100.7", 40000, "192.0.2.10", 8080, 1),
                flow(kTcp, "10.88.0.2", 40002, "1.1.1.1", 443, 2),
                flow(kTcp, "10.88.0.3", 40003, "192.0.2.10", 8080, 3),
                flow(kUdp, "198.51.100.8", 40001, "192.0.2.10", 53, 0)};
  dp_.flows_[0].ruleId = 7;
  auto all = conntrack_.list({});
  ASSERT_TRUE(all) << all.error().str();
  ASSERT_EQ(all->size(), 4u);
  std::vector<std::string> nats;
  for (const auto& f : *all) {
    nats.push_back(api::toJson(f)["nat"].get<std::string>());
  }
  EXPECT_EQ(nats, (std::vector<std::string>{"dnat", "snat", "dnat+snat", ""}));
  const api::FlowInfo& first = (*all)[0];
  EXPECT_EQ(first.proto, "tcp");
  EXPECT_EQ(first.state, "ESTABLISHED");
  EXPECT_EQ(first.orig.src, ip("198.51.100.7"));
  EXPECT_EQ(first.orig.dport, 8080);
  EXPECT_EQ(first.packets, 5u);
  EXPECT_EQ(first.bytes, 500u);
  EXPECT_EQ(first.rule, 7u);

  auto web = conntrack_.list({.proto = Proto::Tcp, .dport = PortRange{8080, 8080}});
  ASSERT_TRUE(web) << web.error().str();
  EXPECT_EQ(web->size(), 2u);
  EXPECT_TRUE(failsWith(conntrack_.list({.port = PortRange{1, 9}}), ErrorKind::Invalid, "--port"));
}

TEST_F(ConntrackRules, StatsNameTheRuleOfEachCounter) {
  auto added = addExpose(expose("8080", "10.0.0.5:80"));
  dp_.ruleStats_[added.id] = {.packets = 9, .bytes = 900, .connections = 2};
  dp_.reasons_ = {{"nat_dnat", 9}, {"drop_malformed", 1}};
  dp_.ctEntries_ = 4;
  dp_.ctCapacity_ = 1024;
  auto stats = conntrack_.stats(state_.exposes);
  ASSERT_TRUE(stats) << stats.error().str();
  EXPECT_EQ(stats->reasons.at("nat_dnat"), 9u);
  EXPECT_EQ(stats->reasons.at("drop_malformed"), 1u);
  ASSERT_EQ(stats->rules.size(), 1u);
  EXPECT_EQ(stats->rules[0].rule, "tcp 8080 -> 10.0.0.5:80");
  EXPECT_EQ(stats->rules[0].packets, 9u);
  EXPECT_EQ(stats->conntrack.entries, 4u);
  EXPECT_EQ(stats->conntrack.capacity, 1024u);
}

TEST_F(ConntrackRules, MaintenanceCountsSnatPortsAndPressure) {
  dp_.flows_ = {flow(kTcp, "10.88.0.2", 40002, "1.1.1.1", 443, 2),
                flow(kTcp, "10.88.0.3", 40003, "192.0.2.10", 8080, 3),
                flow(kTcp, "198.51.100.7", 40000, "192.0.2.10", 8080, 1)};
  dp_.ctEntries_ = 80;
  dp_.ctCapacity_ = 100;
  conntrack_.maintain();
  EXPECT_EQ(conntrack_.snatPortsInUse(), 2u);
  EXPECT_EQ(conntrack_.pressureSweeps(), 1u);
  dp_.ctEntries_ = 10;
  conntrack_.maintain();
  EXPECT_EQ(conntrack_.pressureSweeps(), 1u);
}

// ---- metrics

using MetricsRender = ServicesTest;

bool hasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST_F(MetricsRender, TheExpositionNamesEachExposeAndItsCounters) {
  auto added = addExpose(expose("8080", "10.0.0.5:80"));
  addExpose(withMode(expose("9000-9001", "10.0.0.6:90-91"), ExposeMode::Proxy));
  addNamespace("a");
  dp_.ruleStats_[added.id] = {.packets = 10, .bytes = 1000, .connections = 3, .drops = 1};
  proxy_.stats_[proxy_.listenerOn(9000).value()] = {.accepted = 4, .bytesIn = 40};
  proxy_.active_ = 2;
  dp_.reasons_ = {{"nat_dnat", 7}};
  dp_.ctEntries_ = 6;
  dp_.ctCapacity_ = 1024;

  std::string text = metrics_.render();
  const std::string ebpf =
      "{rule=\"1\",proto=\"tcp\",host_port=\"8080\",target=\"10.0.0.5:80\",path=\"ebpf\"}";
  const std::string proxied =
      "{rule=\"2\",proto=\"tcp\",host_port=\"9000-9001\",target=\"10.0.0.6:90-91\","
      "path=\"proxy\"}";
  for (const char* line :
       {"# TYPE gateway_up gauge", "gateway_up 1", "gateway_namespaces 1",
        "gateway_datapath_loaded 1", "# TYPE gateway_expose_packets_total counter",
        "gateway_datapath_packets_total{reason=\"nat_dnat\"} 7", "gateway_conntrack_entries 6",
        "gateway_conntrack_capacity 1024", "gateway_conntrack_pressure_sweeps_total 0",
        "gateway_snat_ports_in_use 0", "gateway_proxy_connections_active 2"}) {
    EXPECT_TRUE(hasLine(text, line)) << line << " not in:\n" << text;
  }
  for (const std::string& line : {"gateway_expose_packets_total" + ebpf + " 10",
                                  "gateway_expose_bytes_total" + ebpf + " 1000",
                                  "gateway_expose_connections_total" + ebpf + " 3",
                                  "gateway_expose_drops_total" + ebpf + " 1",
                                  "gateway_expose_connections_total" + proxied + " 4",
                                  "gateway_expose_bytes_total" + proxied + " 40"}) {
    EXPECT_TRUE(hasLine(text, line)) << line << " not in:\n" << text;
  }
}

TEST_F(MetricsRender, WithoutTheDataPathItsMetricsAreAbsent) {
  unloadDatapath();
  std::string text = metrics_.render();
  EXPECT_TRUE(hasLine(text, "gateway_datapath_loaded 0")) << text;
  EXPECT_EQ(text.find("gateway_conntrack_entries"), std::string::npos) << text;
  EXPECT_EQ(text.find("gateway_snat_ports_in_use"), std::string::npos) << text;
  EXPECT_EQ(text.find("gateway_proxy_connections_active"), std::string::npos) << text;
}

}  // namespace
}  // namespace gw
