// SPDX-License-Identifier: MIT
#include "netns/Address.h"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cerrno>
#include <optional>

#include "netns/NlAttr.h"

namespace gw {
namespace {

Status changeAddress(Netlink& nl, uint16_t type, uint16_t flags, int ifindex,
                     const IpPrefix& prefix, const char* verb, uint32_t ifaFlags = 0) {
  std::string what = std::string(verb) + " address " + prefix.str() + " on link #" +
                     std::to_string(ifindex);
  if (!prefix.addr.isV4() && !prefix.addr.isV6()) {
    return fail(what + ": no address family", EINVAL);
  }
  NlRequest req;
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(prefix.addr.family);
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix.length);
  ifa->ifa_index = static_cast<uint32_t>(ifindex);
  ifa->ifa_flags = static_cast<uint8_t>(ifaFlags & 0xff);
  auto size = prefix.addr.size();
  // As iproute2 does without a peer: IPv4 sets local and address alike, IPv6 only address.
  if (prefix.addr.isV4()) {
    mnl_attr_put(nlh, IFA_LOCAL, size, prefix.addr.bytes.data());
  }
  mnl_attr_put(nlh, IFA_ADDRESS, size, prefix.addr.bytes.data());
  if (ifaFlags > 0xff) {
    mnl_attr_put_u32(nlh, IFA_FLAGS, ifaFlags);
  }
  return nl.request(nlh, what);
}

} // namespace

Status addAddress(Netlink& nl, int ifindex, const IpPrefix& prefix, uint32_t flags) {
  return changeAddress(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, prefix, "add",
                       flags);
}

Status deleteAddress(Netlink& nl, int ifindex, const IpPrefix& prefix) {
  return changeAddress(nl, RTM_DELADDR, 0, ifindex, prefix, "delete");
}

Result<std::vector<AddressInfo>> listAddresses(Netlink& nl, int family, int ifindex) {
  NlRequest req;
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = RTM_GETADDR;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(family);
  std::vector<AddressInfo> out;
  auto ok = nl.dump(
      nlh,
      [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWADDR) {
          return;
        }
        const auto* msg = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(reply));
        int msgFamily = msg->ifa_family;
        // Filter here: older kernels ignore filters in dump requests.
        if ((family != AF_UNSPEC && msgFamily != family) ||
            (msgFamily != AF_INET && msgFamily != AF_INET6) ||
            (ifindex != 0 && static_cast<int>(msg->ifa_index) != ifindex)) {
          return;
        }
        std::optional<IpAddress> local;
        std::optional<IpAddress> address;
        nl::forEachAttr(reply, sizeof(ifaddrmsg), [&](const nlattr* attr) {
          if (mnl_attr_get_type(attr) == IFA_LOCAL) {
            local = nl::addressAttr(attr, msgFamily);
          } else if (mnl_attr_get_type(attr) == IFA_ADDRESS) {
            address = nl::addressAttr(attr, msgFamily);
          }
        });
        // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours when present.
        auto mine = local ? local : address;
        if (mine) {
          out.push_back({static_cast<int>(msg->ifa_index), IpPrefix{*mine, msg->ifa_prefixlen}});
        }
      },
      "list addresses");
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

} // namespace gw

namespace gw {

Result<AddressWatch> AddressWatch::open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) {
    return sysError("open NETLINK_ROUTE socket for address changes");
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    return sysError("bind netlink socket to the address groups");
  }
  return AddressWatch(std::move(fd));
}

bool AddressWatch::changed() {
  bool any = false;
  std::array<char, 8192> buffer{};
  while (true) {
    ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      // ENOBUFS: notifications were lost; what they said is read again by the caller.
      return any || errno == ENOBUFS;
    }
    if (n == 0) {
      return any;
    }
    int left = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      any = any || nlh->nlmsg_type == RTM_NEWADDR || nlh->nlmsg_type == RTM_DELADDR;
    }
  }
}

} // namespace gw
