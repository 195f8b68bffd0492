// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "base/Ip.h"

namespace gw {
namespace {

IpAddress addr(const char* text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

IpPrefix prefix(const char* text) {
  auto p = IpPrefix::parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

TEST(IpAddressTest, ParsesV4) {
  auto a = addr("10.88.1.2");
  EXPECT_TRUE(a.isV4());
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(a.bytes[0], 10);
  EXPECT_EQ(a.bytes[3], 2);
  EXPECT_EQ(a.v4HostOrder(), 0x0a580102u);
  EXPECT_EQ(a.str(), "10.88.1.2");
  EXPECT_EQ(IpAddress::v4(0x0a580102u), a);
}

TEST(IpAddressTest, ParsesV6) {
  auto a = addr("fd00::1");
  EXPECT_FALSE(a.isV4());
  EXPECT_EQ(a.family, AF_INET6);
  EXPECT_EQ(a.bytes[0], 0xfd);
  EXPECT_EQ(a.bytes[15], 1);
  EXPECT_EQ(a.str(), "fd00::1");
  EXPECT_EQ(addr("FD00:0:0::1"), a);
}

TEST(IpAddressTest, RejectsGarbageAndNamesIt) {
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "1.2.3.4.5", "abc", "fd00:::1", "10.0.0.1 ",
                          "fe80::1%eth0", "10.0.0.1/24"}) {
    auto a = IpAddress::parse(bad);
    ASSERT_FALSE(a.has_value()) << "'" << bad << "'";
    EXPECT_NE(a.error().message.find("'" + std::string(bad) + "'"), std::string::npos)
        << a.error().message;
  }
}

TEST(IpAddressTest, OrdersV4BeforeV6AndNumerically) {
  EXPECT_LT(addr("10.0.0.1"), addr("10.0.0.2"));
  EXPECT_LT(addr("9.255.255.255"), addr("10.0.0.0"));
  EXPECT_LT(addr("255.255.255.255"), addr("::1"));
}

TEST(IpPrefixTest, KeepsHostBitsAsWritten) {
  auto p = prefix("192.168.1.1/24");
  EXPECT_EQ(p.length, 24);
  EXPECT_EQ(p.addr.str(), "192.168.1.1");
  EXPECT_EQ(p.str(), "192.168.1.1/24");
  EXPECT_EQ(p.network().str(), "192.168.1.0/24");
}

TEST(IpPrefixTest, LengthIsAlwaysWritten) {
  EXPECT_EQ(prefix("10.0.0.1/32").length, 32);
  EXPECT_EQ(prefix("0.0.0.0/0").length, 0);
  EXPECT_EQ(prefix("fd00::/8").network().str(), "fd00::/8");
  EXPECT_EQ(prefix("fd12:3456::1/20").network().str(), "fd12:3000::/20");
  // "masquerade add 10.0.0.0" is refused, not taken as 10.0.0.0/32.
  for (const char* bare : {"10.0.0.0", "fd00::1"}) {
    auto p = IpPrefix::parse(bare);
    ASSERT_FALSE(p.has_value()) << bare;
    EXPECT_NE(p.error().message.find("no prefix length"), std::string::npos) << p.error().message;
  }
}

TEST(IpPrefixTest, RejectsBadInput) {
  for (const char* bad : {"", "/", "/24", "10.0.0.0/", "10.0.0.0/33", "fd00::/129", "10.0.0.0/-1",
                          "10.0.0.0/+8", "10.0.0.0/8x", "10.0.0.0/ 8", "garbage", "garbage/8",
                          "10.0.0.0/8/8"}) {
    auto p = IpPrefix::parse(bad);
    ASSERT_FALSE(p.has_value()) << "'" << bad << "'";
    EXPECT_NE(p.error().message.find("'" + std::string(bad) + "'"), std::string::npos)
        << p.error().message;
  }
}

TEST(IpPrefixTest, Contains) {
  auto p = prefix("10.88.0.0/16");
  EXPECT_TRUE(p.contains(addr("10.88.0.0")));
  EXPECT_TRUE(p.contains(addr("10.88.255.255")));
  EXPECT_FALSE(p.contains(addr("10.89.0.0")));
  EXPECT_FALSE(p.contains(addr("::ffff:10.88.0.1"))); // other family
  EXPECT_TRUE(prefix("192.168.1.1/24").contains(addr("192.168.1.200")));
  EXPECT_TRUE(prefix("0.0.0.0/0").contains(addr("1.2.3.4")));
  EXPECT_TRUE(prefix("fd00::/64").contains(addr("fd00::abcd")));
  EXPECT_FALSE(prefix("fd00::/64").contains(addr("fd00:0:0:1::1")));
  EXPECT_TRUE(prefix("10.0.0.1/32").contains(addr("10.0.0.1")));
  EXPECT_FALSE(prefix("10.0.0.1/32").contains(addr("10.0.0.2")));
  EXPECT_TRUE(prefix("10.0.0.0/7").contains(addr("11.255.0.1")));
  EXPECT_FALSE(prefix("10.0.0.0/7").contains(addr("12.0.0.1")));
}

TEST(IpPrefixTest, Overlaps) {
  EXPECT_TRUE(prefix("10.0.0.0/8").overlaps(prefix("10.88.0.0/16")));
  EXPECT_TRUE(prefix("10.88.0.0/16").overlaps(prefix("10.0.0.0/8")));
  EXPECT_FALSE(prefix("10.88.0.0/16").overlaps(prefix("10.89.0.0/16")));
  EXPECT_TRUE(prefix("10.88.3.4/16").overlaps(prefix("10.88.200.0/24")));
  EXPECT_TRUE(prefix("0.0.0.0/0").overlaps(prefix("192.168.0.0/16")));
  EXPECT_FALSE(prefix("10.0.0.0/8").overlaps(prefix("fd00::/8")));
  EXPECT_TRUE(prefix("fd00::/8").overlaps(prefix("fd12::/16")));
  EXPECT_FALSE(prefix("fd00::/16").overlaps(prefix("fd01::/16")));
}

} // namespace
} // namespace gw
