/* SPDX-License-Identifier: MIT */
/*
 * The steps the tc programs share: parse with accounting, translate a packet of a known
 * flow (established, later fragment, ICMP error), and create DNAT flows for exposed ports.
 */
#pragma once

#include "fwd.h"
#include "reject.h"

/*
 * What a tc entry point is, as the shared steps below need to know it: one static const per
 * entry point, passed by pointer. The steps are __always_inline, so clang folds every test of
 * a field away.
 */
struct gw_hook {
	bool forward;    /* may redirect translated packets (bpf_redirect_peer works at ingress) */
	bool at_egress;  /* runs at egress: refusals are answered into our ingress (tc_reject) */
	bool snat_flows; /* translates masquerade-only flows (the uplink does, a veth does not) */
	bool hairpin;    /* a namespace reaching its own exposed port is SNATed to hairpin_addr */
};

/* Makes the headers we may touch linear, then parses; counts what is not ours. */
static __always_inline int tc_parse(struct __sk_buff *skb, struct gw_pkt *p)
{
	__u32 len = gw_ctx_u32(skb, len);
	__u32 room = GW_PARSE_HEADROOM, want;
	void *data, *data_end;
	int ret;

	if (gw_ctx_u32(skb, protocol) == bpf_htons(ETH_P_IPV6))
		room = GW_PARSE6_HEADROOM;
	want = len < room ? len : room;

	data = (void *)(long)gw_ctx_u32(skb, data);
	data_end = (void *)(long)gw_ctx_u32(skb, data_end);
	if (data + want > data_end) {
		bpf_skb_pull_data(skb, want);
		data = (void *)(long)gw_ctx_u32(skb, data);
		data_end = (void *)(long)gw_ctx_u32(skb, data_end);
	}
	ret = parse_pkt(data, data_end, len, p);
	if (ret == GW_PARSE_NOT_IP)
		stats_reason(GW_REASON_PASS_NOT_IP);
	else if (ret == GW_PARSE_MALFORMED)
		stats_reason(GW_REASON_DROP_MALFORMED);
	return ret;
}

static __always_inline int tc_drop(__u32 reason, __u32 rule_id)
{
	stats_reason(reason);
	stats_rule_drop(rule_id);
	return TC_ACT_SHOT;
}

static __always_inline int tc_pass(__u32 reason)
{
	stats_reason(reason);
	return TC_ACT_OK;
}

/*
 * A packet of flow direction e (key: its wire tuple): account, rewrite, forward. created: this
 * packet's insert made the flow.
 */
static __always_inline int tc_ct_xlate(struct __sk_buff *skb, const struct gw_pkt *p,
				       const struct gw_ct_key *key, struct gw_ct_entry *e,
				       const struct gw_config *cfg, const struct gw_hook *hook,
				       bool created)
{
	if (ct_repair_due(ct_touch(e, p)) && !created)
		ct_repair_peer(key, e);
	frag_remember(p, key);
	stats_rule(e->rule_id, p->tot_len, created);
	if (tc_nat_apply(skb, p, e))
		return tc_drop(GW_REASON_DROP_CSUM, e->rule_id);
	stats_reason(ct_reason(e));
	if (!hook->forward)
		return TC_ACT_OK;
	return tc_forward(skb, p, cfg, e);
}

/*
 * Holds a later fragment that came before its first (RFC 4787 REQ-14) for gatewayd to send
 * on: see gw_abi.h. At most GW_FRAG_HOLD_PER_DATAGRAM per datagram (a duplicate counts too).
 * hk is the family's held key (its datagram key first), held/wait the family's maps.
 */
