// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "State.h"
#include "TestSupport.h"

namespace gw {
namespace {

State sample() {
  State s;
  s.bridges.push_back({"gw0", *IpPrefix::parse("10.88.0.1/16")});
  s.namespaces.push_back({"netns1", Wiring::Bridge, "gw0", "gw-netns1",
                          *IpPrefix::parse("10.88.0.2/16"), *IpPrefix::parse("10.88.0.1/16")});
  s.namespaces.push_back({"netns2", Wiring::PointToPoint, "", "gw-netns2",
                          *IpPrefix::parse("192.168.1.2/24"), *IpPrefix::parse("192.168.1.1/24")});
  ExposeRecord e;
  e.id = 7;
  e.hostPort = 6000;
  e.hostPortEnd = 6000;
  e.target = "netns1:8080";
  e.targetNs = "netns1";
  e.targetAddr = *IpAddress::parse("10.88.0.2");
  e.targetPort = 8080;
  s.exposes.push_back(e);
  s.masquerades.push_back({*IpPrefix::parse("10.88.0.0/16"), "", true});
  s.nextRuleId = 8;
  return s;
}

TEST(State, JsonRoundTrip) {
  auto back = fromJson(toJson(sample()), "test");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(toJson(*back), toJson(sample()));
  EXPECT_EQ(back->namespaces[1].wiring, Wiring::PointToPoint);
  EXPECT_EQ(back->exposes[0].targetAddr.str(), "10.88.0.2");
}

TEST(State, CorruptTextIsAnErrorNamingTheOrigin) {
  std::string text = toJson(sample());
  auto truncated = fromJson(text.substr(0, text.size() / 2), "file X");
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().message.find("file X"), std::string::npos);
  auto badAddr = fromJson(R"({"version":1,"nextRuleId":1,"bridges":[{"name":"gw0",
      "gateway":"10.88.0.300/16"}],"namespaces":[],"exposes":[],"masquerades":[]})", "f");
  ASSERT_FALSE(badAddr);
  EXPECT_NE(badAddr.error().message.find("10.88.0.300"), std::string::npos);
  EXPECT_FALSE(fromJson(R"({"version":99})", "f"));
  EXPECT_FALSE(fromJson(R"({"version":1})", "f"));
}

TEST(State, SaveIsAtomicAndKeepsABackup) {
  std::string dir = std::filesystem::temp_directory_path() / (test::prefix() + "state");
  std::filesystem::remove_all(dir);
  auto empty = loadState(dir);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->namespaces.empty());
  State one = sample();
  one.namespaces.pop_back();
  ASSERT_TRUE(saveState(dir, one));
  ASSERT_TRUE(saveState(dir, sample()));
  auto loaded = loadState(dir);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->namespaces.size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/state.json.tmp"));
  // The backup holds the previous good state.
  std::filesystem::rename(dir + "/state.json.bak", dir + "/state.json");
  auto previous = loadState(dir);
  ASSERT_TRUE(previous);
  EXPECT_EQ(previous->namespaces.size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(State, LoadRefusesACorruptFile) {
  std::string dir = std::filesystem::temp_directory_path() / (test::prefix() + "corrupt");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/state.json") << "{\"version\": 1, \"bridges\": [";
  auto r = loadState(dir);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(dir + "/state.json"), std::string::npos);
  EXPECT_NE(r.error().message.find(".bak"), std::string::npos);
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace gw
