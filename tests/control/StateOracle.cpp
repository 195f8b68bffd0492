// SPDX-License-Identifier: MIT
#include "tests/control/StateOracle.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>

#include "base/Ip.h"

namespace gw::test {

using nlohmann::json;

namespace {

std::string v4(const json& addr) {
  const auto& b = addr["bytes"];
  return std::to_string(b[0].get<int>()) + "." + std::to_string(b[1].get<int>()) + "." +
         std::to_string(b[2].get<int>()) + "." + std::to_string(b[3].get<int>());
}

// An IPv6 address from bpftool's union gw_addr (its 16 "bytes").
std::string v6(const json& addr) {
  IpAddress a;
  a.family = AF_INET6;
  for (size_t i = 0; i < 16; ++i) {
    a.bytes[i] = static_cast<uint8_t>(addr["bytes"][i].get<int>());
  }
  return a.str();
}

// A key's address in its family (GW_AF_INET6 = 10).
std::string addrOf(const json& addr, int family) {
  return family == 10 ? v6(addr) : v4(addr);
}

// A little-endian u32 from bpftool's hex bytes (maps without BTF).
uint32_t hexU32(const json& bytes) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<uint32_t>(std::stoul(bytes[i].get<std::string>(), nullptr, 16));
  }
  return v;
}

std::string network(const std::string& cidr) {
  auto p = IpPrefix::parse(cidr);
  return p ? p->network().str() : cidr;
}

} // namespace

json dumpPinned(const std::string& path) {
  auto r = run({"bpftool", "-j", "map", "dump", "pinned", path}, std::chrono::seconds(60));
  EXPECT_TRUE(r.ok()) << "bpftool map dump " << path << ": " << r.err;
  auto j = json::parse(r.out, nullptr, false);
  return j.is_array() ? j : json::array();
}

ExposeMap exposeMapAt(const std::string& bpffs, int family) {
  ExposeMap out;
  for (const auto& e : dumpPinned(bpffs + "/gw_expose_v4")) {
    const auto& k = e["formatted"]["key"];
    const auto& v = e["formatted"]["value"];
    if (k["family"].get<int>() != family) {
      continue;
    }
    std::string host = addrOf(k["daddr"], family);
    if (host == "0.0.0.0" || host == "::") {
      host = "";
    }
    out[{k["proto"].get<int>(), host, ntohs(k["dport"].get<uint16_t>())}] = {
        addrOf(v["target_addr"], family), ntohs(v["target_port"].get<uint16_t>()),
        v["rule_id"].get<uint32_t>()};
  }
  return out;
}

std::map<std::string, int> masqueradeMapAt(const std::string& bpffs) {
  std::map<std::string, int> out;
  for (const auto& e : dumpPinned(bpffs + "/gw_masq_v4")) {
    const auto& k = e["formatted"]["key"];
    int length = k["prefixlen"].get<int>() - 32; // GW_MASQ_PREFIXLEN
    out[addrOf(k["addr"], k["family"].get<int>()) + "/" + std::to_string(length)] =
        e["formatted"]["value"]["out_ifindex"].get<int>();
  }
  return out;
}

std::map<std::string, int> endpointMapAt(const std::string& bpffs) {
  std::map<std::string, int> out;
  for (const auto& e : dumpPinned(bpffs + "/gw_endpoint_v4")) {
    out[v4(e["formatted"]["key"])] = e["formatted"]["value"]["ifindex"].get<int>();
  }
  for (const auto& e : dumpPinned(bpffs + "/gw_endpoint_v6")) {
    out[v6(e["formatted"]["key"])] = e["formatted"]["value"]["ifindex"].get<int>();
  }
  return out;
}

std::set<std::string> localMapAt(const std::string& bpffs) {
  std::set<std::string> out;
  for (const auto& e : dumpPinned(bpffs + "/gw_local_v4")) {
    out.insert(v4(e["formatted"]["key"]));
  }
  for (const auto& e : dumpPinned(bpffs + "/gw_local_v6")) {
    out.insert(v6(e["formatted"]["key"]));
  }
  return out;
}

