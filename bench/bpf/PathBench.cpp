// SPDX-License-Identifier: MIT
// With `repeat` the kernel runs the program again and again on ONE buffer, so from the second
// run on it sees its own output. Established paths are made a fixed point: besides the real
// flow (created by its first packet, as in production) we install a "pong" entry keyed by the
// translated tuple that translates it back, so every run is an established lookup + peer
// lookup + rewrite (A -> B -> A ...). First packets cannot be a fixed point: each is run with
// repeat=1 on a fresh flow (a new source port), and the flow deleted afterwards.
#include "bench/bpf/PathBench.h"

#include <array>
#include <functional>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>

#include "bench/bpf/Topology.h"

namespace gw::bench {
namespace {

using test::kTcpAck;
using test::kTcpSyn;
using test::tcpFrame;

enum class Kind { Pass, Miss, Established, First };

struct Case {
  std::string path;
  Prog prog;
  Kind kind;
  Bytes in;         // Pass/Miss/Established
  Bytes translated; // Established: `in` after one run
  gw_reason reason; // counted once per run; GW_REASON_MAX: nothing counted (XDP miss)
  // First: the frame of sample i, what it becomes, and the flow's two keys (deleted after).
  std::function<Bytes(uint32_t)> firstIn;
  std::function<Bytes(uint32_t)> firstOut;
  std::function<std::array<gw_ct_key, 2>(uint32_t)> firstKeys;
};

using Reasons = std::array<uint64_t, GW_REASON_MAX>;

Reasons readReasons(const BpfLoader& l) {
  Reasons r{};
  for (int i = 0; i < GW_REASON_MAX; ++i) {
    r[i] = l.reason(static_cast<gw_reason>(i));
  }
  return r;
}

// Every reason counter moved by exactly what `want` says (others by nothing).
void checkReasons(const Reasons& before, const Reasons& after, const Reasons& want,
                  const std::string& what, std::vector<std::string>& failures) {
  for (int i = 0; i < GW_REASON_MAX; ++i) {
    uint64_t got = after[i] - before[i];
    if (got != want[i]) {
      failures.push_back(what + ": reason " + std::to_string(i) + " moved by " +
                         std::to_string(got) + ", expected " + std::to_string(want[i]));
    }
  }
}

uint32_t expectedVerdict(Prog prog) { return isXdp(prog) ? XDP_PASS : TC_ACT_OK; }

std::string caseName(const Case& c) { return c.path + " (" + progName(c.prog) + ")"; }

void installPong(const BpfLoader& l, const gw_ct_key& key, const gw_ct_entry& e,
                 std::vector<std::string>& failures) {
  if (bpf_map_update_elem(l.mapFd("gw_ct_v4"), &key, &e, BPF_ANY) != 0) {
    failures.push_back("installing a pong conntrack entry failed");
  }
}

// One round of one fixed-point case: returns ns/packet, records failures.
double measureRepeat(const BpfLoader& l, const Case& c, uint32_t repeat,
                     std::vector<std::string>& failures) {
  Reasons before = readReasons(l);
  auto r = l.run(c.prog, c.in, repeat);
  if (!r) {
    failures.push_back(caseName(c) + ": " + r.error().str());
    return 0;
  }
  Reasons want{};
  if (c.reason != GW_REASON_MAX) {
    want[c.reason] = repeat;
  }
  checkReasons(before, readReasons(l), want, caseName(c), failures);
  if (r->verdict != expectedVerdict(c.prog)) {
    failures.push_back(caseName(c) + ": verdict " + std::to_string(r->verdict));
  }
  // an even number of ping-pong runs ends where it started
  if (r->out != c.in) {
    failures.push_back(caseName(c) + ": output after " + std::to_string(repeat) +
                       " runs is not the input frame");
  }
  return r->durationNs;
}

// The first-packet case: repeat=1 on a fresh flow per sample; median kernel duration.
double measureFirst(const BpfLoader& l, const Case& c, uint32_t samples,
                    std::vector<std::string>& failures) {
  int ct = l.mapFd("gw_ct_v4");
  std::vector<double> ns;
  ns.reserve(samples);
  Reasons before = readReasons(l);
  for (uint32_t i = 0; i < samples; ++i) {
    auto r = l.run(c.prog, c.firstIn(i), 1);
    if (!r) {
      failures.push_back(caseName(c) + ": " + r.error().str());
      return 0;
    }
    if (r->verdict != expectedVerdict(c.prog) || r->out != c.firstOut(i)) {
      failures.push_back(caseName(c) + ": sample " + std::to_string(i) +
                         " not translated as expected");
      return 0;
    }
    ns.push_back(r->durationNs);
    for (const gw_ct_key& k : c.firstKeys(i)) {
      bpf_map_delete_elem(ct, &k);
    }
  }
  Reasons want{};
  want[GW_REASON_CT_CREATED] = samples;
  want[c.reason] = samples;
  checkReasons(before, readReasons(l), want, caseName(c), failures);
  return median(std::move(ns));
}

// The pass-through program with repeat=1 (on the same frame): the clock-read overhead that a
// repeat=1 figure carries beyond a repeat=N one.
double measurePassR1(const BpfLoader& l, const Bytes& frame, uint32_t samples,
                     std::vector<std::string>& failures) {
  std::vector<double> ns;
  ns.reserve(samples);
  for (uint32_t i = 0; i < samples; ++i) {
    auto r = l.run(Prog::PassTc, frame, 1);
    if (!r) {
      failures.push_back(std::string("gw_pass_tc repeat=1: ") + r.error().str());
      return 0;
    }
    ns.push_back(r->durationNs);
  }
  return median(std::move(ns));
}

std::vector<Case> makeCases(const BpfLoader& l, const Topology& t,
                            std::vector<std::string>& failures) {
  std::vector<Case> cases;
  auto tcp = [](uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, uint8_t flags) {
    return tcpFrame(ip(s, d), sp, dp, flags, kPayload);
  };
  auto fixedPoint = [&](std::string path, Prog prog, Bytes in, Bytes out, gw_reason reason) {
    cases.push_back(Case{std::move(path), prog, Kind::Established, std::move(in),
                         std::move(out), reason, {}, {}, {}});
  };
  auto plain = [&](std::string path, Prog prog, Kind kind, Bytes in, gw_reason reason) {
    cases.push_back(Case{std::move(path), prog, kind, in, in, reason, {}, {}, {}});
  };

  // The real flows, opened by their first packet (checked against the expected translation).
  auto open = [&](Prog prog, const Bytes& in, const Bytes& want, const char* what) {
    auto r = l.run(prog, in, 1);
    if (!r || r->out != want) {
      failures.push_back(std::string(what) + ": first packet not translated as expected");
    }
  };
  const uint16_t cport = 40001, nport = 40002;
  open(Prog::UplinkIngress, tcp(t.client, t.uplink, cport, kExposedPort, kTcpSyn),
       tcp(t.client, t.ns1, cport, kTargetPort, kTcpSyn), "DNAT flow");
  open(Prog::UplinkEgress, tcp(t.ns1, t.remote, nport, 443, kTcpSyn),
       tcp(t.uplink, t.remote, nport, 443, kTcpSyn), "SNAT flow");
  gw_ct_key dnatOrig = ctKey(t.client, t.uplink, cport, kExposedPort, kTcp);
  gw_ct_key dnatReply = ctKey(t.ns1, t.client, kTargetPort, cport, kTcp);
  gw_ct_key snatOrig = ctKey(t.ns1, t.remote, nport, 443, kTcp);
  gw_ct_key snatReply = ctKey(t.remote, t.uplink, 443, nport, kTcp);
  // Pong entries: the translated tuple translates back (peer: a live key, as a real flow has).
  installPong(l, ctKey(t.client, t.ns1, cport, kTargetPort, kTcp),
              ctEntry(dnatOrig, dnatOrig, GW_CT_DIR_ORIG, GW_NAT_DNAT, kRule), failures);
  installPong(l, ctKey(t.uplink, t.client, kExposedPort, cport, kTcp),
              ctEntry(dnatReply, dnatReply, GW_CT_DIR_REPLY, GW_NAT_DNAT, kRule), failures);
  installPong(l, ctKey(t.uplink, t.remote, nport, 443, kTcp),
              ctEntry(snatOrig, snatOrig, GW_CT_DIR_ORIG, GW_NAT_SNAT, 0), failures);
  installPong(l, ctKey(t.remote, t.ns1, 443, nport, kTcp),
              ctEntry(snatReply, snatReply, GW_CT_DIR_REPLY, GW_NAT_SNAT, 0), failures);

  Bytes anyFrame = tcp(t.client, t.uplink, 40009, 9999, kTcpAck);
  plain("pass-through", Prog::PassTc, Kind::Pass, anyFrame, GW_REASON_PASS_NO_MATCH);
  plain("pass-through", Prog::PassXdp, Kind::Pass, anyFrame, GW_REASON_PASS_NO_MATCH);

  Case dnatFirst{"DNAT first packet", Prog::UplinkIngress, Kind::First, {}, {},
                 GW_REASON_NAT_DNAT, {}, {}, {}};
  dnatFirst.firstIn = [=](uint32_t i) {
    return tcp(t.client, t.uplink, static_cast<uint16_t>(20000 + i), kExposedPort, kTcpSyn);
  };
  dnatFirst.firstOut = [=](uint32_t i) {
    return tcp(t.client, t.ns1, static_cast<uint16_t>(20000 + i), kTargetPort, kTcpSyn);
  };
  dnatFirst.firstKeys = [=](uint32_t i) {
    auto sp = static_cast<uint16_t>(20000 + i);
    return std::array{ctKey(t.client, t.uplink, sp, kExposedPort, kTcp),
                      ctKey(t.ns1, t.client, kTargetPort, sp, kTcp)};
  };
  cases.push_back(dnatFirst);

  Bytes dnatIn = tcp(t.client, t.uplink, cport, kExposedPort, kTcpAck);
  Bytes dnatOut = tcp(t.client, t.ns1, cport, kTargetPort, kTcpAck);
  fixedPoint("DNAT established", Prog::UplinkIngress, dnatIn, dnatOut, GW_REASON_NAT_DNAT);
  fixedPoint("DNAT established", Prog::UplinkXdp, dnatIn, dnatOut, GW_REASON_NAT_DNAT);
  Bytes replyIn = tcp(t.ns1, t.client, kTargetPort, cport, kTcpAck);
  Bytes replyOut = tcp(t.uplink, t.client, kExposedPort, cport, kTcpAck);
  fixedPoint("reverse DNAT", Prog::EndpointIngress, replyIn, replyOut, GW_REASON_NAT_REPLY);
  fixedPoint("reverse DNAT", Prog::UplinkEgress, replyIn, replyOut, GW_REASON_NAT_REPLY);

  Case snatFirst{"SNAT first packet", Prog::UplinkEgress, Kind::First, {}, {},
                 GW_REASON_NAT_SNAT, {}, {}, {}};
  snatFirst.firstIn = [=](uint32_t i) {
    return tcp(t.ns1, t.remote, static_cast<uint16_t>(20000 + i), 443, kTcpSyn);
  };
  snatFirst.firstOut = [=](uint32_t i) {
    return tcp(t.uplink, t.remote, static_cast<uint16_t>(20000 + i), 443, kTcpSyn);
  };
  snatFirst.firstKeys = [=](uint32_t i) {
    auto sp = static_cast<uint16_t>(20000 + i);
    return std::array{ctKey(t.ns1, t.remote, sp, 443, kTcp),
                      ctKey(t.remote, t.uplink, 443, sp, kTcp)};
  };
  cases.push_back(snatFirst);

  fixedPoint("SNAT established", Prog::UplinkEgress, tcp(t.ns1, t.remote, nport, 443, kTcpAck),
             tcp(t.uplink, t.remote, nport, 443, kTcpAck), GW_REASON_NAT_SNAT);
  Bytes rsIn = tcp(t.remote, t.uplink, 443, nport, kTcpAck);
  Bytes rsOut = tcp(t.remote, t.ns1, 443, nport, kTcpAck);
  fixedPoint("reverse SNAT", Prog::UplinkIngress, rsIn, rsOut, GW_REASON_NAT_REPLY);
  fixedPoint("reverse SNAT", Prog::UplinkXdp, rsIn, rsOut, GW_REASON_NAT_REPLY);

  // Misses: a port nobody exposed; the host's own traffic out; a namespace's new masquerade
  // flow at its veth (the uplink's job); XDP on anything without a flow (counts nothing).
  plain("miss: unexposed port", Prog::UplinkIngress, Kind::Miss, anyFrame,
        GW_REASON_PASS_NO_MATCH);
  plain("miss: unexposed port", Prog::UplinkXdp, Kind::Miss, anyFrame, GW_REASON_MAX);
  plain("miss: host's own traffic", Prog::UplinkEgress, Kind::Miss,
        tcp(t.uplink, t.client, 22, 40009, kTcpAck), GW_REASON_PASS_NO_MATCH);
  plain("miss: new flow at the veth", Prog::EndpointIngress, Kind::Miss,
        tcp(t.ns2, t.remote, 40010, 443, kTcpSyn), GW_REASON_PASS_NO_MATCH);
  return cases;
}

// The first run of each fixed point translates as expected and the pong comes back.
void checkFixedPoints(const BpfLoader& l, const std::vector<Case>& cases,
                      std::vector<std::string>& failures) {
  for (const Case& c : cases) {
    if (c.kind != Kind::Established) {
      continue;
    }
    auto ping = l.run(c.prog, c.in, 1);
    auto pong = l.run(c.prog, c.translated, 1);
    if (!ping || !pong || ping->out != c.translated || pong->out != c.in) {
      failures.push_back(caseName(c) + ": not a fixed point (translation or pong differs)");
    }
  }
}

} // namespace

Section runPathBench(const BpfLoader& l, const PathOptions& o) {
  Section s;
  Topology t;
  uint32_t repeat = (o.repeat + 1) & ~1u; // even: the ping-pong ends on the input frame
  std::vector<Case> cases = makeCases(l, t, s.failures);
  checkFixedPoints(l, cases, s.failures);

  // Interleaved rounds: every case once per round, so drift and steal hit all alike.
  std::vector<std::vector<double>> ns(cases.size());
  std::vector<double> overhead; // pass_tc repeat=1 minus pass_tc repeat=N, per round
  Bytes passFrame = cases[0].in;
  for (int round = 0; round < o.runs; ++round) {
    double passTc = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      double v = c.kind == Kind::First ? measureFirst(l, c, o.firstSamples, s.failures)
                                       : measureRepeat(l, c, repeat, s.failures);
      ns[i].push_back(v);
      if (c.prog == Prog::PassTc) {
        passTc = v;
      }
    }
    overhead.push_back(measurePassR1(l, passFrame, o.firstSamples, s.failures) - passTc);
  }
  double clockOverhead = median(overhead);

