// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gateway/State.h"
#include "tests/support/TestSupport.h"

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

TEST(State, Ipv6FieldsRoundTripAndAStateWithoutThemLoads) {
  State s = sample();
  s.bridges[0].gateway6 = *IpPrefix::parse("fd00:88::1/64");
  s.namespaces[0].address6 = *IpPrefix::parse("fd00:88::2/64");
  s.namespaces[0].hostAddress6 = *IpPrefix::parse("fd00:88::1/64");
  auto back = fromJson(toJson(s), "test");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->namespaces[0].address6, s.namespaces[0].address6);
  EXPECT_EQ(back->bridges[0].gateway6, s.bridges[0].gateway6);
  EXPECT_FALSE(back->namespaces[1].address6);

  // A state from before IPv6: its namespaces have none (until added again).
  auto old = fromJson(R"({"version":1,"nextRuleId":1,"bridges":[{"name":"gw0",
      "gateway":"10.88.0.1/16"}],"namespaces":[{"name":"a","wiring":"bridge","bridge":"gw0",
      "hostLink":"gw-a","address":"10.88.0.2/16","hostAddress":"10.88.0.1/16"}],
      "exposes":[],"masquerades":[]})", "old");
  ASSERT_TRUE(old) << old.error().str();
  EXPECT_FALSE(old->namespaces[0].address6);
  EXPECT_FALSE(old->bridges[0].gateway6);

  // Every new field is checked at load.
  auto v4In6 = fromJson(R"({"version":1,"nextRuleId":1,"bridges":[],"namespaces":[{"name":"a",
      "wiring":"bridge","bridge":"gw0","hostLink":"gw-a","address":"10.88.0.2/16",
      "hostAddress":"10.88.0.1/16","address6":"10.1.0.2/24","hostAddress6":"fd00::1/64"}],
      "exposes":[],"masquerades":[]})", "f");
  ASSERT_FALSE(v4In6);
  EXPECT_NE(v4In6.error().message.find("'address6' is not an IPv6 prefix"), std::string::npos)
      << v4In6.error().message;
  auto half = fromJson(R"({"version":1,"nextRuleId":1,"bridges":[],"namespaces":[{"name":"a",
      "wiring":"bridge","bridge":"gw0","hostLink":"gw-a","address":"10.88.0.2/16",
      "hostAddress":"10.88.0.1/16","address6":"fd00::2/64"}],"exposes":[],"masquerades":[]})",
                       "f");
  ASSERT_FALSE(half);
  EXPECT_NE(half.error().message.find("come together"), std::string::npos);
  auto bad = fromJson(R"({"version":1,"nextRuleId":1,"bridges":[{"name":"gw0",
      "gateway":"10.88.0.1/16","gateway6":"fd00:88::1/200"}],"namespaces":[],"exposes":[],
      "masquerades":[]})", "f");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("gateway6"), std::string::npos) << bad.error().message;
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


class StateStoreTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / (test::prefix() + "store");
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string journal() const { return dir_ + "/state.journal"; }
  std::string snapshot() const { return dir_ + "/state.json"; }
  void expectOnDisk(const State& want) {
    auto loaded = loadState(dir_);
    ASSERT_TRUE(loaded) << loaded.error().str();
    EXPECT_EQ(toJson(*loaded), toJson(want));
  }

  // A store opened on the (empty) directory, holding `s`.
  static void loadAndCommit(StateStore& store, const State& s) {
    ASSERT_TRUE(store.load());
    ASSERT_TRUE(store.commit(s));
  }

  static ExposeRecord expose(uint32_t id, uint16_t port) {
    ExposeRecord e = sample().exposes[0];
    e.id = id;
    e.hostPort = port;
    e.hostPortEnd = port;
    return e;
  }

  std::string dir_;
};

