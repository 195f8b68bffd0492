// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>

#include "netns/Namespace.h"
#include "tests/netns/NetnsTestUtil.h"
#include "netns/Netlink.h"
#include "tests/support/TestSupport.h"

namespace gw {
namespace {

using test::ipJson;
using test::nsName;

bool ipSeesNamespace(const std::string& name) {
  auto list = ipJson({"netns", "list"});
  return std::any_of(list.begin(), list.end(),
                     [&](const auto& ns) { return ns.value("name", "") == name; });
}

uint64_t currentCookie() {
  auto fd = openCurrentNamespace();
  EXPECT_TRUE(fd.has_value());
  auto cookie = namespaceCookie(fd->get());
  EXPECT_TRUE(cookie.has_value()) << cookie.error().str();
  return cookie.value_or(0);
}

// Deletes a namespace by name at scope exit, whoever made it.
struct NamespaceCleanup {
  std::string name;
  ~NamespaceCleanup() { test::run({"ip", "netns", "del", name}); }
};

// Targets by path: any network namespace file opens; anything else is refused by its path.
TEST(NamespaceTest, ANamespaceOpensByPathAndOtherFilesAreRefused) {
  auto self = openNamespaceAt("/proc/self/ns/net");
  ASSERT_TRUE(self) << self.error().str();
  auto byName = openNamespace("/proc/thread-self/ns/net"); // a '/' name is a path
  ASSERT_TRUE(byName) << byName.error().str();
  auto a = namespaceId("/proc/self/ns/net");
  auto b = namespaceId("/proc/thread-self/ns/net");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  for (const char* bad : {"/etc/passwd", "/proc", "/proc/self/ns/mnt"}) {
    auto r = openNamespaceAt(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::Invalid) << bad;
    EXPECT_NE(r.error().str().find(std::string(bad) + " is not a network namespace"),
              std::string::npos)
        << r.error().str();
  }
  auto missing = openNamespaceAt("/proc/self/ns/nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::NotFound);
  EXPECT_FALSE(openNamespaceAt("relative/path"));
}

TEST(NamespaceTest, CreateListDeleteSeenByIproute2) {
  std::string name = nsName("cld");
  NamespaceCleanup cleanup{name};
  ASSERT_FALSE(namespaceExists(name));

  auto made = createNamespace(name);
  ASSERT_TRUE(made.has_value()) << made.error().str();
  EXPECT_TRUE(namespaceExists(name));
  EXPECT_TRUE(ipSeesNamespace(name));
  auto exec = test::run({"ip", "netns", "exec", name, "true"});
  EXPECT_TRUE(exec.ok()) << exec.err;
  auto listed = listNamespaces();
  ASSERT_TRUE(listed.has_value()) << listed.error().str();
  EXPECT_NE(std::find(listed->begin(), listed->end(), name), listed->end());

  // A fresh namespace: only lo, and it is down.
  auto links = ipJson({"-n", name, "link"});
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].value("ifname", ""), "lo");

  auto again = createNamespace(name);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, EEXIST);
  EXPECT_TRUE(test::run({"ip", "netns", "exec", name, "true"}).ok()) << "failed create broke it";

  auto removed = deleteNamespace(name);
  ASSERT_TRUE(removed.has_value()) << removed.error().str();
  EXPECT_FALSE(namespaceExists(name));
  EXPECT_FALSE(ipSeesNamespace(name));

  auto twice = deleteNamespace(name);
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code, ENOENT);
  EXPECT_NE(twice.error().message.find(name), std::string::npos);
}

TEST(NamespaceTest, CreateDoesNotMoveTheCaller) {
  uint64_t before = currentCookie();
  test::OwnedNamespace ns("mv");
  EXPECT_EQ(currentCookie(), before);
  auto fd = openNamespace(ns.name());
  ASSERT_TRUE(fd.has_value());
  auto cookie = namespaceCookie(fd->get());
  ASSERT_TRUE(cookie.has_value());
  EXPECT_NE(*cookie, before);
  EXPECT_EQ(currentCookie(), before) << "namespaceCookie must come back";
}

TEST(NamespaceTest, RejectsInvalidNamesBeforeTouchingAnything) {
  for (const char* bad : {"", "..", "../etc", "a/b", "this_is_too_long_"}) {
    auto made = createNamespace(bad);
    ASSERT_FALSE(made.has_value()) << bad;
    EXPECT_EQ(made.error().code, EINVAL);
    EXPECT_FALSE(deleteNamespace(bad).has_value());
    EXPECT_FALSE(openNamespace(bad).has_value());
    EXPECT_FALSE(namespaceExists(bad));
  }
}

TEST(NamespaceTest, OpensNamespaceMadeByIproute2) {
  test::TestNamespace theirs(nsName("ip"));
  uint64_t home = currentCookie();

  auto fd = openNamespace(theirs.name());
  ASSERT_TRUE(fd.has_value()) << fd.error().str();
  auto cookie = namespaceCookie(fd->get());
  ASSERT_TRUE(cookie.has_value()) << cookie.error().str();
  EXPECT_NE(*cookie, home);

  // A second open of the same name is the same namespace.
  auto fd2 = openNamespace(theirs.name());
  ASSERT_TRUE(fd2.has_value());
  EXPECT_EQ(namespaceCookie(fd2->get()).value_or(0), *cookie);

  {
    auto guard = NetnsGuard::enter(theirs.name());
    ASSERT_TRUE(guard.has_value()) << guard.error().str();
    EXPECT_EQ(currentCookie(), *cookie);
    // Moving the guard keeps exactly one pending return.
    NetnsGuard moved = std::move(*guard);
    EXPECT_EQ(currentCookie(), *cookie);
  }
  EXPECT_EQ(currentCookie(), home);

  auto listed = listNamespaces();
  ASSERT_TRUE(listed.has_value());
  EXPECT_NE(std::find(listed->begin(), listed->end(), theirs.name()), listed->end());
}

TEST(NamespaceTest, OpenMissingFails) {
  std::string name = nsName("none");
  auto fd = openNamespace(name);
  ASSERT_FALSE(fd.has_value());
  EXPECT_EQ(fd.error().code, ENOENT);
  EXPECT_NE(fd.error().message.find(name), std::string::npos);
  auto guard = NetnsGuard::enter(name);
  EXPECT_FALSE(guard.has_value());
  auto nl = Netlink::openIn(name);
  EXPECT_FALSE(nl.has_value());
}

TEST(NamespaceTest, NetlinkOpenInBindsThereAndComesBack) {
  uint64_t home = currentCookie();
  test::OwnedNamespace ns("nl");
  auto nl = Netlink::openIn(ns.name());
  ASSERT_TRUE(nl.has_value()) << nl.error().str();
  EXPECT_EQ(currentCookie(), home);
  // The socket lives in the namespace: its cookie is the namespace's, not ours.
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  ASSERT_EQ(getsockopt(nl->fd(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len), 0);
  EXPECT_EQ(cookie, namespaceCookie(ns.fd()).value_or(0));
  EXPECT_NE(cookie, home);
}

} // namespace
} // namespace gw
