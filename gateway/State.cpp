// SPDX-License-Identifier: MIT
#include "State.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "Fd.h"

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

template <class T>
Result<T> parseField(const json& j, const char* key, Result<T> (*parse)(std::string_view)) {
  if (!j.contains(key) || !j[key].is_string()) {
    return fail(std::string("missing or non-string field '") + key + "'");
  }
  return parse(j[key].get<std::string>());
}

Status writeFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
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

std::string toJson(const State& state) {
  json j;
  j["version"] = kStateVersion;
  j["nextRuleId"] = state.nextRuleId;
  j["bridges"] = json::array();
  for (const auto& b : state.bridges) {
    j["bridges"].push_back({{"name", b.name}, {"gateway", b.gateway.str()}});
  }
  j["namespaces"] = json::array();
  for (const auto& n : state.namespaces) {
    j["namespaces"].push_back({{"name", n.name},
                               {"wiring", n.wiring == Wiring::Bridge ? "bridge" : "p2p"},
                               {"bridge", n.bridge},
                               {"hostLink", n.hostLink},
                               {"address", n.address.str()},
                               {"hostAddress", n.hostAddress.str()}});
  }
  j["exposes"] = json::array();
  for (const auto& e : state.exposes) {
    j["exposes"].push_back({{"id", e.id},
                            {"proto", e.proto},
                            {"hostPort", e.hostPort},
                            {"hostPortEnd", e.hostPortEnd},
                            {"hostIp", e.hostIp},
                            {"target", e.target},
                            {"targetNs", e.targetNs},
                            {"targetAddr", e.targetAddr.str()},
                            {"targetPort", e.targetPort},
                            {"mode", e.mode},
                            {"proxyProtocol", e.proxyProtocol}});
  }
  j["masquerades"] = json::array();
  for (const auto& m : state.masquerades) {
    j["masquerades"].push_back(
        {{"source", m.source.str()}, {"outIf", m.outIf}, {"automatic", m.automatic}});
  }
  return j.dump(2) + "\n";
}

Result<State> fromJson(std::string_view text, const std::string& origin) {
  auto bad = [&](const std::string& what) { return fail(origin + ": " + what); };
  json j = json::parse(text, nullptr, false);
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
    for (const auto& b : j.at("bridges")) {
      auto gw = parseField<IpPrefix>(b, "gateway", IpPrefix::parse);
      if (!gw) {
        return bad("bridge: " + gw.error().str());
      }
      s.bridges.push_back({b.at("name").get<std::string>(), *gw});
    }
    for (const auto& n : j.at("namespaces")) {
      NamespaceRecord r;
      r.name = n.at("name").get<std::string>();
      r.wiring = n.at("wiring").get<std::string>() == "p2p" ? Wiring::PointToPoint : Wiring::Bridge;
      r.bridge = n.at("bridge").get<std::string>();
      r.hostLink = n.at("hostLink").get<std::string>();
      auto addr = parseField<IpPrefix>(n, "address", IpPrefix::parse);
      auto host = parseField<IpPrefix>(n, "hostAddress", IpPrefix::parse);
      if (!addr || !host) {
        return bad("namespace " + r.name + ": " + (!addr ? addr.error() : host.error()).str());
      }
      r.address = *addr;
      r.hostAddress = *host;
      s.namespaces.push_back(std::move(r));
    }
    for (const auto& e : j.at("exposes")) {
      ExposeRecord r;
      auto id = uintField<uint32_t>(e, "id");
      auto hostPort = uintField<uint16_t>(e, "hostPort");
      auto hostPortEnd = uintField<uint16_t>(e, "hostPortEnd");
      auto targetPort = uintField<uint16_t>(e, "targetPort");
      for (const auto* f : {&hostPort, &hostPortEnd, &targetPort}) {
        if (!*f) {
          return bad("expose: " + f->error().message);
        }
      }
      if (!id) {
        return bad("expose: " + id.error().message);
      }
      r.id = *id;
      r.proto = e.at("proto").get<std::string>();
      r.hostPort = *hostPort;
      r.hostPortEnd = *hostPortEnd;
      r.hostIp = e.at("hostIp").get<std::string>();
      r.target = e.at("target").get<std::string>();
      r.targetNs = e.at("targetNs").get<std::string>();
      auto addr = parseField<IpAddress>(e, "targetAddr", IpAddress::parse);
      if (!addr) {
        return bad("expose " + std::to_string(r.id) + ": " + addr.error().str());
      }
      r.targetAddr = *addr;
      r.targetPort = *targetPort;
      r.mode = e.value("mode", "auto");
      r.proxyProtocol = e.value("proxyProtocol", "");
      s.exposes.push_back(std::move(r));
    }
    for (const auto& m : j.at("masquerades")) {
      auto src = parseField<IpPrefix>(m, "source", IpPrefix::parse);
      if (!src) {
        return bad("masquerade: " + src.error().str());
      }
      s.masquerades.push_back({*src, m.at("outIf").get<std::string>(), m.value("automatic", false)});
    }
  } catch (const json::exception& e) {
    return bad(std::string("bad field: ") + e.what());
  }
  return s;
}

Result<State> loadState(const std::string& dir) {
  std::string path = dir + "/state.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return State{};
  }
  std::ifstream in(path);
  if (!in) {
    return fail("cannot read state file " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto state = fromJson(ss.str(), "state file " + path);
  if (!state) {
    return fail(state.error().message + "; the last good copy is " + path +
                ".bak (inspect it, then move it to state.json to restore)");
  }
  return state;
}

Status saveState(const std::string& dir, const State& state) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return fail("create state directory " + dir + ": " + ec.message());
  }
  std::string path = dir + "/state.json";
  std::string tmp = path + ".tmp";
  if (auto w = writeFile(tmp, toJson(state)); !w) {
    return w;
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
  UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd) {
    ::fsync(dirFd.get());
  }
  return {};
}

} // namespace gw