static __always_inline int tc_frag_hold_in(struct __sk_buff *skb, const struct gw_pkt *p,
					   void *held, void *wait_map, const void *hk,
					   const void *datagram)
{
	struct gw_frag_wait *wait, fresh;
	struct gw_frag_held *slot;
	__u64 len = p->tot_len; /* 64 bits: a zero-extension would hide the checks' bounds */
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;

	wait = bpf_map_lookup_elem(wait_map, datagram);
	if (wait && wait->held >= GW_FRAG_HOLD_PER_DATAGRAM)
		return tc_drop(GW_REASON_DROP_FRAGMENT_HOLD_FULL, 0);
	slot = bpf_map_lookup_elem(&gw_frag_scratch, &zero);
	if (!slot)
		return tc_drop(GW_REASON_DROP_FRAGMENT_HOLD_FULL, 0);
	slot->held_ns = now;
	slot->len = len;
	/* the verifier must see the bounds on the register the helper gets */
	barrier_var(len);
	if (len < 20 || len > GW_FRAG_HELD_BYTES)
		return tc_drop(GW_REASON_DROP_MALFORMED, 0);
	if (bpf_skb_load_bytes(skb, p->l3_off, slot->packet, len))
		return tc_drop(GW_REASON_DROP_MALFORMED, 0);
	/* a duplicate replaces the copy held; a new one needs room */
	if (bpf_map_update_elem(held, hk, slot, BPF_ANY))
		return tc_drop(GW_REASON_DROP_FRAGMENT_HOLD_FULL, 0);
	if (wait) {
		__sync_fetch_and_add(&wait->held, 1);
	} else {
		__builtin_memset(&fresh, 0, sizeof(fresh));
		fresh.held = 1;
		fresh.since_ns = now;
		if (bpf_map_update_elem(wait_map, datagram, &fresh, BPF_NOEXIST)) {
			wait = bpf_map_lookup_elem(wait_map, datagram);
			if (!wait) { /* no room to wait: gatewayd's sweep would never see it */
				bpf_map_delete_elem(held, hk);
				return tc_drop(GW_REASON_DROP_FRAGMENT_HOLD_FULL, 0);
			}
			__sync_fetch_and_add(&wait->held, 1);
		}
	}
	stats_reason(GW_REASON_FRAGMENT_HELD);
	return TC_ACT_SHOT;
}

/* A global function: the held keys (48 bytes for IPv6) stay off the entry point's stack. */
__noinline int tc_frag_hold(struct __sk_buff *skb, const struct gw_pkt *p)
{
	struct gw_frag_held6_key hk6;
	struct gw_frag_held_key hk;

	if (!skb || !p)
		return TC_ACT_SHOT;
	if (p->tot_len > GW_FRAG_HELD_BYTES)
		return tc_drop(GW_REASON_DROP_FRAGMENT_TOO_BIG, 0);
	if (p->tot_len < 20)
		return tc_drop(GW_REASON_DROP_MALFORMED, 0);
	if (p->family == GW_AF_INET6) {
		__builtin_memset(&hk6, 0, sizeof(hk6));
		frag6_key_of(p, &hk6.datagram);
		hk6.offset = p->frag_offset;
		return tc_frag_hold_in(skb, p, &gw_frag_held6, &gw_frag_wait6, &hk6,
				       &hk6.datagram);
	}
	__builtin_memset(&hk, 0, sizeof(hk));
	frag_key_of(p, &hk.datagram);
	hk.offset = p->frag_offset;
	return tc_frag_hold_in(skb, p, &gw_frag_held, &gw_frag_wait, &hk, &hk.datagram);
}

/*
 * Later fragment: the flow recorded by its first fragment, addresses only. Before the first
 * came it is held, unless gatewayd released it already (then it goes as it is).
 */
static __always_inline int tc_later_fragment(struct __sk_buff *skb, const struct gw_pkt *p,
					     const struct gw_config *cfg,
					     const struct gw_hook *hook)
{
	struct gw_ct_key *flow = frag_flow(p), key;
	struct gw_ct_entry *e;

	if (!flow) {
		if (gw_ctx_u32(skb, mark) == GW_MARK_RELEASED)
			return tc_pass(GW_REASON_PASS_FRAGMENT_MISS);
		return tc_frag_hold(skb, p);
	}
	if (!flow->proto)
		return tc_pass(GW_REASON_PASS_FRAGMENT_MISS);
	key = *flow;
	e = ct_lookup(&key);
	if (!e)
		return tc_pass(GW_REASON_PASS_FRAGMENT_MISS);
	/* as its first did: a masquerade-only flow keeps its source until the uplink, whose
	 * egress knows the datagram by its untranslated key */
	if (!hook->snat_flows && !(e->nat & GW_NAT_DNAT))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	return tc_ct_xlate(skb, p, &key, e, cfg, hook, false);
}

/*
 * ICMP error quoting a translated packet; other ICMP errors are left alone, and so are those
 * about masquerade-only flows where the hook leaves them to the uplink (see endpoint_tc.bpf.c).
 */
/*
 * The same for ICMPv6 errors. A global function: the quote it reads stays off the entry
 * point's stack. snat_flows as struct gw_hook's.
 */
