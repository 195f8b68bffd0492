/* SPDX-License-Identifier: MIT */
/*
 * Optional forwarding after translation (GW_CFG_FIB_REDIRECT). A destination that is a
 * managed namespace (gw_endpoint_v4) is handed straight to that namespace's eth0 with
 * bpf_redirect_peer: no FIB, no bridge, no veth backlog. Anything else gets a FIB lookup on
 * the new tuple and bpf_redirect_neigh to the egress device, skipping the stack's second
 * routing pass. Whatever the FIB does not forward plainly (local, unreachable, TTL expiring)
 * goes to the stack, which knows how to answer it. Callers are tc ingress hooks only
 * (bpf_redirect_peer is refused anywhere else).
 */
#pragma once

#include "nat.h"

/*
 * We forward, so we age the packet like a router (TTL is the high byte of its word; IPv6's
 * hop limit has no checksum).
 */
static __always_inline int tc_ttl_dec(struct __sk_buff *skb, const struct gw_pkt *p)
{
	__u8 ttl = p->ttl;

	if (p->family == GW_AF_INET6) {
		ttl -= 1;
		return bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct ipv6hdr, hop_limit),
					   &ttl, 1, 0);
	}
	if (bpf_l3_csum_replace(skb, GW_IP_CSUM_OFF(p), bpf_htons((__u16)ttl << 8),
				bpf_htons((__u16)(ttl - 1) << 8), 2))
		return -1;
	ttl -= 1;
	return bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, ttl), &ttl, 1, 0);
}

/*
 * Into a managed namespace. The Ethernet header is written first: should the TTL update
 * fail, the stack gets the packet with its TTL untouched (it ignores the MACs by then).
 */
static __always_inline int tc_forward_peer(struct __sk_buff *skb, const struct gw_pkt *p,
					   const struct gw_endpoint_value *ep)
{
	/* peer_mac, host_mac: the header's destination and source, 12 bytes in a row */
	if (bpf_skb_store_bytes(skb, 0, ep->peer_mac, 2 * ETH_ALEN, 0))
		return TC_ACT_OK;
	if (tc_ttl_dec(skb, p))
		return TC_ACT_OK;
	stats_reason(GW_REASON_REDIRECT);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/*
 * e: the flow direction the packet was translated by (its new tuple is the packet's now).
 * A global function: the FIB lookup's 64 bytes get their own stack frame.
 */
__noinline int tc_forward(struct __sk_buff *skb, const struct gw_pkt *p,
			  const struct gw_config *cfg, const struct gw_ct_entry *e)
{
	struct gw_endpoint_value *ep;
	struct bpf_fib_lookup fib = {};
	long ret;

	if (!skb || !p || !cfg || !e)
		return TC_ACT_OK;
	if (!(cfg->flags & GW_CFG_FIB_REDIRECT) || p->ttl <= 1)
		return TC_ACT_OK;
	ep = gw_endpoint_get(p->family, &e->new_daddr);
	if (ep)
		return tc_forward_peer(skb, p, ep);

	fib.l4_protocol = p->proto;
	fib.sport = e->new_sport;
	fib.dport = e->new_dport;
	/* 0: the kernel checks the skb against the egress MTU itself, which lets a GSO packet
	 * (resegmented on the way out) through; our tot_len would send it to the stack. */
	fib.tot_len = 0;
	if (p->family == GW_AF_INET6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, &e->new_saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &e->new_daddr, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = e->new_saddr.v4;
		fib.ipv4_dst = e->new_daddr.v4;
	}
	fib.ifindex = gw_ctx_u32(skb, ingress_ifindex);
	if (!fib.ifindex)
		fib.ifindex = gw_ctx_u32(skb, ifindex);

	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	if (tc_ttl_dec(skb, p))
		return TC_ACT_OK;
	stats_reason(GW_REASON_REDIRECT);
	/* Writing the FIB's MACs and bpf_redirect measured no faster (lab, 2026-11-23): the
	 * neighbour layer stays in charge, so entries get confirmed and refreshed as usual. */
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}
