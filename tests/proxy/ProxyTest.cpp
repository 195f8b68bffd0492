// SPDX-License-Identifier: MIT
// The proxy end to end: it runs in a throwaway "gateway" namespace (this thread enters it), the
// backends in another one bound to 127.0.0.1 only, so only an in-namespace socket can reach them.
// Clients run in the gateway namespace too: nothing listens in the root namespace.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <thread>

#include "tests/proxy/ProxyTestUtil.h"
#include "tests/support/TestSupport.h"
#include "gateway/proxy/Proxy.h"
#include "gateway/proxy/ProxyProtocol.h"
#include "gateway/proxy/SockAddr.h"
#include "netns/Namespace.h"

namespace gw {

void PrintTo(RelayMode mode, std::ostream* os) {
  *os << (mode == RelayMode::Buffers ? "Buffers" : "Splice");
}

namespace {

using namespace std::chrono_literals;
using test::NsServer;
using test::TestNamespace;

class ProxyTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() { test::sweepLeftovers(); }

  void SetUp() override {
    gwNs_ = std::make_unique<TestNamespace>(test::prefix() + "gw");
    beNs_ = std::make_unique<TestNamespace>(test::prefix() + "be");
    auto guard = NetnsGuard::enter(gwNs_->name());
    ASSERT_TRUE(guard.has_value()) << guard.error().str();
    guard_.emplace(std::move(*guard));
  }

  void TearDown() override {
    proxy_.reset();
    servers_.clear();
    guard_.reset();
    beNs_.reset();
    gwNs_.reset();
  }

  void startProxy(ProxyConfig config = {}) {
    if (config.threads == 0) {
      config.threads = 2;
    }
    auto proxy = Proxy::start(config);
    ASSERT_TRUE(proxy.has_value()) << proxy.error().str();
    proxy_ = std::move(*proxy);
  }

  NsServer& backend(std::function<void(int)> handler) {
    servers_.push_back(std::make_unique<NsServer>(beNs_->name(), std::move(handler)));
    return *servers_.back();
  }

  // Listens on 127.0.0.1:0 in the gateway namespace towards 127.0.0.1:port in the backend's.
  uint64_t listen(uint16_t targetPort, ProxyListenerSpec spec = {}) {
    spec.listenAddr = "127.0.0.1";
    spec.targetNetns = beNs_->name();
    spec.targetAddr = "127.0.0.1";
    spec.targetPort = targetPort;
    auto id = proxy_->addListener(spec);
    EXPECT_TRUE(id.has_value()) << id.error().str();
    port_ = *proxy_->boundPort(*id);
    return *id;
  }

  ProxyListenerStats stats(uint64_t id) {
    auto s = proxy_->listenerStats(id);
    EXPECT_TRUE(s.has_value());
    return s.value_or(ProxyListenerStats{});
  }

  std::unique_ptr<TestNamespace> gwNs_;
  std::unique_ptr<TestNamespace> beNs_;
  std::optional<NetnsGuard> guard_;
  std::vector<std::unique_ptr<NsServer>> servers_;
  std::unique_ptr<Proxy> proxy_;
  uint16_t port_ = 0;
};

// Tests that run once per relay: the two share the connection logic but not the data path.
class ProxyRelayTest : public ProxyTest, public ::testing::WithParamInterface<RelayMode> {
protected:
  ProxyConfig relayConfig() const {
    ProxyConfig config;
    config.relay = GetParam();
    return config;
  }
};

std::string relayName(const ::testing::TestParamInfo<RelayMode>& info) {
  return info.param == RelayMode::Buffers ? "Buffers" : "Splice";
}

const auto kRelays = ::testing::Values(RelayMode::Buffers, RelayMode::Splice);

TEST_P(ProxyRelayTest, ReachesServerBoundToLoopbackInsideItsNamespace) {
  startProxy(relayConfig());
  auto& server = backend(test::echoUntilEof);
  // Sanity: from the gateway namespace the backend's loopback is not reachable directly.
  EXPECT_FALSE(test::connectTcp("127.0.0.1", server.port(), 1s));
  uint64_t id = listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(test::sendAll(fd.get(), "ping"));
  EXPECT_EQ(test::readN(fd.get(), 4), "ping");
  fd.reset();
  EXPECT_TRUE(test::waitFor([&] { return stats(id).active == 0; }, 5s));
  auto s = stats(id);
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.bytesIn, 4u);
  EXPECT_EQ(s.bytesOut, 4u);
}