__noinline int tc_icmp6_error(struct __sk_buff *skb, const struct gw_pkt *p, int snat_flows)
{
	struct gw_quote6 q;
	struct gw_ct_entry *e;

	if (!skb || !p)
		return TC_ACT_OK;
	if (!icmp6_quote(skb, p, &q))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	e = icmp6_error_flow(&q);
	if (e && (snat_flows || (e->nat & GW_NAT_DNAT))) {
		if (tc_nat_icmp6_error(skb, p, e, &q))
			return tc_drop(GW_REASON_DROP_CSUM, e->rule_id);
		return tc_pass(GW_REASON_NAT_ICMP_ERROR);
	}
	return tc_pass(GW_REASON_PASS_NO_MATCH);
}

static __always_inline int tc_icmp_error(struct __sk_buff *skb, const struct gw_pkt *p,
					 const struct gw_hook *hook)
{
	struct gw_ct_entry *e;

	if (p->family == GW_AF_INET6)
		return tc_icmp6_error(skb, p, hook->snat_flows);
	e = icmp_error_flow(p);
	if (e && (hook->snat_flows || (e->nat & GW_NAT_DNAT))) {
		if (tc_nat_icmp_error(skb, p, e))
			return tc_drop(GW_REASON_DROP_CSUM, e->rule_id);
		return tc_pass(GW_REASON_NAT_ICMP_ERROR);
	}
	return tc_pass(GW_REASON_PASS_NO_MATCH);
}

/* Can this packet open a flow (carries ports or an echo id, not a later fragment)? */
static __always_inline bool tc_flow_capable(const struct gw_pkt *p)
{
	if (p->frag == GW_FRAG_LATER)
		return false;
	return p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || gw_pkt_is_echo(p);
}

/*
 * Opens a flow for `key` translated to `xlat` and translates the packet. With GW_NAT_SNAT in
 * nat the source port is chosen (masquerade, hairpin); otherwise xlat is used as is. No port
 * left: the packet is counted as dropped and answered (RST or ICMP, see reject.h).
 */
static __always_inline int tc_ct_open(struct __sk_buff *skb, const struct gw_pkt *p,
				      const struct gw_ct_key *key, struct gw_ct_key *xlat,
				      __u8 nat, __u32 rule_id, const struct gw_config *cfg,
				      const struct gw_hook *hook)
{
	bool snat = nat & GW_NAT_SNAT;
	struct gw_ct_entry *e;
	int r;

	if (snat)
		r = nat_snat_create(skb, key, xlat, nat, rule_id);
	else
		r = ct_create(key, xlat, nat, rule_id);
	if (r < 0) {
		tc_drop(GW_REASON_DROP_SNAT_EXHAUSTED, rule_id);
		if (p->family == GW_AF_INET6)
			return tc_reject6(skb, p, hook->at_egress);
		return tc_reject(skb, p, hook->at_egress);
	}
	if (r == GW_CT_CLASH && !snat && ct_revive_orig(key, xlat)) {
		/* our own flow, its original half evicted: translate as established */
		e = ct_lookup(key);
		if (e)
			return tc_ct_xlate(skb, p, key, e, cfg, hook, false);
	}
	if (r == GW_CT_CLASH || r == GW_CT_FAIL)
		return tc_drop(GW_REASON_DROP_CT_INSERT, rule_id);
	stats_reason(r == GW_CT_OK ? GW_REASON_CT_CREATED : GW_REASON_CT_INSERT_RACE);

	e = ct_lookup(key);
	if (!e)
		return tc_drop(GW_REASON_DROP_CT_INSERT, rule_id);
	return tc_ct_xlate(skb, p, key, e, cfg, hook, r == GW_CT_OK);
}

/*
 * The source a hairpinned flow gets: the namespaces' gateway (hairpin_addr), else the uplink's
 * address, of the packet's family. False when neither is set.
 */
static __always_inline bool tc_hairpin_source(__u8 family, const struct gw_config *cfg,
					      union gw_addr *out)
{
	struct gw_config6 *cfg6;

	if (family == GW_AF_INET6) {
		cfg6 = gw_config6_get();
		if (cfg6 && !gw_addr_is_zero(&cfg6->hairpin_addr)) {
			*out = cfg6->hairpin_addr;
			return true;
		}
	} else if (cfg->hairpin_addr.v4) {
		gw_addr_v4(out, cfg->hairpin_addr.v4);
		return true;
	}
	return masq_source(family, cfg, out);
}

/*
 * To the external endpoint of a masquerade mapping, with no flow yet. From a namespace
 * (hairpinning, RFC 4787 REQ-9, RFC 5382 REQ-8, as STUN/ICE peers behind one NAT need): it
 * reaches the mapping's source, and comes from the sender's own mapping (9a), its port chosen
 * as for a masqueraded flow. From outside: only when the source's masquerade filters
 * endpoint-independently (REQ-8), unchanged in source. Anything else here is not ours.
 */
