// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "netns/Link.h"
#include "netns/Namespace.h"
#include "netns/Sysctl.h"

namespace gw {
namespace {

TEST(ValidationTest, NamespaceNames) {
  for (const char* good : {"a", "gw0", "ns-1.test_x", "ABCDEFGHIJKLMNO"}) {
    EXPECT_TRUE(validateNamespaceName(good).has_value()) << good;
  }
  for (const char* bad : {"", ".", "..", "a/b", "/etc", "sixteen_chars_xx", "a b", "a:b", "ns\n",
                          "caf\xc3\xa9"}) {
    auto ok = validateNamespaceName(bad);
    ASSERT_FALSE(ok.has_value()) << "'" << bad << "'";
    EXPECT_EQ(ok.error().code, EINVAL);
    EXPECT_NE(ok.error().message.find("'" + std::string(bad) + "'"), std::string::npos)
        << ok.error().message;
  }
  EXPECT_NE(validateNamespaceName("sixteen_chars_xx").error().message.find("15"),
            std::string::npos);
}

TEST(ValidationTest, InterfaceNames) {
  for (const char* good : {"lo", "eth0", "veth-gw.1", "br_0", "fifteen_chars_x", "a@b"}) {
    EXPECT_TRUE(validateIfName(good).has_value()) << good;
  }
  for (const char* bad : {"", ".", "..", "a/b", "a:b", "a b", "tab\t", "sixteen_chars_xx"}) {
    auto ok = validateIfName(bad);
    ASSERT_FALSE(ok.has_value()) << "'" << bad << "'";
    EXPECT_NE(ok.error().message.find("'" + std::string(bad) + "'"), std::string::npos);
  }
  EXPECT_FALSE(validateIfName(std::string_view("a\0b", 3)).has_value());
}

TEST(ValidationTest, SysctlKeys) {
  EXPECT_TRUE(validateSysctlKey("net/ipv4/ip_forward").has_value());
  EXPECT_TRUE(validateSysctlKey("net/ipv6/conf/all/forwarding").has_value());
  for (const char* bad : {"", "/proc/sys/net/ipv4/ip_forward", "net/../kernel/x", "..", "net//x",
                          "net/ipv4/", "./net"}) {
    EXPECT_FALSE(validateSysctlKey(bad).has_value()) << "'" << bad << "'";
  }
  // Rejected before any file is touched.
  auto wrote = writeSysctl("../../etc/hostname", "x");
  ASSERT_FALSE(wrote.has_value());
  EXPECT_EQ(wrote.error().code, EINVAL);
  EXPECT_FALSE(readSysctl("/etc/passwd").has_value());
}

} // namespace
} // namespace gw
