// SPDX-License-Identifier: MIT
/* Benchmark baseline: attach points with the cost of one counter and nothing else. */
#include "stats.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

SEC("tc")
int gw_pass_tc(struct __sk_buff *skb)
{
	stats_reason(GW_REASON_PASS_NO_MATCH);
	return TC_ACT_OK;
}

SEC("xdp")
int gw_pass_xdp(struct xdp_md *ctx)
{
	stats_reason(GW_REASON_PASS_NO_MATCH);
	return XDP_PASS;
}
