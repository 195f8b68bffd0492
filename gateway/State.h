// SPDX-License-Identifier: MIT
// What gatewayd owns, as written to <state-dir>/state.json: the source of truth on restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"
#include "base/Ip.h"
#include "control/ApiCodec.h"
#include "control/ApiValues.h"

namespace gw {

// Each record's field list is its JSON in state.json and the journal (control/ApiCodec.h):
// a value is checked when it is read, and a bad one names the record and the field.
struct BridgeRecord {
  std::string name;
  IpPrefix gateway; // the bridge's own address with the subnet length, e.g. 10.88.0.1/16
  bool pending = false; // made by an `ns add` not yet done: a start rolls it back
  std::optional<IpPrefix> gateway6{}; // its IPv6 address, e.g. fd00:88::1/64; none: IPv4 only

  bool operator==(const BridgeRecord&) const = default;
};
constexpr auto fieldsOf(const BridgeRecord*) {
  using T = BridgeRecord;
  return std::tuple{api::Field{"name", &T::name}, api::Field{"gateway", &T::gateway},
                    api::Field{"pending", &T::pending, api::Need::Optional},
                    api::Field{"gateway6", &T::gateway6, api::Need::Optional}};
}

struct NamespaceRecord {
  std::string name;
  Wiring wiring = Wiring::Bridge;
  std::string bridge;   // Wiring::Bridge only
  std::string hostLink; // gateway end of the veth
  IpPrefix address;     // inside the namespace, e.g. 10.88.0.2/16
  IpPrefix hostAddress; // gateway end (point-to-point) or the bridge's address
  bool pending = false;  // `ns add` written as intent, not done: a start rolls it back
  // The IPv6 side; none with --no-ipv6, and in a state written before IPv6 (such a namespace
  // stays IPv4 only until it is added again).
  std::optional<IpPrefix> address6{};
  std::optional<IpPrefix> hostAddress6{};

  bool operator==(const NamespaceRecord&) const = default;
};
constexpr auto fieldsOf(const NamespaceRecord*) {
  using T = NamespaceRecord;
  using api::Need;
  return std::tuple{api::Field{"name", &T::name}, api::Field{"wiring", &T::wiring},
                    api::Field{"bridge", &T::bridge, Need::Optional},
                    api::Field{"hostLink", &T::hostLink}, api::Field{"address", &T::address},
                    api::Field{"hostAddress", &T::hostAddress},
                    api::Field{"pending", &T::pending, Need::Optional},
                    api::Field{"address6", &T::address6, Need::Optional},
                    api::Field{"hostAddress6", &T::hostAddress6, Need::Optional}};
}

struct ExposeRecord {
  uint32_t id = 0;
  Proto proto = Proto::Tcp;
  uint16_t hostPort = 0;
  uint16_t hostPortEnd = 0;
  std::optional<IpAddress> hostIp; // nullopt: every address of the gateway host
  std::string target;              // as the user wrote it
  std::string targetNs;            // "" when the target was an IP or a namespace path
  std::string targetNetnsPath;     // a namespace file (/proc/PID/ns/net): resolved at each start
  uint64_t targetNetnsCookie = 0;  // its namespace's when added: a /proc path's identity
  IpAddress targetAddr;
  uint16_t targetPort = 0;
  ExposeMode mode = ExposeMode::Auto;
  ProxyProtocol proxyProtocol = ProxyProtocol::None;
  // The client families it answers on. Absent in a state from before IPv6: V4, which is what
  // such a rule served (an [IPv6] target then went through the proxy on 0.0.0.0).
  IpFamilies family = IpFamilies::V4;
  // The IPv6 address of a namespace target (targetAddr holds its IPv4 one), for IPv6 clients.
  std::optional<IpAddress> targetAddr6{};
  std::optional<ExposeOwner> owner{}; // rules added and removed as a set (the CNI plugin)

  PortRange hostPorts() const { return {hostPort, hostPortEnd}; }
  // The namespace the target is in, by name or path; "" for an address target.
  const std::string& netns() const { return targetNs.empty() ? targetNetnsPath : targetNs; }
  PortRange targetPorts() const { return hostPorts().startingAt(targetPort); }
  bool operator==(const ExposeRecord&) const = default;
};
constexpr auto fieldsOf(const ExposeRecord*) {
  using T = ExposeRecord;
  using api::Need;
  return std::tuple{api::Field{"id", &T::id},
                    api::Field{"proto", &T::proto},
                    api::Field{"hostPort", &T::hostPort},
                    api::Field{"hostPortEnd", &T::hostPortEnd},
                    api::Field{"hostIp", &T::hostIp, Need::Optional},
                    api::Field{"target", &T::target},
                    api::Field{"targetNs", &T::targetNs, Need::Optional},
                    api::Field{"targetNetnsPath", &T::targetNetnsPath, Need::Optional},
                    api::Field{"targetNetnsCookie", &T::targetNetnsCookie, Need::Optional},
                    api::Field{"targetAddr", &T::targetAddr},
                    api::Field{"targetPort", &T::targetPort},
                    api::Field{"mode", &T::mode, Need::Optional},
                    api::Field{"proxyProtocol", &T::proxyProtocol, Need::Optional},
                    api::Field{"family", &T::family, Need::Optional},
                    api::Field{"targetAddr6", &T::targetAddr6, Need::Optional},
                    api::Field{"owner", &T::owner, Need::Optional}};
}

struct MasqueradeRecord {
  IpPrefix source;
  std::string outIf;      // "" = the uplink
  bool automatic = false; // added by `ns add`, removed by `ns del`
  Filtering filtering = Filtering::AddressAndPortDependent;

