/* SPDX-License-Identifier: MIT */
/*
 * Address/port translation in tc: rewriting a packet per a conntrack entry (with the skb
 * checksum helpers), ICMP errors about a flow, masquerade matching and SNAT port choice.
 * All offsets come from struct gw_pkt, so no packet pointer outlives a helper call.
 */
#pragma once

#include "conntrack.h"
#include "csum.h"
#include "stats.h"

#define GW_IP_CSUM_OFF(p)	((p)->l3_off + offsetof(struct iphdr, check))
#define GW_IP_SADDR_OFF(p)	((p)->l3_off + offsetof(struct iphdr, saddr))
#define GW_IP_DADDR_OFF(p)	((p)->l3_off + offsetof(struct iphdr, daddr))
#define GW_ICMP_ID_OFF		offsetof(struct icmphdr, un.echo.id)

#define GW_IP6_SADDR_OFF(p)	((p)->l3_off + offsetof(struct ipv6hdr, saddr))
#define GW_IP6_DADDR_OFF(p)	((p)->l3_off + offsetof(struct ipv6hdr, daddr))

static __always_inline bool nat_l4_has_ports(const struct gw_pkt *p)
{
	return p->frag != GW_FRAG_LATER &&
	       (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);
}

/* Does the L4 checksum cover the addresses (a pseudo header)? ICMPv6's does, ICMP's not. */
static __always_inline bool nat_l4_pseudo(const struct gw_pkt *p)
{
	return nat_l4_has_ports(p) ||
	       (p->proto == GW_IPPROTO_ICMPV6 && p->frag != GW_FRAG_LATER);
}

/*
 * An IPv6 address: no IP checksum; the L4 one (pseudo header) gets the 16-byte difference.
 * `to` points at a map value or the stack, as bpf_csum_diff wants.
 */
static __always_inline int tc_rewrite_addr6(struct __sk_buff *skb, const struct gw_pkt *p,
					    __u32 addr_off, const union gw_addr *from,
					    const union gw_addr *to)
{
	__s64 diff;

	if (gw_addr_eq(from, to))
		return 0;
	if (nat_l4_pseudo(p)) {
		diff = bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);
		if (diff < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, p->l4_off + p->l4_csum_off, 0, diff,
					csum_l4_flags(p->proto, 0, true)))
			return -1;
	}
	return bpf_skb_store_bytes(skb, addr_off, to, 16, 0) ? -1 : 0;
}

/* Rewrites the source or destination address: IP checksum, and the L4 pseudo header. */
static __always_inline int tc_rewrite_addr(struct __sk_buff *skb, const struct gw_pkt *p,
					   __u32 addr_off, __be32 from, __be32 to)
{
	if (from == to)
		return 0;
	if (nat_l4_has_ports(p) &&
	    bpf_l4_csum_replace(skb, p->l4_off + p->l4_csum_off, from, to,
				csum_l4_flags(p->proto, 4, true)))
		return -1;
	if (bpf_l3_csum_replace(skb, GW_IP_CSUM_OFF(p), from, to, 4))
		return -1;
	return bpf_skb_store_bytes(skb, addr_off, &to, 4, 0) ? -1 : 0;
}

/* Rewrites a 16-bit L4 field (port, echo id) covered by the L4 checksum. */
static __always_inline int tc_rewrite_l4_16(struct __sk_buff *skb, const struct gw_pkt *p,
					    __u32 field_off, __be16 from, __be16 to)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, p->l4_off + p->l4_csum_off, from, to,
				csum_l4_flags(p->proto, 2, false)))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4_off + field_off, &to, 2, 0) ? -1 : 0;
}

/* Applies entry e to the packet. Later fragments only get their addresses rewritten. */
static __always_inline int tc_nat_apply(struct __sk_buff *skb, const struct gw_pkt *p,
					const struct gw_ct_entry *e)
{
	if (p->family == GW_AF_INET6) {
		if (tc_rewrite_addr6(skb, p, GW_IP6_SADDR_OFF(p), &p->saddr, &e->new_saddr) ||
		    tc_rewrite_addr6(skb, p, GW_IP6_DADDR_OFF(p), &p->daddr, &e->new_daddr))
			return -1;
	} else {
		if (tc_rewrite_addr(skb, p, GW_IP_SADDR_OFF(p), p->saddr.v4, e->new_saddr.v4) ||
		    tc_rewrite_addr(skb, p, GW_IP_DADDR_OFF(p), p->daddr.v4, e->new_daddr.v4))
			return -1;
	}
	if (nat_l4_has_ports(p)) {
		/* source and dest ports are the first two fields of TCP and UDP alike */
		if (tc_rewrite_l4_16(skb, p, 0, p->sport, e->new_sport))
			return -1;
		return tc_rewrite_l4_16(skb, p, 2, p->dport, e->new_dport);
	}
	if (p->frag != GW_FRAG_LATER && gw_pkt_is_echo(p))
		return tc_rewrite_l4_16(skb, p, GW_ICMP_ID_OFF, p->sport, e->new_sport);
	return 0;
}