TEST_F(StateStoreTest, CommitsAppendOneLineEachAndLoadReplaysThem) {
  StateStore store(dir_);
  State s = sample();
  ASSERT_NO_FATAL_FAILURE(loadAndCommit(store, s));
  s.exposes.push_back(expose(8, 6001));
  s.nextRuleId = 9;
  ASSERT_TRUE(store.commit(s));
  s.namespaces.erase(s.namespaces.begin()); // a delete from the front
  s.masquerades[0].outIf = "eth1";          // a changed record
  ASSERT_TRUE(store.commit(s));
  ASSERT_TRUE(store.commit(s)); // nothing changed: nothing written

  EXPECT_FALSE(std::filesystem::exists(snapshot())); // small: no snapshot rewrite yet
  std::ifstream in(journal());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  expectOnDisk(s);
}

TEST_F(StateStoreTest, ATornLastLineIsIgnoredAndLoadFoldsTheJournal) {
  State s = sample();
  {
    StateStore store(dir_);
    ASSERT_NO_FATAL_FAILURE(loadAndCommit(store, s));
  }
  std::ofstream(journal(), std::ios::app) << R"({"nextRuleId":9,"put":{"expo)";
  expectOnDisk(s);
  StateStore again(dir_);
  auto loaded = again.load();
  ASSERT_TRUE(loaded) << loaded.error().str();
  EXPECT_FALSE(std::filesystem::exists(journal()));
  EXPECT_TRUE(std::filesystem::exists(snapshot()));
  // Appends after the fold start a clean journal.
  s.exposes.push_back(expose(8, 6001));
  ASSERT_TRUE(again.commit(s));
  expectOnDisk(s);
}

TEST_F(StateStoreTest, ABadLineBeforeTheLastIsCorruptionNamingTheJournal) {
  StateStore store(dir_);
  State s = sample();
  ASSERT_NO_FATAL_FAILURE(loadAndCommit(store, s));
  std::ofstream(journal(), std::ios::app) << "{\"put\":{\"exposes\":[{\"id\":\"x\"}]}}\n";
  s.exposes.push_back(expose(8, 6001));
  ASSERT_TRUE(store.commit(s));
  auto r = loadState(dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(journal() + " line 2"), std::string::npos)
      << r.error().message;
}

TEST_F(StateStoreTest, TheSnapshotIsRewrittenOnlyWhenTheJournalOutgrowsIt) {
  StateStore store(dir_);
  ASSERT_TRUE(store.load());
  State s = sample();
  s.exposes.clear();
  uint64_t largestJournal = 0;
  int snapshots = 0;
  std::filesystem::file_time_type lastWrite{};
  for (uint32_t i = 0; i < 3000; ++i) {
    s.exposes.push_back(expose(i + 1, static_cast<uint16_t>(10000 + i)));
    s.nextRuleId = i + 2;
    ASSERT_TRUE(store.commit(s));
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(journal(), ec);
    largestJournal = std::max<uint64_t>(largestJournal, ec ? 0 : size);
    auto written = std::filesystem::last_write_time(snapshot(), ec);
    if (!ec && written != lastWrite) {
      ++snapshots;
      lastWrite = written;
    }
  }
  // 3,000 rules are ~700 KiB of snapshot: rewritten a handful of times, not 3,000.
  EXPECT_GE(snapshots, 1);
  EXPECT_LE(snapshots, 10);
  EXPECT_LE(largestJournal, std::max<uint64_t>(StateStore::kMinJournalBytes,
                                               std::filesystem::file_size(snapshot())));
  expectOnDisk(s);
}

TEST_F(StateStoreTest, ReplayingAJournalOntoTheSnapshotItFedChangesNothing) {
  // A crash between writing the new snapshot and removing the journal.
  StateStore store(dir_);
  State s = sample();
  ASSERT_NO_FATAL_FAILURE(loadAndCommit(store, s));
  s.exposes.push_back(expose(8, 6001));
  ASSERT_TRUE(store.commit(s));
  s.exposes.erase(s.exposes.begin());
  ASSERT_TRUE(store.commit(s));
  std::filesystem::copy_file(journal(), dir_ + "/saved");
  ASSERT_TRUE(store.compact(s));
  EXPECT_FALSE(std::filesystem::exists(journal()));
  std::filesystem::rename(dir_ + "/saved", journal());
  expectOnDisk(s);
}

