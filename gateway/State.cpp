// SPDX-License-Identifier: MIT
#include "gateway/State.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "base/Fd.h"
#include "base/Log.h"
#include "bpf/gw_abi.h"

namespace gw {
namespace {

using nlohmann::json;

constexpr int kStateVersion = 1;

// An integer field in T's range. nlohmann's get<T>() would truncate 70000 to a port and cast
// 1e10 or -1 with undefined behaviour (found by tests/fuzz/).
template <class T>
Result<T> uintField(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_unsigned() ||
      j[key].get<uint64_t>() > std::numeric_limits<T>::max()) {
    return fail(std::string("field '") + key + "' must be an integer from 0 to " +
                std::to_string(std::numeric_limits<T>::max()));
  }
  return static_cast<T>(j[key].get<uint64_t>());
}

// The state directory, made if missing, readable by root alone (it says what is exposed).
Status makeStateDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return fail("create state directory " + dir + ": " + ec.message());
  }
  // Not a link to elsewhere, and not someone else's: whoever owns it could swap its files.
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return sysError("stat " + dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return conflict("state directory " + dir + " is not a directory (a symlink?): refusing it");
  }
  if (st.st_uid != ::geteuid()) {
    return conflict("state directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                    ", not by gatewayd's uid " + std::to_string(::geteuid()) + ": refusing it");
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return sysError("chmod 0700 " + dir);
  }
  return {};
}

Status writeFile(const std::string& path, std::string_view data) {
  // Never through a link planted in the state dir.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) {
    return sysError("open " + path);
  }
  while (!data.empty()) {
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sysError("write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd.get()) != 0) {
    return sysError("fsync " + path);
  }
  return {};
}

} // namespace

NamespaceRecord* State::findNamespace(std::string_view name) {
  for (auto& n : namespaces) {
    if (n.name == name) {
      return &n;
    }
  }
  return nullptr;
}

BridgeRecord* State::findBridge(std::string_view name) {
  for (auto& b : bridges) {
    if (b.name == name) {
      return &b;
    }
  }
  return nullptr;
}

namespace {

// One record <-> JSON, shared by the snapshot and the journal: each record's field list.
template <class R>
json toJson(const R& r) {
  return api::toJson(r);
}

// The identity of a record: the journal deletes and replaces by it.
std::string keyOf(const BridgeRecord& b) {
  return b.name;
}
std::string keyOf(const NamespaceRecord& n) {
  return n.name;
}
std::string keyOf(const ExposeRecord& e) {
  return std::to_string(e.id);
}
std::string keyOf(const MasqueradeRecord& m) {
  return m.source.str() + " " + m.outIf;
}

template <class R>
Result<R> recordFrom(const json& j, const char* what) {
  return api::fromJson<R>(j, what);
}
// The IPv6 fields (absent in a state from before IPv6) must hold IPv6 prefixes.
Status checkV6(const std::optional<IpPrefix>& p, const std::string& which, const char* field) {
  if (p && !p->addr.isV6()) {
    return invalid(which + "field '" + field + "' is not an IPv6 prefix: " + p->str());
  }
  return {};
}
Result<BridgeRecord> bridgeFrom(const json& j) {
  auto b = recordFrom<BridgeRecord>(j, "bridge");
  if (b) {
    if (auto r = checkV6(b->gateway6, "bridge " + b->name + ": ", "gateway6"); !r) {
      return std::unexpected(r.error());
    }
  }
  return b;
}
Result<NamespaceRecord> namespaceFrom(const json& j) {
  auto n = recordFrom<NamespaceRecord>(j, "namespace");
  if (!n) {
    return n;
  }
  std::string which = "namespace " + n->name + ": ";
  if (auto r = checkV6(n->address6, which, "address6"); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = checkV6(n->hostAddress6, which, "hostAddress6"); !r) {
    return std::unexpected(r.error());
  }
  if (n->address6.has_value() != n->hostAddress6.has_value()) {
    return invalid(which + "fields 'address6' and 'hostAddress6' come together");
  }
  return n;
}
// What the codec cannot see field by field: an expose's values that only make sense together.
Result<ExposeRecord> exposeFrom(const json& j) {
  auto e = recordFrom<ExposeRecord>(j, "expose");
  if (!e) {
    return e;
  }
  std::string which = "expose " + std::to_string(e->id) + ": ";
  if (e->id == 0 || e->id >= GW_RULE_MAX) {
    return invalid(which + "field 'id' must be from 1 to " + std::to_string(GW_RULE_MAX - 1));
  }
  if (e->hostPort == 0 || e->hostPortEnd < e->hostPort) {
    return invalid(which + "fields 'hostPort'-'hostPortEnd' are not a port range");
  }
  if (e->targetPort == 0 || e->targetPort + (e->hostPortEnd - e->hostPort) > 65535) {
    return invalid(which + "field 'targetPort' does not fit the range");
  }
  if (e->targetAddr6 && !e->targetAddr6->isV6()) {
    return invalid(which + "field 'targetAddr6' is not an IPv6 address");
  }
  return e;
}
Result<MasqueradeRecord> masqueradeFrom(const json& j) {
  return recordFrom<MasqueradeRecord>(j, "masquerade");
}

template <class R>
Status appendRecords(const json& array, Result<R> (*parse)(const json&), std::vector<R>& out) {
  if (!array.is_array()) {
    return fail("a record list is not an array");
  }
  for (size_t i = 0; i < array.size(); ++i) {
    auto r = parse(array[i]);
    if (!r) {
      return fail("record #" + std::to_string(i + 1) + ": " + r.error().message);
    }
    out.push_back(std::move(*r));
  }
  return {};
}

// The journal deletes and replaces records by key: with two of one key in state.json, the
// next commit's line would name one and a replay change the other.
template <class R>
Status uniqueKeys(const char* name, const std::vector<R>& list) {
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    auto [it, added] = seen.emplace(keyOf(list[i]), i + 1);
    if (!added) {
      return fail(std::string(name) + ": record #" + std::to_string(i + 1) + " repeats record #" +
                  std::to_string(it->second) + " (the same key '" + it->first + "')");
    }
  }
  return {};
}