/* Writes a field inside the ICMP payload and folds the change into the ICMP checksum. */
static __always_inline int tc_icmp_payload_store(struct __sk_buff *skb, const struct gw_pkt *p,
						 __u32 off, __u32 from, __u32 to, __u32 size)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, p->l4_off + p->l4_csum_off, from, to, size))
		return -1;
	return bpf_skb_store_bytes(skb, off, &to, size, 0) ? -1 : 0;
}

/* Where the quoted L4 checksum sits, if the quote carries it (0: none). */
static __always_inline __u32 icmp_inner_csum_off(const struct gw_inner *in)
{
	if (in->proto == IPPROTO_UDP)
		return in->l4_off + offsetof(struct udphdr, check);
	if (in->proto == IPPROTO_TCP && in->l4_avail >= offsetof(struct tcphdr, check) + 2)
		return in->l4_off + offsetof(struct tcphdr, check);
	if (in->proto == IPPROTO_ICMP)
		return in->l4_off + offsetof(struct icmphdr, checksum);
	return 0;
}

/*
 * An ICMP error quoting a translated packet. e is the entry of the direction *opposite* to
 * the quote (the quote travelled the other way), so its source rewrite applies to the
 * quote's destination and vice versa. The outer addresses follow where they equal the
 * quote's (the error came from, or goes to, a translated endpoint); a router in between
 * keeps its own address. Checksums: outer IP, ICMP, quoted IP, quoted L4 when present.
 */
static __always_inline int tc_nat_icmp_error(struct __sk_buff *skb, const struct gw_pkt *p,
					     const struct gw_ct_entry *e)
{
	const struct gw_inner *in = &p->inner;
	__be32 isaddr = e->new_daddr.v4, idaddr = e->new_saddr.v4;
	__be16 isport, idport;
	__u16 ip_check, ip_check_new, l4_check = 0, l4_check_new;
	__u32 l4_csum_off = icmp_inner_csum_off(in);

	if (in->proto == IPPROTO_ICMP) {
		isport = e->new_sport;
		idport = in->dport;
	} else {
		isport = e->new_dport;
		idport = e->new_sport;
	}

	if (bpf_skb_load_bytes(skb, in->l3_off + offsetof(struct iphdr, check), &ip_check, 2))
		return -1;
	if (l4_csum_off && bpf_skb_load_bytes(skb, l4_csum_off, &l4_check, 2))
		return -1;

	ip_check_new = csum_replace4(ip_check, in->saddr, isaddr);
	ip_check_new = csum_replace4(ip_check_new, in->daddr, idaddr);

	l4_check_new = l4_check;
	if (in->proto != IPPROTO_ICMP) {
		l4_check_new = csum_replace4(l4_check_new, in->saddr, isaddr);
		l4_check_new = csum_replace4(l4_check_new, in->daddr, idaddr);
		l4_check_new = csum_replace2(l4_check_new, in->dport, idport);
	}
	l4_check_new = csum_replace2(l4_check_new, in->sport, isport);
	if (in->proto == IPPROTO_UDP)
		l4_check_new = csum_udp_fixup(l4_check, l4_check_new);

	/* outer header */
	if (p->daddr.v4 == in->saddr &&
	    tc_rewrite_addr(skb, p, GW_IP_DADDR_OFF(p), p->daddr.v4, isaddr))
		return -1;
	if (p->saddr.v4 == in->daddr &&
	    tc_rewrite_addr(skb, p, GW_IP_SADDR_OFF(p), p->saddr.v4, idaddr))
		return -1;

	/* the quote, each change folded into the ICMP checksum */
	if (tc_icmp_payload_store(skb, p, in->l3_off + offsetof(struct iphdr, saddr),
				  in->saddr, isaddr, 4) ||
	    tc_icmp_payload_store(skb, p, in->l3_off + offsetof(struct iphdr, daddr),
				  in->daddr, idaddr, 4) ||
	    tc_icmp_payload_store(skb, p, in->l3_off + offsetof(struct iphdr, check),
				  ip_check, ip_check_new, 2))
		return -1;
	if (in->proto == IPPROTO_ICMP) {
		if (tc_icmp_payload_store(skb, p, in->l4_off + GW_ICMP_ID_OFF,
					  in->sport, isport, 2))
			return -1;
	} else {
		if (tc_icmp_payload_store(skb, p, in->l4_off, in->sport, isport, 2) ||
		    tc_icmp_payload_store(skb, p, in->l4_off + 2, in->dport, idport, 2))
			return -1;
	}
	if (l4_csum_off &&
	    tc_icmp_payload_store(skb, p, l4_csum_off, l4_check, l4_check_new, 2))
		return -1;
	return 0;
}

