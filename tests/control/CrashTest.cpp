// SPDX-License-Identifier: MIT
// kill -9 at random moments of `expose --file`, `ns add`, `masquerade add|del` and `unexpose`:
// after each kill a gatewayd restarted on the same state dir must agree with itself and the
// kernel: `gwctl list`, state.json and the pinned maps hold exactly the same rules, a batch is
// there whole or not at all, what gwctl confirmed is kept, and no namespace, link, map entry or
// tc attachment is left that the state does not name.
//
// Delays are spread over the operation's measured duration (in bands, so that kills land
// before it reaches gatewayd, amid it and after it; see Delays) and drawn from one seed, printed
// first with every delay: GW_CRASH_SEED=N draws the same again (the middle band also follows
// what earlier kills found), GW_CRASH_RUNS=N sets the runs of each test.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/control/StateOracle.h"

namespace gw::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::duration<double, std::milli>;

uint64_t crashSeed() {
  static const uint64_t seed = [] {
    if (const char* fixed = std::getenv("GW_CRASH_SEED"); fixed != nullptr && *fixed != '\0') {
      return static_cast<uint64_t>(std::strtoull(fixed, nullptr, 10));
    }
    return static_cast<uint64_t>(
        std::chrono::system_clock::now().time_since_epoch().count() & 0xffffffffffffULL);
  }();
  return seed;
}

int runsOr(int fallback) {
  if (const char* runs = std::getenv("GW_CRASH_RUNS"); runs != nullptr && *runs != '\0') {
    return std::max(1, std::atoi(runs));
  }
  return fallback;
}

enum Phase { kBefore, kMidway, kAfter };
constexpr const char* kPhaseNames[] = {"killed before anything", "mid-way", "after completion"};

// How often kills of one operation hit each phase; printed at the end of the test.
struct Tally {
  std::string op;
  int counts[3] = {0, 0, 0};

  void add(Phase p) { ++counts[p]; }
  std::string str() const {
    std::ostringstream os;
    os << op << ": " << (counts[0] + counts[1] + counts[2]) << " kills: ";
    for (int p = kBefore; p <= kAfter; ++p) {
      os << (p == kBefore ? "" : ", ") << counts[p] << " " << kPhaseNames[p];
    }
    return os.str();
  }
};

std::string ms(Millis d) {
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << d.count() << " ms";
  return os.str();
}
// When an operation's client, started at 0, reaches gatewayd (about what a `gwctl status`
// takes) and when it is done, as measured.
struct Timing {
  Millis reaches;
  Millis done;
};

// The kill delays for one operation. Runs take turns at five bands: before the client reaches
// gatewayd, three times amid the operation, and after it (up to 1.4 times its duration). The
// middle narrows towards the delays between the longest that found nothing done and the
// shortest that found it all done (never below a third of the measured span), so that on a
// slow or noisy machine kills still land amid the work.
class Delays {
public:
  explicit Delays(Timing t) : t_(t), lo_(t.reaches), hi_(t.done) {}

  Millis next(int run, std::mt19937_64& rng) {
    Millis width = std::max(hi_ - lo_, (t_.done - t_.reaches) / 3);
    Millis mid = (lo_ + hi_) / 2;
    Millis lo = std::max(Millis(0), mid - width / 2);
    Millis from[5] = {Millis(0), lo, lo, lo, t_.done};
    Millis to[5] = {t_.reaches, lo + width, lo + width, lo + width, t_.done * 1.4};
    std::uniform_real_distribution<double> d(from[run % 5].count(), to[run % 5].count());
    return Millis(d(rng));
  }

  void saw(Millis delay, Phase phase) {
    if (phase != kAfter && delay >= t_.done) {
      t_.done = delay * 1.2; // slower than measured: "after" lies further out
      hi_ = std::max(hi_, delay);
    }
    if (phase == kBefore && delay > lo_) {
      lo_ = delay;
    } else if (phase == kAfter && delay < hi_) {
      hi_ = delay;
    }
    if (lo_ >= hi_) { // timing changed under us: start again from the measurement
      lo_ = t_.reaches;
      hi_ = t_.done;
    }
  }

private:
  Timing t_;
  Millis lo_;
  Millis hi_;
};

class CrashTest : public StateOracleFixture {
protected:
  void SetUp() override {
    StateOracleFixture::SetUp();
    // One stream per test, so that a test run alone replays its own delays.
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    rng_.seed(crashSeed() ^ std::hash<std::string>{}(test));
    std::cout << "[crash] " << test << ": GW_CRASH_SEED=" << crashSeed()
              << " replays these delays" << std::endl;
  }