TEST_F(ProxyTest, AddressInUseNamesTheAddress) {
  startProxy();
  auto& server = backend(test::echoUntilEof);
  listen(server.port());
  ProxyListenerSpec spec;
  spec.listenAddr = "127.0.0.1";
  spec.listenPort = port_;
  spec.targetNetns = beNs_->name();
  spec.targetAddr = "127.0.0.1";
  spec.targetPort = server.port();
  auto again = proxy_->addListener(spec);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, EADDRINUSE);
  EXPECT_NE(again.error().str().find("127.0.0.1:" + std::to_string(port_)), std::string::npos)
      << again.error().str();

  spec.listenPort = 0;
  spec.targetNetns = test::prefix() + "nope";
  auto missing = proxy_->addListener(spec);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().str().find("nope"), std::string::npos) << missing.error().str();
}

TEST_F(ProxyTest, EmptyTargetNamespaceIsTheGateways) {
  startProxy();
  // A server on the gateway namespace's own loopback.
  NsServer server(gwNs_->name(), test::echoUntilEof);
  ProxyListenerSpec spec;
  spec.listenAddr = "127.0.0.1";
  spec.targetAddr = "127.0.0.1";
  spec.targetPort = server.port();
  auto id = proxy_->addListener(spec);
  ASSERT_TRUE(id.has_value()) << id.error().str();
  auto fd = test::connectTcp("127.0.0.1", *proxy_->boundPort(*id));
  ASSERT_TRUE(test::sendAll(fd.get(), "local"));
  EXPECT_EQ(test::readN(fd.get(), 5), "local");
}

// A client that does not read: the backend gets stuck in send() and the proxy holds at most
// a buffer per direction, instead of reading on and growing.
class ProxyBackpressureTest : public ProxyTest, public ::testing::WithParamInterface<RelayMode> {};