/* The flow an ICMP error is about: the entry of the direction opposite to its quote. */
static __always_inline struct gw_ct_entry *icmp_error_flow(const struct gw_pkt *p)
{
	struct gw_ct_key quote, key;

	ct_key_v4(&quote, p->inner.saddr, p->inner.daddr, p->inner.sport, p->inner.dport,
		  p->inner.proto);
	ct_reverse(&key, &quote);
	return ct_lookup(&key);
}

/* The masquerade covering `saddr` (longest prefix), or NULL. */
static __always_inline struct gw_masq_value *masq_lookup(__u8 family, const union gw_addr *saddr)
{
	struct gw_masq_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = GW_MASQ_PREFIXLEN(family == GW_AF_INET6 ? 128 : 32);
	k.family = family;
	k.addr = *saddr;
	return bpf_map_lookup_elem(&gw_masq_v4, &k);
}

/* The GW_MASQ_F_* of the masquerade covering `saddr`; 0 when none does. */
static __always_inline __u32 masq_flags(__u8 family, const union gw_addr *saddr)
{
	struct gw_masq_value *v = masq_lookup(family, saddr);

	return v ? v->flags : 0;
}

/*
 * ICMPv6 errors (RFC 4443 types 1-4) about a translated flow. The quote (an IPv6 header, its
 * extension headers, then at least 8 bytes of TCP, UDP or an ICMPv6 echo) is read here, not
 * in parse_pkt, so its 40-byte header stays off the entry points' stacks.
 */
#define GW_ICMP6_QUOTE_MAX_EXT	4

struct gw_quote6 {
	__u32 l3_off;		/* the quoted IPv6 header */
	__u32 l4_off;		/* its transport header */
	__u8 proto;
	__be16 sport;		/* echo: the id */
	__be16 dport;
	union gw_addr saddr;
	union gw_addr daddr;
};

/* The quote of an ICMPv6 error at p->l4_off + 8; false when it is nothing we could match. */
static __always_inline bool icmp6_quote(struct __sk_buff *skb, const struct gw_pkt *p,
					struct gw_quote6 *q)
{
	struct ipv6hdr ip6;
	__u8 ext[2], l4[8];
	__u32 off;
	__be16 fo;
	__u8 nh;
	int i;

	q->l3_off = p->l4_off + 8;
	if (bpf_skb_load_bytes(skb, q->l3_off, &ip6, sizeof(ip6)) || ip6.version != 6)
		return false;
	__builtin_memcpy(&q->saddr, &ip6.saddr, 16);
	__builtin_memcpy(&q->daddr, &ip6.daddr, 16);
	nh = ip6.nexthdr;
	off = q->l3_off + sizeof(ip6);
	for (i = 0; i < GW_ICMP6_QUOTE_MAX_EXT; i++) {
		if (!gw_ip6_is_ext(nh))
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
			return false;
		if (nh == GW_IP6_FRAGMENT) {
			if (bpf_skb_load_bytes(skb, off + 2, &fo, sizeof(fo)) ||
			    (bpf_ntohs(fo) >> 3))
				return false; /* a later fragment: no ports to match */
			off += 8;
		} else {
			off += (ext[1] + 1) * 8;
		}
		nh = ext[0];
	}
	if (gw_ip6_is_ext(nh))
		return false;
	if (bpf_skb_load_bytes(skb, off, l4, sizeof(l4)))
		return false;
	q->l4_off = off;
	q->proto = nh;
	if (nh == IPPROTO_TCP || nh == IPPROTO_UDP) {
		q->sport = *(__be16 *)&l4[0];
		q->dport = *(__be16 *)&l4[2];
		return true;
	}
	if (nh == GW_IPPROTO_ICMPV6 &&
	    (l4[0] == GW_ICMPV6_ECHO_REQUEST || l4[0] == GW_ICMPV6_ECHO_REPLY)) {
		q->sport = *(__be16 *)&l4[4];
		q->dport = 0;
		return true;
	}
	return false;
}

