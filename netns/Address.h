// SPDX-License-Identifier: MIT
// Interface addresses (IPv4 and IPv6) over rtnetlink.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "base/Error.h"
#include "base/Fd.h"
#include "base/Ip.h"
#include "netns/Netlink.h"

namespace gw {

struct AddressInfo {
  int ifindex = 0;
  IpPrefix prefix; // the local address with its prefix length, e.g. 10.0.0.1/24
};

// Adds `prefix` (address plus length, host bits kept) to the interface; EEXIST if present.
// `flags`: IFA_F_* such as IFA_F_NODAD (an IPv6 address usable at once, no DAD wait).
Status addAddress(Netlink& nl, int ifindex, const IpPrefix& prefix, uint32_t flags = 0);
Status deleteAddress(Netlink& nl, int ifindex, const IpPrefix& prefix);
// family AF_UNSPEC lists both; ifindex 0 lists every interface.
Result<std::vector<AddressInfo>> listAddresses(Netlink& nl, int family = AF_UNSPEC,
                                               int ifindex = 0);

// Address changes in the namespace it was opened in (RTMGRP_IPV4_IFADDR and _IPV6_IFADDR),
// read without blocking: a bridge a CNI plugin made, a DHCP lease, an address set by hand.
class AddressWatch {
public:
  static Result<AddressWatch> open();
  // Whether an address came or went since the last call; also when the kernel dropped
  // notifications (ENOBUFS), so the caller reads the addresses again either way.
  bool changed();

private:
  explicit AddressWatch(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

} // namespace gw
