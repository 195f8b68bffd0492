#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-deb.sh BUILD_DIR SOURCE_DIR: cpack -G DEB into BUILD_DIR/package-test, then checks the
# .deb's files, control fields, conffiles and maintainer scripts with dpkg-deb. Does not
# install it. The build dir must be built (ctest runs after the build).
set -euo pipefail
build=$1
src=$2
out=$build/package-test
rm -rf "$out"
mkdir -p "$out"
(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log"; exit 1; }
shopt -s nullglob
debs=("$out"/gateway_*.deb)
if [ ${#debs[@]} -ne 1 ]; then
  echo "expected one gateway_*.deb in $out, got: ${debs[*]:-none}"
  exit 1
fi
deb=${debs[0]}
echo "package: $deb"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

contents=$(dpkg-deb -c "$deb")
has() { # has MODE_PREFIX PATH: the path is in the package, with a mode starting so
  local line
  line=$(awk -v p="./$2" '$6 == p' <<<"$contents")
  [ -n "$line" ] || { fail "missing $2"; return; }
  [[ $line == "$1"* ]] || fail "$2 has mode ${line%% *}, expected $1"
}
has -rwxr-xr-x usr/sbin/gatewayd
has -rwxr-xr-x usr/bin/gwctl
has -rwxr-xr-x usr/lib/cni/gateway-portmap
has -rwxr-xr-x usr/sbin/gateway-cni-setup
has -rw-r--r-- usr/lib/systemd/system/gatewayd.service
has -rw-r--r-- etc/gateway/gatewayd.conf
has -rw-r--r-- usr/share/bash-completion/completions/gwctl
has -rw-r--r-- usr/share/doc/gateway/copyright
has -rw-r--r-- usr/share/doc/gateway/changelog.gz
has -rw-r--r-- usr/share/lintian/overrides/gateway
for prog in uplink_tc endpoint_tc uplink_xdp sock_cgroup passthrough map_count; do
  has -rw-r--r-- "usr/share/gateway/bpf/$prog.bpf.o"
done
if grep -qE '\./(usr/local|work|tmp|root)/|\.skel\.h|_tests?$' <<<"$contents"; then
  fail "stray files: $(grep -E '\./(usr/local|work|tmp|root)/|\.skel\.h|_tests?$' <<<"$contents")"
fi

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = gateway ] || fail "Package is '$(field Package)'"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] ||
  fail "Architecture $(field Architecture)"
depends=$(field Depends)
echo "Depends: $depends"
names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}') # package names without versions
for lib in libbpf1 libmnl0 liburing2 libboost-program-options1.74.0 libelf1 zlib1g; do
  grep -qxF "$lib" <<<"$names" || fail "Depends lacks $lib"
done
# Every shared library the binaries need comes from a package we depend on.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
for bin in usr/sbin/gatewayd usr/bin/gwctl usr/lib/cni/gateway-portmap \
  usr/sbin/gateway-cni-setup; do
  while read -r so; do
    pkg=$(dpkg -S "$so" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$pkg" ] || continue
    grep -qxF "$pkg" <<<"$names" || fail "$bin needs $so from $pkg, not in Depends"
  done < <(ldd "$tmp/root/$bin" | awk '$3 ~ /^\// {print $3}' | xargs -r realpath)
done

dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/gateway/gatewayd.conf "$tmp/control/conffiles" || fail "gatewayd.conf is no conffile"
for script in postinst prerm postrm; do
  [ -x "$tmp/control/$script" ] || { fail "no executable $script"; continue; }
  sh -n "$tmp/control/$script" || fail "$script: syntax"
done
cmp -s "$tmp/root/usr/lib/systemd/system/gatewayd.service" "$src/deploy/gatewayd.service" ||
  fail "unit differs from deploy/gatewayd.service"
grep -qx 'ExecStart=/usr/sbin/gatewayd --config /etc/gateway/gatewayd.conf' \
  "$tmp/root/usr/lib/systemd/system/gatewayd.service" || fail "unit's ExecStart"
# The example config holds only options gatewayd knows (--help parses it, starts nothing).
"$tmp/root/usr/sbin/gatewayd" --config "$tmp/root/etc/gateway/gatewayd.conf" --help >/dev/null ||
  fail "gatewayd rejects the packaged gatewayd.conf"
bash -n "$tmp/root/usr/share/bash-completion/completions/gwctl" || fail "completion: syntax"
# shellcheck disable=SC1091
words=$(bash -c 'source "$1"; COMP_WORDS=(gwctl ""); COMP_CWORD=1; _gwctl; echo "${COMPREPLY[*]}"' \
  _ "$tmp/root/usr/share/bash-completion/completions/gwctl")
[[ " $words " == *" expose "* && " $words " == *" conntrack "* ]] ||
  fail "completion of commands gave '$words'"

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed; contents:"
  echo "$contents"
  exit 1
fi
echo "package: all checks passed"