// The four record lists of a state, each with its name in the JSON and its parser; `each`
// is called as each(name, list, parser).
template <class S, class F>
Status forEachList(S& s, F&& each) {
  if (auto r = each("bridges", s.bridges, &bridgeFrom); !r) {
    return r;
  }
  if (auto r = each("namespaces", s.namespaces, &namespaceFrom); !r) {
    return r;
  }
  if (auto r = each("exposes", s.exposes, &exposeFrom); !r) {
    return r;
  }
  return each("masquerades", s.masquerades, &masqueradeFrom);
}

} // namespace

namespace {

json stateJson(const State& state) {
  json j;
  j["version"] = kStateVersion;
  j["nextRuleId"] = state.nextRuleId;
  (void)forEachList(state, [&](const char* name, const auto& list, auto) -> Status {
    j[name] = json::array();
    for (const auto& r : list) {
      j[name].push_back(toJson(r));
    }
    return {};
  });
  return j;
}

} // namespace

std::string toJson(const State& state) {
  return stateJson(state).dump(2) + "\n";
}

namespace {

Result<State> stateFrom(const json& j, const std::string& origin) {
  auto bad = [&](const std::string& what) { return invalid(origin + ": " + what); };
  if (j.is_discarded() || !j.is_object()) {
    return bad("not valid JSON (truncated or corrupted)");
  }
  // Not j.value("version", 0): it throws on a non-number, outside the try below.
  if (auto v = uintField<uint32_t>(j, "version"); !v || *v != uint32_t{kStateVersion}) {
    return bad("unsupported state version " + j.value("version", json(0)).dump());
  }
  State s;
  try {
    auto next = uintField<uint32_t>(j, "nextRuleId");
    if (!next) {
      return bad(next.error().message);
    }
    s.nextRuleId = *next;
    auto parsed = forEachList(s, [&](const char* name, auto& list, auto parse) {
      auto appended = appendRecords(j.at(name), parse, list);
      return appended ? uniqueKeys(name, list) : appended;
    });
    if (!parsed) {
      return bad(parsed.error().message);
    }
  } catch (const json::exception& e) {
    return bad(std::string("bad field: ") + e.what());
  }
  return s;
}

} // namespace

Result<State> fromJson(std::string_view text, const std::string& origin) {
  return stateFrom(json::parse(text, nullptr, false), origin);
}

