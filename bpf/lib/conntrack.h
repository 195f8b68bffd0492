/* SPDX-License-Identifier: MIT */
/*
 * Connection tracking. A flow is two LRU entries keyed by the wire tuple of each direction;
 * each holds its rewrite and the other's key (`peer`). The reply half is inserted first with
 * BPF_NOEXIST: that insert is the claim on the translated tuple (and on an SNAT port).
 */
#pragma once

#include "maps.h"
#include "parse.h"

enum gw_ct_create_result {
	GW_CT_OK = 0,
	GW_CT_CLASH,	/* reply tuple already taken: choose another port */
	GW_CT_RACE,	/* another CPU created the same flow first: use its entry */
	GW_CT_FAIL,	/* map full or other error */
};

static __always_inline void ct_key_v4(struct gw_ct_key *k, __be32 saddr, __be32 daddr,
				      __be16 sport, __be16 dport, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr.v4 = saddr;
	k->daddr.v4 = daddr;
	k->sport = sport;
	k->dport = dport;
	k->proto = proto;
	k->family = GW_AF_INET;
}

/* ICMP and ICMPv6: flows are echo exchanges, keyed by the echo id in sport (dport 0). */
static __always_inline bool gw_proto_is_icmp(__u8 proto)
{
	return proto == IPPROTO_ICMP || proto == GW_IPPROTO_ICMPV6;
}

static __always_inline void ct_key_from_pkt(struct gw_ct_key *k, const struct gw_pkt *p)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = gw_proto_is_icmp(p->proto) ? 0 : p->dport;
	k->proto = p->proto;
	k->family = p->family;
}

/* No memcmp: BPF has no library to call. Keys are built zeroed, so pad needs no look. */
static __always_inline bool ct_key_eq(const struct gw_ct_key *a, const struct gw_ct_key *b)
{
	return gw_addr_eq(&a->saddr, &b->saddr) && gw_addr_eq(&a->daddr, &b->daddr) &&
	       a->sport == b->sport && a->dport == b->dport && a->proto == b->proto &&
	       a->family == b->family;
}

/*
 * The tuple a packet travelling the other way carries. ICMP echo keeps its id in sport in
 * both directions (requests and replies carry the same id).
 */
static __always_inline void ct_reverse(struct gw_ct_key *out, const struct gw_ct_key *in)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->saddr = in->daddr;
	out->daddr = in->saddr;
	if (gw_proto_is_icmp(in->proto)) {
		out->sport = in->sport;
	} else {
		out->sport = in->dport;
		out->dport = in->sport;
	}
	out->proto = in->proto;
	out->family = in->family;
}

static __always_inline void ct_entry_init(struct gw_ct_entry *e, const struct gw_ct_key *rewrite,
					  const struct gw_ct_key *peer, __u8 dir, __u8 nat,
					  __u32 rule_id, __u64 now)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->new_saddr = rewrite->saddr;
	e->new_daddr = rewrite->daddr;
	e->new_sport = rewrite->sport;
	e->new_dport = rewrite->dport;
	e->dir = dir;
	e->nat = nat;
	e->rule_id = rule_id;
	e->created_ns = now;
	e->last_seen_ns = now;
	e->peer = *peer;
}

static __always_inline struct gw_ct_scratch *ct_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gw_ct_scratch, &zero);
}

/*
 * Creates the flow whose first packet has tuple `orig` and leaves as `xlat`. Reply first, so
 * a clash on the translated tuple is detected before anything of ours is visible; on a
 * failed orig insert the reply half is removed again: no orphan halves.
 *
 * A global function: the verifier checks it once, not at every call in every path (the SNAT
 * port search calls it per probe; inlined, the endpoint program came to ~1M instructions).
 */
