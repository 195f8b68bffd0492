/* SPDX-License-Identifier: MIT */
/*
 * XDP fast path: packets of existing flows translated in place with incremental checksums,
 * IPv4 and IPv6. Anything unusual (no flow, fragments, ICMP errors, IPv6 extension headers)
 * is left to tc.
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

/* IPv6 without extension headers (the rest goes to tc): the transport header at a fixed
 * offset, every checksum change through the pseudo header (ICMPv6's too). */
#define GW_XDP_L4_OFF6		(ETH_HLEN + 40)

static __always_inline __u16 csum_replace16(__u16 check, const __be32 *from, const __be32 *to)
{
	check = csum_replace4(check, from[0], to[0]);
	check = csum_replace4(check, from[1], to[1]);
	check = csum_replace4(check, from[2], to[2]);
	return csum_replace4(check, from[3], to[3]);
}

static __always_inline int xdp_nat_apply6(struct xdp_md *ctx, const struct gw_pkt *p,
					  const struct gw_ct_entry *e)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__be16 *ports = data + GW_XDP_L4_OFF6;
	__u16 *l4c = data + GW_XDP_L4_OFF6 + (p->l4_csum_off & 0x1f);
	__u16 old, c;

	if (p->l4_off != GW_XDP_L4_OFF6)
		return -1;
	if ((void *)(ports + 4) > data_end || (void *)(l4c + 1) > data_end)
		return -1;
	old = *l4c;
	c = csum_replace16(old, ip6->saddr.in6_u.u6_addr32, e->new_saddr.v6);
	c = csum_replace16(c, ip6->daddr.in6_u.u6_addr32, e->new_daddr.v6);
	if (p->proto == GW_IPPROTO_ICMPV6) {
		c = csum_replace2(c, ports[2], e->new_sport); /* the echo id */
		ports[2] = e->new_sport;
	} else {
		c = csum_replace2(c, ports[0], e->new_sport);
		c = csum_replace2(c, ports[1], e->new_dport);
		ports[0] = e->new_sport;
		ports[1] = e->new_dport;
	}
	if (p->proto == IPPROTO_UDP)
		c = csum_udp_fixup(old, c);
	*l4c = c;
	__builtin_memcpy(&ip6->saddr, &e->new_saddr, 16);
	__builtin_memcpy(&ip6->daddr, &e->new_daddr, 16);
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
	if (p.frag != GW_FRAG_NONE || p.is_icmp_err)
		return XDP_PASS;
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP && !gw_pkt_is_echo(&p))
		return XDP_PASS;

	ct_key_from_pkt(&key, &p);
	e = ct_lookup(&key);
	if (!e)
		return XDP_PASS;
	if (p.family == GW_AF_INET6 ? xdp_nat_apply6(ctx, &p, e) : xdp_nat_apply(ctx, &p, e))
		return XDP_PASS;
	if (ct_repair_due(ct_touch(e, &p)))
		ct_repair_peer(&key, e);
	stats_rule(e->rule_id, p.tot_len, false);
	stats_reason(ct_reason(e));
	return XDP_PASS;
}