namespace {

// What changed from `before` to `after` in one list: records added or changed go to
// put[name], keys that are gone to del[name]. Lists mostly grow at the end, so the common
// prefix is skipped before any key is hashed.
template <class R>
void diffList(const char* name, const std::vector<R>& before, const std::vector<R>& after,
              json& put, json& del) {
  size_t same = 0;
  while (same < before.size() && same < after.size() && before[same] == after[same]) {
    ++same;
  }
  std::unordered_map<std::string, const R*> old;
  old.reserve(before.size() - same);
  for (size_t i = same; i < before.size(); ++i) {
    old.emplace(keyOf(before[i]), &before[i]);
  }
  for (size_t i = same; i < after.size(); ++i) {
    auto it = old.find(keyOf(after[i]));
    if (it == old.end() || !(*it->second == after[i])) {
      put[name].push_back(toJson(after[i]));
    }
    if (it != old.end()) {
      old.erase(it);
    }
  }
  for (const auto& [key, record] : old) {
    del[name].push_back(key);
  }
}

// A list being rebuilt from journal lines: replace or append by key, delete by key.
template <class R>
class ListReplay {
public:
  explicit ListReplay(std::vector<R>& list) : list_(list) {
    for (auto& r : list_) {
      index_.emplace(keyOf(r), items_.size());
      items_.emplace_back(std::move(r));
    }
    list_.clear();
  }
  void put(R r) {
    auto [it, added] = index_.emplace(keyOf(r), items_.size());
    if (added) {
      items_.emplace_back(std::move(r));
    } else {
      items_[it->second] = std::move(r);
    }
  }
  void del(const std::string& key) {
    if (auto it = index_.find(key); it != index_.end()) {
      items_[it->second].reset();
      index_.erase(it);
    }
  }
  ~ListReplay() {
    for (auto& r : items_) {
      if (r) {
        list_.push_back(std::move(*r));
      }
    }
  }

private:
  std::vector<R>& list_;
  std::vector<std::optional<R>> items_;
  std::unordered_map<std::string, size_t> index_;
};

// A state being rebuilt from journal lines, one index per list for the whole journal
// (indexing a list again for every line would make a long journal quadratic).
struct StateReplay {
  explicit StateReplay(State& s)
      : state(s), bridges(s.bridges), namespaces(s.namespaces), exposes(s.exposes),
        masquerades(s.masquerades) {}

