// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <algorithm>

#include "netns/Address.h"
#include "netns/Link.h"
#include "tests/netns/NetnsTestUtil.h"
#include "netns/Route.h"
#include "tests/support/TestSupport.h"

namespace gw {
namespace {

using test::ipJson;
using test::OwnedNamespace;

IpPrefix pfx(const char* text) {
  return IpPrefix::parse(text).value();
}

IpAddress ip(const char* text) {
  return IpAddress::parse(text).value();
}

// `ip -j addr show dev` as "local/prefixlen" strings.
std::vector<std::string> ipAddrs(const std::string& ns, const std::string& dev) {
  std::vector<std::string> out;
  for (const auto& link : ipJson({"-n", ns, "addr", "show", "dev", dev})) {
    for (const auto& a : link.at("addr_info")) {
      out.push_back(a.at("local").get<std::string>() + "/" +
                    std::to_string(a.at("prefixlen").get<int>()));
    }
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A namespace with an up veth end "e0" (peer "e1" in the same namespace, also up).
class WiredNamespace : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(createVeth(ns_.nl(), "e0", "e1", -1).has_value());
    auto e0 = getLink(ns_.nl(), std::string("e0"));
    auto e1 = getLink(ns_.nl(), std::string("e1"));
    ASSERT_TRUE(e0 && e1);
    index_ = e0->index;
    ASSERT_TRUE(setLinkUp(ns_.nl(), e0->index, true).has_value());
    ASSERT_TRUE(setLinkUp(ns_.nl(), e1->index, true).has_value());
  }

  OwnedNamespace ns_{"ar"};
  int index_ = 0;
};

TEST_F(WiredNamespace, AddsListsDeletesV4AndV6Addresses) {
  auto v4 = addAddress(ns_.nl(), index_, pfx("10.55.1.7/24"));
  ASSERT_TRUE(v4.has_value()) << v4.error().str();
  auto v6 = addAddress(ns_.nl(), index_, pfx("fd55::7/64"));
  ASSERT_TRUE(v6.has_value()) << v6.error().str();

  auto theirs = ipAddrs(ns_.name(), "e0");
  EXPECT_TRUE(has(theirs, "10.55.1.7/24"));
  EXPECT_TRUE(has(theirs, "fd55::7/64"));

  auto all = listAddresses(ns_.nl(), AF_UNSPEC, index_);
  ASSERT_TRUE(all.has_value()) << all.error().str();
  auto mine = [&](const std::vector<AddressInfo>& list, const IpPrefix& p) {
    return std::any_of(list.begin(), list.end(), [&](const AddressInfo& a) {
      return a.ifindex == index_ && a.prefix == p;
    });
  };
  EXPECT_TRUE(mine(*all, pfx("10.55.1.7/24")));
  EXPECT_TRUE(mine(*all, pfx("fd55::7/64")));
  auto onlyV4 = listAddresses(ns_.nl(), AF_INET);
  ASSERT_TRUE(onlyV4.has_value());
  EXPECT_TRUE(mine(*onlyV4, pfx("10.55.1.7/24")));
  EXPECT_TRUE(std::all_of(onlyV4->begin(), onlyV4->end(),
                          [](const AddressInfo& a) { return a.prefix.addr.isV4(); }));
  // lo's 127.0.0.1 is there too when not filtering by interface.
  EXPECT_TRUE(std::any_of(onlyV4->begin(), onlyV4->end(), [](const AddressInfo& a) {
    return a.prefix == IpPrefix::parse("127.0.0.1/8").value();
  }));

  auto dup = addAddress(ns_.nl(), index_, pfx("10.55.1.7/24"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, EEXIST);

  ASSERT_TRUE(deleteAddress(ns_.nl(), index_, pfx("10.55.1.7/24")).has_value());
  ASSERT_TRUE(deleteAddress(ns_.nl(), index_, pfx("fd55::7/64")).has_value());
  theirs = ipAddrs(ns_.name(), "e0");
  EXPECT_FALSE(has(theirs, "10.55.1.7/24"));
  EXPECT_FALSE(has(theirs, "fd55::7/64"));
  auto none = listAddresses(ns_.nl(), AF_INET, index_);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(deleteAddress(ns_.nl(), index_, pfx("10.55.1.7/24")).has_value());
}

TEST_F(WiredNamespace, DefaultRouteViaGateway) {
  ASSERT_TRUE(addAddress(ns_.nl(), index_, pfx("10.56.0.1/24")).has_value());
  RouteSpec def{.dst = std::nullopt, .gateway = ip("10.56.0.254"), .ifindex = index_};
  auto added = addRoute(ns_.nl(), def);
  ASSERT_TRUE(added.has_value()) << added.error().str();

  auto theirs = ipJson({"-n", ns_.name(), "route", "show", "default"});
  ASSERT_EQ(theirs.size(), 1u) << theirs.dump();
  EXPECT_EQ(theirs[0].value("gateway", ""), "10.56.0.254");
  EXPECT_EQ(theirs[0].value("dev", ""), "e0");

  auto routes = listRoutes(ns_.nl());
  ASSERT_TRUE(routes.has_value()) << routes.error().str();
  auto found = std::find_if(routes->begin(), routes->end(),
                            [](const RouteInfo& r) { return !r.dst.has_value(); });
  ASSERT_NE(found, routes->end());
  EXPECT_EQ(found->gateway, ip("10.56.0.254"));
  EXPECT_EQ(found->ifindex, index_);
  // The connected route the kernel made for the address is in the main table too.
  EXPECT_TRUE(std::any_of(routes->begin(), routes->end(), [&](const RouteInfo& r) {
    return r.dst == pfx("10.56.0.0/24") && !r.gateway && r.ifindex == index_;
  }));

  auto dup = addRoute(ns_.nl(), def);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, EEXIST);

  ASSERT_TRUE(deleteRoute(ns_.nl(), def).has_value());
  EXPECT_TRUE(ipJson({"-n", ns_.name(), "route", "show", "default"}).empty());
}

TEST_F(WiredNamespace, GatewayOutsideAnyPrefixNeedsOnlink) {
  RouteSpec spec{.dst = pfx("10.57.0.0/16"), .gateway = ip("192.0.2.1"), .ifindex = index_};
  auto refused = addRoute(ns_.nl(), spec);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ENETUNREACH) << refused.error().str();
  EXPECT_NE(refused.error().message.find("10.57.0.0/16 via 192.0.2.1"), std::string::npos);

