#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""CNI port publishing: gateway-portmap (gatewayd's eBPF exposes) against Debian's stock
`portmap` (iptables), in one run (issue 12, section 5).

    python3 bench/cni.py [--quick] [--sizes 0,100,1000] [--probes 20] [--repeats 3]

Two node namespaces play two machines, each wired as the lab's gateway host (lablib.Topology:
ext 198.18.0.2 -- up0 198.18.0.1) plus the bridge Debian's `bridge` plugin makes
(cni-gwb0, 10.99.0.0/16, host-local):
  gwb<pid>g / gwb<pid>x    gatewayd serves it; plugin gateway-portmap (build/cni/)
  gwb<pid>pg / gwb<pid>px  no gatewayd; plugin /usr/lib/cni/portmap (iptables rules there only)
Plugins are exec'd as a runtime does (CNI_* environment, config on stdin, prevResult from the
bridge plugin) by a small driver process inside each node, which times the exec alone.

Measured, for every size N (containers whose mappings are already installed):
- ADD and DEL of one probe container's mapping (one TCP port), median and p90 over --probes
  probes. A probe is a real container: a namespace, `bridge` ADD (timed apart: what the bridge
  plugin itself costs), the port plugin's ADD and DEL (the figures), `bridge` DEL. Probes
  alternate between the two nodes.
- The N background containers are plugin-only ADDs with a synthetic prevResult (an address in
  the bridge subnet, an interface whose sandbox is the path of one dummy namespace), as cheap
  as the plugins allow; their install time is reported too. Sizes grow in place (0, then 100
  more, then 900 more).
- New connections/s (wrk, Connection: close) from ext to 198.18.0.1:6000, reaching gw_httpd in
  a real container on each node's bridge, through: the mapping gateway-portmap makes, the same
  port published with `gwctl expose` to the same container (the eBPF expose), and portmap's
  mapping. The three are interleaved (order rotating), each made before its run and removed
  after; medians of --repeats runs, at the first and the last size.
Output: a markdown table on stdout, bench/results/cni-<date>.md (+ .json) and bench/CNI.md.
Everything lives in namespaces gwb<pid>*; they, gatewayd and the servers go at exit, Ctrl-C
and failures included (leftovers of killed runs are swept at the next start).
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib as L  # noqa: E402

CNI_DIR = "/usr/lib/cni"
NETWORK = "bench"
BRIDGE = "cni-gwb0"
SUBNET = "10.99.0.0/16"
BRIDGE_GW = "10.99.0.1"
BG_PORT, PROBE_PORT, CONN_PORT, SERVER_PORT = 20000, 40000, 6000, 8080
# Target checks (issue 12 section 5). Flat: the largest size within this factor of size 0.
FLAT_FACTOR = 1.25
# conn/s "at least the eBPF expose's": the same data path, so equal within run-to-run noise.
CONN_TARGET = 0.95
SETUPS = ("plugin", "expose", "portmap")  # the conn/s runs


# ---------------------------------------------------------------- the driver inside a node


def driver_main():
    """Runs inside a node namespace: one JSON request per line ({argv, env, stdin}), one JSON
    answer per line ({rc, out, err, ms}); ms is the exec alone, as a runtime would see it."""
    for line in sys.stdin:
        req = json.loads(line)
        t0 = time.perf_counter()
        r = subprocess.run(req["argv"], input=req.get("stdin", "").encode(), env=req["env"],
                           capture_output=True)
        ms = (time.perf_counter() - t0) * 1000.0
        sys.stdout.write(json.dumps({"rc": r.returncode, "ms": ms,
                                     "out": r.stdout.decode(errors="replace"),
                                     "err": r.stderr.decode(errors="replace")}) + "\n")
        sys.stdout.flush()


