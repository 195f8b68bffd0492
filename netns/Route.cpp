// SPDX-License-Identifier: MIT
#include "netns/Route.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include "netns/NlAttr.h"

namespace gw {
namespace {

std::string describe(const RouteSpec& spec) {
  std::string out = spec.dst ? spec.dst->str() : std::string("default");
  if (spec.gateway) {
    out += " via " + spec.gateway->str();
  }
  if (spec.ifindex != 0) {
    out += " dev #" + std::to_string(spec.ifindex);
  }
  if (spec.onlink) {
    out += " onlink";
  }
  return out;
}

// Mirrors iproute2's iproute_modify(): main table, boot protocol, link scope without gateway.
Status changeRoute(Netlink& nl, const RouteSpec& spec, bool add) {
  std::string what = std::string(add ? "add" : "delete") + " route " + describe(spec);
  int family = spec.dst ? spec.dst->addr.family
                        : spec.gateway ? spec.gateway->family : spec.family;
  if (family != AF_INET && family != AF_INET6) {
    return fail(what + ": no address family", EINVAL);
  }
  if ((spec.dst && spec.dst->addr.family != family) ||
      (spec.gateway && spec.gateway->family != family)) {
    return fail(what + ": destination and gateway families differ", EINVAL);
  }
  NlRequest req;
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
  nlh->nlmsg_flags = add ? NLM_F_CREATE | NLM_F_EXCL : 0;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(family);
  rtm->rtm_dst_len = static_cast<uint8_t>(spec.dst ? spec.dst->length : 0);
  rtm->rtm_table = RT_TABLE_MAIN;
  if (add) {
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_scope = spec.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  } else {
    // NOWHERE acts as a wildcard when matching the route to delete.
    rtm->rtm_scope = RT_SCOPE_NOWHERE;
  }
  if (spec.onlink) {
    rtm->rtm_flags |= RTNH_F_ONLINK;
  }
  if (spec.dst && spec.dst->length > 0) {
    IpPrefix net = spec.dst->network();
    mnl_attr_put(nlh, RTA_DST, net.addr.size(), net.addr.bytes.data());
  }
  if (spec.gateway) {
    mnl_attr_put(nlh, RTA_GATEWAY, spec.gateway->size(), spec.gateway->bytes.data());
  }
  if (spec.ifindex != 0) {
    mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(spec.ifindex));
  }
  return nl.request(nlh, what);
}

} // namespace

Status addRoute(Netlink& nl, const RouteSpec& spec) {
  return changeRoute(nl, spec, true);
}

Status deleteRoute(Netlink& nl, const RouteSpec& spec) {
  return changeRoute(nl, spec, false);
}

Result<std::vector<RouteInfo>> listRoutes(Netlink& nl, int family) {
  NlRequest req;
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = RTM_GETROUTE;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(family);
  std::vector<RouteInfo> out;
  auto ok = nl.dump(
      nlh,
      [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWROUTE) {
          return;
        }
        const auto* msg = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(reply));
        int msgFamily = msg->rtm_family;
        if ((msgFamily != AF_INET && msgFamily != AF_INET6) ||
            (family != AF_UNSPEC && msgFamily != family) || msg->rtm_type != RTN_UNICAST ||
            (msg->rtm_flags & RTM_F_CLONED)) {
          return;
        }
        // rtm_table holds only 8 bits; RTA_TABLE has the full id when present.
        uint32_t table = msg->rtm_table;
        RouteInfo info;
        int dstLen = msg->rtm_dst_len;
        nl::forEachAttr(reply, sizeof(rtmsg), [&](const nlattr* attr) {
          switch (mnl_attr_get_type(attr)) {
          case RTA_TABLE:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
              table = mnl_attr_get_u32(attr);
            }
            break;
          case RTA_DST:
            if (auto addr = nl::addressAttr(attr, msgFamily)) {
              info.dst = IpPrefix{*addr, dstLen};
            }
            break;
          case RTA_GATEWAY:
            info.gateway = nl::addressAttr(attr, msgFamily);
            break;
          case RTA_OIF:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
              info.ifindex = static_cast<int>(mnl_attr_get_u32(attr));
            }
            break;
          default:
            break;
          }
        });
        if (table != RT_TABLE_MAIN) {
          return;
        }
        // A zero-length destination is the default route whether or not RTA_DST came along.
        if (dstLen == 0) {
          info.dst.reset();
        }
        out.push_back(std::move(info));
      },
      "list routes");
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

} // namespace gw
