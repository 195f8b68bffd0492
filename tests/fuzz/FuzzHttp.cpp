// SPDX-License-Identifier: MIT
// Fuzz target: the control socket's request parser (gw::http::parseRequest) and what the API
// does next with a parsed request: path(), query(), percentDecode(). Checks invariants, not
// just "no crash": a parsed request serializes and parses back to the same request.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tests/fuzz/FuzzTargets.h"
#include "control/Http.h"

namespace gw::fuzz {
namespace {

// An invariant broke: say which, then abort so the fuzzer records the input.
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_http: invariant broken: %s\n", what);
    std::abort();
  }
}

void exerciseRequest(const http::Request& request) {
  std::string path = request.path();
  check(path.find('?') == std::string::npos, "path holds no query");
  if (auto query = request.query()) {
    for (const auto& [key, value] : *query) {
      check(std::ranges::none_of(key + value, [](unsigned char c) { return c < 0x20; }),
            "an accepted query holds no control byte");
    }
  }
  // What Gateway::handle does for DELETE /v1/namespaces/NAME.
  (void)http::percentDecode(path);
  // Round trip: what the parser accepted, serialize() must write so it parses back the same.
  http::Request again;
  auto state = http::parseRequest(http::serialize(request), again);
  check(state && *state == http::ParseState::Complete, "serialized request parses");
  check(again.method == request.method && again.target == request.target &&
            again.body == request.body,
        "round trip keeps method, target and body");
}

} // namespace

int fuzzHttp(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  http::Request request;
  auto state = http::parseRequest(text, request);
  if (state && *state == http::ParseState::Complete) {
    exerciseRequest(request);
  }
  // The same bytes as a reply (gwctl's side of the socket) and as URL text.
  http::Response response;
  (void)http::parseResponse(text, response);
  std::string decoded = http::percentDecode(text);
  check(decoded.size() <= text.size(), "decoding never grows");
  check(http::percentDecode(http::percentEncode(text)) == text, "decode(encode(x)) == x");
  http::Request query;
  query.target = "/v1/conntrack?" + std::string(text);
  (void)query.query();
  return 0;
}

} // namespace gw::fuzz