/* Rewrites 4-byte-aligned quote bytes and returns the one's complement sum difference. */
static __always_inline __s64 icmp6_store(struct __sk_buff *skb, __u32 off, void *from, void *to,
					 __u32 size)
{
	__s64 diff = bpf_csum_diff(from, size, to, size, 0);

	if (diff < 0 || bpf_skb_store_bytes(skb, off, to, size, 0))
		return -1;
	return diff;
}

/*
 * Translates an ICMPv6 error whose quote belongs to flow direction e's opposite (see
 * tc_nat_icmp_error): the quote's addresses and ports, its transport checksum (pseudo header
 * included), then the outer addresses where they equal the quote's. Every change inside the
 * message is folded into the ICMPv6 checksum; the outer address changes through the pseudo
 * header.
 */
static __always_inline int tc_nat_icmp6_error(struct __sk_buff *skb, const struct gw_pkt *p,
					      const struct gw_ct_entry *e,
					      const struct gw_quote6 *q)
{
	union gw_addr addrs_old[2], addrs_new[2];
	__be16 ports_old[2], ports_new[2];
	__u16 csum_word[2], csum_word_new[2], check;
	__u32 csum_word_off = 0;
	__s64 d_addrs, d_ports, d_csum = 0, sum;

	addrs_old[0] = q->saddr;
	addrs_old[1] = q->daddr;
	addrs_new[0] = e->new_daddr;
	addrs_new[1] = e->new_saddr;
	if (q->proto == GW_IPPROTO_ICMPV6) {
		/* the echo id and sequence: the id follows the flow, the sequence stays */
		if (bpf_skb_load_bytes(skb, q->l4_off + 4, ports_old, 4))
			return -1;
		ports_new[0] = e->new_sport;
		ports_new[1] = ports_old[1];
	} else {
		ports_old[0] = q->sport;
		ports_old[1] = q->dport;
		ports_new[0] = e->new_dport;
		ports_new[1] = e->new_sport;
	}

	/* the word holding the quote's transport checksum, if the quote reaches it */
	if (q->proto == IPPROTO_TCP)
		csum_word_off = q->l4_off + 16;
	else if (q->proto == IPPROTO_UDP)
		csum_word_off = q->l4_off + 4;
	else
		csum_word_off = q->l4_off;
	if (bpf_skb_load_bytes(skb, csum_word_off, csum_word, 4))
		csum_word_off = 0;

	d_addrs = icmp6_store(skb, q->l3_off + offsetof(struct ipv6hdr, saddr), addrs_old,
			      addrs_new, sizeof(addrs_old));
	if (d_addrs < 0)
		return -1;
	d_ports = icmp6_store(skb, q->l4_off + (q->proto == GW_IPPROTO_ICMPV6 ? 4 : 0),
			      ports_old, ports_new, sizeof(ports_old));
	if (d_ports < 0)
		return -1;
	sum = d_addrs + d_ports;
	sum = (sum & 0xffffffff) + (sum >> 32);
	csum_word_new[0] = csum_word[0];
	csum_word_new[1] = csum_word[1];
	check = q->proto == IPPROTO_TCP ? csum_word[0] : csum_word[1];
	/* a UDP checksum of zero (RFC 6935 tunnels) means none and stays zero */
	if (csum_word_off && !(q->proto == IPPROTO_UDP && !check)) {
		check = csum_add_diff(check, (__u32)sum);
		if (q->proto == IPPROTO_TCP)
			csum_word_new[0] = check;
		else
			csum_word_new[1] = check;
		d_csum = icmp6_store(skb, csum_word_off, csum_word, csum_word_new, 4);
		if (d_csum < 0)
			return -1;
	}
	sum += d_csum;
	sum = (sum & 0xffffffff) + (sum >> 32);
	if (bpf_l4_csum_replace(skb, p->l4_off + p->l4_csum_off, 0, (__u32)sum, 0))
		return -1;

	/* outer header: the error came from, or goes to, a translated endpoint */
	if (gw_addr_eq(&p->daddr, &q->saddr) &&
	    tc_rewrite_addr6(skb, p, GW_IP6_DADDR_OFF(p), &p->daddr, &e->new_daddr))
		return -1;
	if (gw_addr_eq(&p->saddr, &q->daddr) &&
	    tc_rewrite_addr6(skb, p, GW_IP6_SADDR_OFF(p), &p->saddr, &e->new_saddr))
		return -1;
	return 0;
}

