/* SPDX-License-Identifier: MIT */
/* Per-CPU counters: why a packet was passed, dropped or translated; per-rule traffic. */
#pragma once

#include "maps.h"

static __always_inline void stats_reason(__u32 reason)
{
	__u32 more = reason - GW_REASON_SLOTS;
	__u64 *v = reason < GW_REASON_SLOTS ? bpf_map_lookup_elem(&gw_stats_reason, &reason)
					    : bpf_map_lookup_elem(&gw_stats_reason_more, &more);

	if (v)
		*v += 1;
}

static __always_inline void stats_rule(__u32 rule_id, __u64 bytes, bool new_conn)
{
	struct gw_rule_stats *s;

	if (!rule_id)
		return;
	s = bpf_map_lookup_elem(&gw_stats_rule, &rule_id);
	if (!s)
		return;
	s->packets += 1;
	s->bytes += bytes;
	if (new_conn)
		s->connections += 1;
}

static __always_inline void stats_rule_drop(__u32 rule_id)
{
	struct gw_rule_stats *s;

	if (!rule_id)
		return;
	s = bpf_map_lookup_elem(&gw_stats_rule, &rule_id);
	if (s)
		s->drops += 1;
}