std::pair<std::string, std::string> config6At(const std::string& bpffs) {
  for (const auto& e : dumpPinned(bpffs + "/gw_config6_map")) {
    const auto& v = e["formatted"]["value"];
    return {v6(v["uplink_addr"]), v6(v["hairpin_addr"])};
  }
  return {};
}

std::set<int> attachRecordAt(const std::string& bpffs) {
  std::set<int> out;
  for (const auto& e : dumpPinned(bpffs + "/gw_dp_attach")) {
    out.insert(static_cast<int>(hexU32(e["key"])));
  }
  return out;
}

std::string exposeName(const ExposeKey& k) {
  return (std::get<0>(k) == 17 ? "udp " : "tcp ") +
         (std::get<1>(k).empty() ? std::string("*") : std::get<1>(k)) + ":" +
         std::to_string(std::get<2>(k));
}

ExposeMap exposeMapOf(const json& state, int family) {
  bool v6 = family == 10;
  ExposeMap out;
  for (const auto& e : state.value("exposes", json::array())) {
    int proto = e["proto"].get<std::string>() == "udp" ? 17 : 6;
    std::string host = e.value("hostIp", json()).is_string() ? e["hostIp"].get<std::string>() : "";
    // A record without "family" is from before IPv6: IPv4 alone.
    std::string families = e.value("family", "4");
    if (families != "both" && families != (v6 ? "6" : "4")) {
      continue;
    }
    // The target of this family: eBPF translates within one.
    std::string target = e["targetAddr"].get<std::string>();
    if ((target.find(':') != std::string::npos) != v6) {
      target = v6 ? e.value("targetAddr6", "") : "";
    }
    if (target.empty() || e.value("mode", "auto") == "proxy" ||
        (!host.empty() && (host.find(':') != std::string::npos) != v6)) {
      continue;
    }
    int first = e["hostPort"].get<int>();
    int last = e["hostPortEnd"].get<int>();
    for (int p = first; p <= last; ++p) {
      out[{proto, host, p}] = {target, e["targetPort"].get<int>() + (p - first),
                               e["id"].get<uint32_t>()};
    }
  }
  return out;
}

ExposeMap exposeMapOfList(const json& list) {
  // "6000" or "6000-6001"
  auto range = [](const json& text) {
    std::string s = text.get<std::string>();
    size_t dash = s.find('-');
    int first = std::stoi(s.substr(0, dash));
    return std::pair{first, dash == std::string::npos ? first : std::stoi(s.substr(dash + 1))};
  };
  ExposeMap out;
  for (const auto& e : list) {
    int proto = e["proto"].get<std::string>() == "udp" ? 17 : 6;
    std::string host = e["hostIp"].get<std::string>() == "*" ? "" : e["hostIp"].get<std::string>();
    auto [first, last] = range(e["hostPort"]);
    int target = range(e["targetPort"]).first;
    for (int p = first; p <= last; ++p) {
      out[{proto, host, p}] = {e["targetAddr"].get<std::string>(), target + (p - first),
                               e["id"].get<uint32_t>()};
    }
  }
  return out;
}

std::map<uint32_t, std::string> listRows(const json& list) {
  std::map<uint32_t, std::string> out;
  for (const auto& e : list) {
    out[e["id"].get<uint32_t>()] = e["proto"].get<std::string>() + " " +
                                   e["hostIp"].get<std::string>() + ":" +
                                   e["hostPort"].get<std::string>() + " -> " +
                                   e["targetAddr"].get<std::string>() + ":" +
                                   e["targetPort"].get<std::string>();
  }
  return out;
}

