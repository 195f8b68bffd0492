// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "base/Failpoint.h"
#include "base/Rollback.h"
#include "gateway/services/AddressPlan.h"

namespace gw {
namespace {

TEST(Topology, Ipv6PoolsCountUpFromTheNetworkAndCarry) {
  auto gateway = *IpPrefix::parse("fd00:88::1/64");
  EXPECT_EQ(allocateAddress6(gateway, {})->str(), "fd00:88::2/64");
  EXPECT_EQ(allocateAddress6(gateway, {*IpAddress::parse("fd00:88::2")})->str(), "fd00:88::3/64");
  auto pair = pointToPointAddresses6(*IpPrefix::parse("fd00:1::ff00/120"));
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->first.str(), "fd00:1::ff01/120");
  EXPECT_EQ(pair->second.str(), "fd00:1::ff02/120");
  // Counting carries into the next byte; a /120 holds 254 namespaces and the gateway.
  std::set<IpAddress> used;
  for (int i = 2; i < 256; ++i) {
    char text[32];
    std::snprintf(text, sizeof text, "fd00:2::%x", i);
    used.insert(*IpAddress::parse(text));
  }
  EXPECT_EQ(allocateAddress6(*IpPrefix::parse("fd00:2::1/112"), used)->str(), "fd00:2::100/112");
  EXPECT_FALSE(allocateAddress6(*IpPrefix::parse("fd00:2::1/120"), used));
  EXPECT_FALSE(checkSubnet6(*IpPrefix::parse("10.0.0.0/24")));
  EXPECT_FALSE(checkSubnet6(*IpPrefix::parse("fd00::/121")));
  EXPECT_TRUE(checkSubnet6(*IpPrefix::parse("fd00::/120")));
}

TEST(Topology, AllocatesTheFirstFreeHostAddress) {
  auto gateway = *IpPrefix::parse("10.88.0.1/16");
  auto first = allocateAddress(gateway, {});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->str(), "10.88.0.2/16");
  auto next = allocateAddress(gateway, {first->addr, *IpAddress::parse("10.88.0.3")});
  EXPECT_EQ(next->str(), "10.88.0.4/16");
}

TEST(Topology, ExhaustedPoolIsAnError) {
  auto gateway = *IpPrefix::parse("10.99.0.1/30");
  auto only = allocateAddress(gateway, {});
  ASSERT_TRUE(only);
  EXPECT_EQ(only->str(), "10.99.0.2/30");
  auto none = allocateAddress(gateway, {only->addr});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ENOSPC);
  EXPECT_NE(none.error().message.find("exhausted"), std::string::npos);
  EXPECT_FALSE(allocateAddress(*IpPrefix::parse("10.0.0.1/31"), {}));
}

TEST(Topology, PointToPointTakesTheFirstTwoHosts) {
  auto pair = pointToPointAddresses(*IpPrefix::parse("192.168.1.77/24"));
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->first.str(), "192.168.1.1/24");
  EXPECT_EQ(pair->second.str(), "192.168.1.2/24");
  EXPECT_FALSE(pointToPointAddresses(*IpPrefix::parse("192.168.1.0/31")));
  EXPECT_FALSE(pointToPointAddresses(*IpPrefix::parse("fd00::/64")));
}

TEST(Topology, HostLinkNamesFitIfnamsizAndStayDistinct) {
  EXPECT_EQ(hostLinkName("netns1"), "gw-netns1");
  auto a = hostLinkName("averylongname01");
  auto b = hostLinkName("averylongname02");
  EXPECT_LE(a.size(), 15u);
  EXPECT_LE(b.size(), 15u);
  EXPECT_NE(a, b);
}

TEST(Topology, FailpointsComeFromTheEnvironment) {
  EXPECT_TRUE(failpoint("x"));
  setenv("GATEWAY_FAILPOINTS", "a,x", 1);
  EXPECT_FALSE(failpoint("x"));
  EXPECT_TRUE(failpoint("b"));
  unsetenv("GATEWAY_FAILPOINTS");
}

TEST(Topology, RollbackRunsInReverseUnlessCommitted) {
  std::string order;
  {
    Rollback r;
    r.add([&] { order += "1"; });
    r.add([&] { order += "2"; });
  }
  EXPECT_EQ(order, "21");
  {
    Rollback r;
    r.add([&] { order += "3"; });
    r.commit();
  }
  EXPECT_EQ(order, "21");
}

} // namespace
} // namespace gw
