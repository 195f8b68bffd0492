#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The lab comparison: one command, one topology, every setup measured in the same run.

    bash bench/lab.sh [options]          # builds (deploy/build.sh), then runs this
    python3 bench/lab.py [options]       # uses an existing build (--build-dir, default build/)

Builds the tutorial topology in throwaway namespaces gwb<pid>{x,g,s1,s2} (external client,
gateway host, two servers; see lablib.Topology), rebuilt fresh for every (setup, repeat) so no
conntrack entry, offload change or BPF program of one setup leaks into the next. Repeats are
interleaved across setups (the order rotates each repeat); figures are medians; every figure is
also given as a ratio to iptables from the same run. IPv6 rows (tcp_dnat6, tcp_masq6, udp_dnat6,
conn6) run on the same topology in the same run, with ratios to ip6tables and to the setup's own
IPv4 figures. Output: bench/results/<date>/ (results.md,
results.json, PNG charts, gatewayd logs) and a copy of results.md as bench/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib as L  # noqa: E402

TESTS = ["tcp_dnat", "tcp_masq", "udp_dnat", "conn", "latency",
         "tcp_dnat6", "tcp_masq6", "udp_dnat6", "conn6"]
# The IPv6 tests: the IPv4 test of the same name, to the uplink's / the outside's IPv6 address.
V6_OF = {"tcp_dnat6": "tcp_dnat", "tcp_masq6": "tcp_masq", "udp_dnat6": "udp_dnat",
         "conn6": "conn"}


class NotAvailable(Exception):
    pass


class Setup:
    name = ""
    makes_servers = False  # the setup makes the server namespaces itself (gatewayd)
    label = ""
    masq = True  # serves the masquerade direction (server namespace -> outside)
    udp = True   # forwards UDP
    v6 = True    # has IPv6 rows (the IPv6 tests apply)
    v6_error = None  # why the IPv6 tests cannot run in this start (reported as their error)
    device = None  # a device setting on every veth (--device), e.g. "gro"
    target = L.UPLINK_ADDR
    target6 = L.UPLINK_ADDR6
    ports = {"http": L.HOST_HTTP, "iperf": L.HOST_IPERF, "udp": L.HOST_UDP}

    def start(self, ctx):
        pass

    def stop(self, ctx):
        pass


class Routing(Setup):
    name, label = "routing", "no NAT (plain routing)"
    target = L.S1_ADDR
    target6 = L.S1_ADDR6
    ports = {"http": L.HTTP_PORT, "iperf": L.IPERF_PORT, "udp": L.UDP_PORT}

    def start(self, ctx):
        ctx.topo.route_ext_to_servers(True)


def tutorial_iptables(gwh, family=4):
    """The tutorials' rules, one command each, inside the gateway host namespace only; with
    family=6 the same rules in ip6tables for the IPv6 addresses."""
    v6 = family == 6
    ipt = ["ip", "netns", "exec", gwh, "ip6tables" if v6 else "iptables", "-w"]
    to = f"[{L.S1_ADDR6}]" if v6 else L.S1_ADDR
    dnat = [("tcp", L.HOST_HTTP, L.HTTP_PORT), ("tcp", L.HOST_IPERF, L.IPERF_PORT),
            ("udp", L.HOST_UDP, L.UDP_PORT)]
    cmds = [ipt + ["-t", "nat", "-A", "POSTROUTING", "-s", L.SUBNET6 if v6 else L.SUBNET, "-o",
                   "up0", "-j", "MASQUERADE"]]
    for proto, hport, port in dnat:
        cmds.append(ipt + ["-t", "nat", "-A", "PREROUTING", "-i", "up0", "-p", proto, "--dport",
                           str(hport), "-j", "DNAT", "--to-destination", f"{to}:{port}"])
    cmds += [
        ipt + ["-P", "FORWARD", "DROP"],
        ipt + ["-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j",
               "ACCEPT"],
        ipt + ["-A", "FORWARD", "-i", "gw0", "-o", "up0", "-j", "ACCEPT"],
        ipt + ["-A", "FORWARD", "-i", "up0", "-o", "gw0", "-m", "conntrack", "--ctstate", "DNAT",
               "-j", "ACCEPT"],
    ]
    return cmds


class Iptables(Setup):
    name, label = "iptables", "iptables NAT (tutorial rules)"

    def start(self, ctx):
        for cmd in tutorial_iptables(ctx.topo.gwh) + tutorial_iptables(ctx.topo.gwh, 6):
            L.run(cmd)