  State& state;
  ListReplay<BridgeRecord> bridges;
  ListReplay<NamespaceRecord> namespaces;
  ListReplay<ExposeRecord> exposes;
  ListReplay<MasqueradeRecord> masquerades;
};

// What one journal line changes, parsed whole before any of it is applied: a line that does
// not parse changes nothing, so --recover starts from the line before it, not half of it.
template <class R>
struct ListChange {
  std::vector<std::string> del;
  std::vector<R> put;
};
struct LineChange {
  std::optional<uint32_t> nextRuleId;
  ListChange<BridgeRecord> bridges;
  ListChange<NamespaceRecord> namespaces;
  ListChange<ExposeRecord> exposes;
  ListChange<MasqueradeRecord> masquerades;
};

Result<LineChange> parseLine(const json& line) {
  if (!line.is_object()) {
    return fail("not a JSON object");
  }
  LineChange c;
  try {
    if (line.contains("nextRuleId")) {
      auto next = uintField<uint32_t>(line, "nextRuleId");
      if (!next) {
        return std::unexpected(next.error());
      }
      c.nextRuleId = *next;
    }
    static const json kNone = json::object();
    const json& put = line.contains("put") ? line.at("put") : kNone;
    const json& del = line.contains("del") ? line.at("del") : kNone;
    auto parsed = forEachList(c, [&](const char* name, auto& change, auto parse) -> Status {
      if (del.contains(name)) {
        for (const auto& key : del.at(name)) {
          change.del.push_back(key.template get<std::string>());
        }
      }
      if (put.contains(name)) {
        for (const auto& j : put.at(name)) {
          auto r = parse(j);
          if (!r) {
            return std::unexpected(r.error());
          }
          change.put.push_back(std::move(*r));
        }
      }
      return {};
    });
    if (!parsed) {
      return std::unexpected(parsed.error());
    }
  } catch (const json::exception& e) {
    return fail(std::string("bad field: ") + e.what());
  }
  return c;
}

template <class R>
void applyList(ListReplay<R>& replay, ListChange<R>& change) {
  for (const auto& key : change.del) {
    replay.del(key);
  }
  for (auto& r : change.put) {
    replay.put(std::move(r));
  }
}

// Applies one journal line. Replaying a line twice gives the same state, so a crash between
// writing a new snapshot and removing the journal loses nothing.
Status applyLine(StateReplay& s, const json& line) {
  auto change = parseLine(line);
  if (!change) {
    return std::unexpected(change.error());
  }
  if (change->nextRuleId) {
    s.state.nextRuleId = std::max(s.state.nextRuleId, *change->nextRuleId);
  }
  applyList(s.bridges, change->bridges);
  applyList(s.namespaces, change->namespaces);
  applyList(s.exposes, change->exposes);
  applyList(s.masquerades, change->masquerades);
  return {};
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return fail("cannot read " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string snapshotPath(const std::string& dir) {
  return dir + "/state.json";
}

std::string journalPath(const std::string& dir) {
  return dir + "/state.journal";
}

// CRC-32 (IEEE), the journal's per-line checksum: a flipped bit is corruption, not a rule.
uint32_t crc32(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      }
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) {
    c = table[(c ^ b) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xffffffffu;
}

// A journal line: "CRC32HEX {json}". Lines of earlier versions are the bare JSON.
std::string journalLine(const json& change) {
  std::string body = change.dump();
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", crc32(body));
  return std::string(crc) + " " + body + "\n";
}

// The JSON of a line whose checksum holds (or that has none: an earlier version's).
Result<json> journalEntry(std::string_view line) {
  std::string_view body = line;
  if (line.size() > 9 && line[8] == ' ' && line.front() != '{') {
    uint32_t want = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + 8, want, 16);
    body = line.substr(9);
    if (ec != std::errc() || end != line.data() + 8 || crc32(body) != want) {
      return invalid("checksum mismatch (the line was altered)");
    }
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return invalid("not valid JSON");
  }
  return j;
}

// What a journal line changes, for the log of what --recover dropped.
std::string describeChange(const json& change) {
  std::string out;
  for (const char* op : {"put", "del"}) {
    if (!change.is_object() || !change.contains(op) || !change[op].is_object()) {
      continue;
    }
    for (const auto& [list, items] : change[op].items()) {
      out += (out.empty() ? "" : "; ") + std::string(op) + " " + list + " " + items.dump();
    }
  }
  return out.empty() ? "(no records)" : out;
}

// Where a replay starts and how it ended.
struct JournalReplay {
  uint64_t baseSeq = 0;  // the last line the snapshot already holds
  bool hasSnapshot = false;
  bool recover = false;  // stop at damage instead of failing, logging what is dropped
  uint64_t lastSeq = 0;  // the last line applied (or baseSeq)
  bool recovered = false; // damage was passed over
};

// Replays <dir>/state.journal onto `s`. Only a last line without its newline (a crash
// mid-append: never acknowledged) is dropped silently. A line whose checksum fails, that is
// not JSON, that does not apply, or whose sequence number skips one is damage: an error
// naming the file and line, or with `recover` the end of the replay, every later line
// logged as dropped.
Status replayJournal(const std::string& dir, State& s, JournalReplay& r) {
  r.lastSeq = r.baseSeq;
  std::string path = journalPath(dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return {};
  }
  auto text = readFile(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  StateReplay replay(s); // writes the lists back into s when it goes
  std::string_view rest = *text;
  uint64_t expected = r.baseSeq + 1;
  for (size_t lineNo = 1; !rest.empty(); ++lineNo) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      log::warn("state journal ", path, " line ", lineNo,
                ": cut short by a crash mid-write (never acknowledged): ignored");
      break;
    }
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    auto entry = journalEntry(line);
    Status applied = entry ? Status{} : Status(std::unexpected(entry.error()));
    bool skip = false;
    if (applied && entry->is_object() && entry->contains("seq")) {
      auto seq = uintField<uint64_t>(*entry, "seq");
      if (!seq) {
        applied = std::unexpected(seq.error());
      } else if (*seq <= r.baseSeq) {
        skip = true; // folded into the snapshot already (a crash before the journal went)
      } else if (*seq != expected) {
        applied = invalid("sequence " + std::to_string(*seq) + " where " +
                          std::to_string(expected) + " was expected: " +
                          (r.hasSnapshot || expected > 1 ? "lines are missing"
                                                         : "state.json is missing"));
      } else {
        ++expected;
      }
    }
    if (applied && !skip) {
      applied = applyLine(replay, *entry);
    }
    if (applied) {
      if (!skip && entry->contains("seq")) {
        r.lastSeq = expected - 1;
      }
      continue;
    }
    std::string where = "state journal " + path + " line " + std::to_string(lineNo) + ": ";
    if (!r.recover) {
      return invalid(where + applied.error().message +
                     " (state.json holds the state before the journal; gatewayd --recover "
                     "starts from the last good line and logs what it drops)");
    }
    log::error(where, applied.error().message, ": --recover drops it and every later line");
    log::error("dropped: ", entry ? describeChange(*entry) : std::string(line));
    for (size_t later = lineNo + 1; !rest.empty(); ++later) {
      size_t end = rest.find('\n');
      std::string_view dropped = rest.substr(0, end);
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
      auto e = journalEntry(dropped);
      log::error("dropped line ", later, ": ", e ? describeChange(*e) : std::string(dropped));
    }
    r.recovered = true;
    break;
  }
  return {};
}

// state.json and the journal line it holds up to ("journalSeq"; 0 before journals had them).
Result<State> loadSnapshot(const std::string& dir, JournalReplay& r) {
  std::string path = snapshotPath(dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return State{};
  }
  r.hasSnapshot = true;
  auto text = readFile(path);
  if (!text) {
    return fail("cannot read state file " + path);
  }
  json j = json::parse(*text, nullptr, false);
  auto state = stateFrom(j, "state file " + path);
  if (!state) {
    return invalid(state.error().message + "; the last good copy is " + path +
                   ".bak (inspect it, then move it to state.json to restore)");
  }
  if (j.contains("journalSeq")) {
    auto seq = uintField<uint64_t>(j, "journalSeq");
    if (!seq) {
      return invalid("state file " + path + ": " + seq.error().message);
    }
    r.baseSeq = *seq;
  }
  return state;
}

void fsyncDir(const std::string& dir) {
  UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd) {
    ::fsync(dirFd.get());
  }
}