__noinline int ct_create(const struct gw_ct_key *orig, const struct gw_ct_key *xlat,
			 __u8 nat, __u32 rule_id)
{
	struct gw_ct_scratch *s = ct_scratch();
	struct gw_ct_key rkey, rrw;
	__u64 now = bpf_ktime_get_coarse_ns();
	long err;

	if (!s || !orig || !xlat)
		return GW_CT_FAIL;
	ct_reverse(&rkey, xlat);
	ct_reverse(&rrw, orig);
	ct_entry_init(&s->reply, &rrw, orig, GW_CT_DIR_REPLY, nat, rule_id, now);
	ct_entry_init(&s->orig, xlat, &rkey, GW_CT_DIR_ORIG, nat, rule_id, now);

	err = bpf_map_update_elem(&gw_ct_v4, &rkey, &s->reply, BPF_NOEXIST);
	if (err == -EEXIST)
		return GW_CT_CLASH;
	if (err)
		return GW_CT_FAIL;
	err = bpf_map_update_elem(&gw_ct_v4, orig, &s->orig, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&gw_ct_v4, &rkey);
		return err == -EEXIST ? GW_CT_RACE : GW_CT_FAIL;
	}
	return GW_CT_OK;
}

/*
 * An entry whose peer was evicted (LRU halves age independently under pressure) gets the
 * peer rebuilt from itself: the peer rewrites to the reverse of this entry's key. Checked on
 * one packet in GW_CT_REPAIR_EVERY of each direction, not on all: the lookup was a fifth of
 * an established packet's cost, and eviction is rare (it needs a full table).
 */
#define GW_CT_REPAIR_EVERY	32

static __always_inline bool ct_repair_due(__u64 packets_before)
{
	return (packets_before & (GW_CT_REPAIR_EVERY - 1)) == 0;
}

static __always_inline void ct_repair_peer(const struct gw_ct_key *key,
					   const struct gw_ct_entry *e)
{
	struct gw_ct_scratch *s;
	struct gw_ct_key rw;

	if (bpf_map_lookup_elem(&gw_ct_v4, &e->peer))
		return;
	s = ct_scratch();
	if (!s)
		return;
	ct_reverse(&rw, key);
	ct_entry_init(&s->reply, &rw, key, e->dir ^ 1, e->nat, e->rule_id, e->created_ns);
	bpf_map_update_elem(&gw_ct_v4, &e->peer, &s->reply, BPF_NOEXIST);
}

/*
 * Per-packet accounting on a flow direction; gatewayd ages flows from last_seen_ns (the
 * coarse clock: same CLOCK_MONOTONIC base, tick resolution, ~20 ns a packet cheaper here
 * than bpf_ktime_get_ns; flow timeouts are seconds). Returns the packet count before this
 * packet.
 */
static __always_inline __u64 ct_touch(struct gw_ct_entry *e, const struct gw_pkt *p)
{
	__u64 before;
	__u8 seen = 0;

	e->last_seen_ns = bpf_ktime_get_coarse_ns();
	before = __sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, p->tot_len);
	if (p->proto != IPPROTO_TCP || p->frag == GW_FRAG_LATER)
		return before;
	if (p->tcp_flags & GW_TCP_SYN)
		seen |= (p->tcp_flags & GW_TCP_ACK) ? GW_CT_SEEN_SYNACK : GW_CT_SEEN_SYN;
	else if (p->tcp_flags & GW_TCP_ACK)
		seen |= GW_CT_SEEN_ACK;
	if (p->tcp_flags & GW_TCP_FIN)
		seen |= GW_CT_SEEN_FIN;
	if (p->tcp_flags & GW_TCP_RST)
		seen |= GW_CT_SEEN_RST;
	if ((e->tcp_flags & seen) != seen)
		e->tcp_flags |= seen;
	return before;
}

/* The reason a translated packet of this flow direction is counted under. */
static __always_inline __u32 ct_reason(const struct gw_ct_entry *e)
{
	if (e->dir == GW_CT_DIR_REPLY)
		return GW_REASON_NAT_REPLY;
	return (e->nat & GW_NAT_DNAT) ? GW_REASON_NAT_DNAT : GW_REASON_NAT_SNAT;
}

static __always_inline struct gw_ct_entry *ct_lookup(const struct gw_ct_key *k)
{
	return bpf_map_lookup_elem(&gw_ct_v4, k);
}

/*
 * A DNAT flow whose reply half is still there but whose original half was evicted: the
 * reply insert of ct_create clashes with our own flow. Rebuilds the original half from the
 * reply; true when the packet's flow exists again.
 */
