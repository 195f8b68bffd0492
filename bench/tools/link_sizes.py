#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sets a link's IPv4 GSO/GRO size limits (IPv4 BIG TCP), run inside its namespace:

    ip netns exec NS python3 bench/tools/link_sizes.py DEV BYTES

iproute2 6.1 has keywords for the IPv6 limits only (gso_max_size/gro_max_size); the IPv4 ones
(IFLA_GSO_IPV4_MAX_SIZE 63, IFLA_GRO_IPV4_MAX_SIZE 64, kernel 6.3+) need netlink. The IPv6
limits stay as they are: IPv6 BIG TCP through a forwarding namespace collapsed to ~0.02 Gbit/s
here, plain routing included (2026-12-01).
"""

import socket
import struct
import sys

RTM_NEWLINK = 16
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE = 63, 64


def set_sizes(ifindex, attrs):
    payload = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex, 0, 0)
    for kind, value in attrs:
        payload += struct.pack("=HHI", 8, kind, value)
    msg = struct.pack("=IHHII", 16 + len(payload), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1,
                      0) + payload
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.send(msg)
        reply = s.recv(65536)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", reply)
    if kind != NLMSG_ERROR:
        raise RuntimeError(f"unexpected netlink reply type {kind}")
    (err,) = struct.unpack_from("=i", reply, 16)
    if err != 0:
        raise OSError(-err, f"RTM_NEWLINK {attrs}")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: link_sizes.py DEV BYTES")
    dev, size = sys.argv[1], int(sys.argv[2])
    ifindex = socket.if_nametoindex(dev)
    set_sizes(ifindex, [(IFLA_GSO_IPV4_MAX_SIZE, size), (IFLA_GRO_IPV4_MAX_SIZE, size)])


if __name__ == "__main__":
    main()
