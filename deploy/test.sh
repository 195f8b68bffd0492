#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start command 2: set up, build and run every test (as root: tests build throwaway
# network namespaces; the machine's own namespace is never changed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/test.sh: run as root (the tests create network namespaces)" >&2
  exit 1
fi
bash deploy/build.sh
cd build
# Serial: namespace tests and real traffic share two cores; each test has its own prefix.
ctest --output-on-failure --timeout 300 "$@"