// Writes state.json atomically (temp file, fsync, the old file kept as state.json.bak,
// rename, fsync of the directory), then drops the journal it now contains. Returns its size.
Result<uint64_t> writeSnapshot(const std::string& dir, const State& state, uint64_t seq) {
  if (auto made = makeStateDir(dir); !made) {
    return std::unexpected(made.error());
  }
  std::error_code ec;
  std::string path = snapshotPath(dir);
  std::string tmp = path + ".tmp";
  json j = stateJson(state);
  j["journalSeq"] = seq;
  std::string text = j.dump(2) + "\n";
  if (auto w = writeFile(tmp, text); !w) {
    return std::unexpected(w.error());
  }
  if (std::filesystem::exists(path, ec)) {
    // Keep the previous good state as the backup (hard link: the old inode stays intact).
    std::string bak = path + ".bak";
    ::unlink(bak.c_str());
    if (::link(path.c_str(), bak.c_str()) != 0) {
      return sysError("keep backup " + bak);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return sysError("rename " + tmp + " to " + path);
  }
  fsyncDir(dir);
  if (::unlink(journalPath(dir).c_str()) == 0) {
    fsyncDir(dir);
  }
  return text.size();
}

// The state on disk: the snapshot, then the journal replayed onto it.
Result<State> loadFromDisk(const std::string& dir, JournalReplay& r) {
  auto state = loadSnapshot(dir, r);
  if (!state) {
    return state;
  }
  if (auto replayed = replayJournal(dir, *state, r); !replayed) {
    return std::unexpected(replayed.error());
  }
  return state;
}

} // namespace

Result<State> loadState(const std::string& dir) {
  JournalReplay r;
  return loadFromDisk(dir, r);
}

Status saveState(const std::string& dir, const State& state) {
  auto written = writeSnapshot(dir, state, 0);
  if (!written) {
    return std::unexpected(written.error());
  }
  return {};
}

Result<State> StateStore::load() {
  JournalReplay replay{.recover = recover_};
  auto state = loadFromDisk(dir_, replay);
  if (!state) {
    return state;
  }
  seq_ = replay.lastSeq;
  if (replay.recovered) {
    // Keep the damaged journal for inspection; the fold below replaces it.
    std::string kept = journalPath(dir_) + ".damaged";
    if (::rename(journalPath(dir_).c_str(), kept.c_str()) != 0) {
      return sysError("keep the damaged journal as " + kept);
    }
    log::error("state: started from the last good journal line (--recover); the damaged "
               "journal is kept as ", kept);
    persisted_ = *state;
    if (auto r = compact(*state); !r) {
      return std::unexpected(r.error());
    }
    return state;
  }
  persisted_ = *state;
  std::error_code ec;
  uint64_t journal = std::filesystem::file_size(journalPath(dir_), ec);
  // Fold what an earlier run journaled into a fresh snapshot: this also drops a torn last
  // line, which a later append would otherwise bury in the middle.
  if (!ec && journal > 0) {
    if (auto r = compact(*state); !r) {
      return std::unexpected(r.error());
    }
  } else {
    uint64_t size = std::filesystem::file_size(snapshotPath(dir_), ec);
    snapshotBytes_ = ec ? 0 : size; // on error file_size returns -1
  }
  return state;
}

