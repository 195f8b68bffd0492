#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The lab comparison in one command: installs what is missing and builds (deploy/build.sh, into
# build/), then runs bench/lab.py with the given options (see `python3 bench/lab.py --help`).
#   bash bench/lab.sh                      # defaults: every setup, IPv4+IPv6, 3 x 4 s, ~12 min
#   bash bench/lab.sh --scale [options]    # bench/scale.py instead (rule count scaling)
# Set LAB_SKIP_BUILD=1 to use an existing build/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/lab.sh: run as root (it creates network namespaces)" >&2
  exit 1
fi
[ "${LAB_SKIP_BUILD:-0}" = 1 ] || bash deploy/build.sh >/dev/null
export LAB_COMMAND="bash bench/lab.sh $*"
if [ "${1:-}" = --scale ]; then
  shift
  exec python3 bench/scale.py "$@"
fi
exec python3 bench/lab.py "$@"
