# SPDX-License-Identifier: MIT
"""Shared pieces of bench/lab.py and bench/scale.py: commands in namespaces, processes we own,
the throwaway topology, /proc/stat CPU accounting, load-generator runs, and medians.

Rules kept here: every network command runs inside our own namespaces (`ip netns exec NS` or
`ip -n NS`); processes are stopped by the PID (process group) we started them with; namespaces of
dead earlier runs (named gwb<pid><role>) are swept at start.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# lab.py/scale.py: x g s1 s2; cni.py also: px pg (the portmap node), d (a dummy sandbox), cN
# (containers).
NS_RE = re.compile(r"^gwb(\d+)(x|g|s1|s2|px|pg|d|c\d+)$")
CLIENT_CPU = "0"  # load generators
SERVER_CPU = "1"  # servers; on a 2-vCPU machine the NAT path runs in softirq wherever it lands

# Addresses of the tutorial topology (see Topology).
EXT_ADDR = "198.18.0.2"
UPLINK_ADDR = "198.18.0.1"
BRIDGE_ADDR = "10.88.0.1"
S1_ADDR = "10.88.0.2"
S2_ADDR = "10.88.0.3"
SUBNET = "10.88.0.0/16"
# IPv6 on the same links (ULA; gatewayd's `ns add` default pool is fd00:88::/64 on gw0).
EXT_ADDR6 = "fd00:18::2"
UPLINK_ADDR6 = "fd00:18::1"
BRIDGE_ADDR6 = "fd00:88::1"
S1_ADDR6 = "fd00:88::2"
S2_ADDR6 = "fd00:88::3"
SUBNET6 = "fd00:88::/64"
# Ports inside server 1 and the host ports that are forwarded to them.
HTTP_PORT, IPERF_PORT, UDP_PORT = 8080, 5201, 9001
HOST_HTTP, HOST_IPERF, HOST_UDP = 6000, 6201, 6001
# Device settings the lab can A/B (--device): veth GRO, GRO + UDP GRO forwarding, BIG TCP.
DEVICE_SETTINGS = ("gro", "gro-fwd", "bigtcp")
FOLLOWED_BY_GATEWAYD = ("bigtcp",)  # the links gatewayd makes take the uplink's BIG TCP size
BIG_TCP_BYTES = 185000  # the kernel docs' example; above 65,536 is what makes it BIG TCP


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=60, input=None):
    """Runs a command, returns CompletedProcess with text output."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r


def hostport(addr, port):
    """ADDR:PORT with an IPv6 address in brackets, as URLs and our tools want it."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def nsx(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


def pinned(ns, cpu, *cmd):
    return nsx(ns, "taskset", "-c", cpu, *cmd)


class Procs:
    """Processes we started, each in its own session so that forked children (socat) go with it.
    Stopped by the process-group id we got at start, never by name."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, logpath=None, stdout_path=None):
        """stdout and stderr go to `logpath`; with `stdout_path`, stdout alone goes there (a
        tool's JSON) and stderr to `logpath` or nowhere."""
        err = open(logpath, "w") if logpath else subprocess.DEVNULL
        out = open(stdout_path, "w") if stdout_path else err
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        else:
            # The leader exited; children it forked may still hold the group.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p, grace=2.0)


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


def start_gatewayd(procs, gatewayd, gwctl, gwh, sock, work, n, log_path, *extra):
    """gatewayd serving the gateway host namespace `gwh`, with bpffs and state dir numbered
    `n` under `work`; waits until `gwctl status` answers. Returns (process, bpffs dir).
    Raises RuntimeError with the end of its log when it does not come up."""
    bpffs = os.path.join(work, f"bpffs-{n}")
    os.makedirs(bpffs, exist_ok=True)
    if os.path.exists(sock):
        os.unlink(sock)
    proc = procs.start([gatewayd, "--uplink", "up0", "--netns", gwh, "--socket", sock,
                        "--state-dir", os.path.join(work, f"state-{n}"), "--bpffs", bpffs,
                        *extra], log_path)
    up = wait_until(lambda: proc.poll() is not None or run(
        [gwctl, "--socket", sock, "status"], check=False).returncode == 0, 15, 0.1)
    if proc.poll() is not None or not up:
        with open(log_path) as f:
            raise RuntimeError("gatewayd did not come up: " + f.read().strip()[-300:])
    return proc, bpffs


def stop_gatewayd(procs, proc, bpffs):
    """Stops gatewayd (its data path stays pinned) and unmounts the bpffs it mounted."""
    if proc is not None:
        procs.stop(proc, grace=10.0)
    if bpffs and is_mountpoint(bpffs):
        run(["umount", bpffs], check=False)


