// SPDX-License-Identifier: MIT
/*
 * tc ingress on the gateway end of a namespace's veth: packets from a namespace. Replies of
 * exposed flows are translated here because between two namespaces on one bridge they never
 * reach L3; new connections to an exposed port through a gateway address get DNAT (and SNAT
 * to the hairpin address when a namespace reaches itself). Masquerade is the uplink's job.
 */
#include "tc.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static const struct gw_hook endpoint_ingress = {
	.forward = true,
	.hairpin = true,
};

static __always_inline int ingress_verdict(struct __sk_buff *skb, struct gw_pkt *p)
{
	struct gw_config *cfg = gw_config_get();
	struct gw_ct_entry *e;
	struct gw_ct_key key;
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	ret = tc_prologue(skb, p, cfg, &endpoint_ingress);
	if (ret != GW_TC_CONTINUE)
		return ret;

	ct_key_from_pkt(&key, p);
	e = ct_lookup(&key);
	if (e) {
		/* masquerade-only flows keep their source until the uplink (no martians) */
		if (!(e->nat & GW_NAT_DNAT))
			return tc_pass(GW_REASON_PASS_NO_MATCH);
		return tc_ct_xlate(skb, p, &key, e, cfg, &endpoint_ingress, false);
	}
	return tc_expose(skb, p, &key, cfg, &endpoint_ingress);
}

SEC("tc")
int gw_endpoint_ingress(struct __sk_buff *skb)
{
	struct gw_pkt p = {};
	int ret = ingress_verdict(skb, &p);

	frag_first_done(&p);
	return ret;
}