static __always_inline int tc_to_mapping(struct __sk_buff *skb, const struct gw_pkt *p,
					 const struct gw_ct_key *key, const struct gw_config *cfg,
					 const struct gw_hook *hook)
{
	struct gw_ct_key xlat;

	if (!gw_is_local(p->family, &p->daddr))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	xlat = *key;
	if (!snat_source_of(p->family, &p->daddr, p->dport, p->proto, &xlat.daddr, &xlat.dport))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	if (hook->hairpin) {
		if (!tc_hairpin_source(p->family, cfg, &xlat.saddr))
			return tc_pass(GW_REASON_PASS_NO_MATCH);
		return tc_ct_open(skb, p, key, &xlat, GW_NAT_DNAT | GW_NAT_SNAT, 0, cfg, hook);
	}
	if (!(masq_flags(p->family, &xlat.daddr) & GW_MASQ_F_EIF))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	return tc_ct_open(skb, p, key, &xlat, GW_NAT_DNAT, 0, cfg, hook);
}

/*
 * Whether `target` is reached back through the link the packet came in on: a client and its
 * target behind one bridge (containers a CNI bridge plugin wired, the program on the bridge
 * device), whose replies would go port to port and never cross a program. A global function:
 * the FIB lookup's 64 bytes get their own stack frame.
 */
__noinline int tc_target_behind_ingress(struct __sk_buff *skb, const struct gw_pkt *p,
					const union gw_addr *target)
{
	struct bpf_fib_lookup fib = {};
	long ret;

	if (!skb || !p || !target)
		return 0;
	/* a managed namespace has a veth of its own: never the link a client came in on */
	if (gw_endpoint_get(p->family, target))
		return 0;
	if (p->family == GW_AF_INET6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, target, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_dst = target->v4;
	}
	fib.ifindex = gw_ctx_u32(skb, ifindex);
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	return fib.ifindex == gw_ctx_u32(skb, ifindex);
}

/*
 * A new connection to an exposed port: DNAT, plus SNAT to hairpin_addr when it loops back
 * (to the client itself, or to a target behind the link it came in on).
 * Runs at ingress hooks only (uplink, namespace links).
 */
static __always_inline int tc_expose(struct __sk_buff *skb, const struct gw_pkt *p,
				     const struct gw_ct_key *key, const struct gw_config *cfg,
				     const struct gw_hook *hook)
{
	struct gw_expose_value *v;
	struct gw_ct_key xlat;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	v = expose_lookup(p->family, &p->daddr, p->dport, p->proto);
	if (!v)
		return tc_to_mapping(skb, p, key, cfg, hook);

	xlat = *key;
	xlat.daddr = v->target_addr;
	xlat.dport = v->target_port;
	if (hook->hairpin && (gw_addr_eq(&v->target_addr, &p->saddr) ||
			      tc_target_behind_ingress(skb, p, &xlat.daddr))) {
		if (!tc_hairpin_source(p->family, cfg, &xlat.saddr))
			return tc_drop(GW_REASON_DROP_CT_INSERT, v->rule_id);
		return tc_ct_open(skb, p, key, &xlat, GW_NAT_DNAT | GW_NAT_SNAT, v->rule_id,
				  cfg, hook);
	}
	return tc_ct_open(skb, p, key, &xlat, GW_NAT_DNAT, v->rule_id, cfg, hook);
}

/* Not a verdict: the entry point goes on to its own conntrack and rule logic. */
#define GW_TC_CONTINUE (-100)

/*
 * What every tc entry point does first: parse (non-IP passes, malformed drops), ICMP errors
 * about a flow, later fragments, and protocols we do not track.
 */
static __always_inline int tc_prologue(struct __sk_buff *skb, struct gw_pkt *p,
				       struct gw_config *cfg, const struct gw_hook *hook)
{
	int ret = tc_parse(skb, p);

	if (ret == GW_PARSE_NOT_IP)
		return TC_ACT_OK;
	if (ret != GW_PARSE_OK)
		return TC_ACT_SHOT;
	if (p->is_icmp_err)
		return tc_icmp_error(skb, p, hook);
	frag_first_seen(p);
	if (p->frag == GW_FRAG_LATER)
		return tc_later_fragment(skb, p, cfg, hook);
	if (!tc_flow_capable(p))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	return GW_TC_CONTINUE;
}