/* The flow direction an ICMPv6 error's quote belongs to the other way of, or NULL. */
static __always_inline struct gw_ct_entry *icmp6_error_flow(const struct gw_quote6 *q)
{
	struct gw_ct_key quote, key;

	__builtin_memset(&quote, 0, sizeof(quote));
	quote.saddr = q->saddr;
	quote.daddr = q->daddr;
	quote.sport = q->sport;
	quote.dport = q->dport;
	quote.proto = q->proto;
	quote.family = GW_AF_INET6;
	ct_reverse(&key, &quote);
	return ct_lookup(&key);
}

/* Masquerade applies to saddr leaving through ifindex? */
static __always_inline bool masq_match(__u8 family, const union gw_addr *saddr, __u32 ifindex,
				       const struct gw_config *cfg)
{
	struct gw_masq_value *v = masq_lookup(family, saddr);

	if (!v)
		return false;
	if (v->out_ifindex)
		return v->out_ifindex == ifindex;
	return !cfg->uplink_ifindex || cfg->uplink_ifindex == ifindex;
}

/* The uplink's address of the family, the source masqueraded flows get; false: none. */
static __always_inline bool masq_source(__u8 family, const struct gw_config *cfg,
					union gw_addr *out)
{
	struct gw_config6 *cfg6;

	if (family == GW_AF_INET6) {
		cfg6 = gw_config6_get();
		if (!cfg6)
			return false;
		*out = cfg6->uplink_addr;
	} else {
		gw_addr_v4(out, cfg->uplink_addr.v4);
	}
	return !gw_addr_is_zero(out);
}