  // The median duration of three runs of `argv`, each followed by `undo` (when not empty).
  Millis median3(const std::vector<std::string>& argv,
                 const std::vector<std::string>& undo = {}) {
    std::vector<Millis> took;
    for (int i = 0; i < 3; ++i) {
      took.push_back(timed(argv));
      if (!undo.empty()) {
        timed(undo);
      }
    }
    std::sort(took.begin(), took.end());
    return took[1];
  }

  // What a client takes to reach gatewayd: `gwctl status`, alone or in a shell.
  Millis reachTime(bool shell = false) {
    std::string status = std::string(GWCTL_PATH) + " --socket " + socket_ + " status";
    return shell ? median3({"/bin/sh", "-c", status + " >/dev/null"})
                 : median3({GWCTL_PATH, "--socket", socket_, "status"});
  }

  struct Outcome {
    int status = -1;  // the client's exit status
    std::string out;  // its output
  };

  // Starts `argv` and SIGKILLs gatewayd `delay` later; returns once both are gone.
  Outcome runAndKill(const std::vector<std::string>& argv, Millis delay) {
    std::string outPath = dir_ + "/client.out";
    std::filesystem::remove(outPath);
    auto start = Clock::now();
    Child client = Child::spawn(argv, outPath);
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(delay));
    // At that moment; stopDaemon() then reaps it (a pid of -1 would signal every process).
    if (pid_t pid = daemon_.pid(); pid > 0) {
      ::kill(pid, SIGKILL);
    }
    stopDaemon(SIGKILL);
    // Nothing of the client may reach the restarted daemon.
    EXPECT_TRUE(waitFor([&] { return !client.running(); }, std::chrono::seconds(30)));
    return {client.stop(), readFile(outPath)};
  }

  // Runs `argv` to its end; its duration.
  Millis timed(const std::vector<std::string>& argv) {
    auto start = Clock::now();
    auto r = run(argv, std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    return Clock::now() - start;
  }

  // A shell loop of `gwctl ARGS ITEM` per item, printing "done ITEM" for each that succeeded.
  std::vector<std::string> eachOf(const std::string& args, const std::vector<std::string>& items) {
    std::string script = "for i in";
    for (const auto& i : items) {
      script += " " + i;
    }
    script += "; do " + std::string(GWCTL_PATH) + " --socket " + socket_ + " " + args +
              " >/dev/null 2>&1 && echo \"done $i\"; done; true";
    return {"/bin/sh", "-c", script};
  }

  // Starts gatewayd again on the same state dir and checks that it agrees with itself and the
  // kernel (see the top of the file). Returns the state as its files hold it then.
  json restartAndCheck() {
    size_t seen = readFile(log_).size();
    startDaemon();
    startLog_ = readFile(log_).substr(seen);
    return checkAgreement();
  }

  // The repairs the last start logged ("reconcile: ..." warnings, one a repair or a count).
  int repairsLogged() const {
    int n = 0;
    std::istringstream lines(startLog_);
    for (std::string line; std::getline(lines, line);) {
      n += line.find(" warn reconcile: ") != std::string::npos ? 1 : 0;
    }
    return n;
  }

  std::mt19937_64 rng_;
  std::string startLog_; // what the last restartAndCheck()'s gatewayd logged while starting
};

// Whether namespace `name` exists (its /run/netns entry, as `ip netns` sees it).
bool netnsExists(const std::string& name) {
  for (const auto& n : ipJson({"netns", "list"})) {
    if (n.value("name", "") == name) {
      return true;
    }
  }
  return false;
}

// How many of `order` (run one after another by eachOf(), whose output is `out`) are done by
// `done(item)`: they must be the first ones, and gwctl confirmed all of them but at most the
// last (in flight at the kill: its client never heard back).
size_t doneInOrder(const std::vector<std::string>& order,
                   const std::function<bool(const std::string&)>& done, const std::string& out) {
  size_t n = 0;
  while (n < order.size() && done(order[n])) {
    ++n;
  }
  for (size_t i = n; i < order.size(); ++i) {
    EXPECT_FALSE(done(order[i])) << order[i] << " is done, but not " << order[n] << " before it";
  }
  size_t confirmed = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    confirmed += line.starts_with("done ") ? 1 : 0;
  }
  EXPECT_TRUE(n == confirmed || n == confirmed + 1)
      << n << " done, " << confirmed << " confirmed to gwctl";
  return n;
}