  spec.onlink = true;
  auto added = addRoute(ns_.nl(), spec);
  ASSERT_TRUE(added.has_value()) << added.error().str();
  auto theirs = ipJson({"-n", ns_.name(), "route", "show", "10.57.0.0/16"});
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(theirs[0].value("gateway", ""), "192.0.2.1");
  auto flags = theirs[0].value("flags", nlohmann::json::array());
  EXPECT_NE(std::find(flags.begin(), flags.end(), "onlink"), flags.end()) << theirs.dump();
}

TEST_F(WiredNamespace, ConnectedAndV6Routes) {
  RouteSpec connected{.dst = pfx("10.58.0.0/16"), .gateway = std::nullopt, .ifindex = index_};
  ASSERT_TRUE(addRoute(ns_.nl(), connected).has_value());
  auto theirs = ipJson({"-n", ns_.name(), "route", "show", "10.58.0.0/16"});
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(theirs[0].value("scope", ""), "link");
  EXPECT_FALSE(theirs[0].contains("gateway"));

  ASSERT_TRUE(addAddress(ns_.nl(), index_, pfx("fd58::1/64")).has_value());
  RouteSpec v6{.dst = std::nullopt,
               .gateway = ip("fd58::fe"),
               .ifindex = index_,
               .onlink = false,
               .family = AF_INET6};
  auto added = addRoute(ns_.nl(), v6);
  ASSERT_TRUE(added.has_value()) << added.error().str();
  auto theirs6 = ipJson({"-n", ns_.name(), "-6", "route", "show", "default"});
  ASSERT_EQ(theirs6.size(), 1u) << theirs6.dump();
  EXPECT_EQ(theirs6[0].value("gateway", ""), "fd58::fe");
  auto routes6 = listRoutes(ns_.nl(), AF_INET6);
  ASSERT_TRUE(routes6.has_value());
  EXPECT_TRUE(std::any_of(routes6->begin(), routes6->end(), [&](const RouteInfo& r) {
    return !r.dst && r.gateway == ip("fd58::fe") && r.ifindex == index_;
  }));

  RouteSpec mixed{.dst = pfx("10.0.0.0/8"), .gateway = ip("fd58::fe")};
  auto bad = addRoute(ns_.nl(), mixed);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EINVAL);

  ASSERT_TRUE(deleteRoute(ns_.nl(), connected).has_value());
  EXPECT_TRUE(ipJson({"-n", ns_.name(), "route", "show", "10.58.0.0/16"}).empty());
  EXPECT_FALSE(deleteRoute(ns_.nl(), connected).has_value());
}

} // namespace
} // namespace gw