/* Does a socket of this host own the translated tuple (a reply would be ambiguous)? */
__noinline int nat_port_has_socket(struct __sk_buff *skb, const struct gw_ct_key *xlat)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;

	if (!skb || !xlat)
		return 0;
	/* the tuple as a reply would carry it: remote -> us */
	if (xlat->family == GW_AF_INET6) {
		__builtin_memcpy(t.ipv6.saddr, &xlat->daddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &xlat->saddr, 16);
		t.ipv6.sport = xlat->dport;
		t.ipv6.dport = xlat->sport;
		size = sizeof(t.ipv6);
	} else {
		t.ipv4.saddr = xlat->daddr.v4;
		t.ipv4.daddr = xlat->saddr.v4;
		t.ipv4.sport = xlat->dport;
		t.ipv4.dport = xlat->sport;
		size = sizeof(t.ipv4);
	}
	if (xlat->proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	else if (xlat->proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	else
		return false;
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/*
 * Endpoint-independent mappings (gw_snat_v4/v6 and their reverse maps, see gw_abi.h): the
 * port a source got, per family. The IPv4 maps keep their 8-byte keys (pinned).
 */
static __always_inline void snat_key4(struct gw_snat_key *k, const union gw_addr *addr,
				      __be16 port, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr = addr->v4;
	k->port = port;
	k->proto = proto;
}

static __always_inline void snat_key6(struct gw_snat6_key *k, const union gw_addr *addr,
				      __be16 port, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr = *addr;
	k->port = port;
	k->proto = proto;
}

static __always_inline struct gw_snat_value *snat_mapped(const struct gw_ct_key *orig)
{
	struct gw_snat6_key k6;
	struct gw_snat_key k4;

	if (orig->family == GW_AF_INET6) {
		snat_key6(&k6, &orig->saddr, orig->sport, orig->proto);
		return bpf_map_lookup_elem(&gw_snat_v6, &k6);
	}
	snat_key4(&k4, &orig->saddr, orig->sport, orig->proto);
	return bpf_map_lookup_elem(&gw_snat_v4, &k4);
}

/* Global (as the functions below): keeps its keys off nat_snat_create's stack frame. */
__noinline int snat_remember(const struct gw_ct_key *orig, const struct gw_ct_key *xlat)
{
	struct gw_snat6_key s6, x6;
	struct gw_snat_key s4, x4;
	struct gw_snat_value got = {};

	if (!orig || !xlat)
		return 0;
	got.port = xlat->sport;
	if (orig->family == GW_AF_INET6) {
		snat_key6(&s6, &orig->saddr, orig->sport, orig->proto);
		snat_key6(&x6, &xlat->saddr, xlat->sport, orig->proto);
		bpf_map_update_elem(&gw_snat_v6, &s6, &got, BPF_ANY);
		bpf_map_update_elem(&gw_snat_rev_v6, &x6, &s6, BPF_ANY);
		return 0;
	}
	snat_key4(&s4, &orig->saddr, orig->sport, orig->proto);
	snat_key4(&x4, &xlat->saddr, xlat->sport, orig->proto);
	bpf_map_update_elem(&gw_snat_v4, &s4, &got, BPF_ANY);
	bpf_map_update_elem(&gw_snat_rev_v4, &x4, &s4, BPF_ANY);
	return 0;
}

/* The source a mapping's external endpoint belongs to, into addr/port; false: none. */
static __always_inline bool snat_source_of(__u8 family, const union gw_addr *external,
					   __be16 port, __u8 proto, union gw_addr *addr,
					   __be16 *source_port)
{
	struct gw_snat6_key x6, *s6;
	struct gw_snat_key x4, *s4;

	if (family == GW_AF_INET6) {
		snat_key6(&x6, external, port, proto);
		s6 = bpf_map_lookup_elem(&gw_snat_rev_v6, &x6);
		if (!s6)
			return false;
		*addr = s6->addr;
		*source_port = s6->port;
		return true;
	}
	snat_key4(&x4, external, port, proto);
	s4 = bpf_map_lookup_elem(&gw_snat_rev_v4, &x4);
	if (!s4)
		return false;
	gw_addr_v4(addr, s4->addr);
	*source_port = s4->port;
	return true;
}

static __always_inline __u32 nat_port_hash(const struct gw_ct_key *k)
{
	__u32 h = k->saddr.v6[0] ^ k->saddr.v6[1] ^ k->saddr.v6[2] ^ k->saddr.v6[3] ^
		  k->daddr.v6[0] ^ k->daddr.v6[1] ^ k->daddr.v6[2] ^ k->daddr.v6[3] ^
		  ((__u32)k->sport << 16 | k->dport) ^ k->proto;

	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	h *= 0x846ca68b;
	h ^= h >> 16;
	return h;
}

/*
 * Creates a source-translated flow: `xlat` has the new source address, its port is chosen
 * here. The port this source got before (gw_snat_v4) or else its own port first (if no local
 * socket owns it), then at most GW_SNAT_PROBES ports of [snat_port_min, snat_port_max] from a
 * hash of the flow. The BPF_NOEXIST insert of the reply half is what claims a port; the port
 * taken is remembered for the source. Returns enum gw_ct_create_result, or -1: exhausted.
 * A global function, as ct_create is: verified once, not in every path of both families.
 */
__noinline int nat_snat_create(struct __sk_buff *skb, const struct gw_ct_key *orig,
			       struct gw_ct_key *xlat, __u8 nat, __u32 rule_id)
{
	struct gw_config *cfg = gw_config_get(); /* not an argument: BPF calls take five */
	struct gw_snat_value *mapped;
	__u32 lo, hi, range, h, i;
	__be16 first;
	int r;

	if (!orig || !xlat || !cfg)
		return GW_CT_FAIL;
	lo = cfg->snat_port_min ? cfg->snat_port_min : GW_SNAT_PORT_MIN;
	hi = cfg->snat_port_max ? cfg->snat_port_max : GW_SNAT_PORT_MAX;
	h = nat_port_hash(orig);
	mapped = snat_mapped(orig);
	first = mapped ? mapped->port : orig->sport;
	if (hi < lo)
		hi = lo;
	range = hi - lo + 1;

#pragma clang loop unroll(disable)
	for (i = 0; i <= GW_SNAT_PROBES; i++) {
		if (i == 0)
			xlat->sport = first;
		else
			xlat->sport = bpf_htons(lo + (h + i) % range);
		if (nat_port_has_socket(skb, xlat))
			continue;
		r = ct_create(orig, xlat, nat, rule_id);
		if (r == GW_CT_CLASH)
			continue;
		if (r == GW_CT_OK && (!mapped || xlat->sport != first))
			snat_remember(orig, xlat);
		return r;
	}
	return -1;
}
