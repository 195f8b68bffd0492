# SPDX-License-Identifier: MIT
# The .deb: `cpack -G DEB` in a build dir (after building it). Installs gatewayd (/usr/sbin),
# gwctl (/usr/bin), the CNI plugin gateway-portmap (/usr/lib/cni, from cni/CMakeLists.txt),
# its installer gateway-cni-setup (/usr/sbin; the Kubernetes DaemonSet's, deploy/kubernetes/),
# the BPF objects (/usr/share/gateway/bpf, from bpf/CMakeLists.txt), the systemd unit,
# /etc/gateway/gatewayd.conf as a conffile and bash completion for gwctl.
# The service is not enabled or started on install: the uplink must be set in the config first.
# Upgrades reload a running gatewayd (SIGUSR2: it executes the new binary, which adopts the
# pinned data path and the listening sockets: flows and proxied connections keep going).
set(GW_DEPLOY_DIR ${CMAKE_CURRENT_LIST_DIR})

install(FILES ${GW_DEPLOY_DIR}/gatewayd.service DESTINATION lib/systemd/system)
install(FILES ${GW_DEPLOY_DIR}/gatewayd.conf DESTINATION /etc/gateway)
install(FILES ${GW_DEPLOY_DIR}/gwctl.bash-completion
        DESTINATION share/bash-completion/completions RENAME gwctl)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/gateway)
# What Debian policy (and lintian) asks of every package: copyright, a changelog (gzip -9n,
# reproducible), and the overrides of lintian's tags that do not fit (each justified there).
install(FILES ${GW_DEPLOY_DIR}/copyright DESTINATION share/doc/gateway)
install(FILES ${GW_DEPLOY_DIR}/lintian-overrides DESTINATION share/lintian/overrides
        RENAME gateway)
file(WRITE ${CMAKE_BINARY_DIR}/deb/changelog
     "gateway (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
     "  * Built from the gateway source tree (see /usr/share/doc/gateway/README.md).\n\n"
     " -- gateway maintainers <maintainers@example.invalid>  Tue, 01 Dec 2026 00:00:00 +0000\n")
execute_process(COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/deb/changelog)
install(FILES ${CMAKE_BINARY_DIR}/deb/changelog.gz DESTINATION share/doc/gateway)

# Maintainer scripts, written into the build dir.
set(GW_DEB_SCRIPTS ${CMAKE_BINARY_DIR}/deb)
file(WRITE ${GW_DEB_SCRIPTS}/conffiles "/etc/gateway/gatewayd.conf\n")
file(WRITE ${GW_DEB_SCRIPTS}/postinst [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  # An upgrade: the new binary takes over where the old one ran (it adopts the pinned data
  # path). A gatewayd that blocks SIGUSR2 (SigBlk bit 11) reads it as "upgrade": reload then
  # keeps its proxied connections too. An older one would die of the signal: restart that one.
  if [ "$1" = configure ] && [ -n "$2" ]; then
    pid=$(systemctl show -p MainPID --value gatewayd.service 2>/dev/null || echo 0)
    blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/${pid:-0}/status" 2>/dev/null || true)
    if [ "${pid:-0}" != 0 ] && [ -n "$blk" ] && [ $(( 0x${blk#"${blk%???}"} & 0x800 )) -ne 0 ]
    then
      systemctl reload gatewayd.service >/dev/null ||
        systemctl try-restart gatewayd.service >/dev/null || true
    else
      systemctl try-restart gatewayd.service >/dev/null || true
    fi
  fi
fi
exit 0
]=])
file(WRITE ${GW_DEB_SCRIPTS}/prerm [=[#!/bin/sh
set -e
# Removal stops the daemon and removes what it made (links, namespaces, programs, pins, state):
# the binary that can do that goes with the package. An upgrade keeps everything.
if [ "$1" = remove ]; then
  if [ -d /run/systemd/system ]; then
    systemctl stop gatewayd.service >/dev/null || true
    systemctl disable gatewayd.service >/dev/null 2>&1 || true
  fi
  if [ -d /var/lib/gateway ]; then
    conf=
    [ -r /etc/gateway/gatewayd.conf ] && conf="--config /etc/gateway/gatewayd.conf"
    # shellcheck disable=SC2086
    gatewayd $conf --cleanup ||
      echo "gateway: gatewayd --cleanup failed; what it names is left behind" >&2
  fi
fi
exit 0
]=])
file(WRITE ${GW_DEB_SCRIPTS}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
  rm -rf /var/lib/gateway
fi
exit 0
]=])
file(CHMOD ${GW_DEB_SCRIPTS}/postinst ${GW_DEB_SCRIPTS}/prerm ${GW_DEB_SCRIPTS}/postrm
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                      WORLD_READ WORLD_EXECUTE)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME gateway)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "gateway maintainers <maintainers@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "NAT and port-forward gateway for Linux network namespaces (eBPF)")
# Lines of at most 80 characters (Debian policy 3.4.1); CPack indents the continuation lines.
set(CPACK_PACKAGE_DESCRIPTION
    "gatewayd wires network namespaces to a host with veth pairs and bridges
(netlink), forwards host ports into them and masquerades them out of an
uplink with an eBPF data path that keeps forwarding across daemon restarts.
gwctl is its command line client.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
string(JOIN ", " CPACK_DEBIAN_PACKAGE_DEPENDS
       libbpf1 libmnl0 liburing2 libboost-program-options1.74.0 libelf1 zlib1g
       libc6 "libstdc++6 (>= 12)" libgcc-s1)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "bash-completion")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${GW_DEB_SCRIPTS}/conffiles ${GW_DEB_SCRIPTS}/postinst ${GW_DEB_SCRIPTS}/prerm
    ${GW_DEB_SCRIPTS}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_PACKAGE_CHECKSUM SHA256)
include(CPack)
