// SPDX-License-Identifier: MIT
/*
 * A map's entry count without walking its entries: hash maps keep per-CPU element counts
 * (kernel 6.6+) that the bpf_map_sum_elem_count kfunc sums. A bpf_map iterator visits every
 * map of the system once (tens, not millions) and writes the chosen map's count, as one __s64,
 * to the reader.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

extern __s64 bpf_map_sum_elem_count(const struct bpf_map *map) __ksym;

/* The id of the map to count, set before load. */
const volatile __u32 gw_count_map_id = 0;

SEC("iter/bpf_map")
int gw_count_entries(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;
	__s64 count;

	if (!map || map->id != gw_count_map_id)
		return 0;
	count = bpf_map_sum_elem_count(map);
	bpf_seq_write(ctx->meta->seq, &count, sizeof(count));
	return 0;
}
