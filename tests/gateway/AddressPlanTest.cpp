// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "base/Failpoint.h"
#include "base/Rollback.h"
#include "gateway/services/AddressPlan.h"

namespace gw {
namespace {

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
