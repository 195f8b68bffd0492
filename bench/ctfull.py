#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Conntrack full vs empty: new connections/s through gatewayd's eBPF DNAT with its conntrack
table nearly empty and holding --flows established flows (issue 13 section 3: full at least 90%
of empty).

    python3 bench/ctfull.py [--flows 1000000] [--repeats 3] [--duration 5] [--half]

One gatewayd (--ct-entries 2100000: two entries a flow, plus headroom; --xdp off as scale.py)
serves the lab topology (lablib.Topology: gatewayd makes s1 with `gwctl ns add`); tcp
HOST_HTTP is exposed to gw_httpd in s1 (--mode ebpf). Each repeat, in the same run:
  empty  wrk new conn/s (-t1 -cN, `Connection: close`, as scale.py) to the exposed port
  half   (--half) after gw_ctfill inserted --flows/2 synthetic established flows
  full   after gw_ctfill brought them to --flows
then `gw_ctfill --delete` removes them again. The flows each wrk run leaves (CLOSE state, kept
for the transitory timeout) are deleted as it ends (`gwctl conntrack delete --src EXT`): each
figure and each fill starts from the table it names, and no fill evicts. The synthetic flows are
TEST-NET/100.64/10 tuples no lab packet matches (see bench/tools/gw_ctfill.cpp); gatewayd's GC
sees them ESTABLISHED and keeps them, and walks them every --gc-interval, which is part of
what a full table costs: gatewayd's CPU during each wrk run is recorded beside the rate.

