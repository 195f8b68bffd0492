// SPDX-License-Identifier: MIT
// ConntrackTable::listPage against the real map: page after page it lists exactly what list()
// lists (pairs, orphan halves of either direction, stale halves), in key order, with filters.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bpf/gw_abi.h"
#include "gateway/datapath/BpfObjects.h"
#include "gateway/datapath/ConntrackTable.h"

namespace gw {
namespace {

gw_ct_key key(uint8_t proto, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  gw_ct_key k{};
  k.saddr.v4 = htonl(src);
  k.daddr.v4 = htonl(dst);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET;
  return k;
}

// An IPv6 key: the 16 bytes of each address, family GW_AF_INET6.
gw_ct_key key6(uint8_t proto, std::string_view src, uint16_t sport, std::string_view dst,
               uint16_t dport) {
  gw_ct_key k{};
  std::memcpy(k.saddr.bytes, IpAddress::parse(src).value().bytes.data(), 16);
  std::memcpy(k.daddr.bytes, IpAddress::parse(dst).value().bytes.data(), 16);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.family = GW_AF_INET6;
  return k;
}

gw_ct_key reversed(const gw_ct_key& k) {
  gw_ct_key r = k;
  std::swap(r.saddr, r.daddr);
  std::swap(r.sport, r.dport);
  return r;
}

gw_ct_entry entry(uint8_t dir, const gw_ct_key& peer, uint64_t packets) {
  gw_ct_entry e{};
  e.dir = dir;
  e.peer = peer;
  e.packets = packets;
  e.tcp_flags = GW_CT_SEEN_ACK;
  e.created_ns = e.last_seen_ns = 1;
  return e;
}

// What a listing says of a flow, in a form that compares.
std::string describe(const Flow& f) {
  return std::to_string(f.proto) + " " + f.orig.src.str() + ":" + std::to_string(f.orig.sport) +
         ">" + f.orig.dst.str() + ":" + std::to_string(f.orig.dport) + " reply " +
         f.reply.src.str() + ":" + std::to_string(f.reply.sport) + " " + std::string(f.state) +
         (f.orphan ? " orphan" : "") + " " + std::to_string(f.origCounters.packets) + "/" +
         std::to_string(f.replyCounters.packets);
}

class ConntrackPages : public ::testing::Test {
 protected:
  void SetUp() override {
    BpfObjectsOptions options;
    options.ctEntries = 8192;
    auto objects = BpfObjects::load(options);
    if (!objects) {
      GTEST_SKIP() << "cannot load the BPF objects: " << objects.error().str();
    }
    objects_ = std::move(*objects);
    table_ = std::make_unique<ConntrackTable>(*objects_);
    fd_ = objects_->mapFd("gw_ct_v4");
  }

  void put(const gw_ct_key& k, const gw_ct_entry& e) {
    ASSERT_EQ(bpf_map_update_elem(fd_, &k, &e, BPF_ANY), 0);
  }

  // Every page of `limit`, concatenated.
  std::vector<std::string> paged(const FlowFilter& filter, size_t limit) {
    std::vector<std::string> out;
    std::optional<FlowKey> after;
    for (int pages = 0; pages < 10000; ++pages) {
      auto page = table_->listPage(filter, after, limit);
      EXPECT_TRUE(page) << page.error().str();
      if (!page) {
        break;
      }
      EXPECT_LE(page->flows.size(), limit);
      for (const auto& f : page->flows) {
        out.push_back(describe(f));
      }
      if (!page->more) {
        break;
      }
      EXPECT_FALSE(page->flows.empty());
      after = flowKey(page->flows.back());
    }
    return out;
  }

  // list() in key order, filtered.
  std::vector<std::string> whole(const FlowFilter& filter) {
    auto flows = table_->list();
    EXPECT_TRUE(flows) << flows.error().str();
    std::sort(flows->begin(), flows->end(),
              [](const Flow& a, const Flow& b) { return flowKey(a) < flowKey(b); });
    std::vector<std::string> out;
    for (const auto& f : *flows) {
      if (filter.matches(f)) {
        out.push_back(describe(f));
      }
    }
    return out;
  }

