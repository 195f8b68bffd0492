/* SPDX-License-Identifier: MIT */
/*
 * Answering a packet we cannot translate (SNAT ports exhausted) instead of dropping it in
 * silence: TCP gets a RST built per RFC 9293 §3.10.7.1, anything else (UDP, ICMP echo, TCP
 * first fragments) an ICMP destination unreachable, code 13 "communication administratively
 * prohibited" (RFC 1812 §5.2.7.1), quoting the IP header and 8 bytes of L4 (RFC 792). The
 * packet is rebuilt in place, addressed back to its sender from the address it was sent to
 * (so the sender's socket matches it, and rp_filter at the uplink accepts it), and
 * redirected back the way it came (see tc_reject).
 *
 * Checksums. A packet from a namespace usually carries CHECKSUM_PARTIAL (veth tx offload):
 * its L4 checksum field holds the pseudo-header seed that whoever finishes the checksum adds
 * the data to. The RST keeps the TCP header where it was (we only answer ihl = 5), so the
 * skb's csum_start/csum_offset stay right, and is made right both ways: the field is
 * written as the seed, then bpf_l4_csum_replace without BPF_F_PSEUDO_HDR turns it into the
 * full checksum only when the skb is not CHECKSUM_PARTIAL (the helper leaves PARTIAL
 * fields alone in that mode). The ICMP answer's checksum is always complete; its skb may
 * still say PARTIAL (pointing into the quote), which receivers across veths trust without
 * looking. CHECKSUM_COMPLETE does not reach the hooks that answer (forwarding clears it,
 * veths never set it).
 */
#pragma once

#include "csum.h"
#include "parse.h"

/* ICMP destination unreachable code: communication administratively prohibited */
#define GW_ICMP_PKT_FILTERED	13
#define GW_ANSWER_TTL		64
#define GW_ICMP_QUOTE_L4	8	/* bytes of the refused packet's L4 header quoted */

struct gw_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

struct gw_rst4 {
	struct iphdr ip;
	struct tcphdr tcp;
};

struct gw_unreach4 {
	struct iphdr ip;
	struct icmphdr icmp;
};

/* The quote of an ICMP error: the refused packet's IP header (no options) + 8 bytes. */
struct gw_quote4 {
	struct iphdr ip;
	__u8 l4[GW_ICMP_QUOTE_L4];
};

/* The bytes of the TCP header after the ports that a RST depends on. */
struct gw_tcp_seq {
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags;
};

static __always_inline __u32 reject_sum(void *buf, __u32 size)
{
	return (__u32)bpf_csum_diff(NULL, 0, buf, size, 0);
}

/* A fresh 20-byte IPv4 header from `saddr` to `daddr`, checksum computed. */
static __always_inline void reject_ip_hdr(struct iphdr *ip, __u8 proto, __u16 tot_len,
					  __be32 saddr, __be32 daddr)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(tot_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = GW_ANSWER_TTL;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = ~csum_fold32(reject_sum(ip, sizeof(*ip)));
}

/* The answer goes back to where the packet came from: Ethernet addresses swapped. */
static __always_inline int reject_swap_mac(struct __sk_buff *skb)
{
	__u8 mac[12], swapped[12];
	int i;

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return -1;
#pragma unroll
	for (i = 0; i < 6; i++) {
		swapped[i] = mac[i + 6];
		swapped[i + 6] = mac[i];
	}
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) ? -1 : 0;
}

/*
 * Sends a RST built in `r` (IP header of ip_len, then TCP) back: the packet cut to it, the
 * MACs swapped, and its checksum finished from the seed (see the comment at the top):
 * ~seed + (seed + seed + header) = pseudo + header when the skb is not CHECKSUM_PARTIAL.
 */
static __always_inline int reject_put_rst(struct __sk_buff *skb, const struct gw_pkt *p,
					  void *r, __u32 len, __u32 ip_len, __u32 psum, __u32 hsum)
{
	if (bpf_skb_change_tail(skb, p->l3_off + len, 0))
		return -1;
	if (reject_swap_mac(skb))
		return -1;
	if (bpf_skb_store_bytes(skb, p->l3_off, r, len, 0))
		return -1;
	if (bpf_l4_csum_replace(skb, p->l3_off + ip_len + offsetof(struct tcphdr, check), 0,
				psum + psum + hsum, 0))
		return -1;
	return 0;
}

/* Sends an ICMP(v6) error back: the quote_len bytes at l3 kept, `hdr` put before them. */
static __always_inline int reject_put_icmp(struct __sk_buff *skb, const struct gw_pkt *p,
					   void *hdr, __u32 hdr_len, __u32 quote_len)
{
	/* keep the quote, then open room for the new headers between Ethernet and it */
	if (bpf_skb_change_tail(skb, p->l3_off + quote_len, 0))
		return -1;
	if (bpf_skb_adjust_room(skb, hdr_len, BPF_ADJ_ROOM_MAC, 0))
		return -1;
	if (reject_swap_mac(skb))
		return -1;
	return bpf_skb_store_bytes(skb, p->l3_off, hdr, hdr_len, 0) ? -1 : 0;
}

