/* SPDX-License-Identifier: MIT */
/*
 * XDP fast path: packets of existing flows translated in place with incremental checksums.
 * Anything unusual (no flow, fragments, ICMP errors) is left to tc.
 * The L4 checksum must be complete here: a CHECKSUM_PARTIAL packet from a veth with tx
 * offload on carries only the pseudo header sum, which this math would corrupt.
 */
#pragma once

#include "conntrack.h"
#include "csum.h"
#include "stats.h"

/* 0x7f bounds the variable offsets for the verifier: ETH_HLEN + 60 < 128. */
#define GW_XDP_OFF_MASK		0x7f

static __always_inline __u16 *xdp_l4_csum(void *data, void *data_end, const struct gw_pkt *p)
{
	__u16 *csum = data + ((p->l4_off + p->l4_csum_off) & GW_XDP_OFF_MASK);

	if ((void *)(csum + 1) > data_end)
		return NULL;
	return csum;
}

static __always_inline int xdp_nat_apply(struct xdp_md *ctx, const struct gw_pkt *p,
					 const struct gw_ct_entry *e)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + ETH_HLEN;
	__be16 *ports = data + (p->l4_off & GW_XDP_OFF_MASK);
	__be32 ns = e->new_saddr.v4, nd = e->new_daddr.v4;
	__u16 *l4c, old, c;

	if ((void *)(iph + 1) > data_end || (void *)(ports + 4) > data_end)
		return -1;
	l4c = xdp_l4_csum(data, data_end, p);
	if (!l4c)
		return -1;
	old = *l4c;
	c = old;

	if (p->proto == IPPROTO_ICMP) {
		/* ports[2] is the echo id; ICMP has no pseudo header */
		c = csum_replace2(c, ports[2], e->new_sport);
		ports[2] = e->new_sport;
	} else {
		c = csum_replace4(c, iph->saddr, ns);
		c = csum_replace4(c, iph->daddr, nd);
		c = csum_replace2(c, ports[0], e->new_sport);
		c = csum_replace2(c, ports[1], e->new_dport);
		if (p->proto == IPPROTO_UDP)
			c = csum_udp_fixup(old, c);
		ports[0] = e->new_sport;
		ports[1] = e->new_dport;
	}
	*l4c = c;

	iph->check = csum_replace4(iph->check, iph->saddr, ns);
	iph->check = csum_replace4(iph->check, iph->daddr, nd);
	iph->saddr = ns;
	iph->daddr = nd;
	return 0;
}

static __always_inline int xdp_fast_path(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct gw_ct_entry *e;
	struct gw_ct_key key;
	struct gw_pkt p;

	if (parse_pkt(data, data_end, data_end - data, &p) != GW_PARSE_OK)
		return XDP_PASS;
	if (p.family != GW_AF_INET || p.frag != GW_FRAG_NONE || p.is_icmp_err)
		return XDP_PASS;
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP &&
	    !(p.proto == IPPROTO_ICMP && gw_icmp_is_echo(p.icmp_type)))
		return XDP_PASS;

	ct_key_from_pkt(&key, &p);
	e = ct_lookup(&key);
	if (!e)
		return XDP_PASS;
	if (xdp_nat_apply(ctx, &p, e))
		return XDP_PASS;
	if (ct_repair_due(ct_touch(e, &p)))
		ct_repair_peer(&key, e);
	stats_rule(e->rule_id, p.tot_len, false);
	stats_reason(ct_reason(e));
	return XDP_PASS;
}