Also recorded: conntrack entries (`gwctl -j stats`) before and after each run, the flows each
run created (the expose's connection counter) and drop/race counters, whether any synthetic
flow was evicted (`gw_ctfill --check` after each fill and each full run), the map's kernel
memory (fdinfo memlock), gatewayd's RSS, CPU steal.
Output: bench/results/<date>-ctfull/ (ctfull.md, ctfull.json); the markdown is printed.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib as L  # noqa: E402

TARGET_PCT = 90  # issue 13 section 3
SAMPLE_CLIENT, SAMPLE_PORT = "100.64.0.0", 20000  # gw_ctfill's flow 0
STATES = ("empty", "half", "full")


def proc_cpu_s(pid):
    """User + system CPU seconds of a process, all its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / L.CpuStat.HZ
    except (OSError, IndexError, ValueError):
        return None


def proc_mem_mib(pid):
    """{"rss": VmRSS, "hwm": VmHWM} in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                for key, name in (("VmRSS:", "rss"), ("VmHWM:", "hwm")):
                    if line.startswith(key):
                        out[name] = int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return out


class Runner:
    def __init__(self, args, work):
        self.a = args
        self.work = work
        self.procs = L.Procs()
        self.topo = L.Topology(f"gwb{os.getpid()}")
        self.bench_bin = os.path.join(args.build_dir, "bench")
        self.gatewayd = os.path.join(args.build_dir, "gateway", "gatewayd")
        self.gwctl_bin = os.path.join(args.build_dir, "control", "gwctl")
        self.ctfill_bin = os.path.join(self.bench_bin, "gw_ctfill")
        self.sock = os.path.join(work, "gw.sock")
        self.gw = None
        self.bpffs = None
        self.map_path = None
        self.built = False

    # ------------------------------------------------------------ tools

    def gwctl(self, *args, check=True, timeout=300):
        r = L.run([self.gwctl_bin, "--socket", self.sock, *args], check=False, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"gwctl {' '.join(args)}: exit {r.returncode}: "
                               f"{(r.stderr or r.stdout).strip()[-300:]}")
        return r

    def gwctl_json(self, *args, ok_codes=(0,)):
        r = self.gwctl("-j", *args, check=False)
        if r.returncode not in ok_codes:
            raise RuntimeError(f"gwctl -j {' '.join(args)}: exit {r.returncode}: "
                               f"{(r.stderr or r.stdout).strip()[-300:]}")
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise RuntimeError(f"gwctl -j {' '.join(args)}: not JSON: {e}") from e

    def ctfill(self, flows, *args):
        """gw_ctfill FLOWS ARGS on gatewayd's pinned map; its JSON."""
        r = L.run([self.ctfill_bin, self.map_path, str(flows), *args], check=False, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"gw_ctfill {flows} {' '.join(args)}: exit {r.returncode}: "
                               f"{r.stderr.strip()[-300:]}")
        if r.stderr.strip():
            L.log(f"  gw_ctfill: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def stats(self):
        s = self.gwctl_json("stats")
        ct = s.get("conntrack", {})
        return {"entries": ct.get("entries"), "capacity": ct.get("capacity"),
                "pressure_sweeps": ct.get("pressureSweeps"),
                "connections": sum(r.get("connections", 0) for r in s.get("rules", [])),
                "reasons": s.get("reasons", {})}

    # ------------------------------------------------------------ setup

    def setup(self):
        self.built = True
        self.topo.build(servers=False)
        extra = ["--xdp", self.a.xdp, "--ct-entries", str(self.a.ct_entries)]
        if self.a.gc_interval is not None:
            extra += ["--gc-interval", str(self.a.gc_interval)]
        self.gw, self.bpffs = L.start_gatewayd(self.procs, self.gatewayd, self.gwctl_bin,
                                               self.topo.gwh, self.sock, self.work, 1,
                                               os.path.join(self.work, "gatewayd.log"), *extra)
        status = self.gwctl_json("status", ok_codes=(0, 3))
        dp = status.get("datapath", {})
        if not dp.get("loaded"):
            raise RuntimeError(f"gatewayd runs without its eBPF data path: {dp.get('error')}")
        self.gwctl("ns", "add", self.topo.s1)
        self.topo.tune([self.topo.s1])
        self.gwctl("expose", str(L.HOST_HTTP), f"{self.topo.s1}:{L.HTTP_PORT}", "--mode", "ebpf")
        self.procs.start(L.pinned(self.topo.s1, L.SERVER_CPU,
                                  os.path.join(self.bench_bin, "gw_httpd"), "--port",
                                  str(L.HTTP_PORT)), os.path.join(self.work, "gw_httpd.log"))
        if not L.wait_until(lambda: L.listening(self.topo.s1, L.HTTP_PORT), 5):
            raise RuntimeError("gw_httpd did not start")
        self.map_path = os.path.join(self.bpffs, "gw_ct_v4")
        if not os.path.exists(self.map_path):
            raise RuntimeError(f"no pinned conntrack map at {self.map_path}")
        return status

    def teardown(self):
        L.stop_gatewayd(self.procs, self.gw, self.bpffs)
        self.gw = None
        self.bpffs = None
        self.procs.stop_all()
        if self.built:
            self.topo.destroy()
        # A bpffs left mounted (gatewayd killed before unmounting) must go before the rm -rf.
        for name in os.listdir(self.work):
            path = os.path.join(self.work, name)
            if name.startswith("bpffs-") and L.is_mountpoint(path):
                L.run(["umount", path], check=False)

    # ------------------------------------------------------------ measurements

    def wrk(self, seconds):
        return L.wrk(self.topo, L.UPLINK_ADDR, L.HOST_HTTP, seconds, self.a.conns, close=True)

    def measure(self, state, rep, synthetic):
        """One wrk run with the table in `state` (`synthetic` flows of gw_ctfill in it)."""
        deleted = self.gwctl_json("conntrack", "delete", "--src", L.EXT_ADDR).get("deleted")
        before = self.stats()
        cpu0 = proc_cpu_s(self.gw.pid)
        res = self.wrk(self.a.duration)
        cpu1 = proc_cpu_s(self.gw.pid)
        after = self.stats()
        # At once, not only before the next run: left in, they would make the next fill evict.
        deleted_after = self.gwctl_json("conntrack", "delete", "--src", L.EXT_ADDR).get("deleted")
        reasons = {k: v - before["reasons"].get(k, 0) for k, v in after["reasons"].items()
                   if v != before["reasons"].get(k, 0)}
        rec = {"state": state, "repeat": rep, "synthetic_flows": synthetic, "wrk": res,
               "wrk_flows_deleted_before": deleted, "wrk_flows_deleted_after": deleted_after,
               "ct_entries_before": before["entries"], "ct_entries_after": after["entries"],
               "ct_capacity": after["capacity"],
               "new_flows": after["connections"] - before["connections"],
               "pressure_sweeps": (after["pressure_sweeps"] or 0)
               - (before["pressure_sweeps"] or 0),
               "reasons_delta": reasons,
               "gatewayd_cpu_s": cpu1 - cpu0 if None not in (cpu0, cpu1) else None,
               "gatewayd_mem_mib": proc_mem_mib(self.gw.pid)}
        L.log(f"  {state}: conn/s {L.fmt(res.get('rps'))} steal {res.get('steal_pct', 0):.0f}% "
              f"gatewayd cpu {L.fmt(rec['gatewayd_cpu_s'])} s, entries "
              f"{before['entries']} -> {after['entries']} {res.get('error', '')}")
        return rec

    def sample_flow(self):
        """gw_ctfill's flow 0 as gatewayd lists it (state, idle): one listing, one walk."""
        r = self.gwctl_json("conntrack", "--src", SAMPLE_CLIENT, "--port", str(SAMPLE_PORT))
        flows = r if isinstance(r, list) else r.get("items", [])
        return flows[0] if flows else None


def summarize(args, records):
    """Medians per state, and full/empty ratios (of the medians; per repeat, paired)."""
    med = {}
    for state in STATES:
        rs = [r for r in records if r["state"] == state]
        if not rs:
            continue
        ok = [r for r in rs if "error" not in r["wrk"]]
        med[state] = {
            "runs": len(rs), "ok_runs": len(ok),
            "synthetic_flows": rs[0]["synthetic_flows"],
            "rps": L.median([r["wrk"].get("rps") for r in ok]),
            "p50_ms": L.median([r["wrk"].get("p50_ms") for r in ok]),
            "p99_ms": L.median([r["wrk"].get("p99_ms") for r in ok]),
            "steal_pct": L.median([r["wrk"].get("steal_pct") for r in ok]),
            "gatewayd_cpu_s": L.median([r.get("gatewayd_cpu_s") for r in ok]),
            "ct_entries_before": L.median([r.get("ct_entries_before") for r in rs]),
            "ct_entries_after": L.median([r.get("ct_entries_after") for r in rs]),
            "new_flows": L.median([r.get("new_flows") for r in ok]),
            "errors": [r["wrk"]["error"] for r in rs if "error" in r["wrk"]],
        }
    ratios = {}
    empty = med.get("empty", {}).get("rps")
    for state in ("half", "full"):
        v = med.get(state, {}).get("rps")
        if empty and v:
            paired = []
            for rep in sorted({r["repeat"] for r in records}):
                e = [r["wrk"].get("rps") for r in records
                     if r["repeat"] == rep and r["state"] == "empty" and "error" not in r["wrk"]]
                f = [r["wrk"].get("rps") for r in records
                     if r["repeat"] == rep and r["state"] == state and "error" not in r["wrk"]]
                if e and f and e[0]:
                    paired.append(100.0 * f[0] / e[0])
            ratios[state] = {"of_medians_pct": 100.0 * v / empty, "paired_pct": paired,
                             "paired_median_pct": L.median(paired)}
    return med, ratios


def write_outputs(args, doc, outdir):
    med, ratios = summarize(args, doc["runs"])
    doc["medians"], doc["ratios"] = med, ratios
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "ctfull.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)

    info = doc["machine"]
    mapinfo = doc.get("map") or {}
    started = datetime.datetime.fromisoformat(doc["date"])
    md = [f"# Conntrack full vs empty, {started.strftime('%Y-%m-%d %H:%M')}\n",
          f"Command: `{doc['command']}`  ",
          f"Machine: {info.get('cpu', '?')}, {info['cores']} cores, kernel {info['kernel']}, "
          f"commit {info.get('git_commit', '?')}  ",
          f"gatewayd `--xdp {args.xdp} --ct-entries {args.ct_entries:,}`"
          + (f" `--gc-interval {args.gc_interval}`" if args.gc_interval is not None else
             " (GC every 5 s, its default)")
          + f"; tcp {L.HOST_HTTP} exposed to gw_httpd in s1 (eBPF DNAT); wrk -t1 "
          f"-c{args.conns} `Connection: close`, {args.duration} s a run; {args.repeats} "
          f"repeat(s), each measuring {', '.join(s for s in STATES if s in med)} in turn; "
          "medians.\n"]
    if doc.get("other_activity"):
        md.append(f"Note: {doc['other_activity']} compiler/test processes were running beside "
                  "the benchmark: figures are noisier.\n")
    md.append("| table | synthetic flows | conn/s | vs empty | p50 ms | p99 ms | steal % | "
              "gatewayd CPU s / run | entries at start | entries at end | runs |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for state in STATES:
        e = med.get(state)
        if not e:
            continue
        rel = "100%" if state == "empty" else (
            f"{ratios[state]['of_medians_pct']:.1f}%" if state in ratios else "—")
        md.append(f"| {state} | {e['synthetic_flows']:,} | {L.fmt(e['rps'])} | {rel} | "
                  f"{L.fmt(e['p50_ms'])} | {L.fmt(e['p99_ms'])} | {L.fmt(e['steal_pct'], 2)} | "
                  f"{L.fmt(e['gatewayd_cpu_s'])} | {L.fmt(e['ct_entries_before'])} | "
                  f"{L.fmt(e['ct_entries_after'])} | {e['ok_runs']}/{e['runs']} |")
    full = ratios.get("full")
    if full:
        verdict = "met" if full["of_medians_pct"] >= TARGET_PCT else "NOT met"
        paired = ", ".join(f"{p:.1f}%" for p in full["paired_pct"])
        md.append(f"\n**full / empty: {full['of_medians_pct']:.1f}%** (target ≥ {TARGET_PCT}%: "
                  f"{verdict}); per repeat, paired: {paired or '—'} (median "
                  f"{L.fmt(full['paired_median_pct'])}%).")
    else:
        md.append("\nfull / empty: no figure (see the failures below).")

    md.append("\n| repeat | table | conn/s | steal % | gatewayd CPU s | flows made | "
              "drop_ct_insert | ct_insert_race | entries before → after | wrk flows deleted "
              "after |")
    md.append("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in doc["runs"]:
        w = r["wrk"]
        rd = r.get("reasons_delta", {})
        md.append(f"| {r['repeat'] + 1} | {r['state']} | "
                  f"{L.fmt(w.get('rps')) if 'error' not in w else 'failed'} | "
                  f"{L.fmt(w.get('steal_pct'), 2)} | {L.fmt(r.get('gatewayd_cpu_s'))} | "
                  f"{L.fmt(r.get('new_flows'))} | {rd.get('drop_ct_insert', 0)} | "
                  f"{rd.get('ct_insert_race', 0)} | {r.get('ct_entries_before')} → "
                  f"{r.get('ct_entries_after')} | {r.get('wrk_flows_deleted_after')} |")

    md.append("")
    fills = [f for f in doc["fills"] if f.get("entries")]
    if fills:
        secs = L.median([f["seconds"] for f in fills])
        per = L.median([1e9 * f["syscall_seconds"] / f["entries"] for f in fills])
        md.append(f"- Fill: gw_ctfill, bpf_map_update_batch in chunks of 65,536 entries; median "
                  f"{L.fmt(secs)} s per fill ({L.fmt(per)} ns/entry in the syscall).")
    dels = doc["deletes"]
    if dels:
        md.append(f"- Empty again: gw_ctfill --delete (bpf_map_delete_batch), median "
                  f"{L.fmt(L.median([d['seconds'] for d in dels]))} s.")
    checks = doc["checks"]
    if checks:
        lost = [c for c in checks if c["one"] or c["none"]]
        if lost:
            md.append("- **Synthetic flows evicted** (the LRU map was full): the figures after "
                      "these measured a table that was evicting; raise --ct-entries or shorten "
                      "--duration.")
            md += [f"  - {c['when']}, repeat {c['repeat'] + 1}: {c['both']:,} whole, "
                   f"{c['one']:,} with one entry, {c['none']:,} gone of {c['flows']:,}"
                   for c in lost]
        else:
            md.append(f"- Evictions: none. Every synthetic flow had both entries after each fill "
                      f"and each measured run ({len(checks)} checks, gw_ctfill --check).")
    s = doc.get("sample_flow")
    if s:
        md.append(f"- gw_ctfill's flow 0 as gatewayd lists it: {s.get('proto')} "
                  f"{s.get('orig', {}).get('src')}:{s.get('orig', {}).get('sport')} → "
                  f"{s.get('orig', {}).get('dst')}:{s.get('orig', {}).get('dport')}, state "
                  f"**{s.get('state')}**, idle {L.fmt(s.get('idleSeconds'))} s, age "
                  f"{L.fmt(s.get('ageSeconds'))} s (GC keeps ESTABLISHED flows for the "
                  "established timeout).")
    elif doc.get("sample_error"):
        md.append(f"- gw_ctfill's flow 0 could not be listed: {doc['sample_error']}")
    if mapinfo:
        md.append(f"- Map `gw_ct_v4`: max_entries {mapinfo.get('map_max_entries', 0):,}, kernel "
                  f"memory (fdinfo memlock) {mapinfo.get('map_memlock_bytes', 0) / 2**20:.1f} "
                  "MiB, preallocated: the same empty or full.")
    mem = [r.get("gatewayd_mem_mib", {}) for r in doc["runs"]]
    hwm = max((m.get("hwm", 0) for m in mem), default=0)
    if hwm:
        rss = {st: L.median([r.get("gatewayd_mem_mib", {}).get("rss") for r in doc["runs"]
                             if r["state"] == st]) for st in STATES}
        md.append("- gatewayd RSS after the runs: "
                  + ", ".join(f"{st} {rss[st]:.0f} MiB" for st in STATES if rss[st])
                  + f"; peak {hwm:.0f} MiB (its GC reads the whole table each sweep).")
    md.append(f"- Each wrk run's flows are deleted as soon as it ends (`gwctl conntrack delete "
              f"--src {L.EXT_ADDR}`), so each run and each fill starts from the table its row "
              "names. Flows made = the expose's connection counter over the run.")
    md.append("- steal = CPU steal during the wrk run (/proc/stat); gatewayd CPU = its user + "
              "system time during the run (the conntrack GC thread, mostly).")
    if doc.get("notes"):
        md += [f"- {n}" for n in doc["notes"]]
    errs = [f"{st}: {x}" for st, e in med.items() for x in e["errors"]]
    if doc.get("error"):
        errs.insert(0, doc["error"])
    if errs:
        md.append("\nFailures:\n")
        md += [f"- {x[:300]}" for x in errs]
    text = "\n".join(md) + "\n"
    with open(os.path.join(outdir, "ctfull.md"), "w") as f:
        f.write(text)
    return text


def run_all(a, runner, doc):
    doc["status"] = runner.setup()
    if a.warmup > 0:
        L.log(f"warm-up: {a.warmup} s of wrk (not recorded)")
        runner.wrk(a.warmup)
    headroom = (a.ct_entries - 2 * a.flows) // 2
    warned = False
    for rep in range(a.repeats):
        L.log(f"repeat {rep + 1}/{a.repeats}")
        rec = runner.measure("empty", rep, 0)
        doc["runs"].append(rec)
        made = rec.get("new_flows") or 0
        if not warned and made > 0.9 * headroom:
            warned = True
            note = (f"a run makes ~{made:,} flows; with {a.flows:,} synthetic flows the map has "
                    f"room for {headroom:,} more: the full runs will make the LRU evict "
                    "(raise --ct-entries or shorten --duration)")
            L.log(f"  warning: {note}")
            doc["notes"].append(note)
        have = 0
        steps = [("half", a.flows // 2)] if a.half and a.flows // 2 > 0 else []
        steps.append(("full", a.flows))
        for state, target in steps:
            fill = runner.ctfill(target - have, "--first", str(have))
            fill.update({"repeat": rep, "state": state})
            doc["fills"].append(fill)
            doc["map"] = {k: fill[k] for k in ("map_max_entries", "map_memlock_bytes")}
            L.log(f"  filled to {target:,} flows: {fill['entries']:,} entries in "
                  f"{fill['seconds']:.2f} s")
            have = target
            check = runner.ctfill(have, "--check")
            check.update({"repeat": rep, "when": f"after the {state} fill"})
            doc["checks"].append(check)
            if rep == 0 and state == "full" and "sample_flow" not in doc:
                try:
                    doc["sample_flow"] = runner.sample_flow()
                except RuntimeError as e:
                    doc["sample_error"] = str(e)
            doc["runs"].append(runner.measure(state, rep, have))
        check = runner.ctfill(have, "--check")
        check.update({"repeat": rep, "when": "after the full run"})
        doc["checks"].append(check)
        if check["one"] or check["none"]:
            L.log(f"  evicted: {check['one']:,} flows lost one entry, {check['none']:,} both")
        gone = runner.ctfill(have, "--delete")
        gone["repeat"] = rep
        doc["deletes"].append(gone)


def main():
    p = argparse.ArgumentParser(description="new conn/s with the conntrack table full vs empty")
    p.add_argument("--flows", type=int, default=1_000_000, help="synthetic flows at full")
    p.add_argument("--half", action="store_true", help="also measure at --flows/2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="wrk seconds per run")
    p.add_argument("--warmup", type=int, default=1, help="wrk seconds before the first run")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--ct-entries", type=int, default=2_100_000,
                   help="gatewayd's conntrack map size (two entries a flow)")
    p.add_argument("--gc-interval", type=int, default=None,
                   help="gatewayd's --gc-interval (its default when not given)")
    p.add_argument("--xdp", default="off", choices=["off", "native", "generic", "auto"])
    p.add_argument("--build-dir", default=os.path.join(L.REPO, "build"))
    p.add_argument("--out", default=os.path.join(L.REPO, "bench", "results"))
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ctfull.py: run as root (it creates network namespaces)")
    if a.flows < 1 or a.repeats < 1 or a.duration < 1:
        sys.exit("--flows, --repeats and --duration must be at least 1")
    if 2 * a.flows > a.ct_entries:
        sys.exit(f"--flows {a.flows:,} needs {2 * a.flows:,} entries: more than --ct-entries "
                 f"{a.ct_entries:,}")
    for tool in ("wrk", "taskset", "ss"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: run deploy/install-deps.sh")
    command = os.environ.get("LAB_COMMAND") or "python3 bench/ctfull.py " + shlex.join(
        sys.argv[1:])

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = datetime.datetime.now()
    outdir = os.path.join(a.out, started.strftime("%Y-%m-%d-%H%M%S") + "-ctfull")
    work = tempfile.mkdtemp(prefix="gwctfull.")
    runner = Runner(a, work)
    for binary in (runner.gatewayd, runner.gwctl_bin, runner.ctfill_bin,
                   os.path.join(runner.bench_bin, "gw_httpd")):
        if not os.access(binary, os.X_OK):
            shutil.rmtree(work, ignore_errors=True)
            sys.exit(f"{binary} missing: cmake --build build --target gw_ctfill gatewayd gwctl "
                     "gw_httpd")
    doc = {"date": started.isoformat(timespec="seconds"), "command": command,
           "machine": L.machine_info(), "parameters": vars(a),
           "other_activity": L.other_activity(),
           "runs": [], "fills": [], "checks": [], "deletes": [], "notes": []}
    L.sweep_leftovers()
    code = 0
    try:
        run_all(a, runner, doc)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        doc["error"] = f"{type(e).__name__}: {e}"
        L.log(f"failed: {doc['error']}")
        code = 1
    except BaseException as e:  # Ctrl-C, SIGTERM: clean up, keep what was measured
        doc["error"] = f"interrupted ({e!r})"
        code = 130
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            runner.teardown()
        finally:
            if os.path.exists(os.path.join(work, "gatewayd.log")) and (doc["runs"] or code):
                os.makedirs(outdir, exist_ok=True)
                shutil.copy(os.path.join(work, "gatewayd.log"), outdir)
            if doc["runs"] or code:
                print(write_outputs(a, doc, outdir))
                L.log(f"results in {outdir}")
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