void report(const Tally& t) {
  std::cout << "[crash] " << t.str() << std::endl;
  for (int p = kBefore; p <= kAfter; ++p) {
    if (t.counts[p] == 0) {
      std::cout << "[crash] note: no kill of " << t.op << " was " << kPhaseNames[p]
                << " this time (more runs: GW_CRASH_RUNS)" << std::endl;
    }
  }
  ::testing::Test::RecordProperty(t.op, t.str());
}

TEST_F(CrashTest, AnExposeBatchIsAllOrNothing) {
  constexpr int kLines = 2000;
  constexpr int kFirstPort = 10000;
  constexpr int kBlocks = (65535 - kFirstPort) / kLines;
  startDaemon();
  // Block b holds ports kFirstPort + b * kLines ...; every fourth line is UDP.
  auto batchFile = [&](int block) {
    std::string path = dir_ + "/batch";
    std::ofstream out(path);
    for (int i = 0; i < kLines; ++i) {
      out << kFirstPort + block * kLines + i << " 10.0.0.9:" << 8000 + i % 1000
          << (i % 4 == 3 ? " udp" : "") << "\n";
    }
    return path;
  };
  auto inBlock = [&](int block, int port) {
    return port >= kFirstPort + block * kLines && port < kFirstPort + (block + 1) * kLines;
  };
  auto expose = [&](const std::string& file) {
    return std::vector<std::string>{GWCTL_PATH, "--socket", socket_, "expose", "--file", file};
  };
  Timing typical{reachTime(), timed(expose(batchFile(0)))};
  std::cout << "[crash] expose --file of " << kLines << " lines takes " << ms(typical.done)
            << " (gwctl status " << ms(typical.reaches) << ")" << std::endl;
  Delays delays(typical);
  int block = 1;
  int kept = 1; // batches the state holds
  Tally tally{"expose --file"};
  int runs = runsOr(15);
  for (int run = 0; run < runs && !HasFailure(); ++run) {
    if (kept == 3 || block == kBlocks) {
      // Bounded: each batch kept makes every later start and check slower.
      auto down = gwctl({"down"});
      ASSERT_TRUE(down.ok()) << down.err;
      ASSERT_TRUE(waitFor([&] { return !daemon_.running(); }, std::chrono::seconds(20)));
      startDaemon();
      block = 0;
      kept = 0;
    }
    Millis delay = delays.next(run, rng_);
    auto client = runAndKill(expose(batchFile(block)), delay);
    size_t pinned = 0;
    for (const auto& [key, value] : exposeMapAt(bpffs())) {
      pinned += inBlock(block, std::get<2>(key)) ? 1 : 0;
    }
    json state = restartAndCheck();
    size_t saved = 0;
    for (const auto& e : state.value("exposes", json::array())) {
      saved += inBlock(block, e["hostPort"].get<int>()) ? 1 : 0;
    }
    Phase phase = saved > 0 ? kAfter : pinned > 0 ? kMidway : kBefore;
    tally.add(phase);
    delays.saw(delay, phase);
    std::cout << "[crash] expose run " << run << ": kill at " << ms(delay) << ", gwctl exit "
              << client.status << ", " << pinned << "/" << kLines
              << " entries pinned at the kill, " << saved << " in the state after, "
              << repairsLogged() << " repair lines logged: " << kPhaseNames[phase] << std::endl;
    EXPECT_TRUE(saved == 0 || saved == kLines) << "a batch is all or nothing: " << saved;
    if (phase == kMidway) {
      std::string count = "reconcile: " + std::to_string(pinned) +
                          " expose map entries without state removed";
      EXPECT_NE(startLog_.find(count), std::string::npos) << "the log says: " << count;
    }
    if (client.status == 0) {
      EXPECT_EQ(saved, size_t{kLines}) << "gwctl was told it was applied";
    }
    if (saved > 0) {
      ++kept;
      ++block;
    }
  }
  report(tally);
}