class Node:
    """One node namespace (and its ext client): the driver that execs CNI plugins in it."""

    def __init__(self, kind, prefix, work):
        self.kind = kind  # "gateway" or "portmap"
        self.topo = L.Topology(prefix)
        self.ipam = os.path.join(work, f"ipam-{kind}")
        self.driver = None

    def start_driver(self, procs):
        self.driver = subprocess.Popen(
            L.nsx(self.topo.gwh, sys.executable, "-u", os.path.abspath(__file__), "--driver"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        procs.procs.append(self.driver)

    def call(self, argv, env, stdin=""):
        self.driver.stdin.write(json.dumps({"argv": argv, "env": env, "stdin": stdin}) + "\n")
        self.driver.stdin.flush()
        line = self.driver.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} node's driver exited")
        return json.loads(line)

    def cni(self, binary, command, cid, netns, config, plugin_dir):
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": f"{CNI_DIR}:{plugin_dir}",
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        return self.call([binary], env, json.dumps(config))


def cid_of(tag):
    return hashlib.sha256(f"{os.getpid()}-{tag}".encode()).hexdigest()  # 64 hex, as runtimes


def mapping(host_port):
    return [{"hostPort": host_port, "containerPort": SERVER_PORT if host_port == CONN_PORT
             else 80, "protocol": "tcp"}]


def synthetic_prev(i, sandbox):
    """What `bridge` would return for background container i: an address in the subnet no
    host-local allocation reaches (10.99.128.0 up), its interface in `sandbox`."""
    addr = f"10.99.{128 + i // 250}.{1 + i % 250}/16"
    mac = "02:00:%02x:%02x:%02x:%02x" % (i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255)
    return {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": mac, "sandbox": sandbox}],
            "ips": [{"address": addr, "gateway": BRIDGE_GW, "interface": 0}],
            "dns": {}}


def pct(values, p):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return vals[max(0, math.ceil(p / 100.0 * len(vals)) - 1)]


class Bench:
    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.procs = L.Procs()
        self.pid = os.getpid()
        self.prefix = f"gwb{self.pid}"
        self.gw = Node("gateway", self.prefix, work)
        self.pm = Node("portmap", self.prefix + "p", work)
        self.nodes = [self.gw, self.pm]
        self.dummy = self.prefix + "d"
        self.sock = os.path.join(work, "gw.sock")
        self.gatewayd = os.path.join(a.build_dir, "gateway", "gatewayd")
        self.gwctl_bin = os.path.join(a.build_dir, "control", "gwctl")
        self.plugin_dir = os.path.join(a.build_dir, "cni")
        self.ours = os.path.join(self.plugin_dir, "gateway-portmap")
        self.httpd = os.path.join(a.build_dir, "bench", "gw_httpd")
        self.gwproc = None
        self.bpffs = None
        self.seq = 0
        self.installed = 0
        self.servers = {}  # node kind -> (cid, netns path, prevResult, address)
        self.extra = {}  # mappings beside the containers' (the flows phase's)
        self.records = {"probes": [], "background": [], "conn": [], "checks": []}

    # ---------------------------------------------------------------- configs

    def bridge_conf(self, node):
        return {"cniVersion": "1.0.0", "name": NETWORK, "type": "bridge", "bridge": BRIDGE,
                "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": node.ipam,
                         "routes": [{"dst": "0.0.0.0/0"}]}}

    def port_conf(self, node, prev, maps):
        c = {"cniVersion": "1.0.0", "name": NETWORK,
             "type": "gateway-portmap" if node is self.gw else "portmap",
             "capabilities": {"portMappings": True},
             "runtimeConfig": {"portMappings": maps}, "prevResult": prev}
        if node is self.gw:
            c["socket"] = self.sock
        return c

    def port_plugin(self, node):
        return self.ours if node is self.gw else os.path.join(CNI_DIR, "portmap")

    def port(self, node, command, cid, netns, prev, maps, check=True):
        r = node.cni(self.port_plugin(node), command, cid, netns,
                     self.port_conf(node, prev, maps), self.plugin_dir)
        if check and r["rc"] != 0:
            raise RuntimeError(f"{node.kind} plugin {command} {cid[:12]}: exit {r['rc']}: "
                               f"{(r['out'] + r['err']).strip()[-400:]}")
        return r

    def bridge(self, node, command, cid, netns):
        r = node.cni(os.path.join(CNI_DIR, "bridge"), command, cid, netns,
                     self.bridge_conf(node), self.plugin_dir)
        if r["rc"] != 0:
            raise RuntimeError(f"bridge {command} in the {node.kind} node: exit {r['rc']}: "
                               f"{(r['out'] + r['err']).strip()[-400:]}")
        return r

    def gwctl(self, *args, check=True):
        r = L.run([self.gwctl_bin, "--socket", self.sock, *args], check=False, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"gwctl {' '.join(args)}: {(r.stderr or r.stdout).strip()}")
        return r

    # ---------------------------------------------------------------- setup

    def setup(self):
        for binary in (self.gatewayd, self.gwctl_bin, self.ours, self.httpd,
                       os.path.join(CNI_DIR, "bridge"), os.path.join(CNI_DIR, "portmap")):
            if not os.access(binary, os.X_OK):
                raise RuntimeError(f"{binary} missing (build first; containernetworking-plugins "
                                   "for /usr/lib/cni)")
        for node in self.nodes:
            node.topo.build(servers=False)
        L.run(["ip", "netns", "add", self.dummy])
        self.gwproc, self.bpffs = L.start_gatewayd(
            self.procs, self.gatewayd, self.gwctl_bin, self.gw.topo.gwh, self.sock, self.work, 1,
            os.path.join(self.work, "gatewayd.log"), "--xdp", "off")
        for node in self.nodes:
            node.start_driver(self.procs)
        # The exec floor: what the driver's fork+exec of a do-nothing program costs.
        self.floor_ms = L.median([self.gw.call(["/bin/true"], {})["ms"] for _ in range(20)])
        # One real container per node with gw_httpd: the conn/s server; it also makes the bridge.
        for node in self.nodes:
            ns, cid = self.new_container(f"server-{node.kind}")
            prev = json.loads(self.bridge(node, "ADD", cid, f"/run/netns/{ns}")["out"])
            addr = prev["ips"][0]["address"].split("/")[0]
            L.Topology(ns).tune([ns])
            self.procs.start(L.pinned(ns, L.SERVER_CPU, self.httpd, "--port", str(SERVER_PORT)),
                             os.path.join(self.work, f"httpd-{node.kind}.log"))
            if not L.wait_until(lambda: L.listening(ns, SERVER_PORT), 5):
                raise RuntimeError("gw_httpd did not start")
            self.servers[node.kind] = (cid, f"/run/netns/{ns}", prev, addr)

    def new_container(self, tag):
        self.seq += 1
        ns = f"{self.prefix}c{self.seq}"
        L.run(["ip", "netns", "add", ns])
        return ns, cid_of(tag)

    # ---------------------------------------------------------------- counting what is there

    def count(self, node):
        """Mappings of our network installed in the node: gatewayd's owners' exposes, or the
        jumps in portmap's CNI-HOSTPORT-DNAT chain (one per container)."""
        if node is self.gw:
            items = json.loads(self.gwctl("-j", "list").stdout or "[]")
            return sum(1 for e in items if str(e.get("owner", "")).startswith(f"cni/{NETWORK}/"))
        r = L.run(L.nsx(node.topo.gwh, "iptables-save", "-t", "nat"), check=False)
        return sum(1 for line in r.stdout.splitlines() if line.startswith("-A CNI-HOSTPORT-DNAT"))

    def expect_count(self, node, want, when):
        want += self.extra.get(node.kind, 0)
        got = self.count(node)
        self.records["checks"].append({"node": node.kind, "when": when, "want": want,
                                       "got": got})
        if got != want:
            raise RuntimeError(f"{node.kind} node {when}: {got} mappings installed, expected "
                               f"{want}")

    # ---------------------------------------------------------------- the measurements

    def grow(self, n):
        """Background containers up to n in both nodes: plugin-only ADDs, synthetic
        prevResult, all sandboxes the dummy namespace."""
        if n <= self.installed:
            return
        sandbox = f"/run/netns/{self.dummy}"
        for node in self.nodes:
            t0 = time.monotonic()
            ms = []
            for i in range(self.installed, n):
                r = self.port(node, "ADD", cid_of(f"bg-{i}"), sandbox, synthetic_prev(i, sandbox),
                              mapping(BG_PORT + i))
                ms.append(r["ms"])
            secs = time.monotonic() - t0
            self.records["background"].append({"node": node.kind, "from": self.installed,
                                               "to": n, "seconds": secs, "add_ms": ms})
            L.log(f"  {node.kind}: {n - self.installed} background ADDs in {secs:.1f} s "
                  f"(median {L.median(ms):.1f} ms, last {ms[-1]:.1f} ms)")
        self.installed = n
        for node in self.nodes:
            self.expect_count(node, n, f"after growing to {n}")

    def probe(self, node, size, k, phase="clean"):
        ns, cid = self.new_container(f"probe-{node.kind}-{size}-{k}-{phase}")
        path = f"/run/netns/{ns}"
        rec = {"node": node.kind, "size": size, "k": k, "phase": phase}
        try:
            b = self.bridge(node, "ADD", cid, path)
            rec["bridge_add_ms"] = b["ms"]
            prev = json.loads(b["out"])
            maps = mapping(PROBE_PORT + k)
            rec["add_ms"] = self.port(node, "ADD", cid, path, prev, maps)["ms"]
            if k == 0:
                self.expect_count(node, size + 1, f"size {size} ({phase}), after a probe's ADD")
            rec["del_ms"] = self.port(node, "DEL", cid, path, prev, maps)["ms"]
            if k == 0:
                self.expect_count(node, size, f"size {size} ({phase}), after a probe's DEL")
            rec["bridge_del_ms"] = self.bridge(node, "DEL", cid, path)["ms"]
        finally:
            L.run(["ip", "netns", "del", ns], check=False)
        self.records["probes"].append(rec)
        return rec

    def probes(self, size, count, phase="clean"):
        for k in range(count):
            order = self.nodes if k % 2 == 0 else list(reversed(self.nodes))
            for node in order:
                self.probe(node, size, k, phase)
        for node in self.nodes:
            rs = [r for r in self.records["probes"] if r["node"] == node.kind and
                  r["size"] == size and r["phase"] == phase]
            L.log(f"  {node.kind} @ {size} ({phase}): ADD {L.median([r['add_ms'] for r in rs]):.1f} ms, "
                  f"DEL {L.median([r['del_ms'] for r in rs]):.1f} ms")

    def reachable(self, node):
        return L.run(L.nsx(node.topo.ext, "curl", "-s", "-m1", "-o", "/dev/null",
                           f"http://{L.UPLINK_ADDR}:{CONN_PORT}/"), check=False).returncode == 0

    def conn_run(self, setup, size, rep):
        node = self.pm if setup == "portmap" else self.gw
        cid, netns, prev, addr = self.servers[node.kind]
        maps = mapping(CONN_PORT)
        if setup == "expose":
            self.gwctl("expose", str(CONN_PORT), f"{addr}:{SERVER_PORT}", "--mode", "ebpf")
        else:
            self.port(node, "ADD", cid, netns, prev, maps)
        try:
            if not L.wait_until(lambda: self.reachable(node), 5, 0.1):
                res = {"error": f"{L.UPLINK_ADDR}:{CONN_PORT} not reachable"}
            else:
                res = L.wrk(node.topo, L.UPLINK_ADDR, CONN_PORT, self.a.duration, self.a.conns,
                            close=True, client_ns=node.topo.ext)
        finally:
            if setup == "expose":
                self.gwctl("unexpose", str(CONN_PORT))
            else:
                self.port(node, "DEL", cid, netns, prev, maps)
        res.update({"setup": setup, "size": size, "repeat": rep})
        self.records["conn"].append(res)
        L.log(f"  conn/s {setup} @ {size} #{rep + 1}: {L.fmt(res.get('rps'))} "
              f"{res.get('error', '')}")

    def conns(self, size):
        setups = ["plugin", "expose", "portmap"]
        for rep in range(self.a.repeats):
            for setup in setups[rep % 3:] + setups[:rep % 3]:
                self.conn_run(setup, size, rep)

    def flows(self):
        """Entries in each node's connection tracking: gatewayd's BPF table, the kernel's."""
        out = {}
        r = self.gwctl("-j", "stats", check=False)
        try:
            out["gateway"] = int(json.loads(r.stdout)["conntrack"]["entries"])
        except (ValueError, KeyError, TypeError):
            out["gateway"] = None
        r = L.run(L.nsx(self.pm.topo.gwh, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"),
                  check=False)
        out["portmap"] = int(r.stdout) if r.stdout.strip().isdigit() else None
        return out

    def flows_phase(self, size, count):
        """Probes again while the connection tables hold a wrk run's flows: gatewayd's DEL
        flushes the flows of the rules it removes, which walks its whole table. The flows
        come through a mapping that stays while the probes run (the conn/s runs' own
        mappings took their flows along at their DEL)."""
        cid, netns, prev, addr = self.servers["portmap"]
        gcid, gnetns, gprev, gaddr = self.servers["gateway"]
        self.gwctl("expose", str(CONN_PORT), f"{gaddr}:{SERVER_PORT}", "--mode", "ebpf")
        self.port(self.pm, "ADD", cid, netns, prev, mapping(CONN_PORT))
        self.extra["portmap"] = 1
        try:
            for node in self.nodes:
                if not L.wait_until(lambda: self.reachable(node), 5, 0.1):
                    raise RuntimeError(f"{node.kind} node: the flows' mapping is not reachable")
                L.wrk(node.topo, L.UPLINK_ADDR, CONN_PORT, self.a.duration, self.a.conns,
                      close=True, client_ns=node.topo.ext)
            self.records["flows"] = self.flows()
            L.log(f"  flows in the tables: {self.records['flows']}")
            self.probes(size, count, "flows")
        finally:
            self.gwctl("unexpose", str(CONN_PORT), check=False)
            self.port(self.pm, "DEL", cid, netns, prev, mapping(CONN_PORT), check=False)
            self.extra.clear()

    # ---------------------------------------------------------------- cleanup

    def cleanup(self):
        for node in self.nodes:
            if node.driver is not None and node.driver.poll() is None:
                try:
                    node.driver.stdin.close()
                except OSError:
                    pass
        L.stop_gatewayd(self.procs, self.gwproc, self.bpffs)
        self.gwproc = None
        self.procs.stop_all()
        r = L.run(["ip", "netns", "list"], check=False)
        for line in r.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            m = L.NS_RE.match(name)
            if m and int(m.group(1)) == self.pid:
                L.run(["ip", "netns", "del", name], check=False)


# ---------------------------------------------------------------- output


def probe_stats(rec, size, phase):
    e = {}
    for kind in ("gateway", "portmap"):
        rs = [r for r in rec["probes"] if r["node"] == kind and r["size"] == size
              and "del_ms" in r and r["phase"] == phase]
        if not rs:
            continue
        both = [r["add_ms"] + r["del_ms"] for r in rs]
        e[kind] = {f"{what}_{p}": pct([r[f"{what}_ms"] for r in rs], q)
                   for what in ("add", "del", "bridge_add", "bridge_del")
                   for p, q in (("p50", 50), ("p90", 90))}
        e[kind]["add_del_p50"] = pct(both, 50)
        e[kind]["add_del_p90"] = pct(both, 90)
        e[kind]["probes"] = len(rs)
    return e


def summarize(a, rec, floor_ms):
    s = {"sizes": {}, "conn": {}, "background": {}}
    for size in a.sizes:
        s["sizes"][str(size)] = probe_stats(rec, size, "clean")
    s["flows"] = {"entries": rec.get("flows"), "size": a.sizes[-1],
                  "probes": probe_stats(rec, a.sizes[-1], "flows")}
    for b in rec["background"]:
        s["background"].setdefault(b["node"], []).append(
            {"from": b["from"], "to": b["to"], "seconds": b["seconds"],
             "add_ms_p50": pct(b["add_ms"], 50),
             "add_ms_first10": L.median(b["add_ms"][:max(1, len(b["add_ms"]) // 10)]),
             "add_ms_last10": L.median(b["add_ms"][-max(1, len(b["add_ms"]) // 10):])})
    for size in a.conn_sizes:
        e = {}
        for setup in ("plugin", "expose", "portmap"):
            rs = [r for r in rec["conn"] if r["setup"] == setup and r["size"] == size]
            ok = [r for r in rs if "error" not in r]
            e[setup] = {"rps": L.median([r["rps"] for r in ok]), "runs": len(ok),
                        "all": [r.get("rps") for r in rs],
                        "steal_pct": L.median([r.get("steal_pct") for r in ok]),
                        "errors": [r["error"] for r in rs if "error" in r]}
        # Ratios within each round (the runs were next to each other): a load step in the
        # middle of the run moves both sides of a pair, not one side's median.
        for other in ("expose", "portmap"):
            pairs = []
            for rep in sorted({r["repeat"] for r in rec["conn"] if r["size"] == size}):
                got = {r["setup"]: r.get("rps") for r in rec["conn"]
                       if r["size"] == size and r["repeat"] == rep and "error" not in r}
                if got.get("plugin") and got.get(other):
                    pairs.append(got["plugin"] / got[other])
            e[f"paired_{other}"] = L.median(pairs)
            e[f"pairs_{other}"] = pairs
        s["conn"][str(size)] = e
    s["floor_ms"] = floor_ms
    return s


def targets(a, s):
    rows = []
    sizes = [str(n) for n in a.sizes]
    faster = []
    for n in sizes:
        g = s["sizes"].get(n, {}).get("gateway")
        p = s["sizes"].get(n, {}).get("portmap")
        if g and p:
            faster.append((n, g["add_del_p50"], p["add_del_p50"]))
    if faster:
        ok = all(x < y for _, x, y in faster)
        fig = "; ".join(f"{int(n):,}: {x:.1f} vs {y:.1f} ms ({y / x:.1f}×)" for n, x, y in faster)
        rows.append(("ADD+DEL faster than portmap at every size (median, ours vs portmap)", fig,
                     "met" if ok else "missed"))
    for kind, label in (("gateway", "gateway-portmap"), ("portmap", "portmap (for reference)")):
        first = s["sizes"].get(sizes[0], {}).get(kind)
        last = s["sizes"].get(sizes[-1], {}).get(kind)
        if first and last and len(sizes) > 1:
            r = last["add_del_p50"] / first["add_del_p50"]
            fig = (f"{first['add_del_p50']:.1f} ms at {int(sizes[0]):,} → "
                   f"{last['add_del_p50']:.1f} ms at {int(sizes[-1]):,} (×{r:.2f})")
            bg = s["background"].get(kind, [])
            if bg:
                fig += (f"; background ADDs {ms(bg[0]['add_ms_first10'])} ms (first 10% of "
                        f"{bg[0]['from']:,}→{bg[0]['to']:,}) → {ms(bg[-1]['add_ms_last10'])} ms "
                        f"(last 10% of {bg[-1]['from']:,}→{bg[-1]['to']:,})")
            if kind == "gateway":
                rows.append((f"{label} ADD+DEL flat in the number of containers (≤ ×"
                             f"{FLAT_FACTOR} from the smallest to the largest size)", fig,
                             "met" if r <= FLAT_FACTOR else "missed"))
            else:
                rows.append((f"{label}: growth with the number of containers", fig, "—"))
    for n, e in s["conn"].items():
        pl, ex, paired = e["plugin"]["rps"], e["expose"]["rps"], e.get("paired_expose")
        if pl and ex and paired:
            rows.append((f"conn/s through the plugin's mapping ≥ the eBPF expose's "
                         f"(≥ {CONN_TARGET:.2f}×, the same data path; median of the per-round "
                         f"ratios), {int(n):,} containers",
                         f"{paired:.2f}× (rounds: "
                         + ", ".join(f"{x:.2f}" for x in e["pairs_expose"])
                         + f"); medians {L.fmt(pl)} vs {L.fmt(ex)} ({pl / ex:.2f}×)",
                         "met" if paired >= CONN_TARGET else "missed"))
    return rows


def ms(v):
    return "—" if v is None else (f"{v:.1f}" if v >= 1 else f"{v:.2f}")


def render(a, s, rec, started, took, command, info, busy):
    md = [f"# CNI port publishing: gateway-portmap vs portmap, "
          f"{started.strftime('%Y-%m-%d %H:%M')}\n",
          f"Command: `{command}`  ",
          f"Machine: {info.get('cpu', '?')}, {info['cores']} cores, kernel {info['kernel']}, "
          f"commit {info.get('git_commit', '?')}  ",
          f"{a.probes} probe containers per size and plugin (alternating between the nodes); "
          f"conn/s: wrk -t1 -c{a.conns} `Connection: close`, {a.duration} s, medians of "
          f"{a.repeats} interleaved runs. Took {took / 60:.1f} min."
          + (f" {busy} compiler/test processes ran beside it: figures are noisier." if busy
             else "") + "\n",
          "## ADD and DEL of one container's mapping (ms, median / p90)\n",
          "The port plugin's exec alone (CNI_* environment, config with prevResult on stdin, "
          "one TCP port), timed inside the node; N = containers whose mappings are already "
          f"installed. Exec floor (fork+exec of /bin/true, same driver): {ms(s['floor_ms'])} "
          "ms.\n",
          "| N | gateway-portmap ADD | DEL | ADD+DEL | portmap ADD | DEL | ADD+DEL | "
          "portmap / ours |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [(f"{n:,}", s["sizes"].get(str(n), {})) for n in a.sizes]
    fl = s["flows"]
    if fl["probes"]:
        ent = fl["entries"] or {}
        rows.append((f"{fl['size']:,} + a wrk run's flows ({L.fmt(ent.get('gateway'))} entries "
                     f"in gatewayd's table, two a flow; {L.fmt(ent.get('portmap'))} connections "
                     "in the kernel's)",
                     fl["probes"]))
    for label, e in rows:
        g, p = e.get("gateway"), e.get("portmap")
        cells = [label]
        for x in (g, p):
            if not x:
                cells += ["—"] * 3
                continue
            cells += [f"{ms(x['add_p50'])} / {ms(x['add_p90'])}",
                      f"{ms(x['del_p50'])} / {ms(x['del_p90'])}",
                      f"{ms(x['add_del_p50'])} / {ms(x['add_del_p90'])}"]
        cells.append(f"{p['add_del_p50'] / g['add_del_p50']:.1f}×" if g and p else "—")
        md.append("| " + " | ".join(cells) + " |")
    md += ["\nWhat the `bridge` plugin (+ host-local) costs for the same probe containers, before "
           "and after the port plugin (a runtime runs it too, for every container):\n",
           "| N | bridge ADD, gateway node | bridge DEL | bridge ADD, portmap node | bridge DEL |",
           "|---:|---:|---:|---:|---:|"]
    for n in a.sizes:
        e = s["sizes"].get(str(n), {})
        cells = [f"{n:,}"]
        for kind in ("gateway", "portmap"):
            x = e.get(kind)
            cells += ([f"{ms(x['bridge_add_p50'])} / {ms(x['bridge_add_p90'])}",
                       f"{ms(x['bridge_del_p50'])} / {ms(x['bridge_del_p90'])}"] if x
                      else ["—", "—"])
        md.append("| " + " | ".join(cells) + " |")
    md += ["\nInstalling the background containers (plugin-only ADDs with a synthetic "
           "prevResult, one after the other):\n",
           "| containers | gateway-portmap s | ms per ADD (median; last 10%) | portmap s | "
           "ms per ADD (median; last 10%) |",
           "|---|---:|---:|---:|---:|"]
    g_bg, p_bg = s["background"].get("gateway", []), s["background"].get("portmap", [])
    for gb, pb in zip(g_bg, p_bg):
        md.append(f"| {gb['from']:,} → {gb['to']:,} | {gb['seconds']:.2f} | "
                  f"{ms(gb['add_ms_p50'])}; {ms(gb['add_ms_last10'])} | {pb['seconds']:.2f} | "
                  f"{ms(pb['add_ms_p50'])}; {ms(pb['add_ms_last10'])} |")
    md += ["\n## New connections/s through the mapping\n",
           f"wrk in ext → {L.UPLINK_ADDR}:{CONN_PORT} → gw_httpd in a container on the node's "
           f"bridge, :{SERVER_PORT}. Each run makes its mapping first and removes it after.\n",
           "| N | gateway-portmap mapping | `gwctl expose` (eBPF) | portmap (iptables) | "
           "mapping / expose, per round (of medians) | mapping / portmap, per round "
           "(of medians) |",
           "|---:|---:|---:|---:|---:|---:|"]
    for n, e in s["conn"].items():
        pl, ex, pm = (e[k]["rps"] for k in ("plugin", "expose", "portmap"))
        cells = [f"{int(n):,}"]
        for k in ("plugin", "expose", "portmap"):
            x = e[k]
            v = L.fmt(x["rps"]) if x["rps"] else "failed"
            if x["rps"] and x["steal_pct"] is not None:
                v += f" (st {x['steal_pct']:.0f}%)"
            cells.append(v)
        for other, v in (("expose", ex), ("portmap", pm)):
            paired = e.get(f"paired_{other}")
            cells.append((f"{paired:.2f}×" if paired else "—")
                         + (f" ({pl / v:.2f}×)" if pl and v else ""))
        md.append("| " + " | ".join(cells) + " |")
    errs = [(n, k, x) for n, e in s["conn"].items() for k in SETUPS for x in e[k]["errors"]]
    if errs:
        md.append("\nFailed runs: " + "; ".join(f"{k} @ {n}: {x}" for n, k, x in errs))
    md += ["\nPer round: the median over the rounds of the ratio between runs of the same round "
           "(next to each other in time); of medians: the ratio of the medians. st = CPU steal "
           "during the wrk run (/proc/stat). Runs in order of rounds: " + "; ".join(
        f"{k} @ {int(n):,}: " + ", ".join(L.fmt(v) for v in e[k]["all"])
        for n, e in s["conn"].items() for k in SETUPS) + ".",
        "\n## Against the targets (issue 12, section 5)\n",
        "| target | figure | verdict |", "|---|---|---|"]
    for t, f, v in targets(a, s):
        md.append(f"| {t} | {f} | {v} |")
    checks = rec["checks"]
    md.append(f"\nChecked during the run: the mappings installed in each node after every step "
              f"({len(checks)} counts: gatewayd's owner exposes, portmap's CNI-HOSTPORT-DNAT "
              "jumps) and every conn/s run reached the server through the mapping.")
    return "\n".join(md) + "\n"


def publish(doc, base, copy):
    """The tables from a run's raw figures: stdout, BASE.md, the summary into BASE.json, and
    with `copy` bench/CNI.md."""
    a = argparse.Namespace(**doc["parameters"])
    s = summarize(a, doc["runs"], doc.get("floor_ms"))
    text = render(a, s, doc["runs"], datetime.datetime.fromisoformat(doc["date"]),
                  doc["took_s"], doc["command"], doc["machine"], doc.get("other_activity", 0))
    if doc.get("failure"):
        text += f"\n**The run failed**: {doc['failure']}\n"
    print(text)
    with open(base + ".md", "w") as f:
        f.write(text)
    with open(base + ".json", "w") as f:
        json.dump(doc | {"summary": s}, f, indent=1, sort_keys=True)
    if copy:
        rel = os.path.relpath(base, os.path.join(L.REPO, "bench"))
        with open(os.path.join(L.REPO, "bench", "CNI.md"), "w") as f:
            f.write(text.replace("# CNI port publishing:", "# Latest CNI port publishing:", 1)
                    + f"\nThis run: [{rel}.md]({rel}.md), raw figures [{rel}.json]({rel}.json)\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        driver_main()
        return
    p = argparse.ArgumentParser(description="CNI ADD/DEL latency and conn/s: gateway-portmap vs "
                                "portmap")
    p.add_argument("--quick", action="store_true",
                   help="development: sizes 0,10, 5 probes, 2 repeats of 2 s")
    p.add_argument("--sizes", help="containers already installed (default 0,100,1000)")
    p.add_argument("--probes", type=int, help="probe containers per size and plugin (20)")
    p.add_argument("--repeats", type=int, help="conn/s runs per setup and size (3)")
    p.add_argument("--duration", type=int, help="wrk seconds (4)")
    p.add_argument("--conn-sizes", help="sizes with conn/s runs (default: first and last)")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--build-dir", default=os.path.join(L.REPO, "build"))
    p.add_argument("--out", default=os.path.join(L.REPO, "bench", "results"))
    p.add_argument("--no-copy", action="store_true", help="do not update bench/CNI.md")
    p.add_argument("--render", metavar="RUN.json",
                   help="only write the tables again from a run's raw figures (alone)")
    a = p.parse_args()
    if a.render:
        # The tables again from a run's JSON (e.g. after a change to how they are computed).
        with open(a.render) as f:
            doc = json.load(f)
        doc.pop("summary", None)
        publish(doc, a.render.removesuffix(".json"),
                not a.no_copy and "quick" not in a.render and not doc.get("failure"))
        return
    q = a.quick
    a.sizes = [int(x) for x in (a.sizes or ("0,10" if q else "0,100,1000")).split(",") if x]
    a.probes = a.probes or (5 if q else 20)
    a.repeats = a.repeats or (2 if q else 3)
    a.duration = a.duration if a.duration is not None else (2 if q else 4)
    if a.sizes != sorted(set(a.sizes)) or a.sizes[0] < 0 or a.sizes[-1] > 30000:
        sys.exit("--sizes: increasing, 0..30000")
    a.conn_sizes = ([int(x) for x in a.conn_sizes.split(",") if x] if a.conn_sizes
                    else sorted({a.sizes[0], a.sizes[-1]}))
    if any(n not in a.sizes for n in a.conn_sizes):
        sys.exit("--conn-sizes: each one of --sizes")
    if os.geteuid() != 0:
        sys.exit("bench/cni.py: run as root (it creates network namespaces)")
    command = "python3 bench/cni.py " + shlex.join(sys.argv[1:])

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = datetime.datetime.now()
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="gwcni.")
    L.sweep_leftovers()
    b = Bench(a, work)
    failure = None
    try:
        L.log(f"setup: nodes {b.gw.topo.gwh} (gatewayd) and {b.pm.topo.gwh} (portmap)")
        b.setup()
        for n in a.sizes:
            L.log(f"size {n}")
            b.grow(n)
            b.probes(n, a.probes)
            if n in a.conn_sizes:
                b.conns(n)
                if n == a.sizes[-1]:
                    b.flows_phase(n, max(3, a.probes // 2))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        failure = str(e)
        L.log(f"failed: {failure}")
        try:
            with open(os.path.join(work, "gatewayd.log")) as f:
                L.log("gatewayd log tail: " + f.read()[-600:])
        except OSError:
            pass
    finally:
        b.cleanup()
        subprocess.run(["rm", "-rf", work])
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, f"cni-{started.strftime('%Y-%m-%d-%H%M%S')}{'-quick' if q else ''}")
    doc = {"date": started.isoformat(timespec="seconds"), "command": command,
           "machine": L.machine_info(), "other_activity": L.other_activity(),
           "took_s": time.monotonic() - t0, "parameters": vars(a), "runs": b.records,
           "floor_ms": getattr(b, "floor_ms", None), "failure": failure}
    with open(base + ".json", "w") as f:  # first: the raw figures survive a bug below
        json.dump(doc, f, indent=1, sort_keys=True)
    publish(doc, base, not a.no_copy and not q and not failure)
    L.log(f"results in {base}.md")
    if failure:
        sys.exit(1)


if __name__ == "__main__":
    main()
