/* SPDX-License-Identifier: MIT */
/*
 * Checksum updates. tc uses the skb helpers (bpf_l3/l4_csum_replace), which also keep
 * CHECKSUM_PARTIAL and CHECKSUM_COMPLETE skbs right; XDP and the quoted header of ICMP errors
 * use the RFC 1624 incremental math below on the raw 16-bit fields.
 */
#pragma once

#include "common.h"

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') for a 32-bit field (RFC 1624, eqn. 3). */
static __always_inline __u16 csum_replace4(__u16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from + (__u16)~(from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	return ~csum_fold32(sum);
}

static __always_inline __u16 csum_replace2(__u16 check, __be16 from, __be16 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from;
	sum += to;
	return ~csum_fold32(sum);
}

/* UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff. */
static __always_inline __u16 csum_udp_fixup(__u16 old, __u16 updated)
{
	if (!old)
		return 0;
	return updated ? updated : 0xffff;
}

/* tc: flags for an L4 checksum update (UDP zero checksum stays zero). */
static __always_inline __u64 csum_l4_flags(__u8 proto, __u64 size, bool pseudo)
{
	__u64 flags = size;

	if (pseudo)
		flags |= BPF_F_PSEUDO_HDR;
	if (proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	return flags;
}

/* A 16-bit checksum field after a change whose one's complement sum difference is `diff`
 * (bpf_csum_diff's result): HC' = ~(~HC + diff). */
static __always_inline __u16 csum_add_diff(__u16 check, __u32 diff)
{
	__u64 sum = (__u16)~check + (__u64)diff;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~(__u16)sum;
}
