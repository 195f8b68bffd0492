// SPDX-License-Identifier: MIT
// The plugin's API client against a real gatewayd (in throwaway namespaces): its status
// through GET /v1/status, and "no owner support" read from today's router, which has no owner
// routes yet. Root: label service.
#include <gtest/gtest.h>

#include "cni/ApiGateway.h"
#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

class CniGatewaydTest : public ServiceFixture {};

TEST_F(CniGatewaydTest, StatusAndNoOwnerSupportYet) {
  startDaemon();
  cni::ApiGateway gateway(socket_);
  auto status = gateway.status();
  ASSERT_TRUE(status) << status.error().message;

  cni::Owner owner{"podman", "3f1c9a7e5b", "eth0"};
  cni::OwnedExpose e{std::nullopt, 8080, Proto::Tcp, *IpAddress::parse("10.88.0.3"), 80};
  auto add = gateway.addOwnerExposes(owner, {e});
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().fault, cni::Fault::Unsupported) << add.error().message;
  EXPECT_NE(add.error().message.find("does not support owners"), std::string::npos)
      << add.error().message;
  auto list = gateway.listOwner(owner);
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().fault, cni::Fault::Unsupported) << list.error().message;
  auto del = gateway.deleteOwner(owner);
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().fault, cni::Fault::Unsupported) << del.error().message;
  auto owners = gateway.ownersAll("podman");
  ASSERT_FALSE(owners);
  EXPECT_EQ(owners.error().fault, cni::Fault::Unsupported) << owners.error().message;

  stopDaemon();
  auto down = gateway.status();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().fault, cni::Fault::Unreachable) << down.error().message;
}

} // namespace
} // namespace gw::test