TEST_P(ProxyBackpressureTest, SlowReaderStallsWriterWithoutGrowingMemory) {
  ProxyConfig config;
  config.relay = GetParam();
  startProxy(config);
  constexpr size_t kTotal = 256u << 20;
  std::atomic<size_t> written{0};
  auto& server = backend([&written](int fd) {
    std::vector<char> chunk(1 << 16, 'b');
    while (written < kTotal && test::sendAll(fd, chunk.data(), chunk.size())) {
      written += chunk.size();
    }
    shutdown(fd, SHUT_WR);
  });
  uint64_t id = listen(server.port());
  long rssBefore = test::vmRssKiB();
  auto fd = test::connectTcp("127.0.0.1", port_, 20s);
  ASSERT_TRUE(fd);
  // Let the socket buffers on the way fill up, then check that nothing moves any more.
  std::this_thread::sleep_for(1000ms);
  size_t stalledAt = written.load();
  uint64_t deliveredAt = stats(id).bytesOut;
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(written.load(), stalledAt);
  EXPECT_EQ(stats(id).bytesOut, deliveredAt);
  EXPECT_LT(stalledAt, 64u << 20) << "the backend wrote far more than the buffers on the way";
  EXPECT_LT(test::vmRssKiB() - rssBefore, 8 * 1024);
  std::printf("[ backpressure ] backend stalled after %zu KiB, %llu KiB delivered to the client\n",
              stalledAt / 1024, static_cast<unsigned long long>(deliveredAt / 1024));
  // The reader wakes up: everything arrives.
  size_t got = 0;
  std::vector<char> buf(1 << 18);
  while (true) {
    ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  EXPECT_EQ(got, kTotal);
}

INSTANTIATE_TEST_SUITE_P(Relay, ProxyBackpressureTest, kRelays, relayName);

// Many slow readers in splice mode: each stalled direction keeps a full pipe, but only a few
// pipes per worker are enlarged (16 of 1 MiB), the rest stay at the kernel's default.
TEST_F(ProxyTest, SlowReadersHoldFewEnlargedPipes) {
  ProxyConfig config;
  config.relay = RelayMode::Splice;
  startProxy(config); // two workers
  constexpr size_t kClients = 48;
  auto& server = backend([](int fd) {
    std::vector<char> chunk(1 << 16, 's');
    while (test::sendAll(fd, chunk.data(), chunk.size())) {
    }
  });
  uint64_t id = listen(server.port());
  std::vector<UniqueFd> clients;
  for (size_t i = 0; i < kClients; ++i) {
    clients.push_back(test::connectTcp("127.0.0.1", port_, 10s));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(test::waitFor([&] { return stats(id).active == kClients; }, 5s));
  auto pipes = [] {
    std::pair<size_t, size_t> counts{0, 0}; // all pipes, enlarged ones
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
      int fd = std::stoi(entry.path().filename().string());
      int size = fcntl(fd, F_GETPIPE_SZ);
      if (size > 0) {
        ++counts.first;
        counts.second += size >= (1 << 20) ? 1 : 0;
      }
    }
    return counts;
  };
  // Stalled: every backend -> client direction holds a pipe with bytes in it (two fds each).
  EXPECT_TRUE(test::waitFor([&] { return pipes().first >= 2 * kClients; }, 10s))
      << pipes().first;
  EXPECT_LE(pipes().second, 2u * 2 * 16) << "enlarged pipe fds beyond 16 per worker";
}

// 64 MiB each way through real clients, hashed at both ends; the client->backend leg ends with
// a half-close that the backend must see before it can answer with its hash.
class ProxyTransferTest : public ProxyTest, public ::testing::WithParamInterface<RelayMode> {};

TEST_P(ProxyTransferTest, LargeRandomTransferHashesMatchBothWays) {
  ProxyConfig config;
  config.relay = GetParam();
  startProxy(config);
  std::string dir = "/tmp/" + test::prefix() + "proxy";
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  auto made = test::sh("head -c 67108864 /dev/urandom > " + dir + "/up && head -c 67108864 " +
                       "/dev/urandom > " + dir + "/down && sha256sum " + dir + "/up " + dir +
                       "/down");
  ASSERT_TRUE(made.ok()) << made.err;
  std::string upHash = made.out.substr(0, 64);
  std::string downHash = made.out.substr(made.out.find('\n') + 1, 64);

  // Fixed ports are fine: the backend namespace is ours alone.
  auto hasher = test::Child::spawn({"ip", "netns", "exec", beNs_->name(), "socat", "-b65536",
                                    "TCP-LISTEN:9000,bind=127.0.0.1,reuseaddr",
                                    "SYSTEM:sha256sum"});
  auto sender = test::Child::spawn({"ip", "netns", "exec", beNs_->name(), "socat", "-u",
                                    "-b65536", "OPEN:" + dir + "/down",
                                    "TCP-LISTEN:9001,bind=127.0.0.1,reuseaddr"});
  ASSERT_TRUE(test::waitFor([&] {
    return beNs_->sh("ss -Hltn | grep -q 127.0.0.1:9000 && ss -Hltn | grep -q 127.0.0.1:9001")
        .ok();
  }));
  uint64_t up = listen(9000);
  uint16_t upPort = port_;
  uint64_t down = listen(9001);
  uint16_t downPort = port_;

  auto start = std::chrono::steady_clock::now();
  auto upResult = gwNs_->sh("socat -b65536 -t 30 TCP:127.0.0.1:" + std::to_string(upPort) +
                            " - < " + dir + "/up");
  auto upTime = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(upResult.ok()) << upResult.err;
  EXPECT_EQ(upResult.out.substr(0, 64), upHash);

  start = std::chrono::steady_clock::now();
  auto downResult = gwNs_->sh("socat -u -b65536 TCP:127.0.0.1:" + std::to_string(downPort) +
                              " - | sha256sum");
  auto downTime = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(downResult.ok()) << downResult.err;
  EXPECT_EQ(downResult.out.substr(0, 64), downHash);

  EXPECT_EQ(stats(up).bytesIn, 64u << 20);
  EXPECT_EQ(stats(down).bytesOut, 64u << 20);
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::printf("[ relay %s ] 64 MiB up %lld ms, down %lld ms (socat at both ends)\n",
              GetParam() == RelayMode::Buffers ? "buffers" : "splice",
              static_cast<long long>(ms(upTime)), static_cast<long long>(ms(downTime)));
}

INSTANTIATE_TEST_SUITE_P(Relay, ProxyTransferTest, kRelays, relayName);

TEST_P(ProxyRelayTest, HalfCloseReachesBackendAndReplyStillArrives) {
  startProxy(relayConfig());
  // Answers only once it has seen EOF: proves the client's shutdown(SHUT_WR) went through.
  auto& server = backend([](int fd) {
    std::string got = test::readAll(fd);
    test::sendAll(fd, "got " + std::to_string(got.size()) + " bytes");
    shutdown(fd, SHUT_WR);
  });
  listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(test::sendAll(fd.get(), std::string(100000, 'x')));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  bool closed = false;
  EXPECT_EQ(test::readAll(fd.get(), &closed), "got 100000 bytes");
  EXPECT_TRUE(closed);
}

TEST_P(ProxyRelayTest, BackendDownClosesClientPromptlyAndCounts) {
  startProxy(relayConfig());
  uint16_t deadPort = 0;
  {
    auto& server = backend(test::echoUntilEof);
    deadPort = server.port();
    servers_.clear(); // nothing listens there any more
  }
  uint64_t id = listen(deadPort);
  auto start = std::chrono::steady_clock::now();
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd);
  bool closed = false;
  EXPECT_EQ(test::readAll(fd.get(), &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(test::waitFor([&] { return stats(id).active == 0; }, 2s));
  EXPECT_EQ(stats(id).backendFailed, 1u);

  // The backend dies mid-connection: the client sees the end too.
  auto server = std::make_unique<NsServer>(beNs_->name(), test::echoUntilEof);
  uint64_t live = listen(server->port());
  auto fd2 = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd2);
  ASSERT_TRUE(test::sendAll(fd2.get(), "a"));
  EXPECT_EQ(test::readN(fd2.get(), 1), "a");
  server.reset();
  EXPECT_EQ(test::readAll(fd2.get(), &closed), "");
  EXPECT_TRUE(closed);
  fd2.reset();
  EXPECT_TRUE(test::waitFor([&] { return stats(live).active == 0; }, 2s));
}

TEST_F(ProxyTest, BackendThatNeverAnswersTimesOut) {
  ProxyConfig config;
  config.connectTimeout = 1s;
  startProxy(config);
  // A listener that never accepts, with a backlog of one: once full, SYNs are dropped.
  UniqueFd stuck;
  uint16_t stuckPort = 0;
  std::thread([&] {
    auto guard = NetnsGuard::enter(beNs_->name());
    ASSERT_TRUE(guard.has_value());
    auto addr = parseSockAddr("127.0.0.1", 0);
    stuck.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(bind(stuck.get(), addr->get(), addr->length), 0);
    ASSERT_EQ(::listen(stuck.get(), 0), 0);
    SockAddr bound;
    bound.length = sizeof bound.storage;
    getsockname(stuck.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
    stuckPort = bound.port();
  }).join();
  ASSERT_NE(stuckPort, 0);
  uint64_t id = listen(stuckPort);
  auto first = test::connectTcp("127.0.0.1", port_); // fills the backlog
  ASSERT_TRUE(test::waitFor([&] { return stats(id).accepted == 1; }, 2s));
  std::this_thread::sleep_for(200ms);
  auto second = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(second);
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  EXPECT_EQ(test::readAll(second.get(), &closed), "");
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed);
  EXPECT_GE(waited, 700ms);
  EXPECT_LT(waited, 2500ms);
  EXPECT_GE(stats(id).backendFailed, 1u);
}

TEST_F(ProxyTest, PerListenerLimitRefusesCleanly) {
  startProxy();
  auto& server = backend(test::echoUntilEof);
  ProxyListenerSpec spec;
  spec.maxConnections = 2;
  uint64_t id = listen(server.port(), spec);
  auto a = test::connectTcp("127.0.0.1", port_);
  auto b = test::connectTcp("127.0.0.1", port_);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(test::sendAll(a.get(), "a") && test::sendAll(b.get(), "b"));
  EXPECT_EQ(test::readN(a.get(), 1), "a");
  EXPECT_EQ(test::readN(b.get(), 1), "b");

  auto c = test::connectTcp("127.0.0.1", port_, 2s);
  ASSERT_TRUE(c); // accepted by the kernel, then closed by the proxy at once
  bool closed = false;
  EXPECT_EQ(test::readAll(c.get(), &closed), "");
  EXPECT_TRUE(closed);
  auto s = stats(id);
  EXPECT_EQ(s.refusedLimit, 1u);
  EXPECT_EQ(s.accepted, 2u);
  EXPECT_EQ(s.active, 2u);
  EXPECT_EQ(server.accepted(), 2u);

  // The two in service are unharmed, and a slot freed is a slot usable.
  ASSERT_TRUE(test::sendAll(a.get(), "x"));
  EXPECT_EQ(test::readN(a.get(), 1), "x");
  a.reset();
  ASSERT_TRUE(test::waitFor([&] { return stats(id).active == 1; }, 2s));
  auto d = test::connectTcp("127.0.0.1", port_);
  ASSERT_TRUE(test::sendAll(d.get(), "d"));
  EXPECT_EQ(test::readN(d.get(), 1), "d");
}

TEST_F(ProxyTest, GlobalLimitRefusesAcrossListeners) {
  ProxyConfig config;
  config.maxConnections = 1;
  startProxy(config);
  auto& server = backend(test::echoUntilEof);
  uint64_t first = listen(server.port());
  uint16_t firstPort = port_;
  uint64_t second = listen(server.port());
  auto a = test::connectTcp("127.0.0.1", firstPort);
  ASSERT_TRUE(test::sendAll(a.get(), "a"));
  EXPECT_EQ(test::readN(a.get(), 1), "a");
  auto b = test::connectTcp("127.0.0.1", port_, 2s);
  EXPECT_EQ(test::readAll(b.get()), "");
  EXPECT_EQ(stats(second).refusedLimit, 1u);
  EXPECT_EQ(stats(first).refusedLimit, 0u);
  EXPECT_EQ(proxy_->activeConnections(), 1u);
}

TEST_P(ProxyRelayTest, IdleTimeoutCloses) {
  ProxyConfig config = relayConfig();
  config.idleTimeout = 1s;
  startProxy(config);
  auto& server = backend(test::echoUntilEof);
  uint64_t id = listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(test::sendAll(fd.get(), "hi"));
  EXPECT_EQ(test::readN(fd.get(), 2), "hi");
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  EXPECT_EQ(test::readAll(fd.get(), &closed), "");
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed);
  EXPECT_GE(waited, 800ms);
  EXPECT_LT(waited, 2500ms);
  EXPECT_TRUE(test::waitFor([&] { return stats(id).active == 0; }, 2s));
}

