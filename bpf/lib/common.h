/* SPDX-License-Identifier: MIT */
/* Includes and constants every BPF program needs (vmlinux.h has types, not macros). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "gw_abi.h"

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define ETH_HLEN	14
#define ETH_ALEN	6

#define IP_MF		0x2000
#define IP_OFFSET	0x1fff

#define TC_ACT_OK	0
#define TC_ACT_SHOT	2
#define TC_ACT_REDIRECT	7

#define ICMP_ECHOREPLY		0
#define ICMP_DEST_UNREACH	3
#define ICMP_ECHO		8
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12

/* IPv6 Next Header values (uapi in6.h has them as macros, so vmlinux.h does not) */
#define GW_IP6_HOPOPTS		0
#define GW_IP6_ROUTING		43
#define GW_IP6_FRAGMENT		44
#define GW_IP6_DSTOPTS		60
#define GW_IPPROTO_ICMPV6	58

#define GW_ICMPV6_ECHO_REQUEST	128
#define GW_ICMPV6_ECHO_REPLY	129

#define AF_INET		2
#define AF_INET6	10
#define EEXIST		17

/* The IPv4 loopback net, host order. */
#define GW_LOOPBACK_NET		0x7f000000
#define GW_LOOPBACK_MASK	0xff000000

/*
 * A 32-bit context field read as one instruction at a constant offset. clang may otherwise
 * keep ctx + offset in a register and dereference that, which the verifier refuses
 * ("dereference of modified ctx ptr").
 */
#define gw_ctx_u32(ctx, field)                                                         \
	({                                                                             \
		__u64 __v; /* ldxw zero-extends */                               \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                                  \
			     : "=r"(__v)                                               \
			     : "r"(ctx), "i"(offsetof(typeof(*(ctx)), field)));        \
		__v;                                                                   \
	})
