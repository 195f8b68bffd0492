// SPDX-License-Identifier: MIT
// Many clients at once on the control socket: GW_STRESS_CLIENTS (50) real gwctl processes at a
// time, one thread each, loop over expose, unexpose, list, list -j, status and a small
// expose --file batch for GW_STRESS_SECONDS (20) on a small shared range of host ports, so that
// they clash. Meanwhile a poller times `gwctl status` and GET /v1/status (the clients run at
// nice 10, so that what is timed is gatewayd, not the test's own load starving it of the two
// cores). gatewayd must answer every command, the only refusals being the expected ones (a
// clash, nothing exposed there), answer status within a bound throughout, keep its listing
// free of clashes, and at the end `gwctl list`, the pinned expose map and the state files
// (state.json + journal) must hold the same rules, before and after a clean restart.
// GW_STRESS_SEED=N draws the same commands again (their interleaving is the machine's).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/ApiClient.h"
#include "tests/control/StateOracle.h"

namespace gw::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::duration<double, std::milli>;

constexpr int kFirstPort = 31000;
constexpr int kPorts = 48; // shared by all clients: exposes clash and unexposes miss
constexpr int kBatchLines = 3;
// Past gwctl's own wait for an answer (60 s): a command still running then counts as failed.
constexpr auto kCommandTimeout = std::chrono::seconds(90);
constexpr int kClientNice = 10;

int envInt(const char* name, int fallback, int min, int max) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    return fallback;
  }
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v < min || v > max) {
    ADD_FAILURE() << name << "='" << text << "': expected a number from " << min << " to " << max;
    return fallback;
  }
  return static_cast<int>(v);
}

uint64_t stressSeed() {
  if (const char* fixed = std::getenv("GW_STRESS_SEED"); fixed != nullptr && *fixed != '\0') {
    return std::strtoull(fixed, nullptr, 10);
  }
  return static_cast<uint64_t>(
      std::chrono::system_clock::now().time_since_epoch().count() & 0xffffffffffffULL);
}

bool contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

// The q-quantile (0..1) of `values`, nearest rank.
double quantile(std::vector<double> values, double q) {
  if (values.empty()) {
    return 0;
  }
  std::ranges::sort(values);
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

std::string figures(const std::vector<double>& ms) {
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << "p50 " << quantile(ms, 0.5) << " ms, p99 " << quantile(ms, 0.99)
     << " ms, max " << quantile(ms, 1.0) << " ms";
  return os.str();
}

// `gwctl --socket SOCKET ARGS...` to its end (killed after `timeout`), started with
// posix_spawn: it does not copy this process's page tables as fork() does, which fifty threads
// forking a large test process (ASan's shadow memory) do one at a time, so that the clients
// would measure that instead of gatewayd. Thread-safe: its own pipes (CLOEXEC) and pid.
CommandResult spawnGwctl(const std::string& socket, const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout) {
  std::vector<std::string> words = {GWCTL_PATH, "--socket", socket};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) {
    argv.push_back(w.data());
  }
  argv.push_back(nullptr);
  CommandResult result;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    result.err = "pipe2 failed";
    return result;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    result.err = "pipe2 failed";
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP); // killed as a group on timeout
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int spawned = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (spawned != 0) {
    ::close(out[0]);
    ::close(err[0]);
    result.err = std::string("posix_spawn gwctl: ") + std::strerror(spawned);
    return result;
  }
  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  bool timedOut = false;
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char buf[4096];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open;
        } else {
          (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) {
      ::close(f.fd);
    }
  }
  if (timedOut) {
    ::kill(-pid, SIGKILL);
    result.err += "\n[timed out after " + std::to_string(timeout.count()) + " ms]";
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = timedOut                ? 124
                  : WIFEXITED(status)     ? WEXITSTATUS(status)
                  : WIFSIGNALED(status)   ? 128 + WTERMSIG(status)
                                          : -1;
  return result;
}

// How one gwctl command ended.
enum class Outcome { Ok, Conflict, NotFound, Failed };

// What the clients saw of one command kind.
struct Tally {
  uint64_t ok = 0;
  uint64_t conflict = 0;
  uint64_t notFound = 0;
  uint64_t failed = 0;
  std::vector<double> ms;

