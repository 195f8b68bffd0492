// SPDX-License-Identifier: MIT
// What `gwctl expose` accepts as ports and targets, and the errors naming what was wrong.
#include <gtest/gtest.h>

#include "control/ApiValues.h"

namespace gw {
namespace {

TEST(Rules, PortRangesMapOneToOne) {
  auto one = parsePortRange("6000", "host port");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  auto range = parsePortRange("6000-6009", "host port");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->size(), 10u);
  EXPECT_EQ(range->str(), "6000-6009");
  for (const char* bad : {"0", "65536", "6009-6000", "60a", "", "-1"}) {
    auto r = parsePortRange(bad, "host port");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("host port"), std::string::npos) << r.error().message;
  }
}

TEST(Rules, OwnersAreShortPrintableNames) {
  EXPECT_EQ(parseExposeOwner("cni/0123abcd/eth0").value().text, "cni/0123abcd/eth0");
  EXPECT_TRUE(parseExposeOwner("k8s:pod@ns+x=1_2.3"));
  for (std::string_view bad : {"", "-rm", "a b", "a\nb", "caf\xc3\xa9", "x;y"}) {
    auto r = parseExposeOwner(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().str().find("owner"), std::string::npos) << r.error().str();
  }
  EXPECT_FALSE(parseExposeOwner(std::string(254, 'a')));
  EXPECT_TRUE(parseExposeOwner(std::string(253, 'a')));
}

TEST(Rules, TargetsAreANamespaceAnIpv4OrABracketedIpv6) {
  auto ns = parseTarget("netns2:8080");
  ASSERT_TRUE(ns);
  EXPECT_EQ(ns->ns, "netns2");
  EXPECT_FALSE(ns->addr);
  auto v4 = parseTarget("10.0.0.5:8080-8081");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->addr && v4->addr->isV4());
  EXPECT_EQ(v4->ports.size(), 2u);
  auto v6 = parseTarget("[::1]:8080");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_TRUE(v6->addr && v6->addr->isV6());
  EXPECT_EQ(v6->ports.first, 8080);

  auto bare = parseTarget("::1:8080");
  ASSERT_FALSE(bare);
  EXPECT_NE(bare.error().message.find("[::1]:PORT"), std::string::npos) << bare.error().message;
  auto notV6 = parseTarget("[10.0.0.5]:80");
  ASSERT_FALSE(notV6);
  EXPECT_NE(notV6.error().message.find("not an IPv6 address"), std::string::npos);
  EXPECT_FALSE(parseTarget("8080"));
  EXPECT_FALSE(parseTarget("netns2:"));
  EXPECT_FALSE(parseTarget("bad/name:80"));
}

TEST(Rules, TargetsCanBeANetnsPath) {
  auto proc = parseTarget("/proc/1234/ns/net:80");
  ASSERT_TRUE(proc) << proc.error().message;
  EXPECT_EQ(proc->netnsPath, "/proc/1234/ns/net");
  EXPECT_EQ(proc->netns(), "/proc/1234/ns/net");
  EXPECT_TRUE(proc->ns.empty());
  EXPECT_FALSE(proc->addr);
  EXPECT_EQ(proc->ports.first, 80);
  auto cni = parseTarget("/var/run/netns/cni-1a2b-3c:8080-8081");
  ASSERT_TRUE(cni) << cni.error().message;
  EXPECT_EQ(cni->netnsPath, "/var/run/netns/cni-1a2b-3c");
  EXPECT_EQ(cni->ports.size(), 2u);
  // A colon in the path: the port is after the last one.
  auto colon = parseTarget("/run/a:b:443");
  ASSERT_TRUE(colon);
  EXPECT_EQ(colon->netnsPath, "/run/a:b");
  EXPECT_EQ(parseTarget("netns2:80")->netns(), "netns2");

  auto dir = parseTarget("/run/netns/:80");
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("/run/netns/"), std::string::npos) << dir.error().message;
  EXPECT_FALSE(parseTarget("/:80"));
  EXPECT_FALSE(parseTarget("/proc/1/ns/net"));   // no port
  EXPECT_FALSE(parseTarget("/proc/1/ns/net:0")); // not a port
  EXPECT_FALSE(parseTarget("proc/1/ns/net:80")); // relative
  EXPECT_FALSE(parseTarget(std::string_view("/run/a\0b:80", 9)));
  auto tooLong = parseTarget("/" + std::string(kMaxNetnsPath, 'a') + ":80");
  ASSERT_FALSE(tooLong);
  EXPECT_NE(tooLong.error().message.find("longer than"), std::string::npos);
  EXPECT_TRUE(parseTarget("/" + std::string(kMaxNetnsPath - 1, 'a') + ":80"));
}

} // namespace
} // namespace gw