def is_mountpoint(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def listening(ns, port, proto="tcp"):
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    r = run(nsx(ns, "ss", flag, f"sport = :{port}"), check=False)
    return r.returncode == 0 and r.stdout.strip() != ""


def pid_is_lab(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except OSError:
        return False
    return any(name in cmdline for name in ("lab.py", "scale.py", "cni.py", "ctfull.py"))


def sweep_leftovers():
    """Deletes namespaces of earlier runs whose process is gone, after killing what runs in
    them (those are processes an earlier run of ours started)."""
    r = run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NS_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_is_lab(pid):
            continue
        pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", name], check=False)
        log(f"swept leftover namespace {name} ({len(pids)} processes)")


class Topology:
    """The tutorial topology, in four throwaway namespaces:

      ext (198.18.0.2) --veth-- gwh up0 (198.18.0.1)   gwh: gateway host, ip_forward=1
                                gwh gw0 bridge 10.88.0.1/16
                                  |-- gw-<s1> -- s1 eth0 10.88.0.2  (servers)
                                  `-- gw-<s2> -- s2 eth0 10.88.0.3  (masquerade client)

    and IPv6 on the same links: ext fd00:18::2 -- up0 fd00:18::1, gw0 fd00:88::1/64, s1
    fd00:88::2, s2 fd00:88::3, IPv6 forwarding on in gwh; no DAD anywhere (links we own, and
    the addresses must be usable at once).

    Names and addresses follow gatewayd's own wiring (bridge gw0, host link gw-NAME, eth0
    inside), so `gwctl ns add` adopts these namespaces instead of making new ones. The external
    namespace has no route to 10.88.0.0/16 unless a setup adds it (plain routing only), so NAT
    setups cannot pass traffic without actually translating it.
    """

    def __init__(self, prefix):
        self.prefix = prefix
        self.ext = prefix + "x"
        self.gwh = prefix + "g"
        self.s1 = prefix + "s1"
        self.s2 = prefix + "s2"
        self.all = [self.ext, self.gwh, self.s1, self.s2]

    def host_link(self, ns):
        name = "gw-" + ns
        if len(name) > 15:
            raise RuntimeError(f"namespace name {ns} too long for gatewayd's host link name")
        return name

    def build(self, servers=True):
        """With servers=False only ext and the gateway host are made: gatewayd makes the server
        namespaces itself (`gwctl ns add`), with the same names, wiring and addresses (both
        families)."""
        for ns in self.all if servers else [self.ext, self.gwh]:
            run(["ip", "netns", "add", ns])
        self.tune(self.all if servers else [self.ext, self.gwh])
        g = self.gwh
        run(["ip", "-n", g, "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
             "netns", self.ext])
        run(["ip", "-n", g, "addr", "add", f"{UPLINK_ADDR}/24", "dev", "up0"])
        run(["ip", "-n", g, "addr", "add", f"{UPLINK_ADDR6}/64", "dev", "up0", "nodad"])
        run(["ip", "-n", g, "link", "set", "up0", "up"])
        run(["ip", "-n", self.ext, "addr", "add", f"{EXT_ADDR}/24", "dev", "eth0"])
        run(["ip", "-n", self.ext, "addr", "add", f"{EXT_ADDR6}/64", "dev", "eth0", "nodad"])
        run(["ip", "-n", self.ext, "link", "set", "eth0", "up"])
        run(nsx(g, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        run(nsx(g, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"))
        if not servers:
            return
        run(["ip", "-n", g, "link", "add", "gw0", "type", "bridge"])
        run(["ip", "-n", g, "addr", "add", f"{BRIDGE_ADDR}/16", "dev", "gw0"])
        run(["ip", "-n", g, "addr", "add", f"{BRIDGE_ADDR6}/64", "dev", "gw0", "nodad"])
        run(["ip", "-n", g, "link", "set", "gw0", "up"])
        for ns, addr, addr6 in ((self.s1, S1_ADDR, S1_ADDR6), (self.s2, S2_ADDR, S2_ADDR6)):
            hl = self.host_link(ns)
            run(["ip", "-n", g, "link", "add", hl, "type", "veth", "peer", "name", "eth0",
                 "netns", ns])
            run(["ip", "-n", g, "link", "set", hl, "master", "gw0"])
            run(["ip", "-n", g, "link", "set", hl, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{addr6}/64", "dev", "eth0", "nodad"])
            run(["ip", "-n", ns, "route", "add", "default", "via", BRIDGE_ADDR])
            run(["ip", "-n", ns, "-6", "route", "add", "default", "via", BRIDGE_ADDR6])

    def tune(self, namespaces):
        for ns in namespaces:
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            # Namespaces inherit some IPv4 sysctls from the root namespace: set what we rely on.
            for key, val in (("net.ipv4.conf.all.rp_filter", "0"),
                             ("net.ipv4.conf.default.rp_filter", "0"),
                             ("net.ipv4.ip_local_port_range", "1024 65000"),
                             ("net.ipv4.tcp_tw_reuse", "1"),
                             # IPv6 on, and no DAD: set before our links are made, so their
                             # link-local addresses are usable at once too.
                             ("net.ipv6.conf.all.disable_ipv6", "0"),
                             ("net.ipv6.conf.default.disable_ipv6", "0"),
                             ("net.ipv6.conf.all.accept_dad", "0"),
                             ("net.ipv6.conf.default.accept_dad", "0")):
                run(nsx(ns, "sysctl", "-qw", f"{key}={val}"))

    def address(self, ns):
        r = run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"], check=False)
        m = re.search(r"inet (\S+)", r.stdout)
        return m.group(1) if m else None

    def address6(self, ns):
        """eth0's global IPv6 addresses in `ns` (gatewayd's `ns add` gives fd00:88::N/64)."""
        r = run(["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"],
                check=False)
        return re.findall(r"inet6 (\S+)", r.stdout)

    def links(self, ns, kind):
        r = run(["ip", "-n", ns, "-o", "link", "show", "type", kind], check=False)
        return re.findall(r"^\d+: ([^@:]+)", r.stdout, re.M)

    def device_setting(self, setting):
        """Turns a device setting on for every veth and bridge of the topology (the lab's A/B of issue 13's
        levers; a setup and its `+SETTING` twin run in the same repeat). SETTING is one of
        DEVICE_SETTINGS or several joined by '+'."""
        parts = setting.split("+")
        for ns in self.all:
            for dev in self.links(ns, "veth") + self.links(ns, "bridge"):
                for part in parts:
                    if part in ("gro", "gro-fwd"):
                        features = ["gro", "on"]
                        if part == "gro-fwd":
                            features += ["rx-udp-gro-forwarding", "on"]
                        run(nsx(ns, "ethtool", "-K", dev, *features))
                    elif part == "bigtcp":
                        run(nsx(ns, sys.executable, os.path.join(REPO, "bench", "tools",
                                                                 "link_sizes.py"),
                                dev, str(BIG_TCP_BYTES)))
                    else:
                        raise RuntimeError(f"unknown device setting {part!r}")

    def route_ext_to_servers(self, on):
        verb = "replace" if on else "del"
        run(["ip", "-n", self.ext, "route", verb, SUBNET, "via", UPLINK_ADDR], check=on)
        run(["ip", "-n", self.ext, "-6", "route", verb, SUBNET6, "via", UPLINK_ADDR6], check=on)

    def destroy(self):
        for ns in self.all:
            run(["ip", "netns", "del", ns], check=False)


class CpuStat:
    """Machine-wide /proc/stat counters. Namespaces share one kernel, so the NAT work (softirq)
    cannot be charged to a process: we take busy = user+nice+system+irq+softirq over all CPUs
    during a run, which includes the load generator and the server (the same in every setup)
    and any other activity on the machine (reported as a caveat; steal shows contention)."""

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        self.user, self.nice, self.system, self.idle, self.iowait, self.irq, self.softirq, \
            self.steal = v
        self.t = time.monotonic()

    def busy(self):
        return self.user + self.nice + self.system + self.irq + self.softirq

    def total(self):
        return self.busy() + self.idle + self.iowait + self.steal

    @staticmethod
    def delta(a, b):
        dt = b.total() - a.total()
        return {
            "busy_cpu_s": (b.busy() - a.busy()) / CpuStat.HZ,
            "softirq_cpu_s": (b.softirq - a.softirq) / CpuStat.HZ,
            "steal_pct": 100.0 * (b.steal - a.steal) / dt if dt > 0 else 0.0,
            "wall_s": b.t - a.t,
        }


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------- load generator runs


def iperf_tcp(procs, topo, server_ns, client_ns, target, port, server_port, seconds, workdir,
              tag):
    """One iperf3 TCP run: server pinned to SERVER_CPU, client to CLIENT_CPU."""
    srv = procs.start(pinned(server_ns, SERVER_CPU, "iperf3", "-s", "-1", "-p", str(server_port)),
                      os.path.join(workdir, f"{tag}.iperf3-server.log"))
    try:
        if not wait_until(lambda: listening(server_ns, server_port), 5):
            return {"error": "iperf3 server did not start"}
        a = CpuStat()
        r = run(pinned(client_ns, CLIENT_CPU, "iperf3", "-c", target, "-p", str(port), "-t",
                       str(seconds), "-J", "--connect-timeout", "3000"),
                check=False, timeout=seconds + 20)
        b = CpuStat()
    finally:
        procs.stop(srv, grace=2.0)
    try:
        j = json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": f"iperf3: {r.stderr.strip()[-200:] or 'no output'}"}
    if "error" in j:
        return {"error": f"iperf3: {j['error']}"}
    recv = j["end"]["sum_received"]
    cpu = CpuStat.delta(a, b)
    gb = recv["bytes"] / 1e9
    return {
        "gbit_s": recv["bits_per_second"] / 1e9,
        "bytes": recv["bytes"],
        "retransmits": j["end"]["sum_sent"].get("retransmits"),
        "cpu_s_per_gb": cpu["busy_cpu_s"] / gb if gb > 0 else None,
        "softirq_s_per_gb": cpu["softirq_cpu_s"] / gb if gb > 0 else None,
        "steal_pct": cpu["steal_pct"],
    }


def udp_flood(procs, topo, bench_bin, target, port, seconds, workdir, tag):
    s1 = topo.s1
    rlog = os.path.join(workdir, f"{tag}.udp-recv.json")
    rcv = procs.start(pinned(s1, SERVER_CPU, os.path.join(bench_bin, "gw_udpflood"), "recv",
                             "--bind", hostport("::" if ":" in target else "0.0.0.0", UDP_PORT),
                             "--seconds", str(seconds + 10),
                             "--idle-ms", "700"),
                      os.path.join(workdir, f"{tag}.udp-recv.log"), stdout_path=rlog)
    try:
        if not wait_until(lambda: listening(s1, UDP_PORT, "udp"), 5):
            return {"error": "udp receiver did not start"}
        a = CpuStat()
        r = run(pinned(topo.ext, CLIENT_CPU, os.path.join(bench_bin, "gw_udpflood"), "send",
                       "--dst", hostport(target, port), "--seconds", str(seconds)),
                check=False, timeout=seconds + 20)
        b = CpuStat()
        try:
            rcv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    finally:
        procs.stop(rcv, sig=signal.SIGINT)
    try:
        sent = json.loads(r.stdout)
        with open(rlog) as f:
            got = json.loads(f.read().strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError, OSError):
        return {"error": f"gw_udpflood: {r.stderr.strip()[-200:] or 'no output'}"}
    cpu = CpuStat.delta(a, b)
    if got["packets"] == 0:
        return {"error": f"no packets delivered ({sent['packets']} sent)",
                "steal_pct": cpu["steal_pct"]}
    return {
        "pps": got["packets"] / sent["seconds"],
        "sent_pps": sent["pps"],
        "loss_pct": 100.0 * (1 - got["packets"] / sent["packets"]) if sent["packets"] else None,
        "steal_pct": cpu["steal_pct"],
    }


def parse_wrk(text):
    """Requests/sec, latency percentiles (ms) and error counts from `wrk --latency`."""
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[f"p{pct}_ms"] = float(m.group(1)) * units[m.group(2)]
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    return out


def wrk(topo, target, port, seconds, connections, close, client_ns=None):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "2s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://{hostport(target, port)}/")
    a = CpuStat()
    r = run(pinned(client_ns or topo.ext, CLIENT_CPU, *cmd), check=False,
            timeout=seconds + 20)
    b = CpuStat()
    res = parse_wrk(r.stdout)
    res["steal_pct"] = CpuStat.delta(a, b)["steal_pct"]
    if "rps" not in res or res.get("requests", 0) == 0:
        return {"error": f"wrk: {(r.stderr or r.stdout).strip()[-200:] or 'no requests'}",
                "steal_pct": res["steal_pct"]}
    # A setup that answers most requests with errors is not serving.
    if res["socket_errors"] > res["requests"]:
        res["error"] = f"wrk: {res['socket_errors']} socket errors, {res['requests']} requests"
    return res


# ---------------------------------------------------------------- machine and output


def machine_info():
    info = {"kernel": os.uname().release, "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["git_commit"] = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                 check=False).stdout.strip()
    except OSError:
        pass
    return info


def other_activity():
    """Builds and tests running beside us make every figure noisier: say so in the output."""
    r = run(["pgrep", "-c", "-f", "ctest|cc1plus|clang"], check=False)
    try:
        return int(r.stdout.strip() or 0)
    except ValueError:
        return 0


def gnuplot_bars(png, title, ylabel, rows):
    """rows: [(label, value)]; one bar chart PNG via gnuplot."""
    rows = [(l, v) for l, v in rows if v is not None]
    if not rows or not shutil.which("gnuplot"):
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for label, value in rows:
            f.write(f"\"{label}\" {value}\n")
        dat = f.name
    script = f"""
set terminal pngcairo size 900,480 font ",10"
set output "{png}"
set title "{title}"
set ylabel "{ylabel}"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:*]
set xtics rotate by -25
unset key
plot "{dat}" using 2:xtic(1) lc rgb "#3c78b4", "" using 0:2:(($2 >= 100) ? sprintf("%.0f", $2) : sprintf("%.3g", $2)) with labels offset 0,0.7 notitle
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(dat)
    return r.returncode == 0


def fmt(v, digits=3):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"
