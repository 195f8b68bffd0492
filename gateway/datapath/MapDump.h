// SPDX-License-Identifier: MIT
// Walks a whole BPF hash map in chunks (forEachEntry), or reads it into memory (dumpMap).
#pragma once

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/Error.h"

namespace gw {

// Calls visit(key, value) for every entry, holding one chunk at a time. Batched lookups walk a
// hash map bucket by bucket, so concurrent inserts and LRU evictions cannot restart the walk
// the way bpf_map_get_next_key does when its cursor key vanishes. Falls back to get_next_key
// where batching is unsupported.
template <class K, class V, class Visit>
Status forEachEntry(int fd, Visit&& visit) {
  uint32_t chunk = 1024;
  std::vector<K> keys(chunk);
  std::vector<V> values(chunk);
  // The batch cursor is opaque (a bucket index for hash maps): size it like a key, at least 8.
  std::vector<uint8_t> inBatch(std::max<size_t>(sizeof(K), 8));
  std::vector<uint8_t> outBatch(inBatch.size());
  bool first = true;
  bpf_map_batch_opts opts{};
  opts.sz = sizeof(opts);
  while (true) {
    uint32_t count = chunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : inBatch.data(), outBatch.data(),
                                   keys.data(), values.data(), &count, &opts);
    int code = err != 0 ? errno : 0;
    if (err != 0 && code == ENOSPC && count == 0) {
      // One bucket holds more than a chunk: grow and retry the same position.
      chunk *= 2;
      keys.resize(chunk);
      values.resize(chunk);
      continue;
    }
    if (err != 0 && code != ENOENT) {
      // The kernel answers ENOTSUPP (524, no userspace name) for map types without batch
      // ops, such as the masquerade LPM trie.
      if (first && (code == EINVAL || code == ENOTSUP || code == EOPNOTSUPP || code == 524)) {
        break; // no batch support for this map type: walk it key by key below
      }
      errno = code;
      return sysError("bpf_map_lookup_batch");
    }
    for (uint32_t i = 0; i < count; ++i) {
      visit(keys[i], values[i]);
    }
    if (err != 0) {
      return {}; // ENOENT: walked the whole map
    }
    inBatch = outBatch;
    first = false;
  }
  K key{};
  K next{};
  const K* cursor = nullptr;
  while (bpf_map_get_next_key(fd, cursor, &next) == 0) {
    V value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) {
      visit(next, value);
    }
    key = next;
    cursor = &key;
  }
  if (errno != ENOENT) {
    return sysError("bpf_map_get_next_key");
  }
  return {};
}

template <class K, class V>
Result<std::vector<std::pair<K, V>>> dumpMap(int fd) {
  std::vector<std::pair<K, V>> out;
  auto ok = forEachEntry<K, V>(fd, [&](const K& key, const V& value) {
    out.emplace_back(key, value);
  });
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

} // namespace gw