TEST_P(ProxyRelayTest, ProxyV2HeaderCarriesRealClientAddress) {
  startProxy(relayConfig());
  auto& server = backend([](int fd) {
    std::string got;
    while (true) {
      auto h = decodeProxyV2(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(got.data()), got.size()));
      // The proxy sends the header before it relays: "hello" may come in a later read.
      if (h && got.size() >= h->length + 5) {
        std::string payload = got.substr(h->length);
        test::sendAll(fd, formatSockAddr(h->src) + " " + formatSockAddr(h->dst) + " " + payload);
        break;
      }
      if (!h && h.error().code != EAGAIN) {
        test::sendAll(fd, "bad header: " + h.error().str());
        break;
      }
      char buf[256];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) {
        break;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    shutdown(fd, SHUT_WR);
  });
  ProxyListenerSpec spec;
  spec.proxyProtocolV2 = true;
  listen(server.port(), spec);
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd);
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ASSERT_EQ(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len), 0);
  ASSERT_TRUE(test::sendAll(fd.get(), "hello"));
  std::string expected =
      formatSockAddr(local) + " 127.0.0.1:" + std::to_string(port_) + " hello";
  EXPECT_EQ(test::readN(fd.get(), expected.size()), expected);
}

TEST_P(ProxyRelayTest, DrainLetsOpenConnectionsFinishAndRefusesNewOnes) {
  ProxyConfig config = relayConfig();
  config.drainTimeout = 10s;
  startProxy(config);
  auto& server = backend(test::echoUntilEof);
  uint64_t id = listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(test::sendAll(fd.get(), "1"));
  EXPECT_EQ(test::readN(fd.get(), 1), "1");

  auto removed = std::async(std::launch::async, [&] { return proxy_->removeListener(id); });
  // The port closes at once; the open connection keeps working.
  EXPECT_TRUE(test::waitFor([&] { return !test::connectTcp("127.0.0.1", port_, 1s); }, 3s));
  ASSERT_TRUE(test::sendAll(fd.get(), "2"));
  EXPECT_EQ(test::readN(fd.get(), 1), "2");
  EXPECT_EQ(removed.wait_for(0ms), std::future_status::timeout);
  auto start = std::chrono::steady_clock::now();
  fd.reset();
  auto status = removed.get();
  EXPECT_TRUE(status.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_FALSE(proxy_->listenerStats(id).has_value());
  EXPECT_EQ(proxy_->activeConnections(), 0u);
}

// Upgrade (SIGUSR2): a second proxy adopts the first one's listening sockets, as a new
// gatewayd inherits them across exec. The old one stops accepting without refusing anyone
// (close, never shutdown) and keeps relaying what it holds.
TEST_P(ProxyRelayTest, AnotherProxyAdoptsTheListenersWhileOpenConnectionsStay) {
  startProxy(relayConfig());
  auto& server = backend(test::echoUntilEof);
  uint64_t oldId = listen(server.port());
  auto held = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(test::sendAll(held.get(), "1"));
  EXPECT_EQ(test::readN(held.get(), 1), "1");

  auto handed = proxy_->listenerFds();
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0].address, "127.0.0.1:" + std::to_string(port_));
  ProxyConfig config = relayConfig();
  config.threads = 2;
  for (int fd : handed[0].fds) { // what exec would leave open in the new process
    config.inheritedListeners[handed[0].address].push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  }
  auto next = Proxy::start(config);
  ASSERT_TRUE(next.has_value());
  ProxyListenerSpec spec;
  spec.listenAddr = "127.0.0.1";
  spec.listenPort = port_;
  spec.targetNetns = beNs_->name();
  spec.targetAddr = "127.0.0.1";
  spec.targetPort = server.port();
  auto newId = (*next)->addListener(spec); // would be EADDRINUSE if it bound anew
  ASSERT_TRUE(newId.has_value()) << newId.error().str();
  EXPECT_EQ(*(*next)->boundPort(*newId), port_);
  EXPECT_TRUE((*next)->closeUnadopted().empty());

  proxy_->releaseListeners();
  for (int i = 0; i < 20; ++i) {
    auto fd = test::connectTcp("127.0.0.1", port_, 5s);
    ASSERT_TRUE(fd) << "connect " << i << " refused after the handover";
    ASSERT_TRUE(test::sendAll(fd.get(), "p"));
    EXPECT_EQ(test::readN(fd.get(), 1), "p");
  }
  ASSERT_TRUE(test::sendAll(held.get(), "2")); // the old one still relays its own
  EXPECT_EQ(test::readN(held.get(), 1), "2");
  EXPECT_EQ(stats(oldId).accepted, 1u);
  EXPECT_EQ((*next)->listenerStats(*newId)->accepted, 20u);
  held.reset();
  EXPECT_TRUE(test::waitFor([&] { return proxy_->activeConnections() == 0; }, 5s));
}