NFT_RULESET = f"""
table ip gwbench {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "up0" tcp dport {L.HOST_HTTP} dnat to {L.S1_ADDR}:{L.HTTP_PORT}
    iifname "up0" tcp dport {L.HOST_IPERF} dnat to {L.S1_ADDR}:{L.IPERF_PORT}
    iifname "up0" udp dport {L.HOST_UDP} dnat to {L.S1_ADDR}:{L.UDP_PORT}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {L.SUBNET} oifname "up0" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "gw0" oifname "up0" accept
    iifname "up0" oifname "gw0" ct status dnat accept
  }}
}}
table ip6 gwbench6 {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "up0" tcp dport {L.HOST_HTTP} dnat to [{L.S1_ADDR6}]:{L.HTTP_PORT}
    iifname "up0" tcp dport {L.HOST_IPERF} dnat to [{L.S1_ADDR6}]:{L.IPERF_PORT}
    iifname "up0" udp dport {L.HOST_UDP} dnat to [{L.S1_ADDR6}]:{L.UDP_PORT}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr {L.SUBNET6} oifname "up0" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "gw0" oifname "up0" accept
    iifname "up0" oifname "gw0" ct status dnat accept
  }}
}}
"""


class Nftables(Setup):
    name, label = "nftables", "nftables NAT (same rules)"

    def start(self, ctx):
        L.run(L.nsx(ctx.topo.gwh, "nft", "-f", "-"), input=NFT_RULESET)


class Gateway(Setup):
    """gatewayd serving the gateway host namespace; exposes made with gwctl."""

    def __init__(self, name, label, xdp, mode, relay="buffers", hand_wired=False):
        self.name, self.label, self.xdp, self.mode = name, label, xdp, mode
        self.relay = relay
        # hand_wired: the servers are the tutorial's namespaces, wired by hand as for iptables
        # (gatewayd only exposes and masquerades); else gatewayd makes them (`ns add`).
        self.hand_wired = hand_wired
        self.makes_servers = not hand_wired
        self.masq = mode != "proxy"
        self.udp = mode != "proxy"
        # The IPv6 rows measure the eBPF path (DNAT6/NAT66); the proxies' rows stay IPv4.
        self.v6 = mode != "proxy"
        self.proc = None
        self.bpffs = None
        self.notes = []

    def gwctl(self, ctx, *args, check=True):
        r = L.run([ctx.gwctl, "--socket", ctx.sock, *args], check=False, timeout=30)
        if check and r.returncode != 0:
            raise NotAvailable(f"`gwctl {' '.join(args)}` failed: "
                               f"{(r.stderr or r.stdout).strip()[-300:]}")
        return r

    def start(self, ctx):
        for binary in (ctx.gatewayd, ctx.gwctl):
            if not os.access(binary, os.X_OK):
                raise NotAvailable(f"{binary} not built")
        ctx.gw_runs += 1
        n = ctx.gw_runs
        logpath = os.path.join(ctx.logdir, f"gatewayd-{self.name}-{n}.log")
        try:
            self.proc, self.bpffs = L.start_gatewayd(
                ctx.procs, ctx.gatewayd, ctx.gwctl, ctx.topo.gwh, ctx.sock, ctx.work, n, logpath,
                "--xdp", self.xdp, "--proxy-relay", self.relay)
        except RuntimeError as e:
            raise NotAvailable(str(e)) from e
        if self.hand_wired:
            self.gwctl(ctx, "masquerade", "add", L.SUBNET)
            self.gwctl(ctx, "masquerade", "add", L.SUBNET6)
        else:
            for ns in (ctx.topo.s1, ctx.topo.s2):
                self.gwctl(ctx, "ns", "add", ns)
        ctx.topo.tune([ctx.topo.s1, ctx.topo.s2])
        got = (ctx.topo.address(ctx.topo.s1), ctx.topo.address(ctx.topo.s2))
        if got != (f"{L.S1_ADDR}/16", f"{L.S2_ADDR}/16"):
            L.log(f"  note: gatewayd gave the servers {got}")
        got6 = (ctx.topo.address6(ctx.topo.s1), ctx.topo.address6(ctx.topo.s2))
        self.v6_error = None
        if self.v6 and (f"{L.S1_ADDR6}/64" not in got6[0] or f"{L.S2_ADDR6}/64" not in got6[1]):
            # The IPv6 tests address s1/s2 as fd00:88::2/::3: without those they cannot pass.
            self.v6_error = f"gatewayd gave the servers IPv6 {got6[0]}, {got6[1]}, not " \
                            f"{L.S1_ADDR6}/64, {L.S2_ADDR6}/64"
            L.log(f"  note: {self.v6_error}")
        exposes = [(L.HOST_HTTP, L.HTTP_PORT, "tcp"), (L.HOST_IPERF, L.IPERF_PORT, "tcp")]
        if self.udp:
            exposes.append((L.HOST_UDP, L.UDP_PORT, "udp"))
        for hport, port, proto in exposes:
            args = ["expose", str(hport), f"{ctx.topo.s1}:{port}", "--proto", proto, "--mode",
                    self.mode]
            self.gwctl(ctx, *args)

    def stop(self, ctx):
        L.stop_gatewayd(ctx.procs, self.proc, self.bpffs)
        self.proc = None
        self.bpffs = None


