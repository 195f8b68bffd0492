// SPDX-License-Identifier: MIT
/* XDP on the uplink: established flows translated before the skb exists; the rest to tc. */
#include "xdp.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("xdp")
int gw_uplink_xdp(struct xdp_md *ctx)
{
	return xdp_fast_path(ctx);
}
