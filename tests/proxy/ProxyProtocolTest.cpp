// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <vector>

#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/proxy/SockAddr.h"

namespace gw {
namespace {

sockaddr_storage addr(const std::string& ip, uint16_t port) {
  auto a = parseSockAddr(ip, port);
  EXPECT_TRUE(a.has_value());
  return a->storage;
}

TEST(ProxyProtocolTest, EncodesIpv4ByteForByte) {
  std::array<uint8_t, kProxyV2MaxSize> out{};
  auto len = encodeProxyV2(addr("10.1.2.3", 40000), addr("192.168.0.1", 443), out);
  ASSERT_TRUE(len.has_value()) << len.error().str();
  ASSERT_EQ(*len, 28u);
  const std::vector<uint8_t> expected = {
      0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
      0x21, 0x11, 0x00, 0x0C,                                                   // v2 PROXY, TCP4
      10,   1,    2,    3,    192,  168,  0,    1,                              // src, dst
      0x9C, 0x40, 0x01, 0xBB};                                                  // ports
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 28), expected);
}

TEST(ProxyProtocolTest, RoundTripsIpv6) {
  std::array<uint8_t, kProxyV2MaxSize> out{};
  auto len = encodeProxyV2(addr("2001:db8::1", 1234), addr("fd00::2", 80), out);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len, 52u);
  EXPECT_EQ(out[13], 0x21);
  auto h = decodeProxyV2(std::span<const uint8_t>(out.data(), *len));
  ASSERT_TRUE(h.has_value()) << h.error().str();
  EXPECT_FALSE(h->local);
  EXPECT_EQ(h->length, 52u);
  EXPECT_EQ(formatSockAddr(h->src), "[2001:db8::1]:1234");
  EXPECT_EQ(formatSockAddr(h->dst), "[fd00::2]:80");
}

TEST(ProxyProtocolTest, MappedIpv4IsSentAsIpv4AndMixedAsIpv6) {
  std::array<uint8_t, kProxyV2MaxSize> out{};
  auto len = encodeProxyV2(addr("::ffff:10.0.0.7", 5555), addr("10.0.0.1", 80), out);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len, 28u);
  auto h = decodeProxyV2(std::span<const uint8_t>(out.data(), *len));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(formatSockAddr(h->src), "10.0.0.7:5555");

  len = encodeProxyV2(addr("10.0.0.7", 5555), addr("fd00::1", 80), out);
  ASSERT_TRUE(len.has_value());
  EXPECT_EQ(*len, 52u);
  h = decodeProxyV2(std::span<const uint8_t>(out.data(), *len));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(formatSockAddr(h->src), "[::ffff:10.0.0.7]:5555");
}

TEST(ProxyProtocolTest, DecoderAsksForMoreAndRejectsGarbage) {
  std::array<uint8_t, kProxyV2MaxSize> out{};
  auto len = encodeProxyV2(addr("10.1.2.3", 1), addr("10.1.2.4", 2), out);
  ASSERT_TRUE(len.has_value());
  for (size_t cut : {size_t{0}, size_t{5}, size_t{15}, *len - 1}) {
    auto h = decodeProxyV2(std::span<const uint8_t>(out.data(), cut));
    ASSERT_FALSE(h.has_value()) << cut;
    EXPECT_EQ(h.error().code, EAGAIN) << cut;
  }
  std::string http = "GET / HTTP/1.1\r\n\r\n";
  auto bad = decodeProxyV2(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(http.data()), http.size()));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EINVAL);

  // Trailing TLVs count in the length and are skipped.
  std::vector<uint8_t> withTlv(out.begin(), out.begin() + *len);
  withTlv[15] = static_cast<uint8_t>(withTlv[15] + 4);
  withTlv.insert(withTlv.end(), {0x04, 0x00, 0x01, 0x00}); // PP2_TYPE_NOOP
  withTlv.push_back('x');                                   // payload after the header
  auto h = decodeProxyV2(withTlv);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->length, *len + 4);
  EXPECT_EQ(formatSockAddr(h->src), "10.1.2.3:1");
}

TEST(ProxyProtocolTest, LocalCommandHasNoAddresses) {
  std::vector<uint8_t> local(kProxyV2Signature.begin(), kProxyV2Signature.end());
  local.insert(local.end(), {0x20, 0x00, 0x00, 0x00});
  auto h = decodeProxyV2(local);
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->local);
  EXPECT_EQ(h->length, 16u);
}

} // namespace
} // namespace gw
