/* SPDX-License-Identifier: MIT */
/*
 * The one ABI shared by the BPF programs and gatewayd: map keys and values, enums, sizes.
 * Included from BPF C (after vmlinux.h) and from C++ (after <linux/types.h>). Addresses are
 * 16 bytes so IPv6 fits later; IPv4 uses the first 4 bytes. Everything is network order
 * unless named _host.
 */
#pragma once

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Map sizes. */
#define GW_CT_MAX_ENTRIES       262144 /* conntrack entries; a flow uses two */
#define GW_EXPOSE_MAX_ENTRIES   65536  /* exposed host ports (a range is one entry per port) */
#define GW_MASQ_MAX_ENTRIES     256    /* masquerade source CIDRs */
#define GW_LOCAL_MAX_ENTRIES    256    /* addresses owned by the gateway host */
#define GW_ENDPOINT_MAX_ENTRIES 4096   /* namespace addresses reachable on a gateway-end link */
#define GW_RULE_MAX             65536  /* rule ids for per-rule counters */

#define GW_SNAT_PORT_MIN        61000  /* SNAT ports outside Linux's ephemeral 32768-60999 */
#define GW_SNAT_PORT_MAX        65535
#define GW_SNAT_PROBES          32     /* bounded probing before exhaustion is declared */
#define GW_IP6_MAX_EXT          8      /* IPv6 extension headers walked; more is malformed */

enum gw_family {
	GW_AF_INET = 2,
	GW_AF_INET6 = 10,
};

union gw_addr {
	__u32 v4;
	__u32 v6[4];
	__u8 bytes[16];
};