  double passNs[2] = {0, 0}; // tc, xdp
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].kind == Kind::Pass) {
      passNs[isXdp(cases[i].prog)] = median(ns[i]);
    }
  }

  s.markdown += "| path | program | hook | ns/packet (median) | min–max over rounds | "
                "× pass-through | goal ≤ 2× |\n|---|---|---|---:|---:|---:|---|\n";
  s.json = nlohmann::json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::vector<double> v = ns[i];
    if (c.kind == Kind::First) {
      for (double& x : v) {
        x -= clockOverhead;
      }
    }
    double med = median(v);
    double ratio = passNs[isXdp(c.prog)] > 0 ? med / passNs[isXdp(c.prog)] : 0;
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    std::string goal = c.kind == Kind::Established ? (ratio <= 2.0 ? "yes" : "**no**") : "";
    s.markdown += "| " + c.path + " | `" + progName(c.prog) + "` | " +
                  (isXdp(c.prog) ? "XDP" : "tc") + " | " + fmt(med) + " | " + fmt(*lo) + "–" +
                  fmt(*hi) + " | " + fmt(ratio, 2) + " | " + goal + " |\n";
    s.json.push_back({{"path", c.path},
                      {"program", progName(c.prog)},
                      {"hook", isXdp(c.prog) ? "xdp" : "tc"},
                      {"method", c.kind == Kind::First ? "repeat=1 per fresh flow, minus "
                                                         "clock overhead"
                                                       : "repeat (fixed point)"},
                      {"ns_per_packet", med},
                      {"ratio_to_passthrough", ratio},
                      {"rounds_ns", v}});
  }
  s.markdown += "\nrepeat = " + std::to_string(repeat) + " per round for fixed points; first "
                "packets: " + std::to_string(o.firstSamples) + " fresh flows per round at "
                "repeat=1, median, minus the clock overhead of a repeat=1 run (" +
                fmt(clockOverhead) + " ns: `gw_pass_tc` at repeat=1 minus at repeat=N).\n";
  s.json = nlohmann::json{{"rows", s.json},
                          {"repeat", repeat},
                          {"rounds", o.runs},
                          {"first_samples", o.firstSamples},
                          {"clock_overhead_ns", clockOverhead}};
  return s;
}

} // namespace gw::bench