  uint64_t total() const { return ok + conflict + notFound + failed; }
};

// Two listed exposes that clash: same protocol, overlapping host ports, and on the same host
// address or one of them on every address. gatewayd refuses to make such a pair.
bool clash(const json& a, const json& b) {
  auto range = [](const json& e) {
    std::string s = e["hostPort"].get<std::string>();
    size_t dash = s.find('-');
    int first = std::stoi(s.substr(0, dash));
    return std::pair{first, dash == std::string::npos ? first : std::stoi(s.substr(dash + 1))};
  };
  auto [af, al] = range(a);
  auto [bf, bl] = range(b);
  std::string ah = a["hostIp"].get<std::string>();
  std::string bh = b["hostIp"].get<std::string>();
  return a["proto"] == b["proto"] && af <= bl && bf <= al && (ah == "*" || bh == "*" || ah == bh);
}

// What is wrong with one `gwctl list -j` answer ("" if nothing): it must be an array of
// exposes served by eBPF (every target is a managed namespace) with no two clashing.
std::string listingFault(const std::string& out) {
  json list = json::parse(out, nullptr, false);
  if (!list.is_array()) {
    return "list -j printed no JSON array: " + out.substr(0, 200);
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].value("path", "") != "ebpf") {
      return "listed expose not on the eBPF path: " + list[i].dump();
    }
    for (size_t j = i + 1; j < list.size(); ++j) {
      if (clash(list[i], list[j])) {
        return "listed exposes clash: " + list[i].dump() + " and " + list[j].dump();
      }
    }
  }
  return {};
}

class StressTest : public StateOracleFixture {
protected:
  // One client's next command: its kind (for the tally), gwctl's arguments and, for an
  // expose, the unexposes that take it back.
  struct Command {
    std::string kind;
    std::vector<std::string> args;
    std::vector<std::vector<std::string>> undo;
  };

  // `mine`: what this client exposed and has not unexposed yet (others may have). Most
  // unexposes take one of those back, as a real client would; the rest aim at random.
  Command pick(std::mt19937_64& rng, const std::string& batchPath,
               std::vector<std::vector<std::string>>& mine) {
    auto draw = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    // The protocol and host address of an expose or unexpose, appended to `args`.
    auto options = [&](std::vector<std::string>& args) {
      int p = draw(8);
      if (p < 2) {
        args.insert(args.end(), {"--proto", "udp"});
      } else if (p == 2) {
        args.insert(args.end(), {"--proto", "tcp"});
      }
      int h = draw(12);
      if (h < 2) {
        args.insert(args.end(), {"--host-ip", kUplinkAddr});
      } else if (h == 2) {
        args.insert(args.end(), {"--host-ip", bridgeAddr_});
      }
    };
    auto target = [&](const std::string& ports) {
      return namespaces_[static_cast<size_t>(draw(static_cast<int>(namespaces_.size())))] + ":" +
             ports;
    };
    int roll = draw(100);
    if (roll < 25) {
      // One host port, or now and then a range of two: unexposing one port of it misses.
      int first = kFirstPort + draw(kPorts - 1);
      int to = 8000 + draw(100);
      bool range = draw(8) == 0;
      auto span = [&](int p) {
        return range ? std::to_string(p) + "-" + std::to_string(p + 1) : std::to_string(p);
      };
      Command c{"expose", {"expose", span(first), target(span(to))}, {}};
      options(c.args);
      c.undo.push_back(c.args);
      c.undo.back()[0] = "unexpose";
      c.undo.back().erase(c.undo.back().begin() + 2); // the target
      return c;
    }
    if (roll < 58) {
      if (!mine.empty() && draw(4) != 0) {
        size_t i = static_cast<size_t>(draw(static_cast<int>(mine.size())));
        std::swap(mine[i], mine.back());
        Command c{"unexpose", std::move(mine.back()), {}};
        mine.pop_back();
        return c;
      }
      Command c{"unexpose", {"unexpose", std::to_string(kFirstPort + draw(kPorts))}, {}};
      options(c.args);
      return c;
    }
    if (roll < 68) {
      return {"list", {"list"}, {}};
    }
    if (roll < 82) {
      return {"list -j", {"list", "-j"}, {}};
    }
    if (roll < 94) {
      return {"status", {"status"}, {}};
    }
    // A small batch, all or nothing: adjacent ports, any of which may be taken.
    Command c{"expose --file", {"expose", "--file", batchPath}, {}};
    std::ofstream out(batchPath, std::ios::trunc);
    int first = kFirstPort + draw(kPorts - kBatchLines);
    for (int i = 0; i < kBatchLines; ++i) {
      bool udp = draw(4) == 0;
      out << first + i << " " << target(std::to_string(9000 + draw(100))) << (udp ? " udp" : "")
          << "\n";
      c.undo.push_back({"unexpose", std::to_string(first + i), "--proto", udp ? "udp" : "tcp"});
    }
    return c;
  }

