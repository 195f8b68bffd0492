#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh BUILD_DIR SOURCE_DIR: the .deb as a real Debian 12 service under a real systemd.
# Builds the .deb (cpack), boots a debootstrap bookworm root under systemd-nspawn
# (--private-network: every link, namespace and flow lives inside the container), installs the
# package with apt and checks it as an operator would: enable --now, gwctl as root and as a
# --group member, an expose serving a client, restart / kill -9 / reload / upgrade keeping
# flows, the journal's levels, gwctl down / apt remove / apt purge leaving nothing, and
# `systemd-analyze security`. The root is cached under BUILD_DIR/system-test/cache as a zstd
# tarball keyed by the apt sources and package list. Exit 77 (skip) only when the container
# cannot boot.
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$2")
work=$build/system-test
cache=$work/cache
mkdir -p "$work" "$cache"

t0=$(date +%s.%N)
tphase=$t0
pname=
timings=
phase() { # phase NAME: starts a phase; the time each took is printed at the end
  local now
  now=$(date +%s.%N)
  [ -z "$pname" ] || timings+=$(awk -v n="$pname" -v a="$now" -v p="$tphase" \
    'BEGIN {printf "  %-40s %5.1f s\n", n, a - p}')$'\n'
  echo "== $1"
  pname=$1
  tphase=$now
}
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn)"
for tool in debootstrap systemd-nspawn zstd nsenter cpack bpftool lintian; do
  command -v "$tool" >/dev/null || die "$tool is missing: run deploy/install-deps.sh"
done

# --- the .deb, and a newer one (same files, higher version) for the upgrade ---
phase "package (cpack)"
debdir=$work/deb
rm -rf "$debdir"
mkdir -p "$debdir"
(cd "$build" && cpack -G DEB -B "$debdir" >"$debdir/cpack.log" 2>&1) ||
  { cat "$debdir/cpack.log"; die "cpack"; }
deb=$(ls "$debdir"/gateway_*.deb)
version=$(dpkg-deb -f "$deb" Version)
newversion=$version+systemtest1
rm -rf "$debdir/new"
dpkg-deb -R "$deb" "$debdir/new"
sed -i "s/^Version: .*/Version: $newversion/" "$debdir/new/DEBIAN/control"
dpkg-deb --root-owner-group -b "$debdir/new" "$debdir/gateway_${newversion}_amd64.deb" >/dev/null
newdeb=$debdir/gateway_${newversion}_amd64.deb
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | awk 'NF {print $1}' | sort -u | paste -sd,)

# --- lintian: Debian's package checker; errors and warnings fail (overrides: deploy/) ---
phase "lintian"
lintian --tag-display-limit 0 "$deb" >"$debdir/lintian.txt" 2>&1 || true
cat "$debdir/lintian.txt"
grep -qE '^[EW]: ' "$debdir/lintian.txt" && fail "lintian: errors or warnings above"

# --- the root: debootstrap once, then a cached tarball ---
phase "root (debootstrap or cache)"
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
  awk '$2 == "bookworm" && !m {m = $1} END {print m}')