class Socat(Setup):
    name, label = "socat", "socat 1.7 (fork)"
    masq = udp = v6 = False

    def start(self, ctx):
        self.procs = []
        for hport, port in ((L.HOST_HTTP, L.HTTP_PORT), (L.HOST_IPERF, L.IPERF_PORT)):
            self.procs.append(ctx.procs.start(L.nsx(
                ctx.topo.gwh, "socat",
                f"TCP-LISTEN:{hport},bind={L.UPLINK_ADDR},fork,reuseaddr,backlog=4096",
                f"TCP:{L.S1_ADDR}:{port}"), os.path.join(ctx.logdir, f"socat-{hport}.log")))
            if not L.wait_until(lambda: L.listening(ctx.topo.gwh, hport), 5):
                raise NotAvailable("socat did not start")

    def stop(self, ctx):
        for p in getattr(self, "procs", []):
            ctx.procs.stop(p)
        self.procs = []


HAPROXY_CFG = f"""
global
  maxconn 4000  # fds: 2 per connection + 2 per splice pipe; the fd limit here is 20,000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option splice-request
  option splice-response
listen http
  bind {L.UPLINK_ADDR}:{L.HOST_HTTP}
  server s1 {L.S1_ADDR}:{L.HTTP_PORT}
listen iperf
  bind {L.UPLINK_ADDR}:{L.HOST_IPERF}
  server s1 {L.S1_ADDR}:{L.IPERF_PORT}
"""


class Haproxy(Setup):
    name, label = "haproxy", "haproxy 2.6 (mode tcp, splice)"
    masq = udp = v6 = False

    def start(self, ctx):
        cfg = os.path.join(ctx.work, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG)
        self.proc = ctx.procs.start(L.nsx(ctx.topo.gwh, "haproxy", "-db", "-f", cfg),
                                    os.path.join(ctx.logdir, "haproxy.log"))
        if not L.wait_until(lambda: L.listening(ctx.topo.gwh, L.HOST_HTTP), 5):
            raise NotAvailable("haproxy did not start")

    def stop(self, ctx):
        if getattr(self, "proc", None) is not None:
            ctx.procs.stop(self.proc)
            self.proc = None


def all_setups():
    return [
        Routing(), Iptables(), Nftables(),
        Gateway("ebpf-tc", "gateway eBPF (tc, --xdp off)", "off", "ebpf"),
        Gateway("ebpf-hand", "gateway eBPF (tc, hand-wired namespaces)", "off", "ebpf",
                hand_wired=True),
        Gateway("ebpf-xdp", "gateway eBPF (tc + XDP native)", "native", "ebpf"),
        Gateway("proxy", "gateway io_uring proxy (buffer ring)", "off", "proxy"),
        Gateway("proxy-splice", "gateway io_uring proxy (splice)", "off", "proxy", "splice"),
        Socat(), Haproxy(),
    ]


class Ctx:
    pass


def run_tests(ctx, setup, tests, rep):
    topo, a = ctx.topo, ctx.args
    out = {}
    for test in tests:
        v6 = test in V6_OF
        base = V6_OF.get(test, test)
        if base == "tcp_masq" and not setup.masq or base == "udp_dnat" and not setup.udp \
                or v6 and not setup.v6:
            continue
        tag = f"{setup.name}-r{rep}" + ("-v6" if v6 else "")
        target = setup.target6 if v6 else setup.target
        outside = L.EXT_ADDR6 if v6 else L.EXT_ADDR
        if v6 and setup.v6_error:
            r = {"error": setup.v6_error}
        elif base == "tcp_dnat":
            r = L.iperf_tcp(ctx.procs, topo, topo.s1, topo.ext, target, setup.ports["iperf"],
                            L.IPERF_PORT, a.duration, ctx.logdir, tag + "-dnat")
        elif base == "tcp_masq":
            r = L.iperf_tcp(ctx.procs, topo, topo.ext, topo.s2, outside, L.IPERF_PORT,
                            L.IPERF_PORT, a.duration, ctx.logdir, tag + "-masq")
        elif base == "udp_dnat":
            r = L.udp_flood(ctx.procs, topo, ctx.bench_bin, target, setup.ports["udp"],
                            a.duration, ctx.logdir, tag)
        elif base == "conn":
            r = L.wrk(topo, target, setup.ports["http"], a.duration, a.conns, close=True)
        elif base == "latency":
            r = L.wrk(topo, target, setup.ports["http"], a.latency_duration, 1, close=False)
        # Builds and tests of other users on this shared machine skew a figure: note them.
        r["other_build_procs"] = L.other_activity()
        out[test] = r
        L.log(f"  {setup.name} r{rep} {test}: {summary(test, r)}")
    return out


