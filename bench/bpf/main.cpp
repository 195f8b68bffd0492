// SPDX-License-Identifier: MIT
// gw_bpf_bench: ns per packet of the data-path programs on BPF_PROG_TEST_RUN, and conntrack
// at 1M flows. Runs in a private network namespace (unshare) and attaches nothing, so the
// machine's own namespace is never touched. Prints a markdown report; --out/--json save it.
// Exit: 0 ok, 1 a program did not do what it should (verdict, output, counters), 77 skipped
// (cannot load BPF here), 2 usage.
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "bench/bpf/CtScale.h"
#include "bench/bpf/PathBench.h"
#include "bench/bpf/Topology.h"

namespace {

using namespace gw::bench;

struct Options {
  PathOptions path;
  CtScaleOptions ct;
  bool skipCt = false;
  std::string out;
  std::string json;
};

const char* kUsage =
    "usage: gw_bpf_bench [--runs N] [--repeat N] [--first-samples N] [--flows N]\n"
    "                    [--cold-samples N] [--gc-flows N] [--no-ct] [--smoke]\n"
    "                    [--out FILE.md] [--json FILE.json]\n"
    "  --smoke: a short run for CI (2 rounds, repeat 2000, 20k flows): checks, no speed\n";

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&](auto& field) {
      if (i + 1 >= argc) {
        return false;
      }
      field = static_cast<std::remove_reference_t<decltype(field)>>(std::stoul(argv[++i]));
      return true;
    };
    bool ok = true;
    if (a == "--runs") {
      ok = num(o.path.runs);
      o.ct.runs = o.path.runs;
    } else if (a == "--repeat") {
      ok = num(o.path.repeat);
      o.ct.repeat = o.path.repeat;
    } else if (a == "--first-samples") {
      ok = num(o.path.firstSamples);
    } else if (a == "--flows") {
      ok = num(o.ct.flows);
    } else if (a == "--cold-samples") {
      ok = num(o.ct.coldSamples);
    } else if (a == "--gc-flows") {
      ok = num(o.ct.gcFlows);
    } else if (a == "--no-ct") {
      o.skipCt = true;
    } else if (a == "--smoke") {
      o.path = {.runs = 2, .repeat = 2000, .firstSamples = 200};
      o.ct = {.flows = 20000, .runs = 2, .repeat = 2000, .coldSamples = 500,
              .smallFlows = 1000, .singleOps = 2000, .gcFlows = 5000};
    } else if (a == "--out" && i + 1 < argc) {
      o.out = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      o.json = argv[++i];
    } else {
      ok = false;
    }
    if (!ok) {
      return false;
    }
  }
  return o.path.runs > 0 && o.path.repeat > 0 && o.path.firstSamples > 0 && o.ct.flows > 0 &&
         o.ct.coldSamples > 0;
}

std::string firstLine(const char* path, const char* prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "?";
}

// busy and steal jiffies of the whole machine (/proc/stat "cpu" line).
std::pair<uint64_t, uint64_t> cpuTimes() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {};
  in >> cpu;
  for (uint64_t& x : v) {
    in >> x;
  }
  uint64_t total = 0;
  for (uint64_t x : v) {
    total += x;
  }
  return {total, v[7]};
}

} // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::cerr << kUsage;
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; ++i) {
    command += (i ? " " : "") + std::string(argv[i]);
  }
  // A private network namespace: PROG_TEST_RUN's skbs, socket lookups (SNAT) and anything
  // else see an empty namespace, not the machine's.
  if (unshare(CLONE_NEWNET) != 0) {
    std::cerr << "SKIP: unshare(CLONE_NEWNET): " << std::strerror(errno)
              << " (needs root/CAP_SYS_ADMIN)\n";
    return 77;
  }
  auto loader = BpfLoader::load();
  if (!loader) {
    std::cerr << "SKIP: cannot load the BPF programs here: " << loader.error().str() << "\n";
    return 77;
  }
  if (auto ok = setupTopology(**loader, Topology{}); !ok) {
    std::cerr << ok.error().str() << "\n";
    return 1;
  }

  utsname u{};
  uname(&u);
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
  std::string cpu = firstLine("/proc/cpuinfo", "model name");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  auto [total0, steal0] = cpuTimes();

  Section paths = runPathBench(**loader, o.path);
  Section ct;
  if (!o.skipCt) {
    ct = runCtScale(**loader, o.ct);
  }
  auto [total1, steal1] = cpuTimes();
  double steal = total1 > total0 ? 100.0 * (steal1 - steal0) / (total1 - total0) : 0;

  std::ostringstream md;
  md << "## BPF per-packet cost (BPF_PROG_TEST_RUN)\n\n"
     << "- machine: " << u.sysname << " " << u.release << ", " << cpu << ", " << cores
     << " cores\n- date: " << date << "\n- command: `" << command << "`\n"
     << "- CPU steal during the run: " << fmt(steal) << "%\n\n"
     << paths.markdown;
  if (!o.skipCt) {
    md << "\n## Conntrack at " << o.ct.flows << " flows\n\n" << ct.markdown;
  }
  std::vector<std::string> failures = paths.failures;
  failures.insert(failures.end(), ct.failures.begin(), ct.failures.end());
  if (!failures.empty()) {
    md << "\n**Checks failed** (" << failures.size() << "):\n";
    for (size_t i = 0; i < failures.size() && i < 20; ++i) {
      md << "- " << failures[i] << "\n";
    }
  }
  std::cout << md.str();

  nlohmann::json j = {{"machine",
                       {{"kernel", std::string(u.sysname) + " " + u.release},
                        {"cpu", cpu},
                        {"cores", cores}}},
                      {"date", date},
                      {"command", command},
                      {"steal_percent", steal},
                      {"paths", paths.json},
                      {"conntrack", ct.json},
                      {"failures", failures}};
  if (!o.out.empty()) {
    std::ofstream(o.out) << md.str();
  }
  if (!o.json.empty()) {
    std::ofstream(o.json) << j.dump(2) << "\n";
  }
  return failures.empty() ? 0 : 1;
}