std::map<uint32_t, std::string> stateRows(const json& state) {
  std::map<uint32_t, std::string> out;
  auto range = [](int first, int last) {
    return first == last ? std::to_string(first)
                         : std::to_string(first) + "-" + std::to_string(last);
  };
  for (const auto& e : state.value("exposes", json::array())) {
    int first = e["hostPort"].get<int>();
    int last = e["hostPortEnd"].get<int>();
    int target = e["targetPort"].get<int>();
    std::string host = e.value("hostIp", json()).is_string() ? e["hostIp"].get<std::string>() : "*";
    out[e["id"].get<uint32_t>()] = e["proto"].get<std::string>() + " " + host + ":" +
                                   range(first, last) + " -> " +
                                   e["targetAddr"].get<std::string>() + ":" +
                                   range(target, target + last - first);
  }
  return out;
}

json stateIn(const std::string& dir) {
  json state = json::object();
  if (std::filesystem::exists(dir + "/state.json")) {
    state = json::parse(readFile(dir + "/state.json"), nullptr, false);
    EXPECT_FALSE(state.is_discarded()) << "state.json is not JSON";
    if (state.is_discarded()) {
      return json::object();
    }
  }
  auto keyOf = [](const std::string& list, const json& r) -> std::string {
    if (list == "exposes") {
      return std::to_string(r["id"].get<uint32_t>());
    }
    if (list == "masquerades") {
      return r["source"].get<std::string>() + " " + r.value("outIf", "");
    }
    return r["name"].get<std::string>();
  };
  std::istringstream journal(readFile(dir + "/state.journal"));
  for (std::string line; std::getline(journal, line);) {
    auto change = json::parse(line.substr(std::min(line.find('{'), line.size())), nullptr, false);
    EXPECT_TRUE(change.is_object()) << "state.journal line: " << line;
    if (!change.is_object()) {
      continue;
    }
    for (const char* list : {"bridges", "namespaces", "exposes", "masquerades"}) {
      json& records = state[list];
      if (!records.is_array()) {
        records = json::array();
      }
      for (const auto& key : change.value("del", json::object()).value(list, json::array())) {
        for (size_t i = 0; i < records.size(); ++i) {
          if (keyOf(list, records[i]) == key.get<std::string>()) {
            records.erase(i);
            break;
          }
        }
      }
      for (const auto& r : change.value("put", json::object()).value(list, json::array())) {
        bool replaced = false;
        for (auto& old : records) {
          if (keyOf(list, old) == keyOf(list, r)) {
            old = r;
            replaced = true;
          }
        }
        if (!replaced) {
          records.push_back(r);
        }
      }
    }
  }
  return state;
}

std::string idName(const uint32_t& id) { return "rule " + std::to_string(id); }