TEST_F(ProxyTest, AnInheritedSocketThatIsNotTheListenerIsRefused) {
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ProxyConfig config;
  config.threads = 2;
  config.inheritedListeners["127.0.0.1:7001"] = {::fcntl(udp.get(), F_DUPFD_CLOEXEC, 3),
                                                 ::fcntl(udp.get(), F_DUPFD_CLOEXEC, 3)};
  startProxy(config);
  ProxyListenerSpec spec;
  spec.listenAddr = "127.0.0.1";
  spec.listenPort = 7001;
  spec.targetAddr = "127.0.0.1";
  spec.targetPort = 9;
  auto id = proxy_->addListener(spec);
  ASSERT_FALSE(id.has_value());
  EXPECT_NE(id.error().message.find("127.0.0.1:7001"), std::string::npos) << id.error().str();
  EXPECT_NE(id.error().message.find("not a listening stream socket"), std::string::npos)
      << id.error().str();
  // Named as not adopted: the new gatewayd refuses to start rather than go on without it.
  EXPECT_EQ(proxy_->closeUnadopted(), std::vector<std::string>{"127.0.0.1:7001"});
  EXPECT_FALSE(checkInheritedListener(udp.get(), "127.0.0.1:7001").has_value());
}

TEST_F(ProxyTest, DrainDeadlineClosesStragglers) {
  ProxyConfig config;
  config.drainTimeout = 1s;
  startProxy(config);
  auto& server = backend(test::echoUntilEof);
  listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(test::sendAll(fd.get(), "1"));
  EXPECT_EQ(test::readN(fd.get(), 1), "1");
  auto start = std::chrono::steady_clock::now();
  proxy_->stop(true);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3s);
  bool closed = false;
  EXPECT_EQ(test::readAll(fd.get(), &closed), "");
  EXPECT_TRUE(closed);
  EXPECT_EQ(proxy_->activeConnections(), 0u);
}