  bool operator==(const MasqueradeRecord&) const = default;
};
constexpr auto fieldsOf(const MasqueradeRecord*) {
  using T = MasqueradeRecord;
  using api::Need;
  return std::tuple{api::Field{"source", &T::source},
                    api::Field{"outIf", &T::outIf, Need::Optional},
                    api::Field{"automatic", &T::automatic, Need::Optional},
                    api::Field{"filtering", &T::filtering, Need::Optional}};
}

// Where the gateway host was when gatewayd ran (<state-dir>/host.json): `--cleanup` acts there
// and nowhere else, wherever it is started from.
struct HostRecord {
  std::string netns;        // --netns; "" = gatewayd's own namespace
  uint64_t netnsCookie = 0; // SO_NETNS_COOKIE: never reused, unlike a name or an inode
  std::string uplink;
  std::string bootId; // /proc/sys/kernel/random/boot_id at that start; "" before it was kept

  bool operator==(const HostRecord&) const = default;
};
constexpr auto fieldsOf(const HostRecord*) {
  using T = HostRecord;
  return std::tuple{api::Field{"netns", &T::netns}, api::Field{"netnsCookie", &T::netnsCookie},
                    api::Field{"uplink", &T::uplink},
                    api::Field{"bootId", &T::bootId, api::Need::Optional}};
}

// nullopt when there is no host.json (a state from before it was written, or none).
Result<std::optional<HostRecord>> loadHostRecord(const std::string& dir);

struct State {
  std::vector<BridgeRecord> bridges;
  std::vector<NamespaceRecord> namespaces;
  std::vector<ExposeRecord> exposes;
  std::vector<MasqueradeRecord> masquerades;
  uint32_t nextRuleId = 1;

  NamespaceRecord* findNamespace(std::string_view name);
  BridgeRecord* findBridge(std::string_view name);
};

std::string toJson(const State& state);
// Errors name what is wrong in the text; `origin` (a file name) prefixes them.
Result<State> fromJson(std::string_view text, const std::string& origin);

// Loads <dir>/state.json and replays <dir>/state.journal onto it; missing files are an empty
// state; a corrupt one is an error naming the file (the previous good copy stays in
// state.json.bak).
Result<State> loadState(const std::string& dir);
// Writes state.json atomically (temp file, fsync, the old file kept as state.json.bak,
// rename, fsync dir) and drops the journal it replaces.
Status saveState(const std::string& dir, const State& state);

// Where a changed state is made durable (StateStore; a fake in unit tests).
class StateSink {
public:
  virtual ~StateSink() = default;
  // On error nothing of `state` is durable: the caller undoes its change.
  virtual Status commit(const State& state) = 0;
};

// The state on disk: the snapshot state.json plus state.journal, one line per commit with
// the records that changed since, each with a CRC-32 and a sequence number (state.json names
// the last line it holds), so that damage anywhere but a torn last line is seen. A commit appends and fdatasyncs one line, so its cost
// follows the change, not the number of rules; the snapshot is rewritten once the journal
// outgrows it, on load when an earlier run left a journal, and on compact().
class StateStore final : public StateSink {
public:
  // `recover`: a damaged journal (a checksum, a gap, a line that does not apply) starts from
  // the last good line, logging every change it drops, instead of refusing to start.
  explicit StateStore(std::string dir, bool recover = false)
      : dir_(std::move(dir)), recover_(recover) {}

  Result<State> load();
  // Makes `state` durable; on error nothing of it is on disk.
  Status commit(const State& state) override;
  Status compact(const State& state);

  // The bpffs mount point gatewayd made (<dir>/bpffs.mount), so that a teardown, even by
  // another process after a crash, removes exactly what was mounted. "" when none.
  Status recordMount(const std::string& mountPoint);
  std::string recordedMount() const;
  Status recordHost(const HostRecord& host);

  // The journal size below which the snapshot is never rewritten.
  static constexpr uint64_t kMinJournalBytes = 256 * 1024;

private:
  Status append(std::string_view line);

  std::string dir_;
  State persisted_; // what the files hold
  UniqueFd journal_;
  uint64_t journalBytes_ = 0;
  uint64_t snapshotBytes_ = 0;
  uint64_t seq_ = 0; // the journal line last written: each carries the next number
  bool recover_ = false;
};

} // namespace gw
