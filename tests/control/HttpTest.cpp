// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "control/Http.h"

namespace gw::http {
namespace {

TEST(Http, ParsesACompleteRequestWithBody) {
  Request r;
  auto s = parseRequest("POST /v1/namespaces?x=1&y=a%2Fb HTTP/1.1\r\nHost: g\r\n"
                        "Content-Length: 4\r\n\r\nbody",
                        r);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, ParseState::Complete);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path(), "/v1/namespaces");
  EXPECT_EQ(r.query()->at("y"), "a/b");
  EXPECT_EQ(r.headers["host"], "g");
  EXPECT_EQ(r.body, "body");
}

TEST(Http, IncompleteUntilTheBodyArrives) {
  Request r;
  EXPECT_EQ(*parseRequest("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", r),
            ParseState::Incomplete);
  EXPECT_EQ(*parseRequest("GET / HTTP/1.1\r\nHost: x", r), ParseState::Incomplete);
}

TEST(Http, RefusesMalformedAndOversizedRequests) {
  Request r;
  EXPECT_FALSE(parseRequest("GARBAGE\r\n\r\n", r));
  EXPECT_FALSE(parseRequest("GET nopath HTTP/1.1\r\n\r\n", r));
  EXPECT_FALSE(parseRequest("GET / HTTP/1.1\r\nno colon\r\n\r\n", r));
  EXPECT_FALSE(parseRequest("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", r));
  EXPECT_FALSE(parseRequest("GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", r));
  EXPECT_FALSE(parseRequest("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", r));
  auto twice = parseRequest("POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 4\r\n\r\n"
                            "{}{}",
                            r);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "duplicate Content-Length header");
  std::string huge = "GET / HTTP/1.1\r\nX: " + std::string(kMaxHeaderBytes, 'a');
  auto s = parseRequest(huge, r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("larger"), std::string::npos);
}

TEST(Http, ResponseRoundTrip) {
  Response out{409, "application/json", "{\"error\":\"x\"}"};
  Response in;
  ASSERT_EQ(*parseResponse(serialize(out), in), ParseState::Complete);
  EXPECT_EQ(in.status, 409);
  EXPECT_EQ(in.body, out.body);
}

TEST(Http, PercentCoding) {
  EXPECT_EQ(percentDecode(percentEncode("a b/c%")), "a b/c%");
  EXPECT_EQ(percentDecode("%zz"), "%zz");
}

} // namespace
} // namespace gw::http