// The backend resets while the client is still streaming: the proxy's writes to it fail (a
// write to a reset socket can raise SIGPIPE, which this test binary does not ignore).
TEST_P(ProxyRelayTest, BackendResetMidStreamClosesClientAndCounts) {
  startProxy(relayConfig());
  std::atomic<bool> accepted{false};
  auto server = std::make_unique<NsServer>(beNs_->name(), [&accepted](int fd) {
    linger reset{1, 0}; // close() sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    accepted = true;
  });
  uint64_t id = listen(server->port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd);
  std::atomic<bool> stopped{false};
  std::thread writer([&] {
    std::vector<char> chunk(1 << 16, 'r');
    while (test::sendAll(fd.get(), chunk.data(), chunk.size())) {
    }
    stopped = true;
  });
  ASSERT_TRUE(test::waitFor([&] { return accepted.load() && stats(id).bytesIn > 0; }, 5s));
  server.reset(); // RST to the proxy, with its data unread
  EXPECT_TRUE(test::waitFor([&] { return stopped.load(); }, 5s));
  shutdown(fd.get(), SHUT_RDWR); // unblocks the writer if it is still stuck
  writer.join();
  EXPECT_TRUE(test::waitFor([&] { return stats(id).active == 0; }, 5s));
  EXPECT_EQ(stats(id).backendFailed, 1u);
}

