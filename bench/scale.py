#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Scale: rule installation time and new connections/s with 10, 1,000 and 10,000 exposed ports.

    python3 bench/scale.py [--counts 10,1000,10000] [--methods ...] [--duration 4]

Each exposed port P = 10000 + i (from 65536 - N for N above 55,536) forwards to s1:8080 (gw_httpd). Methods:
  iptables        one `iptables -t nat -A PREROUTING ... -j DNAT` command per rule (a shell
                  loop inside the gateway namespace: no per-rule `ip netns exec` cost)
  iptables-restore  one `iptables-restore --noflush` of all rules
  nft             one `nft -f` with one rule per port (the iptables translation)
  nft-map         one `nft -f` with a verdict map port -> address . port (nftables' idiom)
  gateway         one `gwctl expose P s1:8080 --mode ebpf` per port (the shell loop again)
After installing, wrk measures new connections/s (Connection: close) to the LAST port, the rule
iptables reaches after evaluating all the others. The ruleset of `iptables` and
`iptables-restore` is the same, so the connection rate is measured once, after the restore.
A method exceeding --install-timeout is stopped; the table shows how far it got.
Output: bench/results/<date>-scale/ (scale.md, scale.json, PNG charts) and bench/SCALE.md.
"""

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib as L  # noqa: E402

METHODS = ["iptables", "iptables-restore", "nft", "nft-map", "gateway", "gateway-batch"]
BASE_PORT = 10000


def base_port(n):
    """The first exposed port: 10000, or lower so that n ports fit below 65536 (every port
    from 1 for 65,535 rules)."""
    return min(BASE_PORT, 65536 - n)


def iptables_lines(n):
    return [f"iptables -w -t nat -A PREROUTING -i up0 -p tcp --dport {base_port(n) + i} -j DNAT "
            f"--to-destination {L.S1_ADDR}:{L.HTTP_PORT}" for i in range(n)]


def restore_text(n):
    rules = [f"-A PREROUTING -i up0 -p tcp --dport {base_port(n) + i} -j DNAT --to-destination "
             f"{L.S1_ADDR}:{L.HTTP_PORT}" for i in range(n)]
    return "*nat\n" + "\n".join(rules) + "\nCOMMIT\n"


def nft_rules_text(n):
    rules = "\n".join(f"    iifname \"up0\" tcp dport {base_port(n) + i} dnat to "
                      f"{L.S1_ADDR}:{L.HTTP_PORT}" for i in range(n))
    return ("table ip gwscale {\n  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f"{rules}\n  }}\n}}\n")


def nft_map_text(n):
    elems = ",\n      ".join(f"{base_port(n) + i} : {L.S1_ADDR} . {L.HTTP_PORT}" for i in range(n))
    return ("table ip gwscale {\n  map portmap {\n"
            "    type inet_service : ipv4_addr . inet_service\n"
            f"    elements = {{ {elems} }}\n  }}\n"
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            "    iifname \"up0\" dnat ip to tcp dport map @portmap\n  }\n}\n")


def timed_script(ns, script, timeout, work, stdin_text=None):
    """Runs `sh -c script` inside `ns`; returns (seconds, timed_out, stderr tail)."""
    path = os.path.join(work, "install.sh")
    with open(path, "w") as f:
        f.write(script)
    t0 = time.monotonic()
    p = subprocess.Popen(L.nsx(ns, "sh", "-e", path), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(stdin_text, timeout=timeout)
        return time.monotonic() - t0, False, (err or "").strip()[-300:], p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return time.monotonic() - t0, True, "", None


def count_rules(ns, method):
    if method.startswith("iptables"):
        r = L.run(L.nsx(ns, "iptables", "-t", "nat", "-S", "PREROUTING"), check=False)
        return sum(1 for line in r.stdout.splitlines() if line.startswith("-A"))
    return None


class Runner:
    def __init__(self, args, work):
        self.a = args
        self.work = work
        self.procs = L.Procs()
        self.topo = L.Topology(f"gwb{os.getpid()}")
        self.bench_bin = os.path.join(args.build_dir, "bench")
        self.gatewayd = os.path.join(args.build_dir, "gateway", "gatewayd")
        self.gwctl = os.path.join(args.build_dir, "control", "gwctl")
        self.sock = os.path.join(work, "gw.sock")
        self.gw = None
        self.bpffs = None
        self.runs = 0

    def start_gatewayd(self):
        self.runs += 1
        log = os.path.join(self.work, f"gatewayd-{self.runs}.log")
        self.gw, self.bpffs = L.start_gatewayd(self.procs, self.gatewayd, self.gwctl,
                                               self.topo.gwh, self.sock, self.work, self.runs,
                                               log, "--xdp", "off")
        for ns in (self.topo.s1, self.topo.s2):
            r = L.run([self.gwctl, "--socket", self.sock, "ns", "add", ns], check=False)
            if r.returncode != 0:
                raise RuntimeError(f"gwctl ns add: {r.stderr.strip()}")
        self.topo.tune([self.topo.s1, self.topo.s2])

    def stop_gatewayd(self):
        L.stop_gatewayd(self.procs, self.gw, self.bpffs)
        self.gw = None
        self.bpffs = None

    def one(self, method, n):
        """Installs n rules with `method` in a fresh topology; returns the record."""
        rec = {"method": method, "rules": n}
        gateway = method.startswith("gateway")
        self.topo.build(servers=not gateway)
        httpd = None
        try:
            if gateway:
                self.start_gatewayd()
            httpd = self.procs.start(L.pinned(self.topo.s1, L.SERVER_CPU,
                                              os.path.join(self.bench_bin, "gw_httpd"), "--port",
                                              str(L.HTTP_PORT)))
            if not L.wait_until(lambda: L.listening(self.topo.s1, L.HTTP_PORT), 5):
                raise RuntimeError("gw_httpd did not start")
            g = self.topo.gwh
            stdin_text = None
            if method == "iptables":
                script = "\n".join(iptables_lines(n)) + "\n"
            elif method == "iptables-restore":
                script = "iptables-restore -w --noflush\n"
                stdin_text = restore_text(n)
            elif method == "nft":
                script = "nft -f -\n"
                stdin_text = nft_rules_text(n)
            elif method == "nft-map":
                script = "nft -f -\n"
                stdin_text = nft_map_text(n)
            elif method == "gateway-batch":
                # One request for all rules, as iptables-restore and nft -f load a ruleset.
                script = (f"{shlex.quote(self.gwctl)} --socket {shlex.quote(self.sock)} "
                          "expose --file - >/dev/null\n")
                stdin_text = "".join(f"{base_port(n) + i} {self.topo.s1}:{L.HTTP_PORT}\n"
                                     for i in range(n))
            else:
                gw = shlex.quote(self.gwctl)
                sock = shlex.quote(self.sock)
                script = "\n".join(
                    f"{gw} --socket {sock} expose {base_port(n) + i} {self.topo.s1}:{L.HTTP_PORT} "
                    "--mode ebpf >/dev/null" for i in range(n)) + "\n"
            secs, timed_out, err, rc = timed_script(g, script, self.a.install_timeout, self.work,
                                                    stdin_text)
            rec["install_s"] = secs
            rec["timed_out"] = timed_out
            if not timed_out and rc != 0:
                rec["error"] = f"install failed: {err}"
                return rec
            if timed_out:
                rec["installed"] = count_rules(g, method)
                if gateway:
                    r = L.run([self.gwctl, "--socket", self.sock, "-j", "status"], check=False)
                    try:
                        rec["installed"] = int(json.loads(r.stdout)["exposes"])
                    except (ValueError, KeyError, TypeError):
                        rec["status"] = r.stdout.strip()[-300:]
                # The rate at the rule count reached still says how lookups scale.
                got = rec.get("installed") or 0
                if got > 0 and method != "iptables" and self.a.duration > 0:
                    rec["conn_at_installed"] = L.wrk(self.topo, L.UPLINK_ADDR,
                                                     base_port(n) + got - 1, self.a.duration,
                                                     self.a.conns, close=True)
                return rec
            if method == "iptables":
                return rec  # same ruleset as iptables-restore: its connection rate stands for both
            if self.a.duration > 0:
                res = L.wrk(self.topo, L.UPLINK_ADDR, base_port(n) + n - 1, self.a.duration,
                            self.a.conns, close=True)
                rec["conn"] = res
            return rec
        finally:
            if httpd is not None:
                self.procs.stop(httpd)
            if gateway:
                self.stop_gatewayd()
            self.topo.destroy()


def write_outputs(args, runner, records, started, outdir, command):
    info = L.machine_info()
    med = {}
    for m in args.methods:
        for n in args.counts:
            rs = [r for r in records if r["method"] == m and r["rules"] == n]
            if not rs:
                continue
            e = {"install_s": L.median([r.get("install_s") for r in rs if not r.get("timed_out")
                                         and "error" not in r]),
                 "timed_out": any(r.get("timed_out") for r in rs),
                 "installed": L.median([r.get("installed") for r in rs]),
                 "errors": [r["error"] for r in rs if "error" in r]}
            conns = [r["conn"] for r in rs if "conn" in r and "error" not in r["conn"]]
            e["conn_rps"] = L.median([c.get("rps") for c in conns])
            e["steal_pct"] = L.median([c.get("steal_pct") for c in conns])
            partial = [r["conn_at_installed"] for r in rs if "conn_at_installed" in r
                       and "error" not in r["conn_at_installed"]]
            e["conn_at_installed_rps"] = L.median([c.get("rps") for c in partial])
            med.setdefault(m, {})[str(n)] = e
    doc = {"date": started.isoformat(timespec="seconds"), "command": command, "machine": info,
           "parameters": vars(args) | {"build_dir": args.build_dir},
           "medians": med, "runs": records}
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "scale.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)

    md = [f"# Scale, {started.strftime('%Y-%m-%d %H:%M')}\n",
          f"Command: `{command}`  ",
          f"Machine: {info.get('cpu', '?')}, {info['cores']} cores, kernel {info['kernel']}, "
          f"commit {info.get('git_commit', '?')}  ",
          f"{args.repeats} repeat(s), medians; conn/s: wrk -t1 -c{args.conns} "
          f"`Connection: close`, {args.duration} s, to the last exposed port; install "
          f"timeout {args.install_timeout} s.\n"]
    head = "| method | " + " | ".join(f"install {n:,} (s)" for n in args.counts) + " | " + \
        " | ".join(f"conn/s @ {n:,}" for n in args.counts) + " |"
    md.append(head)
    md.append("|---" + "|---:" * (2 * len(args.counts)) + "|")
    for m in args.methods:
        cells = [m]
        for n in args.counts:
            e = med.get(m, {}).get(str(n))
            if e is None:
                cells.append("—")
            elif e["errors"]:
                cells.append("failed")
            elif e["timed_out"]:
                got = e.get("installed")
                cells.append(f"> {args.install_timeout}" + (f" ({got:,.0f} done)" if got else ""))
            else:
                cells.append(L.fmt(e["install_s"]))
        for n in args.counts:
            e = med.get(m, {}).get(str(n))
            if m == "iptables":
                cells.append("= iptables-restore")
                continue
            v = e and e.get("conn_rps")
            partial = e and e.get("conn_at_installed_rps")
            first = med.get(m, {}).get(str(args.counts[0]), {}).get("conn_rps")
            if v:
                rel = f" ({100 * v / first:.0f}%)" if first else ""
                cells.append(f"{L.fmt(v)}{rel} st {e['steal_pct']:.0f}%")
            elif partial:
                cells.append(f"{L.fmt(partial)} at {e['installed']:,.0f} rules")
            else:
                cells.append("—")
        md.append("| " + " | ".join(cells) + " |")
    errs = [(m, n, x) for m in med for n, e in med[m].items() for x in e["errors"]]
    if errs:
        md.append("\nFailures:\n")
        md += [f"- {m} {n}: {x[:300]}" for m, n, x in errs]
    md.append("\n(%) = share of the same method's rate with the fewest rules; st = CPU steal "
              "during the wrk run (/proc/stat).")

    charts = []
    for n in args.counts:
        rows = [(m, med.get(m, {}).get(str(n), {}).get("conn_rps")) for m in args.methods
                if m != "iptables"]
        png = f"conn-at-{n}.png"
        if L.gnuplot_bars(os.path.join(outdir, png), f"new conn/s to the last of {n:,} rules",
                          "conn/s", rows):
            charts.append((f"conn/s with {n} rules", png))
    for title, png in charts:
        md.append(f"\n![{title}]({png})")
    text = "\n".join(md) + "\n"
    with open(os.path.join(outdir, "scale.md"), "w") as f:
        f.write(text)
    if not args.no_copy:
        rel = os.path.relpath(outdir, os.path.join(L.REPO, "bench"))
        copy = text
        for _, png in charts:
            copy = copy.replace(f"]({png})", f"]({rel}/{png})")
        with open(os.path.join(L.REPO, "bench", "SCALE.md"), "w") as f:
            f.write(copy + f"\nFull results: [{rel}/]({rel}/)\n")
    return text


def main():
    p = argparse.ArgumentParser(description="rule installation time and conn/s at scale")
    p.add_argument("--counts", default="10,1000,10000")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--duration", type=int, default=4, help="wrk seconds (0: skip conn/s)")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--install-timeout", type=int, default=120)
    p.add_argument("--build-dir", default=os.path.join(L.REPO, "build"))
    p.add_argument("--out", default=os.path.join(L.REPO, "bench", "results"))
    p.add_argument("--no-copy", action="store_true", help="do not update bench/SCALE.md")
    a = p.parse_args()
    a.counts = [int(x) for x in a.counts.split(",") if x]
    a.methods = [m for m in a.methods.split(",") if m]
    if any(m not in METHODS for m in a.methods):
        sys.exit(f"unknown method in {a.methods}; known: {METHODS}")
    if os.geteuid() != 0:
        sys.exit("bench/scale.py: run as root (it creates network namespaces)")
    if any(n < 1 or n > 65535 for n in a.counts):
        sys.exit("--counts: 1..65535")
    command = os.environ.get("LAB_COMMAND") or "python3 bench/scale.py " + shlex.join(
        sys.argv[1:])

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = datetime.datetime.now()
    outdir = os.path.join(a.out, started.strftime("%Y-%m-%d-%H%M%S") + "-scale")
    work = tempfile.mkdtemp(prefix="gwscale.")
    runner = Runner(a, work)
    L.sweep_leftovers()
    records = []
    unavailable_gateway = None
    try:
        for rep in range(a.repeats):
            for n in a.counts:
                for m in a.methods:
                    if m.startswith("gateway") and unavailable_gateway:
                        continue
                    L.log(f"repeat {rep + 1}: {m} with {n} rules")
                    try:
                        rec = runner.one(m, n)
                    except RuntimeError as e:
                        rec = {"method": m, "rules": n, "error": f"not available: {e}"}
                        if m.startswith("gateway"):
                            unavailable_gateway = str(e)
                    rec["repeat"] = rep
                    records.append(rec)
                    c = rec.get("conn", {})
                    L.log(f"  install {rec.get('install_s', 0):.2f}s"
                          f"{' TIMEOUT' if rec.get('timed_out') else ''}"
                          f" conn/s {L.fmt(c.get('rps'))} {rec.get('error', '')}")
    finally:
        runner.stop_gatewayd()
        runner.procs.stop_all()
        runner.topo.destroy()
        if records:
            print(write_outputs(a, runner, records, started, outdir, command))
            L.log(f"results in {outdir}")
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