Status StateStore::commit(const State& state) {
  json put = json::object(), del = json::object();
  diffList("bridges", persisted_.bridges, state.bridges, put, del);
  diffList("namespaces", persisted_.namespaces, state.namespaces, put, del);
  diffList("exposes", persisted_.exposes, state.exposes, put, del);
  diffList("masquerades", persisted_.masquerades, state.masquerades, put, del);
  if (put.empty() && del.empty() && state.nextRuleId == persisted_.nextRuleId) {
    return {};
  }
  json change = {{"nextRuleId", state.nextRuleId}, {"seq", seq_ + 1}};
  if (!put.empty()) {
    change["put"] = std::move(put);
  }
  if (!del.empty()) {
    change["del"] = std::move(del);
  }
  std::string line = journalLine(change);
  // Amortized: the snapshot is rewritten only after as many journal bytes as it holds.
  if (journalBytes_ + line.size() > std::max(kMinJournalBytes, snapshotBytes_)) {
    return compact(state);
  }
  if (auto r = append(line); !r) {
    return r;
  }
  journalBytes_ += line.size();
  ++seq_;
  persisted_ = state;
  return {};
}

Status StateStore::append(std::string_view line) {
  if (!journal_) {
    if (auto made = makeStateDir(dir_); !made) {
      return made;
    }
    std::string path = journalPath(dir_);
    journal_.reset(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!journal_) {
      return sysError("open " + path);
    }
    fsyncDir(dir_);
  }
  // One write per line: a crash leaves at most the last line cut short, which load ignores.
  std::string path = journalPath(dir_);
  ssize_t n = ::write(journal_.get(), line.data(), line.size());
  Status done = n < 0 ? sysError("append to " + path)
                : n != static_cast<ssize_t>(line.size()) ? fail("append to " + path + ": short write")
                : ::fdatasync(journal_.get()) != 0 ? sysError("fdatasync " + path)
                                                     : Status{};
  if (!done) {
    // The caller rolls the change back: so must the file, or a replay would bring it back.
    journal_.reset();
    (void)::truncate(path.c_str(), static_cast<off_t>(journalBytes_));
  }
  return done;
}

Status StateStore::compact(const State& state) {
  journal_.reset();
  auto written = writeSnapshot(dir_, state, seq_);
  if (!written) {
    return std::unexpected(written.error());
  }
  snapshotBytes_ = *written;
  journalBytes_ = 0;
  persisted_ = state;
  return {};
}

Status StateStore::recordMount(const std::string& mountPoint) {
  if (auto made = makeStateDir(dir_); !made) {
    return made;
  }
  if (auto w = writeFile(dir_ + "/bpffs.mount", mountPoint + "\n"); !w) {
    return w;
  }
  fsyncDir(dir_);
  return {};
}

Status StateStore::recordHost(const HostRecord& host) {
  if (auto made = makeStateDir(dir_); !made) {
    return made;
  }
  if (auto w = writeFile(dir_ + "/host.json", api::toJson(host).dump() + "\n"); !w) {
    return w;
  }
  fsyncDir(dir_);
  return {};
}

Result<std::optional<HostRecord>> loadHostRecord(const std::string& dir) {
  std::string path = dir + "/host.json";
  if (::access(path.c_str(), F_OK) != 0) {
    return std::nullopt;
  }
  auto text = readFile(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  auto host = api::fromJson<HostRecord>(json::parse(*text, nullptr, false), path);
  if (!host) {
    return std::unexpected(host.error());
  }
  return *host;
}

std::string StateStore::recordedMount() const {
  auto text = readFile(dir_ + "/bpffs.mount");
  if (!text) {
    return {};
  }
  std::string line = text->substr(0, text->find('\n'));
  return line;
}

} // namespace gw