/*
 * TCP: the packet becomes a RST. With an ACK on the refused segment the RST takes its
 * sequence number from that ACK; otherwise it has sequence 0 and acknowledges everything the
 * segment occupied (data, SYN, FIN). A RST is never answered. Fills `rst` (zeroed by the
 * caller) for either family; -1: no answer.
 */
static __always_inline int reject_rst_hdr(struct __sk_buff *skb, const struct gw_pkt *p,
					  struct tcphdr *rst)
{
	struct gw_tcp_seq in;
	__u32 l4_len = p->tot_len - (p->l4_off - p->l3_off);
	__u32 hdr_len, seg_len;

	if (p->tcp_flags & GW_TCP_RST)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l4_off + offsetof(struct tcphdr, seq), &in, sizeof(in)))
		return -1;
	hdr_len = (in.doff_res >> 4) * 4;
	if (hdr_len > l4_len)
		return -1;
	seg_len = l4_len - hdr_len;
	if (p->tcp_flags & GW_TCP_SYN)
		seg_len++;
	if (p->tcp_flags & GW_TCP_FIN)
		seg_len++;
	rst->source = p->dport;
	rst->dest = p->sport;
	rst->doff = sizeof(*rst) / 4;
	rst->rst = 1;
	if (p->tcp_flags & GW_TCP_ACK) {
		rst->seq = in.ack_seq;
	} else {
		rst->ack_seq = bpf_htonl(bpf_ntohl(in.seq) + seg_len);
		rst->ack = 1;
	}
	return 0;
}

static __always_inline int reject_tcp_rst(struct __sk_buff *skb, const struct gw_pkt *p)
{
	struct gw_pseudo4 ph = {};
	struct gw_rst4 r;
	__u32 psum, hsum;

	__builtin_memset(&r, 0, sizeof(r));
	if (reject_rst_hdr(skb, p, &r.tcp))
		return -1;
	reject_ip_hdr(&r.ip, IPPROTO_TCP, sizeof(r), p->daddr.v4, p->saddr.v4);

	ph.saddr = p->daddr.v4;
	ph.daddr = p->saddr.v4;
	ph.proto = IPPROTO_TCP;
	ph.len = bpf_htons(sizeof(r.tcp));
	psum = csum_fold32(reject_sum(&ph, sizeof(ph)));
	hsum = csum_fold32(reject_sum(&r.tcp, sizeof(r.tcp)));
	r.tcp.check = (__u16)psum; /* the CHECKSUM_PARTIAL seed: pseudo header only */
	return reject_put_rst(skb, p, &r, sizeof(r), sizeof(r.ip), psum, hsum);
}

/* Anything else: ICMP destination unreachable (administratively prohibited) to the sender. */
static __always_inline int reject_icmp_unreach(struct __sk_buff *skb, const struct gw_pkt *p)
{
	struct gw_unreach4 u;
	struct gw_quote4 q;
	__u32 sum;

	if (p->l4_off - p->l3_off + GW_ICMP_QUOTE_L4 > p->tot_len)
		return -1;
	if (bpf_skb_load_bytes(skb, p->l3_off, &q, sizeof(q)))
		return -1;

	__builtin_memset(&u, 0, sizeof(u));
	reject_ip_hdr(&u.ip, IPPROTO_ICMP, sizeof(u) + sizeof(q), p->daddr.v4, p->saddr.v4);
	u.icmp.type = ICMP_DEST_UNREACH;
	u.icmp.code = GW_ICMP_PKT_FILTERED;
	sum = csum_fold32(reject_sum(&u.icmp, sizeof(u.icmp)));
	sum += csum_fold32(reject_sum(&q, sizeof(q)));
	u.icmp.checksum = ~csum_fold32(sum);
	return reject_put_icmp(skb, p, &u, sizeof(u), sizeof(q));
}

/*
 * IPv6: the same answers. The TCP header must follow the fixed header (no extension
 * headers), so the RST keeps it in place; ICMPv6 destination unreachable code 1
 * ("communication with destination administratively prohibited", RFC 4443 3.1) quotes the
 * first GW_ICMP6_QUOTE bytes of the refused packet.
 */
#define GW_ICMP6_DEST_UNREACH	1
#define GW_ICMP6_PROHIBITED	1
#define GW_ICMP6_QUOTE		48	/* the IPv6 header and 8 bytes after it */

struct gw_rst6 {
	struct ipv6hdr ip;
	struct tcphdr tcp;
};

struct gw_unreach6 {
	struct ipv6hdr ip;
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u32 unused;
};

static __always_inline void reject_ip6_hdr(struct ipv6hdr *ip, __u8 nexthdr, __u16 payload_len,
					   const union gw_addr *saddr, const union gw_addr *daddr)
{
	__builtin_memset(ip, 0, sizeof(*ip));
	ip->version = 6;
	ip->payload_len = bpf_htons(payload_len);
	ip->nexthdr = nexthdr;
	ip->hop_limit = GW_ANSWER_TTL;
	__builtin_memcpy(&ip->saddr, saddr, 16);
	__builtin_memcpy(&ip->daddr, daddr, 16);
}