static __always_inline bool ct_revive_orig(const struct gw_ct_key *orig,
					   const struct gw_ct_key *xlat)
{
	struct gw_ct_entry *reply;
	struct gw_ct_key rkey;

	ct_reverse(&rkey, xlat);
	reply = ct_lookup(&rkey);
	if (!reply || !ct_key_eq(&reply->peer, orig))
		return false;
	ct_repair_peer(&rkey, reply);
	return ct_lookup(orig) != NULL;
}

static __always_inline void frag6_key_of(const struct gw_pkt *p, struct gw_frag6_key *fk)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	fk->saddr = p->saddr;
	fk->daddr = p->daddr;
	fk->id = p->frag_id;
	fk->proto = p->proto;
}

static __always_inline void frag_key_of(const struct gw_pkt *p, struct gw_frag_key *fk)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	fk->saddr = p->saddr.v4;
	fk->daddr = p->daddr.v4;
	fk->id = (__be16)p->frag_id;
	fk->proto = p->proto;
}

/* The first fragment's datagram -> flow (a zero key: not ours), per family. */
static __always_inline void frag_store(const struct gw_pkt *p, const struct gw_ct_key *flow)
{
	struct gw_frag6_key fk6;
	struct gw_frag_key fk;

	if (p->family == GW_AF_INET6) {
		frag6_key_of(p, &fk6);
		bpf_map_update_elem(&gw_frag_v6, &fk6, flow, BPF_ANY);
		return;
	}
	frag_key_of(p, &fk);
	bpf_map_update_elem(&gw_frag_v4, &fk, flow, BPF_ANY);
}

/*
 * A first fragment is not ours until frag_remember says so: a zero flow key lets its later
 * fragments pass (the gateway host's own traffic) instead of waiting to be held.
 */
static __always_inline void frag_first_seen(const struct gw_pkt *p)
{
	struct gw_ct_key none;

	if (p->frag != GW_FRAG_FIRST)
		return;
	__builtin_memset(&none, 0, sizeof(none));
	frag_store(p, &none);
}

/* Later fragments: remember which flow the first fragment's datagram belongs to. */
static __always_inline void frag_remember(const struct gw_pkt *p, const struct gw_ct_key *flow)
{
	if (p->frag != GW_FRAG_FIRST)
		return;
	frag_store(p, flow);
}

/* The flow of a later fragment's datagram: NULL before its first fragment came, a zero key
 * (proto 0) when that was not ours. */
static __always_inline struct gw_ct_key *frag_flow(const struct gw_pkt *p)
{
	struct gw_frag6_key fk6;
	struct gw_frag_key fk;

	if (p->family == GW_AF_INET6) {
		frag6_key_of(p, &fk6);
		return bpf_map_lookup_elem(&gw_frag_v6, &fk6);
	}
	frag_key_of(p, &fk);
	return bpf_map_lookup_elem(&gw_frag_v4, &fk);
}

/* After a first fragment's verdict: tell gatewayd if later ones of it are held. A lost
 * event only delays them to gatewayd's next sweep. The event is the datagram's key. */
static __always_inline void frag_first_done(const struct gw_pkt *p)
{
	struct gw_frag6_key fk6, *event6;
	struct gw_frag_key fk, *event;

	if (p->frag != GW_FRAG_FIRST)
		return;
	if (p->family == GW_AF_INET6) {
		frag6_key_of(p, &fk6);
		if (!bpf_map_lookup_elem(&gw_frag_wait6, &fk6))
			return;
		event6 = bpf_ringbuf_reserve(&gw_frag_events, sizeof(*event6), 0);
		if (!event6)
			return;
		*event6 = fk6;
		bpf_ringbuf_submit(event6, 0);
		return;
	}
	frag_key_of(p, &fk);
	if (!bpf_map_lookup_elem(&gw_frag_wait, &fk))
		return;
	event = bpf_ringbuf_reserve(&gw_frag_events, sizeof(*event), 0);
	if (!event)
		return;
	*event = fk;
	bpf_ringbuf_submit(event, 0);
}
