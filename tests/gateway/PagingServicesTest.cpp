// SPDX-License-Identifier: MIT
// Listings in pages against fakes: exposes by (proto, host address, port), flows by their
// original tuple; a cursor is a key, so changes between pages neither repeat nor skip items.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <set>
#include <string>
#include <vector>

#include "base/Log.h"
#include "gateway/services/ConntrackService.h"
#include "gateway/services/ExposeService.h"
#include "gateway/services/Paging.h"
#include "tests/gateway/Fakes.h"

namespace gw {
namespace {

IpAddress ip(std::string_view text) { return IpAddress::parse(text).value(); }

class PagingServices : public ::testing::Test {
 protected:
  void SetUp() override {
    log::setLevel(log::Level::Error);
    test::FakeNamespace& ns = topology_.namespaces_["ns1"];
    ns.addresses.push_back(IpPrefix::parse("10.1.0.2/24").value());
  }

  void expose(const std::string& port, Proto proto = Proto::Tcp,
              std::optional<std::string_view> hostIp = std::nullopt) {
    api::ExposeRequest r{.hostPort = parsePortRange(port, "host port").value(),
                         .target = parseTarget("ns1:" + port).value(),
                         .proto = proto};
    if (hostIp) {
      r.hostIp = ip(*hostIp);
    }
    auto added = exposes_.add(r);
    ASSERT_TRUE(added) << added.error().str();
  }

  // "tcp/*/6000" of each item of a page.
  static std::vector<std::string> keys(const api::ExposePage& page) {
    std::vector<std::string> out;
    for (const auto& e : page.items) {
      out.push_back(std::string(protoName(e.proto)) + "/" + e.hostIp + "/" +
                    std::to_string(e.hostPort.first));
    }
    return out;
  }

  static Flow flow(uint8_t proto, std::string_view src, uint16_t sport) {
    Flow f;
    f.proto = proto;
    f.orig = {.src = ip(src), .dst = ip("198.18.0.1"), .sport = sport, .dport = 6000};
    f.reply = {.src = ip("10.1.0.2"), .dst = ip(src), .sport = 80, .dport = sport};
    f.state = "ESTABLISHED";
    return f;
  }

