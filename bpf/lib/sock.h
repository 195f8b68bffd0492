/* SPDX-License-Identifier: MIT */
/*
 * Host-local access path: a socket of the gateway host connecting (or sending) to
 * 127.0.0.1:HOSTPORT or to a local address:HOSTPORT that is exposed is pointed at the
 * target directly, as if the packet had been DNATed, without any packet rewriting.
 */
#pragma once

#include "maps.h"
#include "stats.h"

/* Rewrites the destination of ctx if it names an exposed port; always allows the call. */
static __always_inline int sock_redirect(struct bpf_sock_addr *ctx, bool count_conn)
{
	struct gw_config *cfg = gw_config_get();
	struct gw_expose_value *v;
	struct gw_sock_orig *orig;
	union gw_addr daddr;
	__u8 proto;

	if (!cfg || !cfg->netns_cookie || bpf_get_netns_cookie(ctx) != cfg->netns_cookie)
		return 1;
	if (ctx->family != AF_INET)
		return 1;
	proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	/*
	 * Only this host's destinations: its addresses, and loopback: a rule on that loopback
	 * address (a runtime's -p 127.0.0.1:PORT), else what the uplink address answers.
	 */
	gw_addr_v4(&daddr, ctx->user_ip4);
	if ((bpf_ntohl(ctx->user_ip4) & GW_LOOPBACK_MASK) == GW_LOOPBACK_NET) {
		v = expose_lookup_exact(GW_AF_INET, &daddr, (__be16)ctx->user_port, proto);
		if (!v) {
			gw_addr_v4(&daddr, cfg->uplink_addr.v4);
			v = expose_lookup(GW_AF_INET, &daddr, (__be16)ctx->user_port, proto);
		}
	} else {
		if (!gw_is_local(GW_AF_INET, &daddr))
			return 1;
		v = expose_lookup(GW_AF_INET, &daddr, (__be16)ctx->user_port, proto);
	}
	if (!v)
		return 1;
	orig = bpf_sk_storage_get(&gw_sock_orig_v4, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (orig) {
		orig->orig_addr = ctx->user_ip4;
		orig->orig_port = (__be16)ctx->user_port;
		orig->target_addr = v->target_addr.v4;
		orig->target_port = v->target_port;
	}
	ctx->user_ip4 = v->target_addr.v4;
	ctx->user_port = (__u32)v->target_port;
	stats_reason(GW_REASON_NAT_DNAT);
	stats_rule(v->rule_id, 0, count_conn);
	return 1;
}

/*
 * The peer address a redirected socket reports (getpeername, recvfrom) is turned back into
 * the exposed address it asked for, so clients that check where an answer came from accept
 * it. Only for sockets redirected by sock_redirect().
 */
static __always_inline int sock_restore_peer(struct bpf_sock_addr *ctx)
{
	struct gw_sock_orig *orig;

	if (ctx->family != AF_INET)
		return 1;
	orig = bpf_sk_storage_get(&gw_sock_orig_v4, ctx->sk, 0, 0);
	if (!orig)
		return 1;
	if (ctx->user_ip4 != orig->target_addr || (__be16)ctx->user_port != orig->target_port)
		return 1;
	ctx->user_ip4 = orig->orig_addr;
	ctx->user_port = (__u32)orig->orig_port;
	return 1;
}

/* An IPv6 socket's destination: each 32-bit word read alone, as the context allows. */
static __always_inline void sock_user_ip6(const struct bpf_sock_addr *ctx, union gw_addr *a)
{
	a->v6[0] = ctx->user_ip6[0];
	a->v6[1] = ctx->user_ip6[1];
	a->v6[2] = ctx->user_ip6[2];
	a->v6[3] = ctx->user_ip6[3];
}

static __always_inline void sock_set_user_ip6(struct bpf_sock_addr *ctx, const union gw_addr *a)
{
	ctx->user_ip6[0] = a->v6[0];
	ctx->user_ip6[1] = a->v6[1];
	ctx->user_ip6[2] = a->v6[2];
	ctx->user_ip6[3] = a->v6[3];
}

static __always_inline bool gw_addr_is_loopback6(const union gw_addr *a)
{
	return !a->v6[0] && !a->v6[1] && !a->v6[2] && a->v6[3] == bpf_htonl(1);
}

/*
 * sock_redirect for IPv6 sockets: [::1]:HOSTPORT stands for the uplink's IPv6 address, a
 * local IPv6 address for itself. (A v4-mapped destination is left alone: the kernel runs no
 * IPv4 hook for it, and the IPv4 exposes are reached with IPv4 sockets.)
 */
static __always_inline int sock_redirect6(struct bpf_sock_addr *ctx, bool count_conn)
{
	struct gw_config *cfg = gw_config_get();
	struct gw_config6 *cfg6 = gw_config6_get();
	struct gw_expose_value *v;
	struct gw_sock_orig6 *orig;
	union gw_addr asked, daddr;
	__u8 proto;

	if (!cfg || !cfg6 || !cfg->netns_cookie ||
	    bpf_get_netns_cookie(ctx) != cfg->netns_cookie)
		return 1;
	if (ctx->family != AF_INET6)
		return 1;
	proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	sock_user_ip6(ctx, &asked);
	if (gw_addr_is_loopback6(&asked)) {
		/* a rule on [::1] itself, else what the uplink's IPv6 address answers */
		v = expose_lookup_exact(GW_AF_INET6, &asked, (__be16)ctx->user_port, proto);
		if (!v) {
			daddr = cfg6->uplink_addr;
			if (gw_addr_is_zero(&daddr))
				return 1;
			v = expose_lookup(GW_AF_INET6, &daddr, (__be16)ctx->user_port, proto);
		}
	} else {
		if (!gw_is_local(GW_AF_INET6, &asked))
			return 1;
		v = expose_lookup(GW_AF_INET6, &asked, (__be16)ctx->user_port, proto);
	}
	if (!v)
		return 1;
	orig = bpf_sk_storage_get(&gw_sock_orig_v6, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (orig) {
		orig->orig_addr = asked;
		orig->orig_port = (__be16)ctx->user_port;
		orig->target_addr = v->target_addr;
		orig->target_port = v->target_port;
	}
	sock_set_user_ip6(ctx, &v->target_addr);
	ctx->user_port = (__u32)v->target_port;
	stats_reason(GW_REASON_NAT_DNAT);
	stats_rule(v->rule_id, 0, count_conn);
	return 1;
}

static __always_inline int sock_restore_peer6(struct bpf_sock_addr *ctx)
{
	struct gw_sock_orig6 *orig;
	union gw_addr peer;

	if (ctx->family != AF_INET6)
		return 1;
	orig = bpf_sk_storage_get(&gw_sock_orig_v6, ctx->sk, 0, 0);
	if (!orig)
		return 1;
	sock_user_ip6(ctx, &peer);
	if (!gw_addr_eq(&peer, &orig->target_addr) ||
	    (__be16)ctx->user_port != orig->target_port)
		return 1;
	sock_set_user_ip6(ctx, &orig->orig_addr);
	ctx->user_port = (__u32)orig->orig_port;
	return 1;
}
