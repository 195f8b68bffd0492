// SPDX-License-Identifier: MIT
// Fuzz target: the state on disk as gatewayd loads it at start (StateStore::load, replaying
// state.journal onto state.json). The input is state.json, a NUL byte, then state.journal
// (no NUL: no journal; nothing before it: no state.json). Both go to a private directory and
// are loaded as gatewayd does and as `gatewayd --recover` does. The invariants are what
// gateway/State.h and State.cpp promise:
//  - what loads survives toJson -> fromJson unchanged;
//  - --recover fails only when state.json itself is bad, never on a damaged journal;
//  - where a plain load succeeds, --recover loads the same state and finds no damage;
//  - where it fails, --recover gives the state of the last good line: state.json plus the
//    longest run of the journal's whole lines that loads;
//  - the state a load returns is what the directory holds after it (the fold), and a commit
//    made next loads back.
// The seeds (corpus/state) are state directories written by StateStore, damage made from
// them (a torn or bit-flipped line, a gap, a line that does not apply) and an earlier
// version's bare JSON lines: without a checksum, mutations of those still reach the replay.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/FuzzTargets.h"
#include "base/Log.h"
#include "gateway/State.h"

namespace gw::fuzz {
namespace {

using nlohmann::json;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_state: invariant broken: %s\n", what);
    std::abort();
  }
}

// Every file a load or a commit may leave in the state directory.
constexpr const char* kFiles[] = {"state.json", "state.json.bak", "state.json.tmp",
                                  "state.journal", "state.journal.damaged"};

// One directory per process, reused by every input, on tmpfs where there is one: the store
// fsyncs what it writes, and an fsync there costs nothing.
class Scratch {
public:
  Scratch() {
    // --recover logs every line it drops: a fuzzer drops thousands a second.
    if (std::getenv("GW_FUZZ_LOG") == nullptr) {
      log::setLevel(static_cast<log::Level>(static_cast<int>(log::Level::Error) + 1));
    }
    std::error_code ec;
    for (std::string base :
         {std::string("/dev/shm"), std::filesystem::temp_directory_path(ec).string()}) {
      std::string tmpl = base + "/gw-fuzz-state-XXXXXX";
      if (::mkdtemp(tmpl.data()) != nullptr) {
        dir_ = tmpl;
        break;
      }
    }
    check(!dir_.empty(), "a scratch directory can be made");
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  const std::string& dir() const { return dir_; }
  bool has(const char* name) const { return ::access((dir_ + "/" + name).c_str(), F_OK) == 0; }

  // The directory holding exactly these files (nullopt: that file absent).
  void reset(std::optional<std::string_view> snapshot, std::optional<std::string_view> journal) {
    for (const char* name : kFiles) {
      ::unlink((dir_ + "/" + name).c_str());
    }
    if (snapshot) {
      write("state.json", *snapshot);
    }
    if (journal) {
      write("state.journal", *journal);
    }
  }

private:
  void write(const char* name, std::string_view data) {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    check(fd >= 0, "the scratch directory takes files");
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), data.size());
      check(n > 0, "the scratch directory takes files");
      data.remove_prefix(static_cast<size_t>(n));
    }
    ::close(fd);
  }

  std::string dir_;
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

struct Input {
  std::optional<std::string_view> snapshot;
  std::optional<std::string_view> journal;
};

Input split(std::string_view data) {
  Input in;
  size_t nul = data.find('\0');
  if (nul != 0 && !data.empty()) {
    in.snapshot = data.substr(0, nul);
  }
  if (nul != std::string_view::npos) {
    in.journal = data.substr(nul + 1);
  }
  return in;
}

void checkRoundTrip(const State& state) {
  std::string once = toJson(state);
  auto again = fromJson(once, "fuzz round trip");
  check(again.has_value(), "a loaded state is written so that it loads");
  check(toJson(*again) == once, "a loaded state survives toJson -> fromJson");
}

void checkOnDisk(const State& want, const char* what) {
  auto loaded = loadState(scratch().dir());
  check(loaded.has_value() && toJson(*loaded) == toJson(want), what);
}

