/* SPDX-License-Identifier: MIT */
/*
 * Cursor-advancing IPv4/IPv6 parser shared by tc and XDP: every header is bounds-checked
 * against data_end before use. The result holds offsets and copied fields only, so tc code can keep
 * using it after helpers that invalidate packet pointers.
 */
#pragma once

#include "common.h"

enum gw_parse_result {
	GW_PARSE_OK = 0,
	GW_PARSE_NOT_IP,
	GW_PARSE_MALFORMED,
};

enum gw_frag_kind {
	GW_FRAG_NONE = 0,
	GW_FRAG_FIRST,	/* offset 0, MF set: carries the L4 header */
	GW_FRAG_LATER,	/* offset > 0: no L4 header */
};

/* What an ICMP error quotes: the inner IPv4 header and the start of its L4 header. */
struct gw_inner {
	__u16 l3_off;
	__u16 l4_off;
	__u16 l4_avail;	/* bytes of the inner L4 header present in the packet */
	__u8 proto;
	__u8 pad;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;	/* ICMP echo: the id */
	__be16 dport;
};

struct gw_pkt {
	__u16 l3_off;
	__u16 l4_off;		/* IPv6: past the extension headers */
	__u32 tot_len;		/* IP total length, host order (a BIG TCP packet's may pass 64 KiB) */
	__be32 frag_id;		/* IPv4: the 16-bit id (a __be16, zero-extended) */
	__u16 frag_offset;	/* 8-byte units */
	__u8 family;		/* enum gw_family */
	__u8 pad0;
	union gw_addr saddr;	/* IPv4 in .v4, the rest zero */
	union gw_addr daddr;
	__be16 sport;		/* ICMP echo: the id; 0 for later fragments */
	__be16 dport;
	__u8 proto;
	__u8 frag;		/* enum gw_frag_kind */
	__u8 tcp_flags;		/* raw TCP flag byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 icmp_type;
	__u8 l4_csum_off;	/* offset of the L4 checksum inside the L4 header, 0 if none */
	__u8 is_icmp_err;	/* ICMP error with a parsed quote in `inner` */
	__u8 ttl;		/* IPv6: the hop limit */
	__u8 pad;
	struct gw_inner inner;
};

#define GW_TCP_FIN	0x01
#define GW_TCP_SYN	0x02
#define GW_TCP_RST	0x04
#define GW_TCP_ACK	0x10

/* Bytes of the headers we may touch: Ethernet, IP with options, quoted IP + TCP checksum. */
#define GW_PARSE_HEADROOM	(ETH_HLEN + 60 + 8 + 60 + 18)
/* IPv6: the header, a few extension headers and TCP. A chain beyond it is left to the stack. */
#define GW_PARSE6_HEADROOM	256

static __always_inline bool gw_icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

static __always_inline bool gw_icmp_is_echo(__u8 type)
{
	return type == ICMP_ECHO || type == ICMP_ECHOREPLY;
}

/* An ICMP echo in IPv4 or an ICMPv6 echo in IPv6: a flow keyed by its id. */
static __always_inline bool gw_pkt_is_echo(const struct gw_pkt *p)
{
	if (p->family == GW_AF_INET6)
		return p->proto == GW_IPPROTO_ICMPV6 && (p->icmp_type == GW_ICMPV6_ECHO_REQUEST ||
							 p->icmp_type == GW_ICMPV6_ECHO_REPLY);
	return p->proto == IPPROTO_ICMP && gw_icmp_is_echo(p->icmp_type);
}

/* An echo request may open a flow; a reply without one is the host answering. */
static __always_inline bool gw_pkt_is_echo_request(const struct gw_pkt *p)
{
	if (p->family == GW_AF_INET6)
		return p->proto == GW_IPPROTO_ICMPV6 && p->icmp_type == GW_ICMPV6_ECHO_REQUEST;
	return p->proto == IPPROTO_ICMP && p->icmp_type == ICMP_ECHO;
}

/*
 * The quote of an ICMP error: an IPv4 header (ihl honoured) and at least 8 bytes of its L4
 * header (RFC 792). Only non-fragment or first-fragment quotes of TCP/UDP/ICMP echo qualify.
 */
static __always_inline int parse_icmp_inner(void *data, void *data_end, __u16 off,
					    struct gw_inner *in)
{
	struct iphdr *iph = data + off;
	__u32 ihl;