def summary(test, r):
    if "error" in r:
        return "ERROR " + r["error"]
    base = V6_OF.get(test, test)
    key = {"tcp_dnat": "gbit_s", "tcp_masq": "gbit_s", "udp_dnat": "pps", "conn": "rps",
           "latency": "p50_ms"}[base]
    extra = f" loss {r['loss_pct']:.1f}%" if base == "udp_dnat" else ""
    extra += f" p99 {r.get('p99_ms', 0):.3f}ms" if base == "latency" else ""
    return f"{key}={L.fmt(r.get(key))}{extra} steal={r.get('steal_pct', 0):.1f}%"


# Metrics reported per test: (test, key, column title, higher is better)
METRICS = [
    ("tcp_dnat", "gbit_s", "TCP DNAT Gbit/s", True),
    ("tcp_masq", "gbit_s", "TCP masq Gbit/s", True),
    ("udp_dnat", "pps", "UDP 64 B pkt/s", True),
    ("udp_dnat", "loss_pct", "UDP loss %", False),
    ("conn", "rps", "conn/s", True),
    ("latency", "p50_ms", "p50 ms", False),
    ("latency", "p99_ms", "p99 ms", False),
    ("tcp_dnat", "cpu_s_per_gb", "CPU s/GB", False),
    ("tcp_dnat6", "gbit_s", "TCP DNAT6 Gbit/s", True),
    ("tcp_masq6", "gbit_s", "TCP NAT66 Gbit/s", True),
    ("udp_dnat6", "pps", "UDP6 64 B pkt/s", True),
    ("udp_dnat6", "loss_pct", "UDP6 loss %", False),
    ("conn6", "rps", "conn6/s", True),
    ("tcp_dnat6", "cpu_s_per_gb", "CPU6 s/GB", False),
]
METRICS4 = [m for m in METRICS if m[0] not in V6_OF]
METRICS6 = [m for m in METRICS if m[0] in V6_OF]
# Gateway target: its IPv6 figures within 5% of its IPv4 figures in the same run.
V6_TARGET = 0.95


def aggregate(runs, setups):
    """medians[setup][test] = {metric: median, steal_pct: median, n: runs, errors: [...]}"""
    med = {}
    for s in setups:
        med[s] = {}
        for test in TESTS:
            rs = [r["result"] for r in runs if r["setup"] == s and r["test"] == test]
            if not rs:
                continue
            ok = [r for r in rs if "error" not in r]
            entry = {"n": len(ok), "errors": [r["error"] for r in rs if "error" in r]}
            keys = {k for r in ok for k, v in r.items() if isinstance(v, (int, float))}
            for k in keys:
                entry[k] = L.median([r.get(k) for r in ok])
            entry["steal_pct"] = L.median([r.get("steal_pct") for r in rs])
            med[s][test] = entry
    return med


def ratios(med):
    base = med.get("iptables", {})
    out = {}
    for s, tests in med.items():
        out[s] = {}
        for test, key, _, _ in METRICS:
            v = tests.get(test, {}).get(key)
            b = base.get(test, {}).get(key)
            out[s][f"{test}.{key}"] = v / b if v is not None and b else None
    return out


def family_ratios(med):
    """Each setup's IPv6 figure over its IPv4 figure of the same run (higher-is-better ones)."""
    out = {}
    for s, tests in med.items():
        row = {}
        for test, key, _, higher in METRICS6:
            if not higher:
                continue
            v6 = tests.get(test, {}).get(key)
            v4 = tests.get(V6_OF[test], {}).get(key)
            row[f"{test}.{key}"] = v6 / v4 if v6 is not None and v4 else None
        if any(t in tests for t in V6_OF):
            out[s] = row
    return out