  // Sorts a finished command into the tally; a failure is described into `failures`.
  Outcome record(const Command& c, const CommandResult& r, Millis took) {
    Outcome outcome = Outcome::Failed;
    std::string why;
    bool change = c.kind.starts_with("expose") || c.kind == "unexpose";
    if (contains(r.err, "no answer from gatewayd")) {
      why = "unanswered";
    } else if (r.ok()) {
      why = c.kind == "list -j" ? listingFault(r.out) : "";
      outcome = why.empty() ? Outcome::Ok : Outcome::Failed;
    } else if (change && r.status == 1 &&
               (contains(r.err, "clashes with") || contains(r.err, "choose one with --host-ip"))) {
      outcome = Outcome::Conflict;
    } else if (change && r.status == 1 &&
               (contains(r.err, "nothing is exposed") ||
                contains(r.err, "is part of the expose of"))) {
      outcome = Outcome::NotFound;
    }
    std::lock_guard lock(mutex_);
    Tally& t = tallies_[c.kind];
    t.ms.push_back(took.count());
    switch (outcome) {
    case Outcome::Ok:
      ++t.ok;
      return outcome;
    case Outcome::Conflict:
      ++t.conflict;
      return outcome;
    case Outcome::NotFound:
      ++t.notFound;
      return outcome;
    case Outcome::Failed:
      ++t.failed;
      break;
    }
    if (failures_.size() < 10) {
      std::string argv;
      for (const auto& a : c.args) {
        argv += " " + a;
      }
      failures_.push_back("gwctl" + argv + ": exit " + std::to_string(r.status) + ", " +
                          (why.empty() ? r.err : why));
    }
    return outcome;
  }

