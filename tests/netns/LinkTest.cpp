// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <algorithm>

#include "netns/Address.h"
#include "netns/Link.h"
#include "tests/netns/NetnsTestUtil.h"
#include "tests/support/TestSupport.h"

namespace gw {
namespace {

using test::ipLink;
using test::OwnedNamespace;

bool hasFlag(const nlohmann::json& link, const std::string& flag) {
  const auto& flags = link.at("flags");
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

std::string kindOf(const nlohmann::json& link) {
  if (!link.contains("linkinfo")) {
    return {};
  }
  return link["linkinfo"].value("info_kind", "");
}

LinkInfo mustGet(Netlink& nl, const std::string& name) {
  auto link = getLink(nl, name);
  EXPECT_TRUE(link.has_value()) << link.error().str();
  return link.value_or(LinkInfo{});
}

TEST(LinkTest, ListsAndGetsLoopback) {
  OwnedNamespace ns("lo");
  auto links = listLinks(ns.nl());
  ASSERT_TRUE(links.has_value()) << links.error().str();
  ASSERT_EQ(links->size(), 1u);
  EXPECT_EQ((*links)[0].name, "lo");
  EXPECT_TRUE((*links)[0].up);
  auto byIndex = getLink(ns.nl(), (*links)[0].index);
  ASSERT_TRUE(byIndex.has_value()) << byIndex.error().str();
  EXPECT_EQ(byIndex->name, "lo");
  EXPECT_EQ(byIndex->mtu, static_cast<unsigned>(ipLink(ns.name(), "lo").at("mtu").get<int>()));
}

TEST(LinkTest, MissingLinkIsEnodevNamingIt) {
  OwnedNamespace ns("miss");
  auto link = getLink(ns.nl(), std::string("nosuch0"));
  ASSERT_FALSE(link.has_value());
  EXPECT_EQ(link.error().code, ENODEV);
  EXPECT_NE(link.error().message.find("nosuch0"), std::string::npos) << link.error().message;
  auto byIndex = getLink(ns.nl(), 4242);
  ASSERT_FALSE(byIndex.has_value());
  EXPECT_EQ(byIndex.error().code, ENODEV);
  EXPECT_FALSE(getLink(ns.nl(), std::string("bad/name")).has_value());
}

TEST(LinkTest, VethWithPeerBornInAnotherNamespace) {
  OwnedNamespace a("va");
  OwnedNamespace b("vb");
  auto made = createVeth(a.nl(), "gwa0", "gwb0", b.fd());
  ASSERT_TRUE(made.has_value()) << made.error().str();

  auto ours = ipLink(a.name(), "gwa0");
  ASSERT_FALSE(ours.is_null());
  EXPECT_EQ(kindOf(ours), "veth");
  EXPECT_TRUE(ipLink(a.name(), "gwb0").is_null()) << "peer must not appear in our namespace";
  auto peer = ipLink(b.name(), "gwb0");
  ASSERT_FALSE(peer.is_null()) << "peer missing from " << b.name();
  EXPECT_EQ(kindOf(peer), "veth");

  auto info = mustGet(a.nl(), "gwa0");
  EXPECT_EQ(info.kind, "veth");
  EXPECT_EQ(info.index, ours.at("ifindex").get<int>());
  EXPECT_FALSE(info.up);
  char mac[18];
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", info.mac[0], info.mac[1],
                info.mac[2], info.mac[3], info.mac[4], info.mac[5]);
  EXPECT_EQ(std::string(mac), ours.value("address", ""));
  EXPECT_EQ(mustGet(b.nl(), "gwb0").kind, "veth");

  // Deleting one end removes both.
  auto removed = deleteLink(a.nl(), info.index);
  ASSERT_TRUE(removed.has_value()) << removed.error().str();
  EXPECT_TRUE(ipLink(a.name(), "gwa0").is_null());
  EXPECT_TRUE(test::waitFor([&] { return ipLink(b.name(), "gwb0").is_null(); }));
}

TEST(LinkTest, VethPeerInSameNamespace) {
  OwnedNamespace ns("vs");
  auto made = createVeth(ns.nl(), "x0", "x1", -1);
  ASSERT_TRUE(made.has_value()) << made.error().str();
  EXPECT_EQ(kindOf(ipLink(ns.name(), "x0")), "veth");
  EXPECT_EQ(kindOf(ipLink(ns.name(), "x1")), "veth");
}

TEST(LinkTest, DuplicateVethCarriesKernelError) {
  OwnedNamespace ns("dup");
  ASSERT_TRUE(createVeth(ns.nl(), "d0", "d1", -1).has_value());
  auto again = createVeth(ns.nl(), "d0", "d2", -1);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, EEXIST);
  EXPECT_NE(again.error().message.find("d0"), std::string::npos) << again.error().message;
  EXPECT_NE(again.error().str().find("File exists"), std::string::npos) << again.error().str();
  EXPECT_TRUE(ipLink(ns.name(), "d2").is_null()) << "failed create left a half pair";
}

TEST(LinkTest, NetlinkErrorCarriesKernelExtack) {
  OwnedNamespace ns("ext");
  auto added = addAddress(ns.nl(), 4242, *IpPrefix::parse("10.66.0.1/24"));
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code, ENODEV);
  // The kernel's extack text (net/ipv4/devinet.c), not just strerror.
  EXPECT_NE(added.error().message.find("Device not found"), std::string::npos)
      << added.error().str();
  EXPECT_NE(added.error().message.find("10.66.0.1/24"), std::string::npos);
  // The socket stays usable after an error.
  EXPECT_TRUE(listLinks(ns.nl()).has_value());
}