// The lines of the journal, without their newlines.
std::vector<std::string> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

void writeLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& l : lines) {
    out << l << "\n";
  }
}

class JournalDamageTest : public StateStoreTest {
protected:
  // Three acknowledged commits: the sample, then exposes 8 and 9.
  void SetUp() override {
    StateStoreTest::SetUp();
    StateStore store(dir_);
    first_ = sample();
    ASSERT_NO_FATAL_FAILURE(loadAndCommit(store, first_));
    second_ = first_;
    second_.exposes.push_back(expose(8, 6001));
    ASSERT_TRUE(store.commit(second_));
    third_ = second_;
    third_.exposes.push_back(expose(9, 6002));
    ASSERT_TRUE(store.commit(third_));
    ASSERT_EQ(readLines(journal()).size(), 3u);
  }
  State first_, second_, third_;
};

TEST_F(JournalDamageTest, ABitFlippedLastLineIsDamageNotATornWrite) {
  auto lines = readLines(journal());
  auto at = lines[2].find("6002");
  ASSERT_NE(at, std::string::npos);
  lines[2][at + 3] = '3'; // still valid JSON: only the checksum can tell
  writeLines(journal(), lines);
  auto r = StateStore(dir_).load();
  ASSERT_FALSE(r) << "an acknowledged rule must not vanish silently";
  EXPECT_NE(r.error().message.find(journal() + " line 3"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("checksum"), std::string::npos) << r.error().message;
}

TEST_F(JournalDamageTest, ADeletedMiddleLineIsDamage) {
  auto lines = readLines(journal());
  lines.erase(lines.begin() + 1);
  writeLines(journal(), lines);
  auto r = StateStore(dir_).load();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("missing"), std::string::npos) << r.error().message;
}

TEST_F(JournalDamageTest, AMissingSnapshotIsDamageWhenTheJournalDoesNotStartAtTheBeginning) {
  {
    StateStore store(dir_);
    ASSERT_TRUE(store.load()); // folds the three lines into state.json (journalSeq 3)
    State fourth = third_;
    fourth.exposes.push_back(expose(10, 6003));
    ASSERT_TRUE(store.commit(fourth)); // journal: line seq 4
  }
  std::filesystem::remove(snapshot());
  auto r = StateStore(dir_).load();
  ASSERT_FALSE(r) << "a journal alone would start without the namespaces and rules";
  EXPECT_NE(r.error().message.find("state.json is missing"), std::string::npos)
      << r.error().message;
}

TEST_F(JournalDamageTest, RecoverStartsFromTheLastGoodLineAndKeepsTheDamagedJournal) {
  auto lines = readLines(journal());
  lines[1][lines[1].size() / 2] ^= 0x01;
  writeLines(journal(), lines);
  StateStore store(dir_, /*recover=*/true);
  auto r = store.load();
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(toJson(*r), toJson(first_)) << "lines 2 and 3 are dropped";
  EXPECT_TRUE(std::filesystem::exists(journal() + ".damaged"));
  EXPECT_FALSE(std::filesystem::exists(journal()));
  // It goes on from there: a new commit lands and loads back.
  State next = first_;
  next.exposes.push_back(expose(11, 6004));
  ASSERT_TRUE(store.commit(next));
  expectOnDisk(next);
}

TEST_F(StateStoreTest, JournalLinesOfEarlierVersionsStillLoad) {
  State s = sample();
  ASSERT_TRUE(saveState(dir_, s));
  // As gatewayd wrote them before lines had a checksum and a sequence number.
  ExposeRecord e = expose(8, 6001);
  std::ofstream(journal()) << R"({"nextRuleId":9,"put":{"exposes":[)" + api::toJson(e).dump() +
                                  "]}}\n";
  s.exposes.push_back(e);
  s.nextRuleId = 9;
  expectOnDisk(s);
}

} // namespace
} // namespace gw