	if ((void *)(iph + 1) > data_end)
		return GW_PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return GW_PARSE_MALFORMED;
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		return GW_PARSE_NOT_IP; /* quote of a later fragment: no ports to match */
	ihl = iph->ihl * 4;
	in->l3_off = off;
	in->l4_off = off + ihl;
	in->proto = iph->protocol;
	in->saddr = iph->saddr;
	in->daddr = iph->daddr;
	if (data + in->l4_off + 8 > data_end)
		return GW_PARSE_MALFORMED;
	in->l4_avail = data_end - (data + in->l4_off);
	if (in->proto == IPPROTO_TCP || in->proto == IPPROTO_UDP) {
		__be16 *ports = data + in->l4_off;

		if ((void *)(ports + 2) > data_end)
			return GW_PARSE_MALFORMED;
		in->sport = ports[0];
		in->dport = ports[1];
		return GW_PARSE_OK;
	}
	if (in->proto == IPPROTO_ICMP) {
		struct icmphdr *ic = data + in->l4_off;

		if ((void *)(ic + 1) > data_end)
			return GW_PARSE_MALFORMED;
		if (!gw_icmp_is_echo(ic->type))
			return GW_PARSE_NOT_IP;
		in->sport = ic->un.echo.id;
		in->dport = 0;
		return GW_PARSE_OK;
	}
	return GW_PARSE_NOT_IP;
}

static __always_inline int parse_l4(void *data, void *data_end, struct gw_pkt *p)
{
	void *l4 = data + p->l4_off;
	__u32 l4_len = p->tot_len - (p->l4_off - p->l3_off);
	__u32 min_len = 0;

	/* The L4 header must fit inside the IP datagram, not only inside the frame. */
	if (p->proto == IPPROTO_TCP)
		min_len = sizeof(struct tcphdr);
	else if (p->proto == IPPROTO_UDP || p->proto == IPPROTO_ICMP ||
		 p->proto == GW_IPPROTO_ICMPV6)
		min_len = 8;
	if (l4_len < min_len)
		return GW_PARSE_MALFORMED;

	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end || th->doff < 5)
			return GW_PARSE_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->l4_csum_off = offsetof(struct tcphdr, check);
		return GW_PARSE_OK;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return GW_PARSE_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->l4_csum_off = offsetof(struct udphdr, check);
		return GW_PARSE_OK;
	}
	if (p->proto == IPPROTO_ICMP) {
		struct icmphdr *ic = l4;
		int ret;

		if ((void *)(ic + 1) > data_end)
			return GW_PARSE_MALFORMED;
		p->icmp_type = ic->type;
		p->l4_csum_off = offsetof(struct icmphdr, checksum);
		if (gw_icmp_is_echo(ic->type)) {
			p->sport = ic->un.echo.id;
			return GW_PARSE_OK;
		}
		if (gw_icmp_is_error(ic->type) && p->frag == GW_FRAG_NONE) {
			ret = parse_icmp_inner(data, data_end, p->l4_off + sizeof(*ic), &p->inner);
			if (ret == GW_PARSE_OK)
				p->is_icmp_err = 1;
			/* A quote we cannot match (short, a later fragment, an ICMP error itself) is
			 * not ours to judge: the stack decides, and it counts as no match. */
			return GW_PARSE_OK;
		}
	}
	if (p->proto == GW_IPPROTO_ICMPV6) {
		struct icmphdr *ic = l4; /* type, code, checksum and the echo id/seq as ICMP's */

		if ((void *)(ic + 1) > data_end)
			return GW_PARSE_MALFORMED;
		p->icmp_type = ic->type;
		p->l4_csum_off = offsetof(struct icmphdr, checksum);
		if (ic->type == GW_ICMPV6_ECHO_REQUEST ||
		    ic->type == GW_ICMPV6_ECHO_REPLY)
			p->sport = ic->un.echo.id;
		/* errors (RFC 4443 types 1-4): the quote is parsed where it is translated */
		else if (ic->type >= 1 && ic->type <= 4 && p->frag == GW_FRAG_NONE)
			p->is_icmp_err = 1;
		return GW_PARSE_OK;
	}
	/* Other protocols and ICMP types: parsed, but nothing to translate. */
	return GW_PARSE_OK;
}

static __always_inline bool gw_ip6_is_ext(__u8 nh)
{
	return nh == GW_IP6_HOPOPTS || nh == GW_IP6_ROUTING || nh == GW_IP6_FRAGMENT ||
	       nh == GW_IP6_DSTOPTS;
}

/*
 * IPv6 after the Ethernet header: the fixed header, then hop-by-hop (first only), routing,
 * destination options and fragment headers (one) walked to the transport header, at most
 * GW_IP6_MAX_EXT of them. Any other Next Header (AH, ESP, No Next Header, ...) ends the walk
 * as the packet's proto. A later fragment ends it at its fragment header (no L4 header). A
 * header cut by the payload length or the frame is malformed; headers the frame holds but the
 * linear data does not (tc, past tc_parse's pull) are left to the stack as not ours.
 */
static __always_inline int parse_ip6(void *data, void *data_end, __u32 pkt_len,
				     struct gw_pkt *p)
{
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u32 tot_len, end, peek, off = ETH_HLEN + sizeof(*ip6);
	bool fragment = false;
	__u8 nh, *h;
	__u16 fo;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return GW_PARSE_MALFORMED;
	if (ip6->version != 6)
		return GW_PARSE_MALFORMED;
	tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	/* IPv6 BIG TCP: a GSO packet above 64 KiB says 0, its length is the skb's */
	if (tot_len == sizeof(*ip6) && pkt_len > ETH_HLEN + sizeof(*ip6) + 0xffff)
		tot_len = pkt_len - ETH_HLEN;
	if (tot_len + ETH_HLEN > pkt_len)
		return GW_PARSE_MALFORMED;

