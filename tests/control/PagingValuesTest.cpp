// SPDX-License-Identifier: MIT
// The paging parameters of listings (?limit=, ?after=): what they accept, their errors naming
// the parameter, and cursors that read back as they were written.
#include <gtest/gtest.h>

#include "control/Api.h"

namespace gw::api {
namespace {

TEST(Paging, LimitIsAWholeNumberOfOneOrMore) {
  auto five = parsePageLimit("5");
  ASSERT_TRUE(five);
  EXPECT_EQ(five->value, 5u);
  EXPECT_EQ(parsePageLimit("4294967295")->value, 4294967295u);
  for (const char* bad : {"0", "", "-1", "1.5", "abc", "4294967296", " 5", "5 "}) {
    auto r = parsePageLimit(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().message.starts_with("limit: ")) << r.error().message;
  }
  ListQuery<std::string> none;
  EXPECT_FALSE(none.paged());
  EXPECT_EQ(none.pageSize(), kMaxPageLimit);
  ListQuery<std::string> huge{.limit = PageLimit{1'000'000}};
  EXPECT_TRUE(huge.paged());
  EXPECT_EQ(huge.pageSize(), kMaxPageLimit);
  ListQuery<std::string> small{.limit = PageLimit{7}};
  EXPECT_EQ(small.pageSize(), 7u);
  ListQuery<std::string> afterOnly{.after = std::string("x")};
  EXPECT_TRUE(afterOnly.paged());
}

TEST(Paging, FlowCursorsReadBackAsWritten) {
  for (const char* text : {"tcp/198.18.0.2/40000/198.18.0.1/6000", "udp/10.0.0.1/0/10.0.0.2/53",
                           "icmp/10.0.0.1/7/10.0.0.2/0", "47/10.0.0.1/0/10.0.0.2/0"}) {
    auto c = parseFlowCursor(text);
    ASSERT_TRUE(c) << text << ": " << c.error().str();
    EXPECT_EQ(c->str(), text);
  }
  EXPECT_EQ(parseFlowCursor("6/1.2.3.4/1/5.6.7.8/2")->str(), "tcp/1.2.3.4/1/5.6.7.8/2");
  for (const char* bad : {"", "tcp", "tcp/1.2.3.4/1/5.6.7.8", "tcp/1.2.3.4/1/5.6.7.8/2/3",
                          "sctp/1.2.3.4/1/5.6.7.8/2", "256/1.2.3.4/1/5.6.7.8/2",
                          "tcp/1.2.3/1/5.6.7.8/2", "tcp/1.2.3.4/65536/5.6.7.8/2",
                          "tcp/1.2.3.4//5.6.7.8/2"}) {
    auto r = parseFlowCursor(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().message.starts_with("after: ")) << r.error().message;
  }
}

TEST(Paging, ExposeCursorsReadBackAndOrderByProtoAddressPort) {
  for (const char* text : {"tcp/*/6000", "udp/10.0.0.1/53", "tcp/fd00::1/443"}) {
    auto c = parseExposeCursor(text);
    ASSERT_TRUE(c) << text << ": " << c.error().str();
    EXPECT_EQ(c->str(), text);
  }
  for (const char* bad : {"", "tcp", "tcp/*", "/*/6000", "tcp/*/0", "tcp/*/65536", "tcp/x/6000",
                          "sctp/*/6000", "tcp/*/6000/1"}) {
    auto r = parseExposeCursor(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().message.starts_with("after: ")) << r.error().message;
  }
  auto c = [](const char* text) { return parseExposeCursor(text).value(); };
  EXPECT_LT(c("tcp/*/7000"), c("tcp/10.0.0.1/6000")); // any address first
  EXPECT_LT(c("tcp/10.0.0.1/6000"), c("tcp/10.0.0.2/10"));
  EXPECT_LT(c("tcp/10.0.0.2/10"), c("udp/*/1"));
}

TEST(Paging, APageEncodesItsNextOnlyWhenMoreFollow) {
  Page<NamespaceDeleted, std::string> more{.items = {{"a", true}}, .next = "a"};
  EXPECT_EQ(toJson(more).dump(), R"({"items":[{"deleted":true,"name":"a"}],"next":"a"})");
  Page<NamespaceDeleted, std::string> last{.items = {}};
  EXPECT_EQ(toJson(last).dump(), R"({"items":[]})");
  auto query = fromJson<ConntrackQuery>(
      Json{{"proto", "tcp"}, {"limit", "10"}, {"after", "tcp/1.2.3.4/1/5.6.7.8/2"}}, "query");
  ASSERT_TRUE(query) << query.error().str();
  EXPECT_EQ(query->limit->value, 10u);
  EXPECT_EQ(query->after->str(), "tcp/1.2.3.4/1/5.6.7.8/2");
  EXPECT_TRUE(query->paging().paged());
}

} // namespace
} // namespace gw::api
