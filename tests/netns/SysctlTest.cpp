// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "netns/Namespace.h"
#include "tests/netns/NetnsTestUtil.h"
#include "netns/Sysctl.h"
#include "tests/support/TestSupport.h"

namespace gw {
namespace {

TEST(SysctlTest, IpForwardWrittenInsideNamespaceOnly) {
  auto rootBefore = readSysctl("net/ipv4/ip_forward");
  ASSERT_TRUE(rootBefore.has_value()) << rootBefore.error().str();
  test::OwnedNamespace ns("sc");

  // A fresh namespace starts with forwarding off.
  auto theirsBefore = test::shIn(ns.name(), "cat /proc/sys/net/ipv4/ip_forward");
  ASSERT_TRUE(theirsBefore.ok());
  EXPECT_EQ(theirsBefore.out, "0\n");

  auto wrote = writeSysctlIn(ns.fd(), "net/ipv4/ip_forward", "1");
  ASSERT_TRUE(wrote.has_value()) << wrote.error().str();
  auto theirs = test::shIn(ns.name(), "cat /proc/sys/net/ipv4/ip_forward");
  ASSERT_TRUE(theirs.ok()) << theirs.err;
  EXPECT_EQ(theirs.out, "1\n");
  EXPECT_EQ(readSysctlIn(ns.fd(), "net/ipv4/ip_forward").value_or(""), "1");

  // Our own (root) namespace is untouched.
  auto rootAfter = readSysctl("net/ipv4/ip_forward");
  ASSERT_TRUE(rootAfter.has_value());
  EXPECT_EQ(*rootAfter, *rootBefore);
}

TEST(SysctlTest, ErrorsNameThePath) {
  test::OwnedNamespace ns("se");
  auto missing = writeSysctlIn(ns.fd(), "net/ipv4/no_such_knob", "1");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("/proc/sys/net/ipv4/no_such_knob"), std::string::npos);
  auto invalid = writeSysctlIn(ns.fd(), "net/ipv4/ip_forward", "banana");
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code, EINVAL);
}

} // namespace
} // namespace gw
