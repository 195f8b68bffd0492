// SPDX-License-Identifier: MIT
/* tc on the uplink: exposed ports in (DNAT), masquerade out (SNAT), replies of both. */
#include "tc.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static const struct gw_hook uplink_ingress = {
	.forward = true,
	.snat_flows = true,
};

static const struct gw_hook uplink_egress = {
	.at_egress = true,
	.snat_flows = true,
};

static __always_inline int ingress_verdict(struct __sk_buff *skb, struct gw_pkt *p)
{
	struct gw_config *cfg = gw_config_get();
	struct gw_ct_entry *e;
	struct gw_ct_key key;
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	ret = tc_prologue(skb, p, cfg, &uplink_ingress);
	if (ret != GW_TC_CONTINUE)
		return ret;

	ct_key_from_pkt(&key, p);
	e = ct_lookup(&key);
	if (e)
		return tc_ct_xlate(skb, p, &key, e, cfg, &uplink_ingress, false);
	return tc_expose(skb, p, &key, cfg, &uplink_ingress);
}

SEC("tc")
int gw_uplink_ingress(struct __sk_buff *skb)
{
	struct gw_pkt p = {};
	int ret = ingress_verdict(skb, &p);

	frag_first_done(&p);
	return ret;
}

static __always_inline int egress_verdict(struct __sk_buff *skb, struct gw_pkt *p)
{
	struct gw_config *cfg = gw_config_get();
	struct gw_ct_entry *e;
	struct gw_ct_key key, xlat;
	int ret;

	if (!cfg)
		return TC_ACT_OK;
	ret = tc_prologue(skb, p, cfg, &uplink_egress);
	if (ret != GW_TC_CONTINUE)
		return ret;

	ct_key_from_pkt(&key, p);
	e = ct_lookup(&key);
	if (e)
		return tc_ct_xlate(skb, p, &key, e, cfg, &uplink_egress, false);

	/* an echo reply without a flow is the host answering: never a new flow */
	if (gw_pkt_is_echo(p) && !gw_pkt_is_echo_request(p))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	if (!masq_match(p->family, &p->saddr, skb->ifindex, cfg))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	xlat = key;
	if (!masq_source(p->family, cfg, &xlat.saddr))
		return tc_pass(GW_REASON_PASS_NO_MATCH);
	return tc_ct_open(skb, p, &key, &xlat, GW_NAT_SNAT, 0, cfg, &uplink_egress);
}

SEC("tc")
int gw_uplink_egress(struct __sk_buff *skb)
{
	struct gw_pkt p = {};
	int ret = egress_verdict(skb, &p);

	frag_first_done(&p);
	return ret;
}