  State state_;
  test::FakeStateSink store_;
  test::FakeDatapath dp_;
  DatapathRef datapath_{&dp_, {}};
  test::FakeTopology topology_;
  test::FakeProxy proxy_;
  ServiceContext ctx_{state_, store_, datapath_, "uplink0"};
  ExposeService exposes_{ctx_, topology_, proxy_};
  ConntrackService conntrack_{ctx_};
};

TEST_F(PagingServices, ExposePagesFollowTheirCursorThroughChanges) {
  for (const char* port : {"6003", "6001", "6005", "6002"}) {
    expose(port);
  }
  expose("6001", Proto::Udp);
  expose("6000", Proto::Tcp, "192.0.2.10");
  auto first = exposes_.page({.limit = api::PageLimit{3}});
  EXPECT_EQ(keys(first), (std::vector<std::string>{"tcp/*/6001", "tcp/*/6002", "tcp/*/6003"}));
  ASSERT_TRUE(first.next);
  EXPECT_EQ(first.next->str(), "tcp/*/6003");
  // Meanwhile: one behind the cursor goes and one comes (neither shifts the rest), one ahead
  // of it goes, one ahead comes.
  ASSERT_TRUE(exposes_.remove({.port = {6002, 6002}, .proto = Proto::Tcp}));
  expose("5999");
  ASSERT_TRUE(exposes_.remove({.port = {6005, 6005}, .proto = Proto::Tcp}));
  expose("6004");
  auto second = exposes_.page({.limit = api::PageLimit{3}, .after = first.next});
  EXPECT_EQ(keys(second),
            (std::vector<std::string>{"tcp/*/6004", "tcp/192.0.2.10/6000", "udp/*/6001"}));
  ASSERT_FALSE(second.next) << second.next->str();
  // The whole listing is unchanged in order and content (the contract without paging).
  EXPECT_EQ(exposes_.list().size(), 6u);
}

TEST_F(PagingServices, ExposePagesEndWithoutACursor) {
  expose("6000");
  auto all = exposes_.page({.limit = api::PageLimit{1}});
  EXPECT_EQ(all.items.size(), 1u);
  EXPECT_FALSE(all.next) << "one expose and a page of one: nothing follows";
  auto past = exposes_.page({.after = api::parseExposeCursor("udp/*/1").value()});
  EXPECT_TRUE(past.items.empty());
  EXPECT_FALSE(past.next);
}

TEST_F(PagingServices, ConntrackPagesAreInKeyOrderWithTheFilters) {
  dp_.flows_ = {flow(IPPROTO_UDP, "100.64.0.1", 1), flow(IPPROTO_TCP, "100.64.0.9", 1),
                flow(IPPROTO_TCP, "100.64.0.2", 7), flow(IPPROTO_TCP, "100.64.0.2", 5),
                flow(IPPROTO_TCP, "100.64.0.10", 1)};
  auto first = conntrack_.page({.limit = api::PageLimit{2}});
  ASSERT_TRUE(first) << first.error().str();
  ASSERT_EQ(first->items.size(), 2u);
  EXPECT_EQ(first->items[0].orig.src.str(), "100.64.0.2");
  EXPECT_EQ(first->items[0].orig.sport, 5);
  EXPECT_EQ(first->items[1].orig.sport, 7);
  ASSERT_TRUE(first->next);
  EXPECT_EQ(first->next->str(), "tcp/100.64.0.2/7/198.18.0.1/6000");
  auto rest = conntrack_.page({.limit = api::PageLimit{10}, .after = first->next});
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->items.size(), 3u);
  EXPECT_EQ(rest->items[0].orig.src.str(), "100.64.0.9");
  EXPECT_EQ(rest->items[1].orig.src.str(), "100.64.0.10"); // by address, not by its text
  EXPECT_EQ(rest->items[2].proto, "udp");
  EXPECT_FALSE(rest->next);
  auto tcp = conntrack_.page({.proto = Proto::Tcp, .limit = api::PageLimit{3}});
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->items.size(), 3u);
  ASSERT_TRUE(tcp->next);
  auto tcpRest = conntrack_.page({.proto = Proto::Tcp, .limit = api::PageLimit{3},
                                  .after = tcp->next});
  ASSERT_TRUE(tcpRest);
  EXPECT_EQ(tcpRest->items.size(), 1u);
  EXPECT_FALSE(tcpRest->next);
  EXPECT_FALSE(conntrack_.page({.port = PortRange{70, 70}, .limit = api::PageLimit{3}})
                   .value()
                   .next);
}

TEST_F(PagingServices, ConntrackPagesNeedTheDataPath) {
  datapath_ = DatapathRef{nullptr, "bpf() refused by the test"};
  auto r = conntrack_.page({.limit = api::PageLimit{3}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Unavailable);
}

TEST(TakePage, KeysOrderThePageAndTheCursorIsTheLastKey) {
  std::vector<int> items = {9, 3, 7, 1, 5};
  auto id = [](int x) { return x; };
  auto one = takePage(items, api::ListQuery<int>{.limit = api::PageLimit{2}}, id);
  EXPECT_EQ(one.items, (std::vector<int>{1, 3}));
  EXPECT_EQ(one.next, 3);
  auto two = takePage(items, api::ListQuery<int>{.limit = api::PageLimit{2}, .after = 3}, id);
  EXPECT_EQ(two.items, (std::vector<int>{5, 7}));
  EXPECT_EQ(two.next, 7);
  auto three = takePage(items, api::ListQuery<int>{.limit = api::PageLimit{2}, .after = 7}, id);
  EXPECT_EQ(three.items, (std::vector<int>{9}));
  EXPECT_FALSE(three.next);
  auto exact = takePage(items, api::ListQuery<int>{.limit = api::PageLimit{5}}, id);
  EXPECT_EQ(exact.items.size(), 5u);
  EXPECT_FALSE(exact.next) << "a page that ends the listing has no cursor";
}

} // namespace
} // namespace gw
