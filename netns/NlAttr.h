// SPDX-License-Identifier: MIT
// Internal: attribute iteration for C++ (libmnl's mnl_attr_for_each relies on void* conversion).
#pragma once

#include <libmnl/libmnl.h>

#include <cstring>
#include <optional>

#include "base/Ip.h"

namespace gw::nl {

// Calls fn(const nlattr*) for each attribute in [begin, begin + len).
template <class Fn>
void forEachAttr(const void* begin, size_t len, Fn&& fn) {
  const auto* attr = static_cast<const nlattr*>(begin);
  int left = static_cast<int>(len);
  while (mnl_attr_ok(attr, left)) {
    fn(attr);
    left -= static_cast<int>(MNL_ALIGN(attr->nla_len));
    attr = mnl_attr_next(attr);
  }
}

// Attributes of a message after its family header of `headerSize` bytes.
template <class Fn>
void forEachAttr(const nlmsghdr* nlh, size_t headerSize, Fn&& fn) {
  size_t offset = MNL_ALIGN(headerSize);
  if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + offset) {
    return;
  }
  const char* begin = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset;
  forEachAttr(begin, nlh->nlmsg_len - MNL_NLMSG_HDRLEN - offset, fn);
}

template <class Fn>
void forEachNested(const nlattr* nest, Fn&& fn) {
  forEachAttr(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), fn);
}

// An address attribute of the given family; nullopt if its size does not match.
inline std::optional<IpAddress> addressAttr(const nlattr* attr, int family) {
  IpAddress out;
  out.family = family;
  if (out.size() == 0 || mnl_attr_get_payload_len(attr) != out.size()) {
    return std::nullopt;
  }
  std::memcpy(out.bytes.data(), mnl_attr_get_payload(attr), out.size());
  return out;
}

} // namespace gw::nl
