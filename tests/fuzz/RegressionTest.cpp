// SPDX-License-Identifier: MIT
// Replays the committed corpus and every input the fuzzers found a crash with
// (tests/fuzz/regressions/<target>/), and pins each fixed bug with a named test.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/fuzz/FuzzTargets.h"
#include "control/Http.h"
#include "gateway/State.h"

namespace gw::fuzz {
namespace {

namespace fs = std::filesystem;

using Target = int (*)(const uint8_t*, size_t);

size_t replayDir(const fs::path& dir, Target target) {
  size_t count = 0;
  if (!fs::is_directory(dir)) {
    return 0;
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    SCOPED_TRACE(entry.path().string());
    target(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    ++count;
  }
  return count;
}

TEST(FuzzRegressions, HttpCorpusAndCrashesReplayClean) {
  EXPECT_GT(replayDir(fs::path(GW_FUZZ_DIR) / "corpus/http", fuzzHttp), 0u);
  replayDir(fs::path(GW_FUZZ_DIR) / "regressions/http", fuzzHttp);
}

TEST(FuzzRegressions, ApiCorpusAndCrashesReplayClean) {
  EXPECT_GT(replayDir(fs::path(GW_FUZZ_DIR) / "corpus/api", fuzzApi), 0u);
  replayDir(fs::path(GW_FUZZ_DIR) / "regressions/api", fuzzApi);
}

TEST(FuzzRegressions, StateCorpusAndCrashesReplayClean) {
  EXPECT_GT(replayDir(fs::path(GW_FUZZ_DIR) / "corpus/state", fuzzState), 0u);
  replayDir(fs::path(GW_FUZZ_DIR) / "regressions/state", fuzzState);
}

std::string readRegression(const char* name, const char* target = "api") {
  std::ifstream in(fs::path(GW_FUZZ_DIR) / "regressions" / target / name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Was: j.value("version", 0) threw nlohmann::type_error outside fromJson's try, so a state file
// with "version": "1" terminated gatewayd instead of naming the file.
// regressions/api/target-netns-path: the fuzz invariant knew only addresses and names; a
// target by namespace path (/proc/PID/ns/net:PORT) is the third kind, and only that.
TEST(FuzzRegressions, ANetnsPathTargetIsItsOwnKind) {
  auto t = parseTarget("/proc/1/ns/net:80");
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(t->netnsPath, "/proc/1/ns/net");
  EXPECT_TRUE(t->ns.empty());
  EXPECT_FALSE(t->addr);
  EXPECT_EQ(t->netns(), "/proc/1/ns/net");
}

TEST(FuzzRegressions, StateVersionOfWrongTypeIsAnError) {
  for (const char* name : {"state-version-string", "state-version-huge-float"}) {
    auto state = fromJson(readRegression(name), "state file x");
    ASSERT_FALSE(state) << name;
    EXPECT_NE(state.error().message.find("state file x: unsupported state version"),
              std::string::npos)
        << state.error().message;
  }
}

// Was: get<uint16_t>()/get<uint32_t>() cast 1e10 (undefined behaviour, UBSan
// float-cast-overflow) and truncated 70000 to port 4464.
TEST(FuzzRegressions, StateNumbersOutOfRangeAreErrors) {
  for (const char* name : {"state-port-float", "state-rule-id-float", "state-port-too-big"}) {
    auto state = fromJson(readRegression(name), "state file x");
    ASSERT_FALSE(state) << name;
    EXPECT_NE(state.error().message.find("must be an integer from 0 to"), std::string::npos)
        << state.error().message;
  }
  EXPECT_TRUE(fromJson(readRegression("../../corpus/api/state"), "state file x"));
}

// Was: a journal line applied its records one by one, so one that failed halfway (a bad expose
// after a good bridge) left its first half and its nextRuleId in the state --recover started
// from, while the log said the whole line was dropped.
TEST(FuzzRegressions, RecoverDropsABadJournalLineWhole) {
  std::string input = readRegression("recover-half-applied-line", "state");
  ASSERT_TRUE(input.starts_with('\0')) << "no state.json, then the journal";
  std::string tmpl = (fs::temp_directory_path() / "gw-fuzz-regression-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  std::ofstream(tmpl + "/state.journal", std::ios::binary) << input.substr(1);
  auto state = StateStore(tmpl, /*recover=*/true).load();
  std::error_code ec;
  fs::remove_all(tmpl, ec);
  ASSERT_TRUE(state) << state.error().str();
  ASSERT_EQ(state->bridges.size(), 1u) << toJson(*state);
  EXPECT_EQ(state->bridges[0].name, "gw0");
  EXPECT_EQ(state->nextRuleId, 2u);
}

// Was: state.json could list two exposes with one id; it loaded, and the next commit's journal
// line (keyed by id) then replaced the other one on replay: the state on disk was not the one
// committed.
TEST(FuzzRegressions, StateRecordsOfOneKeyAreAnError) {
  auto state = fromJson(readRegression("snapshot-duplicate-expose-id", "state"), "state file x");
  ASSERT_FALSE(state);
  EXPECT_NE(state.error().message.find("exposes: record #2 repeats record #1 (the same key '1')"),
            std::string::npos)
      << state.error().message;
}

} // namespace
} // namespace gw::fuzz
