/* SPDX-License-Identifier: MIT */
/*
 * Every map of the data path. Each object declares all of them; gatewayd creates/pins one set
 * and shares it across objects with bpf_map__reuse_fd, so no pinning attribute here.
 */
#pragma once

#include "common.h"

/* Conntrack: wire 5-tuple of one direction -> its rewrite and the other direction's key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_CT_MAX_ENTRIES);
	__type(key, struct gw_ct_key);
	__type(value, struct gw_ct_entry);
} gw_ct_v4 SEC(".maps");

/* Exposed ports: {local addr or 0, port, proto} -> target namespace addr:port and rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_EXPOSE_MAX_ENTRIES);
	__type(key, struct gw_expose_key);
	__type(value, struct gw_expose_value);
} gw_expose_v4 SEC(".maps");

/* Masquerade: source CIDR (prefixlen = GW_MASQ_PREFIXLEN(bits)) -> egress interface. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GW_MASQ_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gw_masq_key);
	__type(value, struct gw_masq_value);
} gw_masq_v4 SEC(".maps");

/* Addresses owned by the gateway host -> flags (unused, 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_LOCAL_MAX_ENTRIES);
	__type(key, union gw_addr);
	__type(value, __u32);
} gw_local_v4 SEC(".maps");

/* Runtime configuration: one struct gw_config at index 0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config);
} gw_config_map SEC(".maps");

/* Per-CPU packet counters by enum gw_reason, GW_REASON_SLOTS of them (see gw_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} gw_stats_reason SEC(".maps");

/* The reasons from GW_REASON_SLOTS on, at reason - GW_REASON_SLOTS. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_REASON_MORE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} gw_stats_reason_more SEC(".maps");

/* Per-CPU counters by expose rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_RULE_MAX);
	__type(key, __u32);
	__type(value, struct gw_rule_stats);
} gw_stats_rule SEC(".maps");

/* First fragment's {saddr, daddr, id, proto} -> the flow key its later fragments belong to. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_FRAG_MAX_ENTRIES);
	__type(key, struct gw_frag_key);
	__type(value, struct gw_ct_key);
} gw_frag_v4 SEC(".maps");

/* Later fragments waiting for their first (see gw_abi.h, GW_FRAG_HOLD_MS). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_FRAG_HELD_MAX_ENTRIES);
	__type(key, struct gw_frag_held_key);
	__type(value, struct gw_frag_held);
} gw_frag_held SEC(".maps");

/* Datagrams with held fragments -> how many. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_FRAG_WAIT_MAX_ENTRIES);
	__type(key, struct gw_frag_key);
	__type(value, struct gw_frag_wait);
} gw_frag_wait SEC(".maps");

/* The first fragment of a waiting datagram came: its struct gw_frag_key, for gatewayd. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, GW_FRAG_EVENTS_BYTES);
} gw_frag_events SEC(".maps");

/* Per-CPU scratch for copying a fragment to hold (2 KiB, off the stack); never shared. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_frag_held);
} gw_frag_scratch SEC(".maps");

/* Source-translated flows' sources -> the external port they got (endpoint-independent). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SNAT_MAP_MAX_ENTRIES);
	__type(key, struct gw_snat_key);
	__type(value, struct gw_snat_value);
} gw_snat_v4 SEC(".maps");

/* The other way: a mapping's external endpoint -> the source it belongs to. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SNAT_MAP_MAX_ENTRIES);
	__type(key, struct gw_snat_key);
	__type(value, struct gw_snat_key);
} gw_snat_rev_v4 SEC(".maps");

/* Managed namespace address -> its veth (gateway end ifindex) and the MACs of both ends. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_ENDPOINT_MAX_ENTRIES);
	__type(key, union gw_addr);
	__type(value, struct gw_endpoint_value);
} gw_endpoint_v4 SEC(".maps");

/* IPv6 twins of the maps above keyed by a bare or 32-bit address (see gw_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config6);
} gw_config6_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_LOCAL_MAX_ENTRIES);
	__type(key, union gw_addr);
	__type(value, __u32);
} gw_local_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_ENDPOINT_MAX_ENTRIES);
	__type(key, union gw_addr);
	__type(value, struct gw_endpoint_value);
} gw_endpoint_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SNAT_MAP_MAX_ENTRIES);
	__type(key, struct gw_snat6_key);
	__type(value, struct gw_snat_value);
} gw_snat_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_SNAT_MAP_MAX_ENTRIES);
	__type(key, struct gw_snat6_key);
	__type(value, struct gw_snat6_key);
} gw_snat_rev_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GW_FRAG_MAX_ENTRIES);
	__type(key, struct gw_frag6_key);
	__type(value, struct gw_ct_key);
} gw_frag_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_FRAG_HELD_MAX_ENTRIES);
	__type(key, struct gw_frag_held6_key);
	__type(value, struct gw_frag_held);
} gw_frag_held6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GW_FRAG_WAIT_MAX_ENTRIES);
	__type(key, struct gw_frag6_key);
	__type(value, struct gw_frag_wait);
} gw_frag_wait6 SEC(".maps");

/* Socket -> the exposed address it asked for, to show it back (recvmsg4/getpeername4). */
struct gw_sock_orig {
	__be32 orig_addr;
	__be32 target_addr;
	__be16 orig_port;
	__be16 target_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct gw_sock_orig);
} gw_sock_orig_v4 SEC(".maps");