TEST(LinkTest, BridgeEnslaveUpMtu) {
  OwnedNamespace ns("br");
  ASSERT_TRUE(createBridge(ns.nl(), "gwbr0").has_value());
  ASSERT_TRUE(createVeth(ns.nl(), "p0", "p1", -1).has_value());
  auto bridge = mustGet(ns.nl(), "gwbr0");
  auto port = mustGet(ns.nl(), "p0");
  EXPECT_EQ(bridge.kind, "bridge");
  EXPECT_EQ(port.master, 0);

  auto enslaved = setLinkMaster(ns.nl(), port.index, bridge.index);
  ASSERT_TRUE(enslaved.has_value()) << enslaved.error().str();
  ASSERT_TRUE(setLinkUp(ns.nl(), bridge.index, true).has_value());
  ASSERT_TRUE(setLinkUp(ns.nl(), port.index, true).has_value());
  auto mtu = setLinkMtu(ns.nl(), port.index, 1400);
  ASSERT_TRUE(mtu.has_value()) << mtu.error().str();

  auto theirPort = ipLink(ns.name(), "p0");
  EXPECT_EQ(theirPort.value("master", ""), "gwbr0");
  EXPECT_EQ(theirPort.at("mtu").get<int>(), 1400);
  EXPECT_TRUE(hasFlag(theirPort, "UP"));
  EXPECT_TRUE(hasFlag(ipLink(ns.name(), "gwbr0"), "UP"));

  port = mustGet(ns.nl(), "p0");
  EXPECT_EQ(port.master, bridge.index);
  EXPECT_EQ(port.mtu, 1400u);
  EXPECT_TRUE(port.up);

  ASSERT_TRUE(setLinkMaster(ns.nl(), port.index, 0).has_value());
  ASSERT_TRUE(setLinkUp(ns.nl(), port.index, false).has_value());
  theirPort = ipLink(ns.name(), "p0");
  EXPECT_FALSE(theirPort.contains("master"));
  EXPECT_FALSE(hasFlag(theirPort, "UP"));
  port = mustGet(ns.nl(), "p0");
  EXPECT_EQ(port.master, 0);
  EXPECT_FALSE(port.up);

  auto tooBig = setLinkMtu(ns.nl(), port.index, 1u << 20);
  EXPECT_FALSE(tooBig.has_value());

  ASSERT_TRUE(deleteLink(ns.nl(), bridge.index).has_value());
  EXPECT_TRUE(ipLink(ns.name(), "gwbr0").is_null());
  auto gone = deleteLink(ns.nl(), bridge.index);
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ENODEV);
}

TEST(LinkTest, TwoNamespacesPingOverVeth) {
  OwnedNamespace a("pa");
  OwnedNamespace b("pb");
  ASSERT_TRUE(createVeth(a.nl(), "pa0", "pb0", b.fd()).has_value());
  auto endA = mustGet(a.nl(), "pa0");
  auto endB = mustGet(b.nl(), "pb0");
  ASSERT_TRUE(addAddress(a.nl(), endA.index, *IpPrefix::parse("10.77.0.1/24")).has_value());
  ASSERT_TRUE(addAddress(b.nl(), endB.index, *IpPrefix::parse("10.77.0.2/24")).has_value());
  ASSERT_TRUE(setLinkUp(a.nl(), endA.index, true).has_value());
  ASSERT_TRUE(setLinkUp(b.nl(), endB.index, true).has_value());

  auto ping = test::shIn(a.name(), "ping -c1 -W2 10.77.0.2");
  EXPECT_TRUE(ping.ok()) << ping.out << ping.err;
  auto back = test::shIn(b.name(), "ping -c1 -W2 10.77.0.1");
  EXPECT_TRUE(back.ok()) << back.out << back.err;
}

} // namespace
} // namespace gw
