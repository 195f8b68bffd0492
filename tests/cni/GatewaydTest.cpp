// SPDX-License-Identifier: MIT
// The plugin's API client against a real gatewayd (in throwaway namespaces): status, and an
// attachment's mappings published, replaced, listed, refused on a taken port, and deleted
// through gatewayd's owner routes. Root: label service.
#include <gtest/gtest.h>

#include <algorithm>

#include "cni/ApiGateway.h"
#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

class CniGatewaydTest : public ServiceFixture {};

TEST_F(CniGatewaydTest, AnAttachmentsMappingsThroughTheOwnerRoutes) {
  startDaemon();
  cni::ApiGateway gateway(socket_);
  auto status = gateway.status();
  ASSERT_TRUE(status) << status.error().message;

  const auto target = *IpAddress::parse("10.88.0.3");
  cni::Owner owner{"podman", "3f1c9a7e5b", "eth0"};
  cni::OwnedExpose web{std::nullopt, 8080, Proto::Tcp, target, 80};
  cni::OwnedExpose dns{std::nullopt, 5353, Proto::Udp, target, 53};
  auto add = gateway.addOwnerExposes(owner, {web, dns});
  ASSERT_TRUE(add) << add.error().message;
  auto listed = gateway.listOwner(owner);
  ASSERT_TRUE(listed) << listed.error().message;
  std::ranges::sort(*listed);
  std::vector<cni::OwnedExpose> want{web, dns};
  std::ranges::sort(want);
  EXPECT_EQ(*listed, want);
  auto owners = gateway.ownersAll("podman");
  ASSERT_TRUE(owners) << owners.error().message;
  EXPECT_EQ(*owners, std::vector<cni::Owner>{owner});
  auto others = gateway.ownersAll("other");
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->empty());

  // ADD again: the set is replaced, not added to
  ASSERT_TRUE(gateway.addOwnerExposes(owner, {web}));
  EXPECT_EQ(gateway.listOwner(owner).value().size(), 1u);
  // another attachment claiming the port: refused, nothing made
  cni::Owner other{"podman", "77aa", "eth0"};
  auto taken = gateway.addOwnerExposes(other, {web});
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().fault, cni::Fault::PortTaken) << taken.error().message;
  EXPECT_TRUE(gateway.listOwner(other).value().empty());

  ASSERT_TRUE(gateway.deleteOwner(owner));
  EXPECT_TRUE(gateway.listOwner(owner).value().empty());
  EXPECT_TRUE(gateway.deleteOwner(owner)) << "DEL again";
  EXPECT_TRUE(gateway.ownersAll("podman").value().empty());

  stopDaemon();
  auto down = gateway.status();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().fault, cni::Fault::Unreachable) << down.error().message;
}

} // namespace
} // namespace gw::test
