// SPDX-License-Identifier: MIT
// The control socket's request parser: every gwctl command and API call goes through it once.
#include <benchmark/benchmark.h>

#include <string>

#include "control/Http.h"

namespace {

const std::string kGetStatus =
    "GET /v1/status HTTP/1.1\r\nHost: gw\r\nUser-Agent: gwctl/0.1\r\nAccept: */*\r\n\r\n";

std::string postExpose() {
  std::string body = R"({"hostPort":6000,"target":"netns1:8080","proto":"tcp","mode":"auto"})";
  return "POST /v1/exposes HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

void parseGet(benchmark::State& state) {
  for (auto _ : state) {
    gw::http::Request request;
    auto r = gw::http::parseRequest(kGetStatus, request);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGetStatus.size()));
}
BENCHMARK(parseGet);

void parsePostWithBody(benchmark::State& state) {
  const std::string text = postExpose();
  for (auto _ : state) {
    gw::http::Request request;
    auto r = gw::http::parseRequest(text, request);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(parsePostWithBody);

// The server re-parses the buffer after every read: a request arriving in small pieces costs
// one parse per piece. Argument: bytes per piece.
void parseIncremental(benchmark::State& state) {
  const std::string text = postExpose();
  const size_t step = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    gw::http::Request request;
    for (size_t have = step;; have += step) {
      have = std::min(have, text.size());
      auto r = gw::http::parseRequest(std::string_view(text).substr(0, have), request);
      if (!r || *r == gw::http::ParseState::Complete) {
        break;
      }
    }
    benchmark::DoNotOptimize(request);
  }
}
BENCHMARK(parseIncremental)->Arg(16)->Arg(64);

void queryDecode(benchmark::State& state) {
  gw::http::Request request;
  request.target = "/v1/flows?ns=netns1&proto=tcp&port=8080&limit=100";
  for (auto _ : state) {
    auto q = request.query();
    benchmark::DoNotOptimize(q);
  }
}
BENCHMARK(queryDecode);

} // namespace