TEST_F(CrashTest, AnNsAddLeavesNothingHalfMade) {
  startDaemon();
  // Three shapes: the default bridge (made by the add), a new named bridge, point-to-point.
  auto add = [&](const std::string& name, int shape) {
    std::vector<std::string> args = {"ns", "add", name};
    if (shape == 1) {
      args.insert(args.end(), {"--bridge", prefix() + "b", "--subnet", "10.61.0.0/24"});
    } else if (shape == 2) {
      args.insert(args.end(), {"--subnet", "10.62.0.0/30"});
    }
    return args;
  };
  auto client = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {GWCTL_PATH, "--socket", socket_});
    return args;
  };
  std::string first = nsName("m");
  Timing typical{reachTime(), median3(client(add(first, 0)), client({"ns", "del", first}))};
  std::cout << "[crash] ns add takes " << ms(typical.done) << " (gwctl status "
            << ms(typical.reaches) << ")" << std::endl;
  Delays delays(typical);
  Tally tally{"ns add"};
  int runs = runsOr(16);
  for (int run = 0; run < runs && !HasFailure(); ++run) {
    std::string name = nsName("n" + std::to_string(run));
    Millis delay = delays.next(run, rng_);
    auto killed = runAndKill(client(add(name, run % 3)), delay);
    // What the kill left, before any start repairs it.
    bool made = netnsExists(name) || ipJson({"-n", gwh(), "link", "show"}).size() > 2;
    std::string files = readFile(dir_ + "/state/state.json") +
                        readFile(dir_ + "/state/state.journal");
    bool intent = files.find("\"" + name + "\"") != std::string::npos;
    json state = restartAndCheck();
    bool saved = false;
    for (const auto& n : state.value("namespaces", json::array())) {
      saved = saved || n["name"] == name;
    }
    Phase phase = saved ? kAfter : (made || intent) ? kMidway : kBefore;
    tally.add(phase);
    delays.saw(delay, phase);
    std::cout << "[crash] ns add run " << run << " (shape " << run % 3 << "): kill at "
              << ms(delay) << ", gwctl exit " << killed.status << ", at the kill: intent "
              << (intent ? "written" : "not written") << ", kernel objects "
              << (made ? "made" : "none") << "; after: " << (saved ? "kept" : "rolled back")
              << ", " << repairsLogged() << " repair lines logged: " << kPhaseNames[phase]
              << std::endl;
    if (killed.status == 0) {
      EXPECT_TRUE(saved) << "gwctl was told it was added";
    }
    if (!saved && phase == kMidway) {
      // What the crash cut short can be done again (it once said "already exists").
      auto again = gwctl(add(name, run % 3));
      EXPECT_TRUE(again.ok()) << again.err;
      saved = again.ok();
    }
    if (saved) {
      auto del = gwctl({"ns", "del", name});
      ASSERT_TRUE(del.ok()) << del.err;
    }
    EXPECT_FALSE(netnsExists(name));
    EXPECT_EQ(ipJson({"-n", gwh(), "link", "show"}).size(), 2u) << "only lo and up0 are left";
  }
  report(tally);
}