	p->family = GW_AF_INET6;
	p->l3_off = ETH_HLEN;
	p->tot_len = tot_len;
	__builtin_memcpy(&p->saddr, &ip6->saddr, sizeof(p->saddr));
	__builtin_memcpy(&p->daddr, &ip6->daddr, sizeof(p->daddr));
	p->ttl = ip6->hop_limit;
	nh = ip6->nexthdr;
	end = ETH_HLEN + tot_len;

	for (i = 0; i <= GW_IP6_MAX_EXT; i++) {
		if (!gw_ip6_is_ext(nh))
			break;
		if (i == GW_IP6_MAX_EXT)
			return GW_PARSE_MALFORMED; /* a chain longer than we walk */
		if (nh == GW_IP6_HOPOPTS && i)
			return GW_PARSE_MALFORMED; /* RFC 8200 4.1: only right after the header */
		/* every extension header is a multiple of 8 bytes, at least 8 */
		if (off + 8 > end)
			return GW_PARSE_MALFORMED;
		h = data + off;
		if ((void *)(h + 8) > data_end)
			return GW_PARSE_NOT_IP;
		if (nh == GW_IP6_FRAGMENT) {
			if (fragment)
				return GW_PARSE_MALFORMED; /* a second fragment header */
			fragment = true;
			nh = h[0];
			off += 8;
			fo = bpf_ntohs(*(__be16 *)(h + 2));
			p->frag_id = *(__be32 *)(h + 4);
			if (fo >> 3) {
				p->frag = GW_FRAG_LATER;
				p->frag_offset = fo >> 3;
				p->proto = nh;
				p->l4_off = off;
				return GW_PARSE_OK;
			}
			/* offset 0 without M is an atomic fragment (RFC 6946): whole */
			if (fo & 1)
				p->frag = GW_FRAG_FIRST;
			continue;
		}
		nh = h[0];
		off += (h[1] + 1) * 8;
	}
	if (off > end)
		return GW_PARSE_MALFORMED; /* the last header runs past the payload */
	/* the transport header (up to TCP's 20 bytes) the datagram holds must be linear */
	peek = end - off < sizeof(struct tcphdr) ? end - off : sizeof(struct tcphdr);
	if (data + off + peek > data_end)
		return GW_PARSE_NOT_IP;
	p->proto = nh;
	p->l4_off = off;
	return parse_l4(data, data_end, p);
}

/*
 * Parses Ethernet + IPv4 or IPv6 (+ L4) starting at data. pkt_len is the whole frame's
 * length, which in tc may exceed the linear data the bounds checks use.
 */
static __always_inline int parse_pkt(void *data, void *data_end, __u32 pkt_len,
				     struct gw_pkt *p)
{
	struct ethhdr *eth = data;
	struct iphdr *iph;
	__u32 ihl, tot_len, frag;

	__builtin_memset(p, 0, sizeof(*p));
	if ((void *)(eth + 1) > data_end)
		return GW_PARSE_MALFORMED;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_ip6(data, data_end, pkt_len, p);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return GW_PARSE_NOT_IP;

	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return GW_PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return GW_PARSE_MALFORMED;
	ihl = iph->ihl * 4;
	if ((void *)iph + ihl > data_end)
		return GW_PARSE_MALFORMED;
	tot_len = bpf_ntohs(iph->tot_len);
	/* A GSO/GRO packet above 64 KiB (IPv4 BIG TCP, kernel 6.3+) says 0: its length is the
	 * skb's. XDP never sees one (pkt_len is the frame there). */
	if (tot_len == 0 && pkt_len > ETH_HLEN + 0xffff)
		tot_len = pkt_len - ETH_HLEN;
	if (tot_len < ihl || tot_len + ETH_HLEN > pkt_len)
		return GW_PARSE_MALFORMED;

	p->family = GW_AF_INET;
	p->l3_off = ETH_HLEN;
	p->l4_off = ETH_HLEN + ihl;
	p->tot_len = tot_len;
	p->frag_id = iph->id;
	p->saddr.v4 = iph->saddr;
	p->daddr.v4 = iph->daddr;
	p->proto = iph->protocol;
	p->ttl = iph->ttl;

	frag = bpf_ntohs(iph->frag_off);
	if (frag & IP_OFFSET) {
		/* TCP at offset 8 can only overwrite the first fragment's ports and flags
		 * (the overlapping-fragment attack, RFC 1858 / RFC 3128) */
		if ((frag & IP_OFFSET) == 1 && iph->protocol == IPPROTO_TCP)
			return GW_PARSE_MALFORMED;
		p->frag = GW_FRAG_LATER;
		p->frag_offset = frag & IP_OFFSET;
		return GW_PARSE_OK;
	}
	if (frag & IP_MF)
		p->frag = GW_FRAG_FIRST;
	return parse_l4(data, data_end, p);
}