  std::unique_ptr<BpfObjects> objects_;
  std::unique_ptr<ConntrackTable> table_;
  int fd_ = -1;
};

TEST_F(ConntrackPages, PagesListWhatTheWholeListingDoesInKeyOrder) {
  constexpr uint32_t kUplink = 0xc6120001; // 198.18.0.1
  for (uint32_t i = 0; i < 300; ++i) {
    uint8_t proto = i % 3 == 0 ? IPPROTO_UDP : IPPROTO_TCP;
    // Sources out of order, so the map's order is not the listing's.
    gw_ct_key orig = key(proto, 0x64400000u + (i * 7919) % 1000, 40000 + i % 5, kUplink, 6000);
    gw_ct_key reply = key(proto, 0x0a580002, 8080, 0x64400000u + (i * 7919) % 1000, 40000 + i % 5);
    put(orig, entry(GW_CT_DIR_ORIG, reply, i));
    put(reply, entry(GW_CT_DIR_REPLY, orig, 1000 + i));
  }
  for (uint32_t i = 0; i < 10; ++i) {
    // Original halves whose reply is gone, reply halves whose original is gone.
    gw_ct_key orig = key(IPPROTO_TCP, 0x64410000u + i, 1, kUplink, 6000);
    put(orig, entry(GW_CT_DIR_ORIG, reversed(orig), 7));
    gw_ct_key lonely = key(IPPROTO_TCP, 0x0a580003, 80, 0x64420000u + i, 2);
    put(lonely, entry(GW_CT_DIR_REPLY, reversed(lonely), 8));
  }
  // A flow made again with another reply tuple, its old reply half still pointing at it.
  gw_ct_key again = key(IPPROTO_TCP, 0x64430000u, 3, kUplink, 6000);
  gw_ct_key oldReply = key(IPPROTO_TCP, 0x0a580002, 8080, 0x64430000u, 3);
  gw_ct_key newReply = key(IPPROTO_TCP, 0x0a580004, 8080, 0x64430000u, 3);
  put(again, entry(GW_CT_DIR_ORIG, newReply, 1));
  put(newReply, entry(GW_CT_DIR_REPLY, again, 2));
  put(oldReply, entry(GW_CT_DIR_REPLY, again, 3));

  FlowFilter all;
  auto want = whole(all);
  ASSERT_EQ(want.size(), 321u);
  for (size_t limit : {1, 7, 100, 320, 321, 5000}) {
    EXPECT_EQ(paged(all, limit), want) << "pages of " << limit;
  }
  FlowFilter udp;
  udp.proto = IPPROTO_UDP;
  EXPECT_EQ(paged(udp, 9), whole(udp));
  EXPECT_EQ(whole(udp).size(), 100u);
  FlowFilter port;
  port.port = 8080; // a port of the reply tuple
  EXPECT_EQ(paged(port, 13), whole(port));
  FlowFilter none;
  none.src = IpAddress::parse("203.0.113.1").value();
  auto empty = table_->listPage(none, std::nullopt, 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->flows.empty());
  EXPECT_FALSE(empty->more);
}

TEST_F(ConntrackPages, Ipv6FlowsAreListedFilteredPagedAndDeletedByAddress) {
  // NAT66 flows out of fd00:88::2..6 through the uplink fd00:18::1, and one IPv4 flow.
  for (int i = 2; i <= 6; ++i) {
    std::string ns = "fd00:88::" + std::to_string(i);
    gw_ct_key orig = key6(IPPROTO_TCP, ns, 40000, "fd00:18::2", 80);
    gw_ct_key reply = key6(IPPROTO_TCP, "fd00:18::2", 80, "fd00:18::1", 40000 + i);
    put(orig, entry(GW_CT_DIR_ORIG, reply, 1));
    put(reply, entry(GW_CT_DIR_REPLY, orig, 2));
  }
  gw_ct_key v4 = key(IPPROTO_TCP, 0x0a580002, 40000, 0xc6120002, 80);
  put(v4, entry(GW_CT_DIR_ORIG, reversed(v4), 1));
  put(reversed(v4), entry(GW_CT_DIR_REPLY, v4, 1));

  auto flows = table_->list();
  ASSERT_TRUE(flows) << flows.error().str();
  ASSERT_EQ(flows->size(), 6u);
  FlowFilter src;
  src.src = IpAddress::parse("fd00:88::2").value();
  auto picked = table_->listPage(src, std::nullopt, 10);
  ASSERT_TRUE(picked);
  ASSERT_EQ(picked->flows.size(), 1u);
  const Flow& f = picked->flows[0];
  EXPECT_EQ(f.orig.src.str(), "fd00:88::2");
  EXPECT_EQ(f.orig.dst.str(), "fd00:18::2");
  EXPECT_EQ(f.reply.dst.str(), "fd00:18::1");
  EXPECT_EQ(f.reply.dport, 40002);
  EXPECT_FALSE(f.orphan);
  // Pages over IPv6 keys, the IPv4 flow first (its family sorts first), as the whole listing.
  FlowFilter all;
  EXPECT_EQ(paged(all, 1), whole(all));
  EXPECT_EQ(paged(all, 4), whole(all));
  // Deleting by an IPv6 source takes both halves of that flow and nothing else.
  auto deleted = table_->deleteIf([&](const Flow& flow) { return src.matches(flow); });
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 1u);
  auto left = table_->list();
  ASSERT_TRUE(left);
  EXPECT_EQ(left->size(), 5u);
  EXPECT_EQ(*table_->countByWalking(), 10u);
}

} // namespace
} // namespace gw