/* The RFC 8200 pseudo header's sum (folded): the header's addresses, length, next header. */
static __always_inline __u32 reject_pseudo6(struct ipv6hdr *ip, __u32 len, __u8 nexthdr)
{
	__be32 tail[2] = {bpf_htonl(len), bpf_htonl(nexthdr)};

	return csum_fold32(csum_fold32(reject_sum(&ip->saddr, 32)) +
			   csum_fold32(reject_sum(tail, sizeof(tail))));
}

static __always_inline int reject_tcp_rst6(struct __sk_buff *skb, const struct gw_pkt *p)
{
	struct gw_rst6 r;
	__u32 psum, hsum;

	__builtin_memset(&r.tcp, 0, sizeof(r.tcp));
	if (reject_rst_hdr(skb, p, &r.tcp))
		return -1;
	reject_ip6_hdr(&r.ip, IPPROTO_TCP, sizeof(r.tcp), &p->daddr, &p->saddr);
	psum = reject_pseudo6(&r.ip, sizeof(r.tcp), IPPROTO_TCP);
	hsum = csum_fold32(reject_sum(&r.tcp, sizeof(r.tcp)));
	r.tcp.check = (__u16)psum; /* the CHECKSUM_PARTIAL seed, as for IPv4 */
	return reject_put_rst(skb, p, &r, sizeof(r), sizeof(r.ip), psum, hsum);
}

static __always_inline int reject_icmp6_unreach(struct __sk_buff *skb, const struct gw_pkt *p)
{
	__u8 quote[GW_ICMP6_QUOTE];
	struct gw_unreach6 u;
	__u32 len = sizeof(u) - sizeof(u.ip) + sizeof(quote), sum;

	if (p->tot_len < sizeof(quote))
		return -1;
	if (bpf_skb_load_bytes(skb, p->l3_off, quote, sizeof(quote)))
		return -1;
	reject_ip6_hdr(&u.ip, GW_IPPROTO_ICMPV6, len, &p->daddr, &p->saddr);
	u.type = GW_ICMP6_DEST_UNREACH;
	u.code = GW_ICMP6_PROHIBITED;
	u.checksum = 0;
	u.unused = 0;
	sum = reject_pseudo6(&u.ip, len, GW_IPPROTO_ICMPV6);
	sum += csum_fold32(reject_sum(&u.type, sizeof(u) - sizeof(u.ip)));
	sum += csum_fold32(reject_sum(quote, sizeof(quote)));
	u.checksum = ~csum_fold32(sum);
	return reject_put_icmp(skb, p, &u, sizeof(u), sizeof(quote));
}

/* tc_reject for IPv6 (a global function of its own: each answer's buffers in its frame). */
__noinline int tc_reject6(struct __sk_buff *skb, const struct gw_pkt *p, bool at_egress)
{
	__u32 ifindex;
	int err;

	if (!skb || !p)
		return TC_ACT_SHOT;
	ifindex = gw_ctx_u32(skb, ifindex);
	if (p->proto == IPPROTO_TCP && p->frag == GW_FRAG_NONE) {
		if (p->l4_off - p->l3_off != sizeof(struct ipv6hdr))
			return TC_ACT_SHOT; /* extension headers would move the TCP header */
		err = reject_tcp_rst6(skb, p);
	} else {
		err = reject_icmp6_unreach(skb, p);
	}
	if (err)
		return TC_ACT_SHOT;
	return bpf_redirect(ifindex, at_egress ? BPF_F_INGRESS : 0);
}

/*
 * Turns the packet into its answer and sends it back. at_egress: the program runs on the
 * uplink's egress, the packet was routed there from a namespace, so the answer is handed to
 * the uplink's own ingress (BPF_F_INGRESS) and the stack routes it to the namespace like any
 * packet from outside (the swapped Ethernet destination is the uplink's own address). On a
 * namespace link's ingress the answer leaves through that same link (its egress) straight
 * to the sender. Returns the tc verdict: TC_ACT_REDIRECT, or TC_ACT_SHOT when the packet
 * gets no answer (a RST, IP options, a helper failing). A global function: its answer
 * buffers get their own stack frame, off the entry point's (512 bytes for the whole chain).
 */
__noinline int tc_reject(struct __sk_buff *skb, const struct gw_pkt *p, bool at_egress)
{
	__u32 ifindex;
	int err;

	if (!skb || !p)
		return TC_ACT_SHOT;
	ifindex = gw_ctx_u32(skb, ifindex);

	if (p->family != GW_AF_INET)
		return TC_ACT_SHOT; /* tc_reject6's */
	/* options would move the L4 header: answers always have a plain 20-byte header */
	if (p->l4_off - p->l3_off != sizeof(struct iphdr))
		return TC_ACT_SHOT;
	if (p->proto == IPPROTO_TCP && p->frag == GW_FRAG_NONE)
		err = reject_tcp_rst(skb, p);
	else
		err = reject_icmp_unreach(skb, p);
	if (err)
		return TC_ACT_SHOT;
	return bpf_redirect(ifindex, at_egress ? BPF_F_INGRESS : 0);
}