// The mirror case: the client resets while the backend is still streaming. The proxy's writes
// to the client (or its reads from it) fail: the backend is closed too, and it is not to blame.
TEST_P(ProxyRelayTest, ClientResetMidStreamClosesBackendAndIsNotBackendFailure) {
  startProxy(relayConfig());
  std::atomic<bool> backendStopped{false};
  auto& server = backend([&backendStopped](int fd) {
    std::vector<char> chunk(1 << 16, 'b');
    while (test::sendAll(fd, chunk.data(), chunk.size())) {
    }
    backendStopped = true;
  });
  uint64_t id = listen(server.port());
  auto fd = test::connectTcp("127.0.0.1", port_, 5s);
  ASSERT_TRUE(fd);
  ASSERT_EQ(test::readN(fd.get(), 1000).size(), 1000u);
  linger reset{1, 0}; // close() sends RST
  ASSERT_EQ(setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  fd.reset();
  EXPECT_TRUE(test::waitFor([&] { return backendStopped.load(); }, 5s));
  EXPECT_TRUE(test::waitFor([&] { return stats(id).active == 0; }, 5s));
  EXPECT_EQ(stats(id).backendFailed, 0u);
  EXPECT_GT(stats(id).bytesOut, 0u);
}

INSTANTIATE_TEST_SUITE_P(Relay, ProxyRelayTest, kRelays, relayName);

// Thousands of idle connections through one listener: clients and backend are separate
// processes (each side needs one fd per connection), the proxy holds two per connection.
TEST_F(ProxyTest, TenThousandIdleConnectionsMemory) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  // Two fds per connection here; 20,000 is a hard limit we cannot raise without
  // CAP_SYS_RESOURCE, which caps this machine at ~9,900.
  size_t n = std::min<size_t>(10000, (lim.rlim_cur - 200) / 2);
  if (n < 1000) {
    GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur << " is too low";
  }
  ProxyConfig config;
  startProxy(config);
  std::string raise = "import resource;h=resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
                      "resource.setrlimit(resource.RLIMIT_NOFILE,(h,h));";
  auto server = test::Child::spawn(
      {"ip", "netns", "exec", beNs_->name(), "python3", "-c",
       raise + "import socket,sys\n"
               "l=socket.socket();l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
               "l.bind(('127.0.0.1',9100));l.listen(4096);c=[]\n"
               "while True: c.append(l.accept()[0])\n"});
  ASSERT_TRUE(test::waitFor(
      [&] { return beNs_->sh("ss -Hltn | grep -q 127.0.0.1:9100").ok(); }));
  uint64_t id = listen(9100);
  // Warm up: the first connection allocates the per-thread structures. The backend never
  // closes, so that connection stays (half-closed) until the end.
  test::connectTcp("127.0.0.1", port_).reset();
  ASSERT_TRUE(test::waitFor([&] { return stats(id).accepted == 1; }, 5s));
  std::this_thread::sleep_for(100ms);
  long before = test::vmRssKiB();

  auto start = std::chrono::steady_clock::now();
  auto clients = test::Child::spawn(
      {"ip", "netns", "exec", gwNs_->name(), "python3", "-c",
       raise + "import socket,sys,time\n"
               "c=[]\n"
               "for i in range(" + std::to_string(n) + "):\n"
               " s=socket.socket();s.connect(('127.0.0.1'," + std::to_string(port_) + "));"
               "c.append(s)\n"
               "time.sleep(600)\n"});
  bool all = test::waitFor([&] { return proxy_->activeConnections() == n + 1; }, 40s);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(all) << proxy_->activeConnections() << " of " << n << "; stats accepted "
                   << stats(id).accepted << " backendFailed " << stats(id).backendFailed;
  long after = test::vmRssKiB();
  double perConn = static_cast<double>(after - before) * 1024.0 / static_cast<double>(n);
  std::printf("[ memory ] %zu idle connections in %lld ms: VmRSS %ld -> %ld KiB, %.0f bytes/conn\n",
              n,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
              before, after, perConn);
  EXPECT_LE(perConn, 16 * 1024);
  EXPECT_EQ(stats(id).backendFailed, 0u);

  // Clients go first (their FINs are passed on as half-closes), then the backend closes too.
  clients.stop();
  server.stop();
  EXPECT_TRUE(test::waitFor([&] { return proxy_->activeConnections() == 0; }, 20s))
      << proxy_->activeConnections();
}

