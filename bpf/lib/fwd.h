/* SPDX-License-Identifier: MIT */
/*
 * Optional forwarding after translation (GW_CFG_FIB_REDIRECT): a FIB lookup on the new
 * tuple and bpf_redirect_neigh to the egress device, skipping the stack's second routing
 * pass. Anything the FIB does not forward plainly (local, unreachable, TTL expiring) goes to
 * the stack, which knows how to answer it.
 */
#pragma once

#include "nat.h"

static __always_inline int tc_forward(struct __sk_buff *skb, const struct gw_pkt *p,
				      const struct gw_config *cfg, __be32 saddr, __be32 daddr,
				      __be16 sport, __be16 dport)
{
	struct bpf_fib_lookup fib = {};
	__u8 ttl = p->ttl;
	long ret;

	if (!(cfg->flags & GW_CFG_FIB_REDIRECT) || ttl <= 1)
		return TC_ACT_OK;
	fib.family = AF_INET;
	fib.l4_protocol = p->proto;
	fib.sport = sport;
	fib.dport = dport;
	fib.tot_len = p->tot_len;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = gw_ctx_u32(skb, ingress_ifindex);
	if (!fib.ifindex)
		fib.ifindex = gw_ctx_u32(skb, ifindex);

	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;

	/* we forward, so we age the packet like a router (TTL is the high byte of its word) */
	if (bpf_l3_csum_replace(skb, GW_IP_CSUM_OFF(p), bpf_htons((__u16)ttl << 8),
				bpf_htons((__u16)(ttl - 1) << 8), 2))
		return TC_ACT_OK;
	ttl -= 1;
	if (bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, ttl), &ttl, 1, 0))
		return TC_ACT_OK;
	stats_reason(GW_REASON_REDIRECT);
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}
