// SPDX-License-Identifier: MIT
// Independent readers of what gatewayd keeps, for tests that hold it to agreeing with itself:
// the state files (state.json + state.journal, read without gatewayd's code: the files are the
// contract), the pinned maps (bpftool), gwctl's listings, and a fixture that checks they all
// say the same (CrashTest after each kill, StressTest after many clients).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "tests/control/ServiceFixture.h"

namespace gw::test {

// `bpftool -j map dump pinned PATH`: the map's entries, independent of gatewayd's own reader.
nlohmann::json dumpPinned(const std::string& path);

// An expose map entry: (proto, host address or "", host port) -> (target, port, rule id).
using ExposeKey = std::tuple<int, std::string, int>;
using ExposeValue = std::tuple<std::string, int, uint32_t>;
using ExposeMap = std::map<ExposeKey, ExposeValue>;

// The entries of one family (GW_AF_INET 2, GW_AF_INET6 10) of the pinned gw_expose_v4 under
// `bpffs` (which holds both families).
ExposeMap exposeMapAt(const std::string& bpffs, int family = 2);
// Masquerade map (both families): source prefix -> out ifindex.
std::map<std::string, int> masqueradeMapAt(const std::string& bpffs);
// Endpoint maps (gw_endpoint_v4 and _v6): a namespace's address -> the ifindex of its veth's
// gateway end.
std::map<std::string, int> endpointMapAt(const std::string& bpffs);
// Local address maps (both families): the gateway host's addresses that exposes on any
// address answer on.
std::set<std::string> localMapAt(const std::string& bpffs);
// gw_config6_map: the uplink's IPv6 address and the IPv6 hairpin address ("::" when unset).
std::pair<std::string, std::string> config6At(const std::string& bpffs);
// The interfaces gatewayd recorded as carrying its programs (gw_dp_attach, ifindex -> flags).
std::set<int> attachRecordAt(const std::string& bpffs);

// The expose map entries of one family (2, 10) that state.json's exposes make (each port of a
// range its own entry).
ExposeMap exposeMapOf(const nlohmann::json& state, int family = 2);
// The expose map that `gwctl list -j` describes (each port of a range its own entry).
ExposeMap exposeMapOfList(const nlohmann::json& list);

// `gwctl list -j` as comparable rows: id -> "proto hostIp:ports -> targetAddr:ports".
std::map<uint32_t, std::string> listRows(const nlohmann::json& list);
// The same rows from the state's exposes.
std::map<uint32_t, std::string> stateRows(const nlohmann::json& state);

// The state as a start reads it: state.json with state.journal's lines replayed onto it (a
// line puts records, replacing by key, and deletes keys).
nlohmann::json stateIn(const std::string& dir);

std::string exposeName(const ExposeKey& k);
std::string idName(const uint32_t& id);

// The first few differences of two maps, for a failure message that stays readable.
template <class K, class V>
std::string diff(const std::map<K, V>& want, const std::map<K, V>& got,
                 const std::function<std::string(const K&)>& name) {
  std::ostringstream os;
  int shown = 0;
  size_t missing = 0;
  size_t extra = 0;
  size_t differ = 0;
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      ++missing;
      if (shown++ < 5) {
        os << "\n  missing " << name(k);
      }
    } else if (it->second != v) {
      ++differ;
      if (shown++ < 5) {
        os << "\n  differs " << name(k);
      }
    }
  }
  for (const auto& [k, v] : got) {
    if (!want.contains(k)) {
      ++extra;
      if (shown++ < 5) {
        os << "\n  extra " << name(k);
      }
    }
  }
  return std::to_string(missing) + " missing, " + std::to_string(extra) + " extra, " +
         std::to_string(differ) + " different" + os.str();
}

// A gateway host whose gatewayd can be checked against the kernel and its own files.
class StateOracleFixture : public ServiceFixture {
protected:
  std::string bpffs() const { return dir_ + "/bpffs"; }

  // `gwctl list`, `ns list` and `masquerade list`, the state files, the pinned maps, the
  // attachment record, tc, the namespaces and the gateway host's links all say the same.
  // Returns the state as its files hold it.
  nlohmann::json checkAgreement();
};

} // namespace gw::test