json StateOracleFixture::checkAgreement() {
  json state = stateIn(dir_ + "/state");

  // Exposes: gwctl list, the state and the pinned expose map.
  auto list = gwctlJson({"list"});
  auto listed = listRows(list);
  auto saved = stateRows(state);
  EXPECT_EQ(listed.size(), saved.size()) << diff<uint32_t, std::string>(saved, listed, idName);
  EXPECT_TRUE(listed == saved) << diff<uint32_t, std::string>(saved, listed, idName);
  for (int family : {2, 10}) {
    auto pinned = exposeMapAt(bpffs(), family);
    auto wanted = exposeMapOf(state, family);
    std::string mapDiff = diff<ExposeKey, ExposeValue>(wanted, pinned, exposeName);
    EXPECT_EQ(pinned.size(), wanted.size()) << "expose map (family " << family
                                            << ") vs state: " << mapDiff;
    EXPECT_TRUE(pinned == wanted) << "expose map (family " << family << ") vs state: " << mapDiff;
  }

  // Namespaces, bridges and their links: what the state names, nothing more.
  std::set<std::string> names;
  std::set<std::string> links = {"lo", "up0"};
  std::map<std::string, int> masq;
  std::map<std::string, std::string> endpoints; // address -> host link
  for (const auto& n : state.value("namespaces", json::array())) {
    EXPECT_FALSE(n.value("pending", false)) << n.dump() << ": a start rolls back pending ones";
    names.insert(n["name"].get<std::string>());
    links.insert(n["hostLink"].get<std::string>());
    masq[network(n["address"].get<std::string>())] = 0;
    endpoints[IpPrefix::parse(n["address"].get<std::string>())->addr.str()] =
        n["hostLink"].get<std::string>();
    if (n.contains("address6")) {
      masq[network(n["address6"].get<std::string>())] = 0;
      endpoints[IpPrefix::parse(n["address6"].get<std::string>())->addr.str()] =
          n["hostLink"].get<std::string>();
    }
  }
  for (const auto& b : state.value("bridges", json::array())) {
    EXPECT_FALSE(b.value("pending", false)) << b.dump();
    links.insert(b["name"].get<std::string>());
  }
  for (const auto& m : state.value("masquerades", json::array())) {
    masq[network(m["source"].get<std::string>())] = 0;
  }
  std::set<std::string> netns;
  for (const auto& n : ipJson({"netns", "list"})) {
    std::string name = n.value("name", "");
    if (name.starts_with(prefix()) && name != gwh() && name != ext()) {
      netns.insert(name);
    }
  }
  EXPECT_EQ(netns, names) << "namespaces of this test vs the state's";
  std::set<std::string> present;
  std::map<std::string, int> ifindex;
  for (const auto& l : ipJson({"-n", gwh(), "link", "show"})) {
    present.insert(l["ifname"].get<std::string>());
    ifindex[l["ifname"].get<std::string>()] = l["ifindex"].get<int>();
  }
  EXPECT_EQ(present, links) << "links in the gateway host vs the state's";
  std::set<std::string> nsListed;
  for (const auto& n : gwctlJson({"ns", "list"})) {
    nsListed.insert(n["name"].get<std::string>());
    EXPECT_EQ(n["state"], "up") << n.dump();
  }
  EXPECT_EQ(nsListed, names) << "gwctl ns list vs the state";

  // Masquerade and endpoint maps, and where the programs are attached.
  EXPECT_EQ(masqueradeMapAt(bpffs()), masq) << "masquerade map vs the state";
  std::set<std::string> masqListed;
  for (const auto& m : gwctlJson({"masquerade", "list"})) {
    masqListed.insert(m["source"].get<std::string>());
  }
  std::set<std::string> masqWanted;
  for (const auto& [source, out] : masq) {
    masqWanted.insert(source);
  }
  EXPECT_EQ(masqListed, masqWanted) << "gwctl masquerade list vs the state";
  std::map<std::string, int> endpointsWanted;
  std::set<int> attachWanted = {ifindex["up0"]};
  for (const auto& [addr, link] : endpoints) {
    endpointsWanted[addr] = ifindex[link];
    attachWanted.insert(ifindex[link]);
  }
  EXPECT_EQ(endpointMapAt(bpffs()), endpointsWanted) << "endpoint map vs the state";
  EXPECT_EQ(attachRecordAt(bpffs()), attachWanted) << "recorded attachments vs the state";
  std::set<std::string> hostAddrs;
  for (const auto& link : ipJson({"-n", gwh(), "addr", "show"})) {
    for (const auto& a : link.value("addr_info", json::array())) {
      std::string local = a.value("local", "");
      // Not loopback, not link-local: what exposes on any address answer on.
      if (!local.empty() && !local.starts_with("127.") && local != "::1" &&
          !local.starts_with("fe80:")) {
        hostAddrs.insert(local);
      }
    }
  }
  EXPECT_EQ(localMapAt(bpffs()), hostAddrs) << "local address map vs the host's addresses";
  // A gw_ program on the hook, as a clsact filter or a tcx link.
  auto hasBpf = [&](const std::string& dev, const std::string& dir) {
    return tcHooked(gwh(), dev, dir == "ingress").has("gw_");
  };
  EXPECT_TRUE(hasBpf("up0", "ingress")) << "uplink tc ingress attached";
  EXPECT_TRUE(hasBpf("up0", "egress")) << "uplink tc egress attached";
  for (const auto& [addr, link] : endpoints) {
    EXPECT_TRUE(hasBpf(link, "ingress")) << link << ": endpoint program attached";
  }
  return state;
}

} // namespace gw::test
