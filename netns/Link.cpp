// SPDX-License-Identifier: MIT
#include "netns/Link.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

#include "netns/NlAttr.h"

namespace gw {
namespace {

nlmsghdr* putLinkHeader(NlRequest& req, uint16_t type, uint16_t flags, int index) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  return nlh;
}

LinkInfo parseLink(const nlmsghdr* nlh) {
  LinkInfo info;
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  info.index = ifm->ifi_index;
  info.up = (ifm->ifi_flags & IFF_UP) != 0;
  nl::forEachAttr(nlh, sizeof(ifinfomsg), [&](const nlattr* attr) {
    switch (mnl_attr_get_type(attr)) {
    case IFLA_IFNAME:
      if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
        info.name = mnl_attr_get_str(attr);
      }
      break;
    case IFLA_MTU:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.mtu = mnl_attr_get_u32(attr);
      }
      break;
    case IFLA_MASTER:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.master = static_cast<int>(mnl_attr_get_u32(attr));
      }
      break;
    case IFLA_LINK:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.peerIndex = static_cast<int>(mnl_attr_get_u32(attr));
      }
      break;
    case IFLA_LINK_NETNSID:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.peerNetnsId = static_cast<int32_t>(mnl_attr_get_u32(attr));
      }
      break;
    case kIflaGsoIpv4MaxSize:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.gsoIpv4MaxSize = mnl_attr_get_u32(attr);
      }
      break;
    case kIflaGroIpv4MaxSize:
      if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
        info.groIpv4MaxSize = mnl_attr_get_u32(attr);
      }
      break;
    case IFLA_ADDRESS:
      if (mnl_attr_get_payload_len(attr) == info.mac.size()) {
        std::memcpy(info.mac.data(), mnl_attr_get_payload(attr), info.mac.size());
      }
      break;
    case IFLA_LINKINFO: {
      nl::forEachNested(attr, [&](const nlattr* nested) {
        if (mnl_attr_get_type(nested) == IFLA_INFO_KIND &&
            mnl_attr_validate(nested, MNL_TYPE_STRING) == 0) {
          // Kinds are NUL-terminated in practice; bound the copy by the payload anyway.
          const char* kind = static_cast<const char*>(mnl_attr_get_payload(nested));
          info.kind.assign(kind, strnlen(kind, mnl_attr_get_payload_len(nested)));
        }
      });
      break;
    }
    default:
      break;
    }
  });
  return info;
}

Result<LinkInfo> getLinkBy(Netlink& nl, nlmsghdr* nlh, const std::string& label) {
  std::optional<LinkInfo> found;
  auto ok = nl.request(
      nlh,
      [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type == RTM_NEWLINK) {
          found = parseLink(reply);
        }
      },
      "get link " + label);
  if (!ok) {
    if (ok.error().code == ENODEV) {
      return fail("link " + label + " not found", ENODEV);
    }
    return std::unexpected(ok.error());
  }
  if (!found) {
    return fail("link " + label + ": no reply", ENODEV);
  }
  return *found;
}

} // namespace


Result<LinkInfo> getLink(Netlink& nl, const std::string& name) {
  if (auto ok = validateIfName(name); !ok) {
    return std::unexpected(ok.error());
  }
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_GETLINK, 0, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  return getLinkBy(nl, nlh, "'" + name + "'");
}

Result<LinkInfo> getLink(Netlink& nl, int index) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_GETLINK, 0, index);
  return getLinkBy(nl, nlh, "#" + std::to_string(index));
}

Result<std::vector<LinkInfo>> listLinks(Netlink& nl) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_GETLINK, 0, 0);
  std::vector<LinkInfo> links;
  auto ok = nl.dump(
      nlh,
      [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type == RTM_NEWLINK) {
          links.push_back(parseLink(reply));
        }
      },
      "list links");
  if (!ok) {
    return std::unexpected(ok.error());
  }
  std::sort(links.begin(), links.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.index < b.index; });
  return links;
}

Result<int> namespaceIdOf(Netlink& nl, int nsFd) {
  NlRequest req;
  nlmsghdr* nlh = mnl_nlmsg_put_header(req.data);
  nlh->nlmsg_type = RTM_GETNSID;
  auto* gen = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
  gen->rtgen_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, NETNSA_FD, static_cast<uint32_t>(nsFd));
  int id = -1;
  auto ok = nl.request(
      nlh,
      [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWNSID) {
          return;
        }
        nl::forEachAttr(reply, sizeof(rtgenmsg), [&](const nlattr* attr) {
          if (mnl_attr_get_type(attr) == NETNSA_NSID &&
              mnl_attr_validate(attr, MNL_TYPE_U32) == 0) {
            id = static_cast<int32_t>(mnl_attr_get_u32(attr));
          }
        });
      },
      "namespace id of fd " + std::to_string(nsFd));
  if (!ok) {
    return std::unexpected(ok.error());
  }
  return id;
}

Status createVeth(Netlink& nl, const std::string& name, const std::string& peerName,
                  int peerNsFd) {
  if (auto ok = validateIfName(name); !ok) {
    return ok;
  }
  if (auto ok = validateIfName(peerName); !ok) {
    return ok;
  }
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* linkInfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  // The peer is described by a full ifinfomsg plus its own attributes.
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  auto* peerIfm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  peerIfm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peerName.c_str());
  if (peerNsFd >= 0) {
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(peerNsFd));
  }
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, linkInfo);
  return nl.request(nlh, "create veth " + name + " (peer " + peerName + ")");
}

Status createBridge(Netlink& nl, const std::string& name) {
  if (auto ok = validateIfName(name); !ok) {
    return ok;
  }
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* linkInfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, linkInfo);
  return nl.request(nlh, "create bridge " + name);
}

Status setLinkUp(Netlink& nl, int index, bool up) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, 0, index);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  ifm->ifi_change = IFF_UP;
  ifm->ifi_flags = up ? IFF_UP : 0;
  return nl.request(nlh, "set link #" + std::to_string(index) + (up ? " up" : " down"));
}

Status setLinkMtu(Netlink& nl, int index, unsigned mtu) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, 0, index);
  mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  return nl.request(nlh,
                    "set link #" + std::to_string(index) + " mtu " + std::to_string(mtu));
}

Status setLinkIpv4GsoGroMax(Netlink& nl, int index, uint32_t bytes) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, 0, index);
  mnl_attr_put_u32(nlh, kIflaGsoIpv4MaxSize, bytes);
  mnl_attr_put_u32(nlh, kIflaGroIpv4MaxSize, bytes);
  return nl.request(nlh, "set link #" + std::to_string(index) + " IPv4 GSO/GRO max size " +
                             std::to_string(bytes));
}

Status setLinkMaster(Netlink& nl, int index, int masterIndex) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_NEWLINK, 0, index);
  mnl_attr_put_u32(nlh, IFLA_MASTER, static_cast<uint32_t>(masterIndex));
  return nl.request(nlh, "set link #" + std::to_string(index) + " master #" +
                             std::to_string(masterIndex));
}

Status deleteLink(Netlink& nl, int index) {
  NlRequest req;
  nlmsghdr* nlh = putLinkHeader(req, RTM_DELLINK, 0, index);
  return nl.request(nlh, "delete link #" + std::to_string(index));
}

} // namespace gw