// Relay throughput, in-process ends (a rough figure: the benchmark proper comes later).
TEST_F(ProxyTest, RelayThroughputBuffersVsSplice) {
  constexpr size_t kBytes = 256u << 20;
  auto& server = backend(test::discardUntilEof);
  std::vector<char> chunk(1 << 18, 'z');
  std::array<std::vector<double>, 2> mbps;
  std::array<std::vector<double>, 2> cpu; // process CPU seconds per GB, both ends included
  auto cpuSeconds = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  for (int round = 0; round < 3; ++round) {
    for (RelayMode mode : {RelayMode::Buffers, RelayMode::Splice}) {
      ProxyConfig config;
      config.relay = mode;
      startProxy(config);
      uint64_t id = listen(server.port());
      auto fd = test::connectTcp("127.0.0.1", port_);
      ASSERT_TRUE(fd);
      auto start = std::chrono::steady_clock::now();
      double cpuStart = cpuSeconds();
      for (size_t sent = 0; sent < kBytes; sent += chunk.size()) {
        ASSERT_TRUE(test::sendAll(fd.get(), chunk.data(), chunk.size()));
      }
      shutdown(fd.get(), SHUT_WR);
      test::readAll(fd.get()); // EOF once the backend read everything
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                        .count();
      EXPECT_EQ(stats(id).bytesIn, kBytes);
      mbps[mode == RelayMode::Buffers ? 0 : 1].push_back(kBytes / secs / 1e6);
      cpu[mode == RelayMode::Buffers ? 0 : 1].push_back((cpuSeconds() - cpuStart) / (kBytes / 1e9));
      proxy_.reset();
    }
  }
  for (auto* set : {&mbps, &cpu}) {
    for (auto& v : *set) {
      std::sort(v.begin(), v.end());
    }
  }
  std::printf("[ relay ] 256 MiB one way, median of 3: buffers %.0f MB/s (%.2f CPU s/GB), "
              "splice %.0f MB/s (%.2f CPU s/GB)\n",
              mbps[0][1], cpu[0][1], mbps[1][1], cpu[1][1]);
}

} // namespace
} // namespace gw