TEST_F(CrashTest, MasqueradeAddAndDelKeepTheMapEqualToTheState) {
  startDaemon();
  constexpr int kRules = 20;
  std::vector<std::string> sources;
  for (int i = 0; i < kRules; ++i) {
    sources.push_back("10.100." + std::to_string(i) + ".0/24");
  }
  Millis reaches = reachTime(true);
  std::vector<Millis> addTook;
  std::vector<Millis> delTook;
  for (int i = 0; i < 3; ++i) {
    addTook.push_back(timed(eachOf("masquerade add $i", sources)));
    delTook.push_back(timed(eachOf("masquerade del $i", sources)));
  }
  std::ranges::sort(addTook);
  std::ranges::sort(delTook);
  Timing adding{reaches, addTook[1]};
  Timing deleting{reaches, delTook[1]};
  std::cout << "[crash] " << kRules << " masquerade adds take " << ms(adding.done) << ", dels "
            << ms(deleting.done) << " (gwctl status in a shell " << ms(reaches) << ")"
            << std::endl;
  auto inState = [](const json& state) {
    std::set<std::string> out;
    for (const auto& m : state.value("masquerades", json::array())) {
      out.insert(m["source"].get<std::string>());
    }
    return out;
  };
  auto phaseOf = [](size_t n, size_t all) { return n == 0 ? kBefore : n == all ? kAfter : kMidway; };
  Delays addDelays(adding);
  Tally adds{"masquerade add (" + std::to_string(kRules) + " in a row)"};
  Tally dels{"masquerade del (of those added)"};
  int runs = runsOr(8);
  for (int run = 0; run < runs && !HasFailure(); ++run) {
    Millis delay = addDelays.next(run, rng_);
    auto client = runAndKill(eachOf("masquerade add $i", sources), delay);
    auto present = inState(restartAndCheck());
    size_t n = doneInOrder(sources, [&](const auto& s) { return present.contains(s); }, client.out);
    adds.add(phaseOf(n, sources.size()));
    addDelays.saw(delay, phaseOf(n, sources.size()));
    std::cout << "[crash] masquerade add run " << run << ": kill at " << ms(delay) << ", " << n
              << "/" << kRules << " added, " << repairsLogged() << " repair lines logged: "
              << kPhaseNames[phaseOf(n, sources.size())] << std::endl;

    std::vector<std::string> added(present.begin(), present.end());
    if (added.empty()) {
      continue;
    }
    std::sort(added.begin(), added.end(), [&](const auto& a, const auto& b) {
      return std::ranges::find(sources, a) < std::ranges::find(sources, b);
    });
    double part = static_cast<double>(added.size()) / kRules;
    delay = Delays({reaches, reaches + (deleting.done - reaches) * part}).next(run + 1, rng_);
    client = runAndKill(eachOf("masquerade del $i", added), delay);
    present = inState(restartAndCheck());
    n = doneInOrder(added, [&](const auto& s) { return !present.contains(s); }, client.out);
    dels.add(phaseOf(n, added.size()));
    std::cout << "[crash] masquerade del run " << run << ": kill at " << ms(delay) << ", " << n
              << "/" << added.size() << " deleted, " << repairsLogged()
              << " repair lines logged: " << kPhaseNames[phaseOf(n, added.size())] << std::endl;
    for (const auto& s : present) {
      ASSERT_TRUE(gwctl({"masquerade", "del", s}).ok());
    }
  }
  report(adds);
  report(dels);
}

TEST_F(CrashTest, UnexposeOneByOneKeepsTheMapEqualToTheState) {
  constexpr int kBatch = 300;
  constexpr int kPerRun = 16;
  startDaemon();
  int nextPort = 20000;
  std::vector<std::string> remaining; // ports still exposed, in the order they go
  auto exposeBatch = [&] {
    std::string path = dir_ + "/batch";
    std::ofstream out(path);
    for (int i = 0; i < kBatch; ++i, ++nextPort) {
      out << nextPort << " 10.0.0.7:" << 9000 + i << "\n";
      remaining.push_back(std::to_string(nextPort));
    }
    out.close();
    auto r = gwctl({"expose", "--file", path});
    ASSERT_TRUE(r.ok()) << r.err;
  };
  exposeBatch();
  std::vector<Millis> took;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> ports(remaining.begin(), remaining.begin() + kPerRun);
    took.push_back(timed(eachOf("unexpose $i", ports)));
    remaining.erase(remaining.begin(), remaining.begin() + kPerRun);
  }
  std::ranges::sort(took);
  Timing typical{reachTime(true), took[1]};
  std::cout << "[crash] " << kPerRun << " unexposes take " << ms(typical.done)
            << " (gwctl status in a shell " << ms(typical.reaches) << ")" << std::endl;
  Delays delays(typical);
  Tally tally{"unexpose (" + std::to_string(kPerRun) + " in a row)"};
  int runs = runsOr(12);
  for (int run = 0; run < runs && !HasFailure(); ++run) {
    if (remaining.size() < kPerRun) {
      exposeBatch();
    }
    std::vector<std::string> ports(remaining.begin(), remaining.begin() + kPerRun);
    Millis delay = delays.next(run, rng_);
    auto client = runAndKill(eachOf("unexpose $i", ports), delay);
    json state = restartAndCheck();
    std::set<std::string> exposed;
    for (const auto& e : state.value("exposes", json::array())) {
      exposed.insert(std::to_string(e["hostPort"].get<int>()));
    }
    size_t n = doneInOrder(ports, [&](const auto& p) { return !exposed.contains(p); }, client.out);
    Phase phase = n == 0 ? kBefore : n == ports.size() ? kAfter : kMidway;
    tally.add(phase);
    delays.saw(delay, phase);
    std::cout << "[crash] unexpose run " << run << ": kill at " << ms(delay) << ", " << n << "/"
              << kPerRun << " unexposed, " << repairsLogged()
              << " repair lines logged: " << kPhaseNames[phase] << std::endl;
    remaining.erase(remaining.begin(), remaining.begin() + static_cast<long>(n));
  }
  report(tally);
}

} // namespace
} // namespace gw::test