/* A packet's 5-tuple as seen on the wire. ICMP echo: the id is in sport, dport is 0. */
struct gw_ct_key {
	union gw_addr saddr;
	union gw_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

enum gw_ct_dir {
	GW_CT_DIR_ORIG = 0,  /* the direction of the first packet */
	GW_CT_DIR_REPLY = 1,
};

/* Which translations a flow carries (bits). */
enum gw_nat_kind {
	GW_NAT_DNAT = 1 << 0, /* exposed port: destination rewritten */
	GW_NAT_SNAT = 1 << 1, /* masquerade or hairpin: source rewritten */
};

/* TCP events seen in one direction (bits of gw_ct_entry.tcp_flags). */
enum gw_ct_tcp_seen {
	GW_CT_SEEN_SYN = 1 << 0,
	GW_CT_SEEN_SYNACK = 1 << 1,
	GW_CT_SEEN_FIN = 1 << 2,
	GW_CT_SEEN_RST = 1 << 3,
	GW_CT_SEEN_ACK = 1 << 4,
};

/*
 * One direction of a flow. Packets matching the key get their addresses/ports rewritten to
 * the new_* fields (a field equal to the packet's own means no change). The two entries of a
 * flow point at each other through `peer`, the key of the other direction *as it appears on
 * the wire*, so gatewayd can list and delete flows as pairs.
 */
struct gw_ct_entry {
	union gw_addr new_saddr;
	union gw_addr new_daddr;
	__be16 new_sport;
	__be16 new_dport;
	__u8 dir;        /* enum gw_ct_dir */
	__u8 nat;        /* enum gw_nat_kind bits */
	__u8 tcp_flags;  /* enum gw_ct_tcp_seen bits, this direction */
	__u8 pad0;
	__u32 rule_id;   /* expose rule id (DNAT), 0 otherwise */
	__u32 pad1;
	__u64 created_ns;   /* both: bpf_ktime_get_coarse_ns(), CLOCK_MONOTONIC at tick resolution */
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
	struct gw_ct_key peer;
};

/* Exposed port: matched on ingress by {proto, family, port, daddr}; daddr 0 = any local. */
struct gw_expose_key {
	union gw_addr daddr;
	__be16 dport;
	__u8 proto;
	__u8 family;
};

struct gw_expose_value {
	union gw_addr target_addr;
	__be16 target_port;
	__u16 pad;
	__u32 rule_id;
};

/* Masquerade: sources in an LPM prefix leaving through out_ifindex (0 = the uplink). */
struct gw_masq_key {
	__u32 prefixlen; /* LPM trie: GW_MASQ_PREFIXLEN(CIDR length) */
	__u8 family;
	__u8 pad[3];
	union gw_addr addr;
};

struct gw_masq_value {
	__u32 out_ifindex;
	__u32 flags;     /* GW_MASQ_F_* */
};

/* Endpoint-independent filtering (RFC 4787 REQ-8): from outside, anything sent to a
 * mapping's external endpoint reaches its source, not only replies. */
#define GW_MASQ_F_EIF 1u

/* Runtime configuration, one entry (index 0) of gw_config_map. */
struct gw_config {
	__u32 uplink_ifindex;
	__u32 flags;          /* GW_CFG_* */
	union gw_addr uplink_addr; /* masquerade source and the default exposed address */
	union gw_addr hairpin_addr; /* source for hairpin/host-local translation: the bridge gw */
	__u64 netns_cookie;   /* the gateway host's netns, for the cgroup socket hooks */
	__u16 snat_port_min;  /* host order */
	__u16 snat_port_max;  /* host order */
	__u32 pad;
};

enum gw_config_flags {
	GW_CFG_FIB_REDIRECT = 1 << 0, /* forward with bpf_fib_lookup + bpf_redirect_neigh */
};

/* Per-rule counters (per-CPU array indexed by rule id). */
struct gw_rule_stats {
	__u64 packets;
	__u64 bytes;
	__u64 connections;
	__u64 drops;
};

/*
 * Why a packet was passed, dropped or translated: the index of the per-CPU gw_stats_reason map.
 * X(NAME, name) gives enum gw_reason its GW_REASON_NAME and gatewayd the name gwctl stats and
 * the metrics show (gateway/datapath/Reasons.h): never rename one. New reasons go at the end,
 * as a pinned map keeps its counters by index across an upgrade.
 */
#define GW_REASONS(X)                                                                              \
	X(PASS_NOT_IP, pass_not_ip)                     /* not IPv4 (IPv6 too, for now) */         \
	X(PASS_NO_MATCH, pass_no_match)                 /* not ours: left untouched */             \
	X(PASS_FRAGMENT_MISS, pass_fragment_miss)       /* later fragment, not ours: left alone */ \
	X(NAT_DNAT, nat_dnat)                           /* translated: exposed port */             \
	X(NAT_SNAT, nat_snat)                           /* translated: masquerade */               \
	X(NAT_REPLY, nat_reply)                         /* translated back: reply of a flow */     \
	X(NAT_ICMP_ERROR, nat_icmp_error)               /* ICMP error about a flow translated */   \
	X(CT_CREATED, ct_created)                       /* new flow pair inserted */               \
	X(CT_INSERT_RACE, ct_insert_race)               /* another CPU inserted the flow first */  \
	X(DROP_MALFORMED, drop_malformed)               /* truncated or bad header */              \
	X(DROP_CT_INSERT, drop_ct_insert)               /* map full / insert failed */             \
	X(DROP_SNAT_EXHAUSTED, drop_snat_exhausted)     /* no free SNAT port */                    \
	X(DROP_CSUM, drop_csum)                         /* checksum helper failed */               \
	X(REDIRECT, redirect)                           /* forwarded by redirect (fib/peer) */     \
	X(FRAGMENT_HELD, fragment_held)                 /* before its first fragment: held */      \
	X(DROP_FRAGMENT_HOLD_FULL, drop_fragment_hold_full) /* no room to hold it */               \
	X(DROP_FRAGMENT_TOO_BIG, drop_fragment_too_big) /* larger than a hold slot */              \
	X(FRAGMENT_RELEASED, fragment_released)         /* held, sent on (counted by gatewayd) */  \
	X(DROP_FRAGMENT_EXPIRED, drop_fragment_expired) /* held, first never came (gatewayd) */   \
	X(DROP_FRAGMENT_UNSENDABLE, drop_fragment_unsendable) /* release failed (gatewayd) */

enum gw_reason {
#define GW_REASON_ENUM(NAME, name) GW_REASON_##NAME,
	GW_REASONS(GW_REASON_ENUM)
#undef GW_REASON_ENUM
	GW_REASON_MAX,
};

/*
 * Entries of gw_stats_reason, fixed: gatewayd refuses a pinned map of another size, so an
 * upgrade could not adopt it. A dropped reason leaves a slot unused instead. Reasons from
 * GW_REASON_SLOTS on count in gw_stats_reason_more (a map older pins lack, so it is made new).
 */
#define GW_REASON_SLOTS 15
#define GW_REASON_MORE_SLOTS 32

#ifdef __cplusplus
static_assert(sizeof(union gw_addr) == 16);
static_assert(sizeof(struct gw_ct_key) == 40);
static_assert(sizeof(struct gw_ct_entry) == 120);
static_assert(sizeof(struct gw_expose_key) == 20);
static_assert(sizeof(struct gw_expose_value) == 24);
static_assert(sizeof(struct gw_masq_key) == 24);
static_assert(sizeof(struct gw_config) == 56);
static_assert(sizeof(struct gw_rule_stats) == 32);
static_assert(GW_REASON_MAX <= GW_REASON_SLOTS + GW_REASON_MORE_SLOTS);
#else
_Static_assert(sizeof(union gw_addr) == 16, "gw_addr");
_Static_assert(sizeof(struct gw_ct_key) == 40, "gw_ct_key");
_Static_assert(sizeof(struct gw_ct_entry) == 120, "gw_ct_entry");
_Static_assert(sizeof(struct gw_expose_key) == 20, "gw_expose_key");
_Static_assert(sizeof(struct gw_expose_value) == 24, "gw_expose_value");
_Static_assert(sizeof(struct gw_masq_key) == 24, "gw_masq_key");
_Static_assert(sizeof(struct gw_config) == 56, "gw_config");
_Static_assert(sizeof(struct gw_rule_stats) == 32, "gw_rule_stats");
_Static_assert(GW_REASON_MAX <= GW_REASON_SLOTS + GW_REASON_MORE_SLOTS, "reason slots");
#endif

/*
 * Additions (BPF room). The masquerade LPM key carries family + pad (32 bits) before the
 * address, and the trie matches from the first byte after prefixlen: a CIDR a.b.c.d/n is
 * stored with prefixlen = GW_MASQ_PREFIXLEN(n).
 */
#define GW_MASQ_PREFIX_BASE     32
#define GW_MASQ_PREFIXLEN(bits) (GW_MASQ_PREFIX_BASE + (bits))
#define GW_FRAG_MAX_ENTRIES     8192   /* in-flight fragmented datagrams */

/* Later fragments (no L4 header) find their flow by the first fragment's IP id. */
struct gw_frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

/*
 * Later fragments that come before their first (RFC 4787 REQ-14) wait in gw_frag_held, at
 * most GW_FRAG_HOLD_PER_DATAGRAM of one datagram (gw_frag_wait counts them). When the first
 * comes, its program sends the datagram's key on gw_frag_events; gatewayd then sends the held
 * ones on, translated as the first was, or drops them after GW_FRAG_HOLD_MS. A first fragment
 * that is not ours is remembered as a zero flow key: its later fragments pass untouched.
 * Released fragments carry GW_MARK_RELEASED (SO_MARK) so no program holds them again.
 */
#define GW_FRAG_HELD_MAX_ENTRIES  1024
#define GW_FRAG_HELD_BYTES        2048 /* the IP packet; a larger fragment is not held */
#define GW_FRAG_HOLD_PER_DATAGRAM 64
#define GW_FRAG_WAIT_MAX_ENTRIES  256
#define GW_FRAG_HOLD_MS           2000
#define GW_FRAG_EVENTS_BYTES      (64 * 1024)
#define GW_MARK_RELEASED          0x67770001u

struct gw_frag_held_key {
	struct gw_frag_key datagram;
	__u16 offset;	/* fragment offset, 8-byte units */
	__u16 pad;
};

struct gw_frag_held {
	__u64 held_ns;	/* bpf_ktime_get_ns() when held (CLOCK_MONOTONIC) */
	__u32 len;	/* bytes of the IP packet in `packet` */
	__u32 pad;
	__u8 packet[GW_FRAG_HELD_BYTES];
};

struct gw_frag_wait {
	__u32 held;	/* fragments of the datagram in gw_frag_held */
	__u32 pad;
	__u64 since_ns;	/* the first one held */
};

#ifdef __cplusplus
static_assert(sizeof(struct gw_frag_key) == 12);
static_assert(sizeof(struct gw_frag_held_key) == 16);
static_assert(sizeof(struct gw_frag_held) == 16 + GW_FRAG_HELD_BYTES);
static_assert(sizeof(struct gw_frag_wait) == 16);
#else
_Static_assert(sizeof(struct gw_frag_key) == 12, "gw_frag_key");
_Static_assert(sizeof(struct gw_frag_held_key) == 16, "gw_frag_held_key");
_Static_assert(sizeof(struct gw_frag_held) == 16 + GW_FRAG_HELD_BYTES, "gw_frag_held");
_Static_assert(sizeof(struct gw_frag_wait) == 16, "gw_frag_wait");
#endif

/*
 * Endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): the external port a source
 * translated flow from {proto, addr, port} got (gw_snat_v4, LRU). A later flow from the same
 * source tries that port first, whatever its destination, so a clash that moved the first
 * flow off its own port moves every later one with it. gw_snat_rev_v4 is the other way
 * (external endpoint -> source, both as a gw_snat_key): a namespace sending to a mapping's
 * external endpoint reaches its source (hairpinning, RFC 4787 REQ-9).
 */
#define GW_SNAT_MAP_MAX_ENTRIES 65536

struct gw_snat_key {
	__be32 addr;  /* the flow's original source */
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct gw_snat_value {
	__be16 port;  /* the external port it got */
	__u16 pad;
};
/* gw_snat_key: an endpoint, {addr, port, proto}; gw_snat_value: the port a source got. */

#ifdef __cplusplus
static_assert(sizeof(struct gw_snat_key) == 8);
static_assert(sizeof(struct gw_snat_value) == 4);
#else
_Static_assert(sizeof(struct gw_snat_key) == 8, "gw_snat_key");
_Static_assert(sizeof(struct gw_snat_value) == 4, "gw_snat_value");
#endif

/*
 * A managed namespace reachable straight through its veth (gw_endpoint_v4, keyed by the
 * namespace's address as a union gw_addr, sized by GW_ENDPOINT_MAX_ENTRIES): after
 * translation a packet for it gets this Ethernet header and bpf_redirect_peer(ifindex), into
 * the namespace's eth0 ingress. peer_mac then host_mac is the header's dst then src order.
 */
struct gw_endpoint_value {
	__u32 ifindex;     /* the gateway-side end of the veth */
	__u8 peer_mac[6];  /* eth0 inside the namespace: the frame's destination */
	__u8 host_mac[6];  /* the gateway-side end: the frame's source */
};

#ifdef __cplusplus
static_assert(sizeof(struct gw_endpoint_value) == 16);
#else
_Static_assert(sizeof(struct gw_endpoint_value) == 16, "gw_endpoint_value");
#endif

/*
 * IPv6. Conntrack (gw_ct_v4), exposes (gw_expose_v4) and masquerades (gw_masq_v4) hold both
 * families: their keys carry the family and 16-byte addresses (the names are older than the
 * IPv6 path and are pinned, so they stay). A map keyed by a bare or 32-bit address has an
 * IPv6 twin: gw_local_v6, gw_endpoint_v6, gw_snat_v6, gw_snat_rev_v6, gw_frag_v6,
 * gw_frag_held6, gw_frag_wait6, and
 * gw_config6_map beside gw_config_map (whose pinned value size an upgrade must keep).
 */
struct gw_config6 {
	union gw_addr uplink_addr;  /* IPv6 masquerade source and default exposed address */
	union gw_addr hairpin_addr; /* the namespaces' IPv6 gateway: hairpin translation source */
};

/* gw_snat_v6: a source -> struct gw_snat_value; gw_snat_rev_v6: external -> source. */
struct gw_snat6_key {
	union gw_addr addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* IPv6 later fragments find their flow by the fragment header's 32-bit identification. */
struct gw_frag6_key {
	union gw_addr saddr;
	union gw_addr daddr;
	__be32 id;
	__u8 proto;
	__u8 pad[3];
};

/* IPv6 later fragments before their first wait in gw_frag_held6 (values: struct
 * gw_frag_held), counted per datagram in gw_frag_wait6; the first names the datagram (a
 * struct gw_frag6_key) on gw_frag_events, as for IPv4. */
struct gw_frag_held6_key {
	struct gw_frag6_key datagram;
	__u16 offset;	/* fragment offset, 8-byte units */
	__u16 pad[3];
};

#ifdef __cplusplus
static_assert(sizeof(struct gw_frag_held6_key) == 48);
static_assert(sizeof(struct gw_config6) == 32);
static_assert(sizeof(struct gw_snat6_key) == 20);
static_assert(sizeof(struct gw_frag6_key) == 40);
#else
_Static_assert(sizeof(struct gw_frag_held6_key) == 48, "gw_frag_held6_key");
_Static_assert(sizeof(struct gw_config6) == 32, "gw_config6");
_Static_assert(sizeof(struct gw_snat6_key) == 20, "gw_snat6_key");
_Static_assert(sizeof(struct gw_frag6_key) == 40, "gw_frag6_key");
#endif