def metric_table(metrics, names, labels, med, rat, unavailable):
    """Markdown rows: one per setup, a column per metric, (×N) = ratio to iptables."""
    md = ["| setup | " + " | ".join(m[2] for m in metrics) + " |",
          "|---" + "|---:" * len(metrics) + "|"]
    for s in names:
        if s in unavailable:
            md.append(f"| {labels[s]} | not available: {unavailable[s][:160]} "
                      + "|" * len(metrics))
            continue
        cells = [labels[s]]
        for test, key, _, _ in metrics:
            entry = med[s].get(test)
            if entry is None:
                cells.append("n/a")
                continue
            v = entry.get(key)
            if v is None:
                cells.append("error" if entry["errors"] else "—")
                continue
            r = rat[s].get(f"{test}.{key}")
            cell = L.fmt(v)
            if r is not None and key != "loss_pct":
                cell += f" ({r:.2f}×)"
            if entry["errors"]:
                cell += f" [{len(entry['errors'])} failed]"
            cells.append(cell)
        md.append("| " + " | ".join(cells) + " |")
    return md


def write_outputs(ctx, runs, unavailable, started, finished):
    a = ctx.args
    names = [s.name for s in ctx.setups]
    labels = {s.name: s.label for s in ctx.setups}
    med = aggregate(runs, names)
    rat = ratios(med)
    fam = family_ratios(med)
    gateway_names = {s.name for s in ctx.setups if isinstance(s, Gateway)}
    info = L.machine_info()
    ipt_version = L.run(["iptables", "-V"], check=False).stdout.strip()
    doc = {
        "date": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "command": ctx.command,
        "machine": info,
        "tools": {"iptables": ipt_version},
        "other_build_test_processes_at_start": ctx.activity,
        "parameters": {"repeats": a.repeats, "duration_s": a.duration,
                       "latency_duration_s": a.latency_duration, "wrk_connections": a.conns,
                       "setups": names, "tests": ctx.tests},
        "method": METHOD,
        "unavailable": unavailable,
        "medians": med,
        "ratio_to_iptables": rat,
        "ratio_ipv6_to_ipv4": fam,
        "runs": runs,
    }
    os.makedirs(ctx.outdir, exist_ok=True)
    with open(os.path.join(ctx.outdir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)

    charts = []
    for test, key, title, _ in METRICS:
        if key in ("loss_pct",):
            continue
        rows = [(s, med[s].get(test, {}).get(key)) for s in names if s not in unavailable]
        png = f"{test}-{key}.png".replace("_", "-")
        if L.gnuplot_bars(os.path.join(ctx.outdir, png), f"{title} (median of {a.repeats})",
                          title, rows):
            charts.append((title, png))

    md = []
    md.append(f"# Lab comparison, {started.strftime('%Y-%m-%d %H:%M')}\n")
    md.append(f"Command: `{ctx.command}`  ")
    md.append(f"Machine: {info.get('cpu', '?')}, {info['cores']} cores, kernel {info['kernel']}"
              f", commit {info.get('git_commit', '?')}  ")
    md.append(f"Runs: {a.repeats} repeats interleaved across setups, {a.duration} s per "
              f"throughput/rate test, {a.latency_duration} s latency test; medians; "
              f"(×N) = ratio to iptables in this run. Took "
              f"{(finished - started).total_seconds() / 60:.1f} min.  ")
    busy = [r for r in runs if r["result"].get("other_build_procs")]
    if ctx.activity or busy:
        md.append(f"**Noise warning:** other builds/tests (compilers, ctest) were running during "
                  f"{len(busy)} of {len(runs)} test runs ({ctx.activity} processes at the start): "
                  "the machine is shared; compare ratios within this run, not absolutes.")
    md.append("")
    md.append("### IPv4\n")
    md += metric_table(METRICS4, names, labels, med, rat, unavailable)
    if any(t in ctx.tests for t in V6_OF):
        md.append("\n### IPv6 (same setups, same run)\n")
        md.append("The same tests to the uplink's IPv6 address (the outside's, for NAT66), "
                  "(×N) = ratio to the iptables setup's IPv6 figure (ip6tables) in this run; "
                  "n/a = the setup has no IPv6 rows.\n")
        md += metric_table(METRICS6, names, labels, med, rat, unavailable)
        md.append("\nIPv6 / IPv4 in this run (the same setup's IPv6 figure over its IPv4 one; "
                  f"the gateway's target is ≥ {V6_TARGET:.2f}, i.e. within 5%):\n")
        cols = [m for m in METRICS6 if m[3]]
        md.append("| setup | " + " | ".join(f"{m[2]} / IPv4" for m in cols) + " |")
        md.append("|---" + "|---:" * len(cols) + "|")
        for s in names:
            if s not in fam:
                continue
            cells = [labels[s]]
            for test, key, _, _ in cols:
                v = fam[s].get(f"{test}.{key}")
                if v is None:
                    cells.append("error" if med[s].get(test, {}).get("errors") else "—")
                    continue
                mark = " ✗" if s in gateway_names and v < V6_TARGET else ""
                cells.append(f"{v:.2f}×{mark}")
            md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("CPU steal % during each figure's runs (median):\n")
    tests_shown = [t for t in TESTS if t in ctx.tests]
    md.append("| setup | " + " | ".join(tests_shown) + " |")
    md.append("|---" + "|---:" * len(tests_shown) + "|")
    for s in names:
        if s in unavailable:
            continue
        cells = [labels[s]]
        for t in tests_shown:
            st = med[s].get(t, {}).get("steal_pct")
            cells.append("n/a" if st is None else f"{st:.1f}")
        md.append("| " + " | ".join(cells) + " |")
    errors = [(s, t, e) for s in names for t, v in med[s].items() for e in v["errors"]]
    if errors:
        md.append("\nFailed runs (excluded from medians):\n")
        for s, t, e in errors:
            md.append(f"- {s} {t}: {e[:200]}")
    md.append("\n" + METHOD_MD)
    for title, png in charts:
        md.append(f"\n![{title}]({png})")
    text = "\n".join(md) + "\n"
    with open(os.path.join(ctx.outdir, "results.md"), "w") as f:
        f.write(text)
    if not a.no_copy:
        rel = os.path.relpath(ctx.outdir, os.path.join(L.REPO, "bench"))
        # RESULTS.md sits in bench/: point its chart links into the results directory.
        copy = text
        for _, png in charts:
            copy = copy.replace(f"]({png})", f"]({rel}/{png})")
        copy = copy.replace("# Lab comparison,", "# Latest lab comparison,", 1)
        copy += f"\nFull results: [{rel}/]({rel}/)\n"
        # The reading of the figures against the targets is kept by hand in TARGETS.md.
        targets = os.path.join(L.REPO, "bench", "TARGETS.md")
        if os.path.exists(targets):
            with open(targets) as f:
                copy += "\n" + f.read()
        with open(os.path.join(L.REPO, "bench", "RESULTS.md"), "w") as f:
            f.write(copy)
    return text


METHOD = {
    "topology": "lablib.Topology: ext -- gwh (up0 198.18.0.1, bridge gw0 10.88.0.1/16) -- s1 "
                "10.88.0.2, s2 10.88.0.3; IPv6 on the same links: ext fd00:18::2, up0 "
                "fd00:18::1, gw0 fd00:88::1/64, s1 fd00:88::2, s2 fd00:88::3; rebuilt for every "
                "(setup, repeat)",
    "tcp_dnat": "iperf3 -t D, client in ext (cpu0) -> 198.18.0.1:6201 -> s1:5201 (cpu1)",
    "tcp_masq": "iperf3 -t D, client in s2 (cpu0) -> 198.18.0.2:5201 in ext (cpu1)",
    "udp_dnat": "gw_udpflood sendmmsg 64-byte payloads from ext (cpu0) to 198.18.0.1:6001 -> "
                "s1:9001, recvmmsg receiver in s1 (cpu1); pkt/s = received / send time, "
                "loss = 1 - received/sent",
    "conn": "wrk -t1 -cC -H 'Connection: close' to gw_httpd in s1 (cpu1), wrk in ext (cpu0)",
    "latency": "wrk -t1 -c1 keep-alive, --latency p50/p99 of request/response",
    "tcp_dnat6": "as tcp_dnat to [fd00:18::1]:6201 -> [fd00:88::2]:5201",
    "tcp_masq6": "as tcp_masq, s2 -> [fd00:18::2]:5201 (NAT66)",
    "udp_dnat6": "as udp_dnat to [fd00:18::1]:6001 -> [fd00:88::2]:9001",
    "conn6": "as conn to http://[fd00:18::1]:6000/ -> [fd00:88::2]:8080",
    "servers": "iperf3 -s and gw_httpd --bind :: listen on both families (one socket, "
               "IPV6_V6ONLY off), so IPv4 and IPv6 reach the same server",
    "cpu_s_per_gb": "machine-wide /proc/stat busy (user+nice+system+irq+softirq) CPU seconds "
                    "during the TCP DNAT run / GB received; includes iperf3 on both ends",
    "steal_pct": "/proc/stat steal delta / total delta during each run",
}

METHOD_MD = """## Method

- Topology: external client `ext` (198.18.0.2) — gateway host `gwh` (uplink `up0`
  198.18.0.1, bridge `gw0` 10.88.0.1/16) — servers `s1` 10.88.0.2 and `s2` 10.88.0.3, in
  throwaway namespaces rebuilt for every (setup, repeat). Only plain routing gives `ext` a route
  to 10.88.0.0/16, so NAT setups pass traffic only by translating it.
- Load generators pinned to CPU 0, servers to CPU 1 (`taskset`); the NAT work itself runs in
  softirq on whichever CPU the packet is on; proxies (socat, haproxy, the gateway proxy) float.
- TCP DNAT: iperf3 from `ext` to 198.18.0.1:6201 → `s1`:5201. TCP masquerade: iperf3 from
  `s2` to `ext`. UDP: `gw_udpflood` (sendmmsg, 64-byte payloads) to 198.18.0.1:6001 → `s1`:9001,
  delivered pkt/s = packets received / sending time. conn/s: `wrk -H 'Connection: close'` to
  `gw_httpd` (epoll, 1 thread) through 198.18.0.1:6000 → `s1`:8080. Latency: `wrk -c1`
  keep-alive, p50/p99.
- CPU s/GB: machine-wide busy CPU seconds from /proc/stat (user+nice+system+irq+softirq)
  during the TCP DNAT run divided by GB received. It includes iperf3 at both ends (the same in
  every setup) and anything else running on the machine; steal % is given for every figure.
- Proxies (socat, haproxy, gateway proxy) carry TCP inbound only: no masquerade or UDP figures.
- IPv6, same topology and run: `ext` fd00:18::2 — `up0` fd00:18::1, `gw0` fd00:88::1/64 —
  `s1` fd00:88::2, `s2` fd00:88::3 (no DAD, IPv6 forwarding on in `gwh`). `tcp_dnat6`,
  `tcp_masq6` (NAT66), `udp_dnat6` and `conn6` are the IPv4 tests to [fd00:18::1] (and
  [fd00:18::2] for NAT66). iptables/nftables install the same rules for IPv6 (ip6tables, an
  `ip6` nft table); plain routing routes fd00:88::/64; the gateway's default expose answers on
  both families. The IPv6 ratios are to the iptables setup's IPv6 (ip6tables) figures, and
  "IPv6 / IPv4" divides a setup's IPv6 figure by its own IPv4 one. The servers (iperf3,
  gw_httpd) listen on `::` for both families. The proxies have no IPv6 rows.
"""


def main():
    p = argparse.ArgumentParser(description="lab comparison of NAT/port-forward setups")
    p.add_argument("--setups", default=",".join(s.name for s in all_setups()),
                   help="comma-separated subset of: %(default)s")
    p.add_argument("--tests", default=",".join(TESTS), help="subset of: %(default)s")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=int, default=4, help="seconds per throughput/rate test")
    p.add_argument("--latency-duration", type=int, default=2)
    p.add_argument("--conns", type=int, default=16, help="wrk connections for conn/s")
    p.add_argument("--build-dir", default=os.path.join(L.REPO, "build"))
    p.add_argument("--out", default=os.path.join(L.REPO, "bench", "results"))
    p.add_argument("--no-copy", action="store_true", help="do not update bench/RESULTS.md")
    p.add_argument("--device", default="",
                   help="comma-separated device settings to A/B: each selected setup also runs "
                        "as SETUP+SETTING with SETTING on every veth of the topology; one of "
                        f"{L.DEVICE_SETTINGS} or several joined by '+'")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/lab.py: run as root (it creates network namespaces)")

    ctx = Ctx()
    ctx.args = a
    ctx.command = os.environ.get("LAB_COMMAND") or "python3 bench/lab.py " + shlex.join(
        sys.argv[1:])
    known = {s.name: s for s in all_setups()}
    wanted = [x for x in a.setups.split(",") if x]
    bad = [x for x in wanted if x not in known]
    if bad:
        sys.exit(f"unknown setups: {bad}; known: {list(known)}")
    ctx.setups = [known[x] for x in wanted]
    for setting in [x for x in a.device.split(",") if x]:
        if any(part not in L.DEVICE_SETTINGS for part in setting.split("+")):
            sys.exit(f"unknown device setting {setting!r}; known: {L.DEVICE_SETTINGS}")
        for name in wanted:
            twin = {s.name: s for s in all_setups()}[name]
            twin.name, twin.label = f"{name}+{setting}", f"{twin.label} + {setting}"
            twin.device = setting
            ctx.setups.append(twin)
    ctx.tests = [t for t in a.tests.split(",") if t]
    if any(t not in TESTS for t in ctx.tests):
        sys.exit(f"unknown tests in {ctx.tests}; known: {TESTS}")
    ctx.bench_bin = os.path.join(a.build_dir, "bench")
    ctx.gatewayd = os.path.join(a.build_dir, "gateway", "gatewayd")
    ctx.gwctl = os.path.join(a.build_dir, "control", "gwctl")
    for tool in ("gw_udpflood", "gw_httpd"):
        if not os.access(os.path.join(ctx.bench_bin, tool), os.X_OK):
            sys.exit(f"{ctx.bench_bin}/{tool} missing: build first (bash bench/lab.sh does)")
    for tool in ("iperf3", "wrk", "socat", "haproxy", "iptables", "nft", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: run deploy/install-deps.sh")

    started = datetime.datetime.now()
    ctx.outdir = os.path.join(a.out, started.strftime("%Y-%m-%d-%H%M%S"))
    ctx.work = tempfile.mkdtemp(prefix="gwbench.")
    ctx.logdir = os.path.join(ctx.work, "logs")
    os.makedirs(ctx.logdir)
    ctx.sock = os.path.join(ctx.work, "gw.sock")
    ctx.gw_runs = 0
    ctx.procs = L.Procs()
    ctx.topo = L.Topology(f"gwb{os.getpid()}")
    ctx.activity = L.other_activity()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    L.sweep_leftovers()
    runs, unavailable = [], {}
    current = [None]
    try:
        for rep in range(a.repeats):
            k = rep % len(ctx.setups)
            order = ctx.setups[k:] + ctx.setups[:k]
            for setup in order:
                if setup.name in unavailable:
                    continue
                L.log(f"repeat {rep + 1}/{a.repeats}: {setup.label}")
                ctx.topo.build(servers=not setup.makes_servers)
                httpd = None
                try:
                    current[0] = setup
                    try:
                        if setup.device:
                            # As an admin would, before gatewayd: the links `ns add` makes
                            # follow the uplink's BIG TCP size by themselves.
                            ctx.topo.device_setting(setup.device)
                        setup.start(ctx)
                        later = "+".join(x for x in (setup.device or "").split("+")
                                         if x not in L.FOLLOWED_BY_GATEWAYD)
                        if later and setup.makes_servers:
                            ctx.topo.device_setting(later)
                        httpd = ctx.procs.start(
                            L.pinned(ctx.topo.s1, L.SERVER_CPU,
                                     os.path.join(ctx.bench_bin, "gw_httpd"), "--bind", "::",
                                     "--port", str(L.HTTP_PORT)),
                            os.path.join(ctx.logdir, "gw_httpd.log"))
                        if not L.wait_until(lambda: L.listening(ctx.topo.s1, L.HTTP_PORT), 5):
                            raise RuntimeError("gw_httpd did not start")
                    except (NotAvailable, RuntimeError) as e:
                        unavailable[setup.name] = str(e)
                        L.log(f"  {setup.name}: not available: {e}")
                        continue
                    for test, r in run_tests(ctx, setup, ctx.tests, rep).items():
                        runs.append({"setup": setup.name, "repeat": rep, "test": test,
                                     "result": r})
                finally:
                    if httpd is not None:
                        ctx.procs.stop(httpd)
                    if current[0] is not None:
                        current[0].stop(ctx)
                        current[0] = None
                    ctx.topo.destroy()
    finally:
        if current[0] is not None:
            current[0].stop(ctx)
        ctx.procs.stop_all()
        ctx.topo.destroy()
        finished = datetime.datetime.now()
        if runs or unavailable:
            os.makedirs(ctx.outdir, exist_ok=True)
            logs = os.path.join(ctx.outdir, "logs")
            for name in os.listdir(ctx.logdir):
                if name.startswith("gatewayd-"):
                    os.makedirs(logs, exist_ok=True)
                    shutil.copy(os.path.join(ctx.logdir, name), logs)
            text = write_outputs(ctx, runs, unavailable, started, finished)
            print(text)
            L.log(f"results in {ctx.outdir}")
        for name in os.listdir(ctx.work):
            path = os.path.join(ctx.work, name)
            if name.startswith("bpffs-") and L.is_mountpoint(path):
                L.run(["umount", path], check=False)
        shutil.rmtree(ctx.work, ignore_errors=True)


if __name__ == "__main__":
    main()
