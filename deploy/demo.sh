#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start command 1: set up, build and run the demo lab, the tutorial scenario end to end,
# in throwaway namespaces (the machine's own network namespace is never changed):
#
#   demo-ext (external client, 198.18.0.2) --uplink-- demo-gwh (gateway host, gatewayd)
#                                                        |-- gw0 10.88.0.1/16 bridge
#                                                        |     |-- demo-netns1  (:8080 server)
#                                                        |     `-- demo-netns2  (:8080 server)
#   host ports 6000 -> demo-netns1:8080 and 6001 -> demo-netns2:8080, masquerade outbound
#                                                        `-- demo-p2p 192.168.1.2/24 (veth)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/demo.sh: run as root (the demo creates network namespaces)" >&2
  exit 1
fi
[ "${DEMO_SKIP_BUILD:-0}" = 1 ] || bash deploy/build.sh >/dev/null

GATEWAYD=$PWD/build/gateway/gatewayd
GWCTL_BIN=$PWD/build/control/gwctl
WORK=$(mktemp -d /tmp/gateway-demo.XXXXXX)
SOCK=$WORK/gateway.sock
NAMESPACES=(demo-gwh demo-ext demo-netns1 demo-netns2 demo-p2p)
PIDS=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  umount -l "$WORK/bpffs" 2>/dev/null # pinned maps and hooks go with it
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
cleanup_leftovers() {
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
cleanup_leftovers

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
gwctl() { echo "\$ gwctl $*"; "$GWCTL_BIN" --socket "$SOCK" "$@"; }
wait_for() { # wait_for SECONDS CMD...: polls until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

step "The gateway host and an external client (a namespace each, an uplink veth between)"
ip netns add demo-gwh
ip netns add demo-ext
ip -n demo-gwh link add up0 type veth peer name eth0 netns demo-ext
ip -n demo-gwh addr add 198.18.0.1/24 dev up0
ip -n demo-gwh addr add fd00:18::1/64 dev up0 nodad
ip -n demo-gwh link set up0 up
ip -n demo-gwh link set lo up
ip -n demo-ext addr add 198.18.0.2/24 dev eth0
ip -n demo-ext addr add fd00:18::2/64 dev eth0 nodad
ip -n demo-ext link set eth0 up
ip -n demo-ext link set lo up
echo "demo-gwh up0 198.18.0.1/24 fd00:18::1/64 <-> demo-ext eth0 198.18.0.2/24 fd00:18::2/64"

step "gatewayd serves the gateway host (--netns demo-gwh)"
"$GATEWAYD" --uplink up0 --netns demo-gwh --socket "$SOCK" --state-dir "$WORK/state" \
  --bpffs "$WORK/bpffs" >"$WORK/gatewayd.log" 2>&1 &
PIDS+=($!)
wait_for 10 "$GWCTL_BIN" --socket "$SOCK" status
gwctl status

step "Two namespaces on the default bridge, one point-to-point as in the first tutorial"
gwctl ns add demo-netns1
gwctl ns add demo-netns2
gwctl ns add demo-p2p --subnet 192.168.1.0/24
gwctl ns list

step "They are ordinary named namespaces: iproute2 sees them"
ip netns list | grep demo-
ip -n demo-netns1 -br addr show dev eth0
ip -n demo-netns1 route show

step "Ping: namespace to namespace, to the gateway, to the gateway host's uplink address"
ip netns exec demo-netns1 ping -c1 -W2 10.88.0.3 | grep -E 'bytes from|loss'
ip netns exec demo-netns2 ping -c1 -W2 10.88.0.1 | grep -E 'bytes from|loss'
ip netns exec demo-p2p ping -c1 -W2 198.18.0.1 | grep -E 'bytes from|loss'

step "Two servers, both on port 8080, in demo-netns1 and demo-netns2"
for ns in demo-netns1 demo-netns2; do
  mkdir -p "$WORK/www-$ns" && echo "hello from $ns" >"$WORK/www-$ns/index.html"
  ip netns exec "$ns" python3 -u -m http.server 8080 --bind :: --directory "$WORK/www-$ns" \
    >"$WORK/$ns.log" 2>&1 &
  PIDS+=($!)
  wait_for 10 ip netns exec "$ns" curl -s -o /dev/null http://127.0.0.1:8080/
done

step "Expose them on the gateway host's ports 6000 and 6001 (eBPF DNAT, no iptables)"
gwctl expose 6000 demo-netns1:8080
gwctl expose 6001 demo-netns2:8080
gwctl list

step "From outside (demo-ext), through the uplink address"
echo "\$ curl http://198.18.0.1:6000/"; ip netns exec demo-ext curl -s -m5 http://198.18.0.1:6000/
echo "\$ curl http://198.18.0.1:6001/"; ip netns exec demo-ext curl -s -m5 http://198.18.0.1:6001/
echo "demo-netns1's server saw the real client address:"
tail -n1 "$WORK/demo-netns1.log"

step "From the gateway host itself, from another namespace, and hairpin"
echo "\$ (gateway host) curl http://127.0.0.1:6000/"
ip netns exec demo-gwh curl -s -m5 http://127.0.0.1:6000/
echo "\$ (demo-netns2) curl http://198.18.0.1:6000/"
ip netns exec demo-netns2 curl -s -m5 http://198.18.0.1:6000/
echo "\$ (demo-netns1) curl http://198.18.0.1:6000/"
ip netns exec demo-netns1 curl -s -m5 http://198.18.0.1:6000/

step "Masquerade: a namespace reaches the outside with the uplink address as its source"
mkdir -p "$WORK/www-ext" && echo "hello from the outside" >"$WORK/www-ext/index.html"
ip netns exec demo-ext python3 -u -m http.server 9090 --bind :: --directory "$WORK/www-ext" \
  >"$WORK/ext.log" 2>&1 &
PIDS+=($!)
wait_for 10 ip netns exec demo-ext curl -s -o /dev/null http://127.0.0.1:9090/
ip netns exec demo-netns1 ping -c1 -W2 198.18.0.2 | grep -E 'bytes from|loss'
ip netns exec demo-netns1 curl -s -m5 http://198.18.0.2:9090/
echo "the outside server saw:"; tail -n1 "$WORK/ext.log"

step "The same over IPv6: the exposes answer on the uplink's IPv6 address too (eBPF DNAT6)"
echo "\$ curl http://[fd00:18::1]:6000/"; ip netns exec demo-ext curl -s -m5 'http://[fd00:18::1]:6000/'
echo "\$ curl http://[fd00:18::1]:6001/"; ip netns exec demo-ext curl -s -m5 'http://[fd00:18::1]:6001/'
echo "demo-netns1's server saw the real client address:"; tail -n1 "$WORK/demo-netns1.log"
echo "\$ (gateway host) curl http://[::1]:6000/"
ip netns exec demo-gwh curl -s -m5 'http://[::1]:6000/'
echo "and NAT66: demo-netns1 reaches the outside over IPv6 from the uplink's IPv6 address"
ip netns exec demo-netns1 ping -6 -c1 -W2 fd00:18::2 | grep -E 'bytes from|loss'
ip netns exec demo-netns1 curl -s -m5 'http://[fd00:18::2]:9090/'
echo "the outside server saw:"; tail -n1 "$WORK/ext.log"

step "Connection tracking and counters"
gwctl conntrack
gwctl stats

step "No netfilter rule anywhere in the gateway host"
echo "\$ nft list ruleset | wc -l"; ip netns exec demo-gwh nft list ruleset | wc -l
echo "\$ ip6tables-save | grep -vc '^#'"; ip netns exec demo-gwh ip6tables-save | grep -vc '^#' || true

step "Remove one namespace again"
gwctl ns del demo-p2p
gwctl ns list

step "gatewayd log"
cat "$WORK/gatewayd.log"
step "Demo finished: everything it made is removed on exit"