// The state of state.json plus the longest run of whole journal lines that loads. A line
// fails or not by the lines before it alone, so the runs that load are a prefix: bisect.
State lastGoodLine(const Input& in) {
  std::string_view journal = in.journal.value_or("");
  std::vector<size_t> ends{0}; // ends[k]: the bytes of the first k whole lines
  for (size_t nl = journal.find('\n'); nl != std::string_view::npos;
       nl = journal.find('\n', nl + 1)) {
    ends.push_back(nl + 1);
  }
  auto loadLines = [&](size_t k) {
    scratch().reset(in.snapshot, journal.substr(0, ends[k]));
    return loadState(scratch().dir());
  };
  size_t good = 0;
  size_t bad = ends.size(); // one past the last count, all of which would fail to load
  while (bad - good > 1) {
    size_t mid = good + (bad - good) / 2;
    (loadLines(mid) ? good : bad) = mid;
  }
  auto state = loadLines(good);
  check(state.has_value(), "state.json alone loads where --recover succeeds");
  return *state;
}

// The last journal line number the store holds, as the load left it in state.json.
uint64_t journalSeq() {
  std::ifstream in(scratch().dir() + "/state.json", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  if (!j.is_object() || !j.contains("journalSeq") || !j["journalSeq"].is_number_unsigned()) {
    return 0;
  }
  return j["journalSeq"].get<uint64_t>();
}

// A change after a load is appended to the journal that load left, or starts one: either
// way it must load back. The input's last byte picks the change, so every kind of journal
// line is written: each list loses its first record (a delete after no common prefix), its
// last (after the longest one), or has its last record changed in place (a put of a key the
// journal already holds); nextRuleId moves when nothing else does.
// Not after line 2^64-1, which has no next number: a hand-made state.json can claim it, but
// gatewayd writes one line per commit from 1 and never gets there.
void checkCommit(StateStore& store, const State& loaded, uint8_t how) {
  if (journalSeq() == std::numeric_limits<uint64_t>::max()) {
    return;
  }
  State next = loaded;
  bool changed = false;
  auto change = [&](auto& list, auto&& inPlace) {
    if (list.empty()) {
      return;
    }
    switch (how % 3) {
    case 0: list.erase(list.begin()); break;
    case 1: list.pop_back(); break;
    default: inPlace(list.back()); break;
    }
    changed = true;
  };
  change(next.bridges, [](BridgeRecord& b) { b.pending = !b.pending; });
  change(next.namespaces, [](NamespaceRecord& n) { n.pending = !n.pending; });
  change(next.exposes, [](ExposeRecord& e) {
    e.mode = e.mode == ExposeMode::Proxy ? ExposeMode::Auto : ExposeMode::Proxy;
  });
  change(next.masquerades, [](MasqueradeRecord& m) { m.automatic = !m.automatic; });
  if (!changed && next.nextRuleId < std::numeric_limits<uint32_t>::max()) {
    ++next.nextRuleId;
  }
  check(store.commit(next).has_value(), "a commit after a load succeeds");
  checkOnDisk(next, "a commit after a load loads back");
}

} // namespace

int fuzzState(const uint8_t* data, size_t size) {
  Input in = split(std::string_view(reinterpret_cast<const char*>(data), size));
  Scratch& dir = scratch();

  dir.reset(in.snapshot, in.journal);
  auto strict = StateStore(dir.dir()).load();
  if (strict) {
    checkRoundTrip(*strict);
    checkOnDisk(*strict, "the state a load returns is on disk after it");
  } else {
    check(!strict.error().message.empty(), "errors say what is wrong");
  }

  dir.reset(in.snapshot, in.journal);
  StateStore store(dir.dir(), /*recover=*/true);
  auto recovered = store.load();
  if (!recovered) {
    check(!strict, "--recover loads what a plain load does");
    dir.reset(in.snapshot, std::nullopt);
    check(!loadState(dir.dir()), "--recover fails only when state.json itself is bad");
    return 0;
  }
  bool damaged = dir.has("state.journal.damaged");
  if (strict) {
    check(toJson(*recovered) == toJson(*strict), "--recover loads what a plain load does");
    check(!damaged, "--recover finds no damage where a plain load finds none");
  } else {
    checkRoundTrip(*recovered);
    check(damaged, "--recover keeps the journal it found damaged");
  }
  checkOnDisk(*recovered, "the state --recover returns is on disk after it");
  checkCommit(store, *recovered, size == 0 ? 0 : data[size - 1]);
  if (!strict) {
    check(toJson(lastGoodLine(in)) == toJson(*recovered),
          "--recover starts from the last good line");
  }
  return 0;
}

} // namespace gw::fuzz