  // Descriptors gatewayd holds: one left per request would show here.
  size_t daemonFds() {
    std::error_code ec;
    auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(daemon_.pid()) + "/fd",
                                                  ec);
    return ec ? 0 : static_cast<size_t>(std::distance(it, std::filesystem::directory_iterator()));
  }

  // CPU time gatewayd has used, user and system (/proc/PID/stat fields 14 and 15).
  double daemonCpuSeconds() {
    std::istringstream stat(readFile("/proc/" + std::to_string(daemon_.pid()) + "/stat"));
    std::string field;
    double ticks = 0;
    // Field 2 (comm) is "(gatewayd)": no spaces in it.
    for (int i = 1; i <= 15 && stat >> field; ++i) {
      ticks += i >= 14 ? std::stod(field) : 0;
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  // The start's "reconcile: ..." repair lines in the log since `from`.
  int repairsSince(size_t from) {
    int n = 0;
    std::istringstream lines(readFile(log_).substr(from));
    for (std::string line; std::getline(lines, line);) {
      n += contains(line, " warn reconcile: ") ? 1 : 0;
    }
    return n;
  }

  std::vector<std::string> namespaces_;
  std::string bridgeAddr_; // the gateway host's address on the namespaces' bridge
  std::mutex mutex_;
  std::map<std::string, Tally> tallies_;
  std::vector<std::string> failures_;
};

TEST_F(StressTest, ManyClientsKeepTheDaemonResponsiveAndItsStateEqualToTheMaps) {
  const int clients = envInt("GW_STRESS_CLIENTS", 50, 1, 500);
  const int seconds = envInt("GW_STRESS_SECONDS", 20, 1, 3600);
  const double maxStatusMs = envInt("GW_STRESS_MAX_STATUS_MS", 2000, 1, 600000);
  const uint64_t seed = stressSeed();
  std::cout << "[stress] " << clients << " clients for " << seconds
            << " s; GW_STRESS_SEED=" << seed << " draws the same commands" << std::endl;

  startDaemon();
  for (const char* suffix : {"a", "b"}) {
    namespaces_.push_back(nsName(suffix));
    auto r = gwctl({"ns", "add", namespaces_.back()});
    ASSERT_TRUE(r.ok()) << r.err;
  }
  for (const auto& link : ipJson({"-n", gwh(), "-4", "addr", "show"})) {
    for (const auto& a : link.value("addr_info", json::array())) {
      std::string addr = a["local"].get<std::string>();
      if (!addr.starts_with("127.") && addr != kUplinkAddr) {
        bridgeAddr_ = addr;
      }
    }
  }
  ASSERT_FALSE(bridgeAddr_.empty()) << "no bridge address in " << gwh();
  size_t fdsBefore = daemonFds();
  double cpuBefore = daemonCpuSeconds();

  auto until = Clock::now() + std::chrono::seconds(seconds);
  std::atomic<bool> clientsDone = false;
  // Two views of the same wait: gwctl status (what a user sees, a process started on a
  // machine busy with the clients' processes) and GET /v1/status from this process (gatewayd's
  // own answer, queueing behind the clients' requests included).
  std::vector<double> statusMs;
  std::vector<double> apiMs;
  std::vector<std::string> statusFailures;
  std::thread poller([&] {
    // Runs as long as the clients do, so the last of their commands are timed against too.
    while (!clientsDone) {
      auto start = Clock::now();
      auto r = spawnGwctl(socket_, {"status"}, kCommandTimeout);
      statusMs.push_back(Millis(Clock::now() - start).count());
      if (!r.ok() && statusFailures.size() < 10) {
        statusFailures.push_back("gwctl status: exit " + std::to_string(r.status) + ": " + r.err);
      }
      start = Clock::now();
      auto answer = callApi(socket_, "GET", "/v1/status", {}, std::chrono::seconds(30));
      apiMs.push_back(Millis(Clock::now() - start).count());
      if ((!answer || answer->status != 200) && statusFailures.size() < 10) {
        statusFailures.push_back(
            "GET /v1/status: " +
            (answer ? std::to_string(answer->status) + " " + answer->body : answer.error().str()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::vector<std::thread> threads;
  auto started = Clock::now();
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      // Nice is per thread on Linux and the gwctl processes started here inherit it: the load
      // the clients put on the two cores yields to gatewayd and the poller, so the poller
      // times gatewayd's answer and its queue, not the test's own load starving it of CPU.
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kClientNice);
      std::mt19937_64 rng(seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL);
      std::string batchPath = dir_ + "/batch-" + std::to_string(i);
      std::vector<std::vector<std::string>> mine;
      while (Clock::now() < until) {
        Command c = pick(rng, batchPath, mine);
        auto start = Clock::now();
        auto r = spawnGwctl(socket_, c.args, kCommandTimeout);
        if (record(c, r, Clock::now() - start) == Outcome::Ok) {
          mine.insert(mine.end(), c.undo.begin(), c.undo.end());
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  Millis ran = Clock::now() - started;
  double cpu = daemonCpuSeconds() - cpuBefore;
  clientsDone = true;
  poller.join();

  // The figures, then what they must show.
  Tally all;
  for (const auto& [kind, t] : tallies_) {
    std::cout << "[stress] " << kind << ": " << t.total() << " run, " << t.ok << " ok, "
              << t.conflict << " conflict, " << t.notFound << " not found, " << t.failed
              << " failed; " << figures(t.ms) << std::endl;
    all.ok += t.ok;
    all.conflict += t.conflict;
    all.notFound += t.notFound;
    all.failed += t.failed;
    all.ms.insert(all.ms.end(), t.ms.begin(), t.ms.end());
  }
  std::cout.precision(1);
  std::cout << std::fixed << "[stress] all: " << all.total() << " commands by " << clients
            << " clients in " << ran.count() / 1000 << " s ("
            << static_cast<double>(all.total()) * 1000 / ran.count() << "/s), " << all.ok
            << " ok, " << all.conflict << " conflict, " << all.notFound << " not found, "
            << all.failed << " failed; " << figures(all.ms) << std::endl;
  std::cout << "[stress] gatewayd used " << cpu << " s of CPU in those " << ran.count() / 1000
            << " s (" << cpu * 1000 / static_cast<double>(all.total() + statusMs.size())
            << " ms a request)" << std::endl;
  std::cout << "[stress] poller: gwctl status " << statusMs.size() << " times, "
            << figures(statusMs) << "; GET /v1/status " << apiMs.size() << " times, "
            << figures(apiMs) << "; " << statusFailures.size() << " failed" << std::endl;
  for (const auto& f : failures_) {
    std::cout << "[stress] failed: " << f << std::endl;
  }
  EXPECT_EQ(all.failed, 0u) << "only clashes and misses may be refused (first failures above)";
  EXPECT_TRUE(statusFailures.empty()) << statusFailures.front();
  EXPECT_FALSE(statusMs.empty());
  EXPECT_LE(quantile(statusMs, 1.0), maxStatusMs)
      << "gwctl status took too long under load (GW_STRESS_MAX_STATUS_MS)";
  EXPECT_LE(quantile(apiMs, 1.0), maxStatusMs)
      << "GET /v1/status took too long under load (GW_STRESS_MAX_STATUS_MS)";
  for (const char* kind : {"expose", "unexpose", "expose --file"}) {
    EXPECT_GT(tallies_[kind].ok, 0u) << "no " << kind << " succeeded: the mix tests nothing";
  }
  EXPECT_GT(tallies_["expose"].conflict, 0u) << "no expose clashed: the mix tests nothing";
  ASSERT_TRUE(daemon_.running()) << "gatewayd died under load";
  size_t fdsAfter = daemonFds();
  std::cout << "[stress] gatewayd descriptors: " << fdsBefore << " before, " << fdsAfter
            << " after" << std::endl;
  EXPECT_LE(fdsAfter, fdsBefore + 8) << "gatewayd keeps descriptors of finished requests";

  // gwctl list equals the pinned map; checkAgreement() holds both and the rest to the state.
  auto agree = [&](const char* when) {
    auto list = gwctlJson({"list"});
    auto listed = exposeMapOfList(list);
    auto pinned = exposeMapAt(bpffs());
    EXPECT_TRUE(listed == pinned) << when << ": gwctl list vs the pinned expose map: "
                                  << diff<ExposeKey, ExposeValue>(listed, pinned, exposeName);
    json state = checkAgreement();
    std::cout << "[stress] " << when << ": gwctl list " << list.size() << " exposes ("
              << listed.size() << " ports), pinned map " << pinned.size() << " entries, state "
              << state.value("exposes", json::array()).size() << " exposes" << std::endl;
    return listRows(list);
  };
  std::string journal = readFile(dir_ + "/state/state.journal");
  uint64_t changes = tallies_["expose"].ok + tallies_["unexpose"].ok + tallies_["expose --file"].ok;
  std::cout << "[stress] " << changes << " changes acknowledged; the journal now holds "
            << std::ranges::count(journal, '\n') << " lines, the rest folded into state.json"
            << std::endl;
  auto before = agree("after the clients");
  EXPECT_FALSE(before.empty()) << "nothing left exposed: the final comparison tests little";

  size_t logFrom = readFile(log_).size();
  EXPECT_EQ(restartDaemon(SIGTERM), 0) << "a clean stop";
  EXPECT_EQ(repairsSince(logFrom), 0) << "a clean stop leaves nothing for a start to repair";
  auto after = agree("after a clean restart");
  EXPECT_TRUE(after == before) << "the rules survive a clean restart: "
                               << diff<uint32_t, std::string>(before, after, idName);
}

} // namespace
} // namespace gw::test