/* The same for IPv6 sockets (connect6/sendmsg6, shown back by recvmsg6/getpeername6). */
struct gw_sock_orig6 {
	union gw_addr orig_addr;
	union gw_addr target_addr;
	__be16 orig_port;
	__be16 target_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct gw_sock_orig6);
} gw_sock_orig_v6 SEC(".maps");

/* Per-CPU scratch for building a flow pair off the 512-byte stack; never shared. */
struct gw_ct_scratch {
	struct gw_ct_entry orig;
	struct gw_ct_entry reply;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_ct_scratch);
} gw_ct_scratch SEC(".maps");

static __always_inline struct gw_config *gw_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gw_config_map, &zero);
}

static __always_inline struct gw_config6 *gw_config6_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gw_config6_map, &zero);
}

static __always_inline bool gw_addr_eq(const union gw_addr *a, const union gw_addr *b)
{
	return a->v6[0] == b->v6[0] && a->v6[1] == b->v6[1] && a->v6[2] == b->v6[2] &&
	       a->v6[3] == b->v6[3];
}

static __always_inline bool gw_addr_is_zero(const union gw_addr *a)
{
	return !(a->v6[0] | a->v6[1] | a->v6[2] | a->v6[3]);
}

/* An IPv4 address as a map key: the other 12 bytes must be zero too. */
static __always_inline void gw_addr_v4(union gw_addr *a, __be32 v4)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->v4 = v4;
}

/* addr: the family's bytes, the rest zero (as struct gw_pkt and the keys hold them). */
static __always_inline bool gw_is_local(__u8 family, const union gw_addr *addr)
{
	if (family == GW_AF_INET6)
		return bpf_map_lookup_elem(&gw_local_v6, addr) != NULL;
	return bpf_map_lookup_elem(&gw_local_v4, addr) != NULL;
}

/*
 * The exposed port a connection to daddr:dport reaches: the entry for exactly daddr, else the
 * "any local address" entry (daddr 0) when daddr is ours. Packets (tc) and sockets of the
 * gateway host (sock.h) look exposes up here alike.
 */
/* The rule for exactly this address (a loopback rule: only the host itself asks for it). */
static __always_inline struct gw_expose_value *expose_lookup_exact(__u8 family,
								   const union gw_addr *daddr,
								   __be16 dport, __u8 proto)
{
	struct gw_expose_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.daddr = *daddr;
	k.dport = dport;
	k.proto = proto;
	k.family = family;
	return bpf_map_lookup_elem(&gw_expose_v4, &k);
}

static __always_inline struct gw_expose_value *expose_lookup(__u8 family,
							     const union gw_addr *daddr,
							     __be16 dport, __u8 proto)
{
	struct gw_expose_value *v;
	union gw_addr any;

	v = expose_lookup_exact(family, daddr, dport, proto);
	if (v || !gw_is_local(family, daddr))
		return v;
	__builtin_memset(&any, 0, sizeof(any));
	return expose_lookup_exact(family, &any, dport, proto);
}

static __always_inline struct gw_endpoint_value *gw_endpoint_get(__u8 family,
								 const union gw_addr *addr)
{
	if (family == GW_AF_INET6)
		return bpf_map_lookup_elem(&gw_endpoint_v6, addr);
	return bpf_map_lookup_elem(&gw_endpoint_v4, addr);
}
