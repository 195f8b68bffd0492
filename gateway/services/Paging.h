// SPDX-License-Identifier: MIT
// One page of a listing held in memory (namespaces, exposes, masquerades): the items whose key
// follows the cursor, in key order. Conntrack pages come from the data path instead
// (Datapath::listFlowPage), which never holds the whole table.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include "control/Paging.h"

namespace gw {

// The first `query.pageSize()` of `items` whose keyOf(item) comes after `query.after`, in key
// order; `next` is the last one's key when more follow. Keys must be unique.
template <class T, class C, class KeyOf>
api::Page<T, C> takePage(std::vector<T> items, const api::ListQuery<C>& query, KeyOf keyOf) {
  if (query.after) {
    std::erase_if(items, [&](const T& x) { return !(*query.after < keyOf(x)); });
  }
  auto byKey = [&](const T& a, const T& b) { return keyOf(a) < keyOf(b); };
  size_t size = query.pageSize();
  bool more = items.size() > size;
  if (more) {
    std::nth_element(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(size),
                     items.end(), byKey);
    items.resize(size);
  }
  std::sort(items.begin(), items.end(), byKey);
  api::Page<T, C> page;
  if (more && !items.empty()) {
    page.next = keyOf(items.back());
  }
  page.items = std::move(items);
  return page;
}

} // namespace gw
