#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start command 2: set up, build and run every test (as root: tests build throwaway
# network namespaces; the machine's own network namespace is never changed).
#   bash deploy/test.sh            everything, through ctest
#   bash deploy/test.sh --asan     the userspace suites again, built with AddressSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/test.sh: run as root (the tests create network namespaces)" >&2
  exit 1
fi
if [ "${1:-}" = "--asan" ]; then
  shift
  bash deploy/install-deps.sh
  # Only the rooms whose labels this pass runs: no BPF program tests (kernel code, no
  # userspace to sanitize), no packaging, no runs through real container runtimes.
  # A unity build: the same code in half the compile time (headers parsed once per batch).
  cmake -S . -B build-asan -DGW_WERROR=ON -DGW_ASAN=ON -DGW_BUILD_BENCH=OFF \
    -DGW_TEST_ROOMS="netns;gateway;control;cni;proxy;fuzz" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 >/dev/null
  cmake --build build-asan -j"$(nproc)"
  cd build-asan
  # detect_leaks: LeakSanitizer under ptrace-less containers works; keep it on. The stress
  # test runs shorter here: this pass looks for memory errors, the first for outcomes. Left to
  # the first pass: the paging tests' big tables and the teardown cycles (the same code as
  # shorter tests, run long), and what checks the kernel's packets more than our memory (kill
  # -9 outcomes, IPv6 and ICMP/fragment paths, NAT type discovery, thousands of idle proxied
  # connections, an upgrade's timeout).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 GW_CRASH_RUNS="${GW_CRASH_RUNS:-2}" \
    GW_STRESS_SECONDS="${GW_STRESS_SECONDS:-5}" \
    ctest --output-on-failure --timeout 300 -j"$(nproc)" -L 'unit|netns|service|proxy|datapath' \
    -E '^(PagingTest\.(ConntrackAtCapacity|GwctlListReadsEveryPage|AnUnansweredChange)|TeardownTest\.Cycles|CrashTest\.|Ipv6DatapathTest\.|IcmpFragmentTest\.|ExposeTest\.Rfc5780|ProxyExposeTest\.TheProxyHoldsThousands|.*UpgradeTimeoutTest\.)' "$@"
  exit
fi
bash deploy/build.sh
cd build
# Tests that share the machine's state are RUN_SERIAL (service, cni, package, system, fuzz_run);
# the rest run side by side.
ctest --output-on-failure --timeout 300 -j"$(nproc)" "$@"