mirror=${mirror:-http://deb.debian.org/debian/}
include="systemd,dbus,iproute2,procps,python3-minimal,bash-completion,passwd,$depends"
key=$( (echo "v1 $mirror $include"; cat /etc/apt/sources.list /etc/apt/sources.list.d/* \
  2>/dev/null || true) | sha256sum | cut -c1-16)
tarball=$cache/bookworm-$key.tar.zst
if [ ! -s "$tarball" ]; then
  echo "debootstrap bookworm from $mirror (cache key $key)"
  tmproot=$cache/building-$$
  rm -rf "$tmproot"
  debootstrap --variant=minbase --include="$include" bookworm "$tmproot" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log"; rm -rf "$tmproot";
    die "debootstrap failed (log: $cache/debootstrap.log)"; }
  rm -rf "$tmproot"/var/cache/apt/archives/*.deb
  tar -C "$tmproot" --numeric-owner --xattrs -cf - . | zstd -q -T2 -3 -o "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  rm -rf "$tmproot"
  find "$cache" -name 'bookworm-*.tar.zst' ! -name "bookworm-$key.tar.zst" -delete
fi
root=$work/root
rm -rf "$root"
mkdir -p "$root"
zstd -q -dc "$tarball" | tar -C "$root" --numeric-owner --xattrs -xf -
cp "$deb" "$newdeb" "$root/root/"
cp "$src/tests/system/flow.py" "$root/root/flow.py"
echo "gateway-system-test" >"$root/etc/hostname"

# --- boot ---
phase "boot (systemd-nspawn)"
machine=gwst-$$
nspawnpid=
leader=
own=$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup)
sysd=$(awk -F: '$2 == "name=systemd" {print $3}' /proc/self/cgroup)
cleanup() {
  local rc=$?
  set +e
  # The container keeps nothing: SIGKILL to its PID 1 ends every process in it at once (a
  # clean poweroff can hang in systemd-shutdown, outliving nspawn), and nspawn then exits.
  [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
  if [ -n "$nspawnpid" ]; then
    for _ in $(seq 100); do kill -0 "$nspawnpid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$nspawnpid" 2>/dev/null && kill -KILL "$nspawnpid"
    wait "$nspawnpid" 2>/dev/null
  fi
  # nspawn's cgroups (--keep-unit: under ours) outlive it; the next boot fails on them.
  # They empty a moment after nspawn exits: retry for up to 10 s.
  for _ in $(seq 100); do
    local left=0
    for base in "/sys/fs/cgroup/unified$own" "/sys/fs/cgroup/systemd$sysd" "/sys/fs/cgroup$own"; do
      for d in "${base%/}/payload" "${base%/}/supervisor"; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$d" ] && left=1
      done
    done
    [ $left = 0 ] && break
    sleep 0.1
  done
  [ $left = 0 ] || echo "warning: cgroups of the container left under /sys/fs/cgroup/*$own"
  [ "${GW_SYSTEM_KEEP:-0}" = 1 ] || rm -rf "$root"
  phase "(end)" >/dev/null
  echo "phase timings:"
  printf '%s' "$timings"
  awk -v a="$(date +%s.%N)" -v z="$t0" 'BEGIN {printf "  %-40s %5.1f s\n", "total", a - z}'
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
systemd-nspawn -D "$root" -M "$machine" --boot --register=no --keep-unit --console=passive \
  --private-network --system-call-filter=bpf --capability=CAP_BPF,CAP_PERFMON,CAP_IPC_LOCK \
  >"$work/nspawn.log" 2>&1 &
nspawnpid=$!
# The container's PID 1: the descendant of nspawn that is PID 1 in its own namespace.
for _ in $(seq 100); do
  for p in $(pgrep -P "$nspawnpid") $(pgrep -P "$(pgrep -P "$nspawnpid" | paste -sd,)" 2>/dev/null); do
    if awk '$1 == "NSpid:" && $NF == 1 {found=1} END {exit !found}' "/proc/$p/status" 2>/dev/null
    then leader=$p; break 2; fi
  done
  kill -0 "$nspawnpid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$work/nspawn.log"; skip "the container does not boot here"; }
ct() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C "$@"; }
# is-system-running --wait needs the bus, which comes up a moment after PID 1.
booted=
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
  booted=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1 || true)
  case $booted in running | degraded) break ;; esac
  sleep 0.2
done
case $booted in
  running | degraded) echo "container $machine (PID $leader) is $booted" ;;
  *) cat "$work/nspawn.log"; skip "the container's systemd did not come up: '$booted'" ;;
esac
[ "$booted" = running ] || ct systemctl --failed --no-pager

# waitfor SECONDS DESCRIPTION CMD...: until CMD succeeds (ct the host's view)
waitfor() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { fail "$what: not within ${secs}s"; return 1; }
    sleep 0.1
  done
}

# --- the network: an uplink to an "outside" namespace, inside the container ---
ct ip netns add out
ct ip link add gwup type veth peer name eth0 netns out
ct ip addr add 10.77.0.1/24 dev gwup
ct ip link set gwup up
ct ip netns exec out ip addr add 10.77.0.2/24 dev eth0
ct ip netns exec out ip link set eth0 up
ct ip netns exec out ip link set lo up

payload=/sys/fs/cgroup/unified$own/payload
[ -d "$payload" ] || payload=/sys/fs/cgroup$own/payload
# What a full teardown must return to: links, namespaces, tc/XDP, pins, mounts, state.
snapshot() {
  {
    echo "# links"; ct ip -o link show | awk '{print $2}' | sed 's/@.*//' | sort
    echo "# netns"; ct ip netns list | awk '{print $1}' | sort
    echo "# tc/xdp"; nsenter -t "$leader" -n bpftool net show 2>/dev/null | grep -v '^$' || true
    # systemd's own per-unit programs (sd_fw_*, sd_devices) come and go with units: not ours.
    echo "# cgroup bpf"; bpftool cgroup tree "$payload" 2>/dev/null |
      awk '/^\// {path = $1; next} NR > 1 && $NF !~ /^sd_/ {print path, $2, $NF}' || true
    echo "# pins"; ct sh -c 'ls -R /sys/fs/bpf/gateway /run/gateway/bpffs 2>/dev/null; true'
    echo "# mounts"; ct awk '{print $5, $9}' /proc/self/mountinfo | grep -Ev '^/run/user' | sort
    echo "# state"; ct sh -c 'ls -A /var/lib/gateway 2>/dev/null; true'
  }
}
before=$(snapshot)

# --- install ---
phase "install (apt install ./gateway_*.deb)"
ct apt-get install -y -q "/root/$(basename "$deb")" >"$work/apt-install.log" 2>&1 ||
  { cat "$work/apt-install.log"; die "apt install ./$(basename "$deb")"; }
ct systemctl is-enabled gatewayd >/dev/null 2>&1 && fail "the package enabled the service"
ct systemctl is-active gatewayd >/dev/null 2>&1 && fail "the package started the service"

phase "truthful state without a data path"
ct sed -i 's/^uplink = .*/uplink = gwup/; s/^#group = gateway/group = gwadmin/' \
  /etc/gateway/gatewayd.conf
ct groupadd gwadmin
ct useradd -m -G gwadmin alice
ct useradd -m bob
# A --bpffs that cannot be made (an explicit one never falls back): `--datapath ebpf` must
# fail the start (never READY=1), `auto` starts degraded and says so in systemd's Status.
dropin() {
  ct sh -c "mkdir -p /run/systemd/system/gatewayd.service.d && printf '%s\n' '[Service]' \
    'ExecStart=' 'ExecStart=/usr/sbin/gatewayd --config /etc/gateway/gatewayd.conf $1' \
    >/run/systemd/system/gatewayd.service.d/test.conf && systemctl daemon-reload"
}
dropin "--bpffs /proc/gateway-nope --datapath ebpf"
ct systemctl start gatewayd 2>/dev/null && fail "--datapath ebpf without a data path started"
ct systemctl stop gatewayd
journal=$(ct journalctl -u gatewayd --no-pager -o cat)
grep -q 'did not load (--datapath ebpf)' <<<"$journal" ||
  fail "the failed start's reason is not in the journal: $journal"
dropin "--bpffs /proc/gateway-nope --datapath auto"
ct systemctl reset-failed gatewayd 2>/dev/null || true
ct systemctl start gatewayd || fail "--datapath auto did not start degraded"
status=$(ct systemctl show -p StatusText --value gatewayd)
echo "  Status: $status"
grep -q 'DEGRADED' <<<"$status" || fail "systemd's Status does not say DEGRADED"
rc=0; ct gwctl status >/dev/null || rc=$?
[ $rc = 3 ] || fail "gwctl status of a degraded gatewayd exits $rc, not 3"
ct gwctl down >/dev/null || fail "gwctl down (degraded)"
waitfor 20 "the degraded gatewayd stops" sh -c \
  "[ \"\$(nsenter -t $leader -a systemctl show -p ActiveState --value gatewayd)\" = inactive ]"
ct sh -c 'rm -r /run/systemd/system/gatewayd.service.d && systemctl daemon-reload'

phase "enable --now"
ct systemctl enable --now gatewayd || { ct journalctl -u gatewayd --no-pager | tail -30;
  die "systemctl enable --now gatewayd"; }
# Type=notify: `enable --now` returns once READY=1 came, so the API answers at once.
ct gwctl status >"$work/status.txt" 2>&1 || fail "gwctl status right after enable --now: $(cat "$work/status.txt")"
cat "$work/status.txt"
grep -q '^data path  eBPF' "$work/status.txt" || fail "the eBPF data path is not loaded"
grep -q '^pins ' "$work/status.txt" || fail "status does not say where the pins live"
ct systemctl show -p StatusText --value gatewayd
ct runuser -u alice -- gwctl status >/dev/null 2>&1 || fail "gwctl status as a member of group gwadmin"
ct runuser -u bob -- gwctl status >/dev/null 2>&1 && fail "gwctl status as bob (no member) worked"
ct stat -c '%G %a' /run/gateway/gateway.sock | grep -qx 'gwadmin 660' ||
  fail "socket is $(ct stat -c '%G %a' /run/gateway/gateway.sock)"
ct systemctl show -p Type,NotifyAccess,Restart gatewayd | paste -sd' '

phase "expose: eBPF and proxy"
ct gwctl ns add app >/dev/null || fail "gwctl ns add app"
ct ip netns exec app python3 /root/flow.py serve 8080 >/dev/null 2>&1 &
ct gwctl expose 6000 app:8080 --mode ebpf >/dev/null || fail "expose 6000 (ebpf)"
ct gwctl expose 6001 app:8080 --mode proxy >/dev/null || fail "expose 6001 (proxy)"
ct gwctl list
# flow NAME PORT: a long-lived connection from the outside namespace through the uplink
flow() {
  rm -f "$root/root/$1.count" "$root/root/$1.count.stop"
  ct ip netns exec out python3 /root/flow.py client 10.77.0.1 "$2" "/root/$1.count" \
    >/dev/null 2>&1 &
  waitfor 10 "flow $1 (port $2) makes round trips" flowcount "$1" 3
}
flowcount() { # flowcount NAME MIN: the flow has made at least MIN round trips and is alive
  local c
  c=$(cat "$root/root/$1.count" 2>/dev/null) || return 1
  [[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge "$2" ]
}
# alive NAME WHAT: the flow goes on (30 more round trips) after WHAT
alive() {
  local c
  c=$(cat "$root/root/$1.count" 2>/dev/null)
  [[ $c =~ ^[0-9]+$ ]] || { fail "$1 broke before $2: $c"; return 1; }
  if ! waitfor 15 "$1 goes on after $2" flowcount "$1" $((c + 30)); then
    echo "  $1: $(cat "$root/root/$1.count")"
    return 1
  fi
  echo "  $1 alive after $2 ($(cat "$root/root/$1.count") round trips)"
}
flow ebpf 6000
flow proxy 6001
ct ip netns exec out python3 -c '
import socket; s = socket.create_connection(("10.77.0.1", 6000), timeout=3); s.sendall(b"x\n")
assert s.recv(10) == b"x\n"' || fail "a new client through expose 6000"

mainpid() { ct systemctl show -p MainPID --value gatewayd; }
phase "systemctl restart"
pid=$(mainpid)
ct systemctl restart gatewayd || fail "systemctl restart"
[ "$(mainpid)" != "$pid" ] || fail "restart kept MainPID $pid"
ct gwctl status >/dev/null || fail "status after restart"
alive ebpf "systemctl restart"
# the proxied flow belonged to the stopped process: it ends there (README), so start it again
flow proxy 6001

phase "kill -9 of the main PID"
pid=$(mainpid)
restarts=$(ct systemctl show -p NRestarts --value gatewayd)
ct kill -9 "$pid"
waitfor 20 "systemd restarts gatewayd after kill -9" \
  sh -c "[ \"\$(nsenter -t $leader -a systemctl show -p MainPID --value gatewayd)\" != $pid ] &&
         nsenter -t $leader -a systemctl is-active gatewayd"
[ "$(ct systemctl show -p NRestarts --value gatewayd)" -gt "$restarts" ] ||
  fail "NRestarts did not grow after kill -9"
ct gwctl status >/dev/null || fail "status after kill -9"
ct journalctl -u gatewayd --no-pager -o cat _PID="$(mainpid)" | grep -q 'adopted from pins' ||
  fail "the restarted gatewayd did not adopt the pinned data path"
alive ebpf "kill -9"
flow proxy 6001

phase "systemctl reload (SIGUSR2 upgrade)"
pid=$(mainpid)
ct systemctl reload gatewayd || fail "systemctl reload"
waitfor 20 "MainPID moves to the new process" sh -c \
  "[ \"\$(nsenter -t $leader -a systemctl show -p MainPID --value gatewayd)\" != $pid ]"
ct systemctl is-active gatewayd >/dev/null || fail "not active after reload"
alive proxy "systemctl reload"
alive ebpf "systemctl reload"

phase "upgrade: apt install ./newer.deb"
pid=$(mainpid)
ct apt-get install -y -q "/root/$(basename "$newdeb")" >"$work/apt-upgrade.log" 2>&1 ||
  { cat "$work/apt-upgrade.log"; fail "apt install ./$(basename "$newdeb")"; }
[ "$(ct dpkg-query -W -f '${Version}' gateway)" = "$newversion" ] || fail "not upgraded"
ct grep -qx 'uplink = gwup' /etc/gateway/gatewayd.conf || fail "the conffile edit was lost"
waitfor 20 "the upgrade reloads gatewayd" sh -c \
  "[ \"\$(nsenter -t $leader -a systemctl show -p MainPID --value gatewayd)\" != $pid ]"
ct systemctl is-active gatewayd >/dev/null || fail "not active after the upgrade"
alive proxy "the upgrade"
alive ebpf "the upgrade"

phase "journal"
ct journalctl -u gatewayd --no-pager -o json >"$work/journal.json"
python3 - "$work/journal.json" <<'EOF' || fail "journal lines"
import json, re, sys
levels = {"debug": "7", "info": "6", "warn": "4", "error": "3"}
seen, bad = {}, []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("SYSLOG_IDENTIFIER") != "gatewayd":
        continue
    m = e.get("MESSAGE")
    if not isinstance(m, str):
        bad.append(repr(m)); continue
    if m.startswith("gatewayd: "):  # a fatal error at start (main's die)
        if e.get("PRIORITY") != "3":
            bad.append("PRIORITY %s: %s" % (e.get("PRIORITY"), m))
        seen["fatal"] = seen.get("fatal", 0) + 1
        continue
    g = re.match(r"^\S+Z (debug|info|warn|error) \S", m)
    if not g or "\n" in m:
        bad.append(m); continue
    if e.get("PRIORITY") != levels[g.group(1)]:
        bad.append("PRIORITY %s: %s" % (e.get("PRIORITY"), m)); continue
    seen[g.group(1)] = seen.get(g.group(1), 0) + 1
print("  journal: gatewayd lines by level:", seen)
for b in bad[:10]:
    print("  bad line:", b)
sys.exit(1 if bad or not seen.get("info") else 0)
EOF

phase "hardening"
# What the unit's directives make of the running process (tests/system exercises the rest:
# Restart=, RuntimeDirectoryPreserve= by adopting the pins, StateDirectory=, ExecReload=).
st=$(ct cat "/proc/$(mainpid)/status")
grep -qP '^NoNewPrivs:\t1$' <<<"$st" || fail "NoNewPrivileges= not in effect"
grep -qP '^Seccomp:\t2$' <<<"$st" || fail "no seccomp filter (SystemCallFilter=, RestrictAddressFamilies=)"
want=0
for cap in 0 1 3 10 12 13 14 21 24 38 39; do want=$((want | (1 << cap))); done
# (within what the container has: this machine's bounding set lacks CAP_SYS_RESOURCE)
outer=$((16#$(awk '$1 == "CapBnd:" {print $2}' "/proc/$leader/status")))
want=$((want & outer))
have=$((16#$(awk '$1 == "CapBnd:" {print $2}' <<<"$st")))
[ "$have" = "$want" ] || fail "CapBnd $(printf %x $have), the unit's set is $(printf %x $want)"
if [ $((outer & (1 << 24))) -ne 0 ]; then
  ct grep -q '^Max locked memory *unlimited' "/proc/$(mainpid)/limits" || fail "LimitMEMLOCK="
else
  echo "  LimitMEMLOCK=infinity not checked: no CAP_SYS_RESOURCE here to raise it"
fi
[ "$(ct stat -c %a /var/lib/gateway)" = 700 ] || fail "StateDirectoryMode= 0700"
# The rest of the unit's directives as the running unit has them (the seccomp ones are in the
# filter checked above; RestrictNamespaces=net is exercised by the managed namespace's ns add).
props=$(ct systemctl show -p MemoryDenyWriteExecute,LockPersonality,RestrictRealtime \
  -p RestrictSUIDSGID,RestrictNamespaces,TimeoutStopUSec,StartLimitIntervalUSec \
  -p StartLimitBurst,RestrictAddressFamilies,After gatewayd)
for want in MemoryDenyWriteExecute=yes LockPersonality=yes RestrictRealtime=yes \
  RestrictSUIDSGID=yes RestrictNamespaces=net TimeoutStopUSec=15s StartLimitIntervalUSec=1min \
  StartLimitBurst=5; do
  grep -qx "$want" <<<"$props" || fail "unit: $want not in effect ($(grep "^${want%%=*}=" <<<"$props"))"
done
grep -q '^RestrictAddressFamilies=.*AF_NETLINK' <<<"$props" || fail "RestrictAddressFamilies="
grep -q '^After=.*network-online.target' <<<"$props" || fail "After=network-online.target"
# LimitNOFILE=1048576, within the hard limit the container has; gatewayd raises its soft one.
lim=$(ct cat "/proc/$(mainpid)/limits")
outerHard=$(awk '/^Max open files/ {print $5}' "/proc/$leader/limits")
wantHard=$((outerHard < 1048576 ? outerHard : 1048576))
read -r soft hard < <(awk '/^Max open files/ {print $4, $5}' <<<"$lim")
[ "$hard" = "$wantHard" ] && [ "$soft" = "$hard" ] ||
  fail "LimitNOFILE=: open files $soft/$hard, want $wantHard/$wantHard"

phase "systemd-analyze security"
ct systemd-analyze security --no-pager gatewayd >"$work/security.txt" 2>&1 || true
grep -i 'overall exposure' "$work/security.txt" || fail "systemd-analyze security: $(tail -3 "$work/security.txt")"

phase "teardown: gwctl down"
touch "$root/root/ebpf.count.stop" "$root/root/proxy.count.stop" # the clients end
ct gwctl down >/dev/null || fail "gwctl down"
# inactive, not failed (Restart=on-failure would start it again); processes still draining
# proxied connections of an earlier reload are stopped with it
waitfor 20 "gatewayd stops after gwctl down" sh -c \
  "[ \"\$(nsenter -t $leader -a systemctl show -p ActiveState --value gatewayd)\" = inactive ]"
[ "$(ct systemctl show -p ActiveState --value gatewayd)" = inactive ] ||
  fail "after gwctl down the unit is $(ct systemctl show -p ActiveState --value gatewayd) (not inactive: would restart)"
after=$(snapshot)
diff <(echo "$before") <(echo "$after") || fail "gwctl down left the above behind"

phase "teardown: apt remove"
ct systemctl start gatewayd || fail "start again"
ct gwctl ns add app2 >/dev/null || fail "ns add app2"
ct gwctl expose 6002 app2:8080 >/dev/null || fail "expose 6002"
ct apt-get remove -y -q gateway >"$work/apt-remove.log" 2>&1 || { cat "$work/apt-remove.log"; fail "apt remove"; }
ct test -e /etc/gateway/gatewayd.conf || fail "apt remove deleted the conffile"
after=$(snapshot)
diff <(echo "$before") <(echo "$after") || fail "apt remove left the above behind"

phase "teardown: apt purge"
ct apt-get purge -y -q gateway >"$work/apt-purge.log" 2>&1 || { cat "$work/apt-purge.log"; fail "apt purge"; }
ct test -e /etc/gateway && fail "apt purge left /etc/gateway"
ct test -e /var/lib/gateway && fail "apt purge left /var/lib/gateway"
after=$(snapshot)
diff <(echo "$before") <(echo "$after") || fail "apt purge left the above behind"

phase "done"
if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  ct journalctl -u gatewayd --no-pager | tail -40
  exit 1
fi
echo "system: all checks passed"
