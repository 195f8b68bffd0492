#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every Debian 12 package the build, the demo, the tests and the benchmarks need.
# Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git
  clang llvm libbpf-dev linux-libc-dev bpftool libelf-dev zlib1g-dev
  libmnl-dev liburing-dev libboost-program-options-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tests and demo: real tools as oracles, clients and servers
  iproute2 iputils-ping curl python3 iperf3 wrk socat haproxy ethtool
  iputils-tracepath traceroute # PMTU and hop-by-hop paths through NAT66 (tests)
  coturn # RFC 5780 NAT behaviour discovery (turnserver, turnutils_natdiscovery)
  containernetworking-plugins # bridge + host-local, chained before gateway-portmap (tests)
  golang-go golang-github-appc-cni-dev # a CNI runtime over Debian's libcni (tests/cni driver)
  podman runc conmon catatonit busybox-static # Podman's CNI backend running a real container
  python3-yaml # deploy/kubernetes manifests parsed in tests
  # tests/system: a Debian 12 root booted under systemd-nspawn (cached as a zstd tarball)
  # runs the .deb as a real service; lintian checks the package
  debootstrap systemd-container lintian zstd
  iptables nftables procps util-linux
  # benchmark charts
  gnuplot-nox
  # fuzzing: libFuzzer's engine for tests/fuzz/run.sh (without it: replay mode)
  libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
