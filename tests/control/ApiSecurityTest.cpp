// SPDX-License-Identifier: MIT
// The control socket: permissions, peer credentials, bounded requests, metrics.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

class ApiSecurityTest : public ServiceFixture {
protected:
  // gwctl as uid/gid 65534 (nobody/nogroup), no supplementary groups; `caps` are kept
  // across the uid change (e.g. "+dac_override").
  CommandResult gwctlAsNobody(const std::vector<std::string>& args, const std::string& caps = {}) {
    std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    if (!caps.empty()) {
      argv.push_back("--inh-caps=" + caps);
      argv.push_back("--ambient-caps=" + caps);
    }
    argv.insert(argv.end(), {GWCTL_PATH, "--socket", socket_});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
};

TEST_F(ApiSecurityTest, SocketIsRootOnlyByDefault) {
  startDaemon();
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_uid, 0u);
  std::filesystem::permissions(dir_, std::filesystem::perms::all);
  // Outside the group: the file mode refuses the connection...
  auto denied = gwctlAsNobody({"status"});
  EXPECT_NE(denied.status, 0);
  EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;
  // ...and a process that gets past the file mode is refused on its peer credentials.
  auto peer = gwctlAsNobody({"status"}, "+dac_override");
  EXPECT_NE(peer.status, 0);
  EXPECT_NE(peer.err.find("uid 65534"), std::string::npos) << peer.err;
  EXPECT_TRUE(gwctl({"status"}).ok());
}

TEST_F(ApiSecurityTest, GroupMembersMayUseIt) {
  startDaemon({"--group", "nogroup"});
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 65534u);
  std::filesystem::permissions(dir_, std::filesystem::perms::all);
  auto r = gwctlAsNobody({"status", "-j"});
  EXPECT_TRUE(r.ok()) << r.err;
  auto unknown = run({GATEWAYD_PATH, "--uplink", "up0", "--group", "no-such-group-x"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("no-such-group-x"), std::string::npos);
}

TEST_F(ApiSecurityTest, GroupMembersReadAndExposeManagedNamespacesOnly) {
  startDaemon({"--group", "nogroup"});
  std::filesystem::permissions(dir_, std::filesystem::perms::all);
  std::string n1 = nsName("n1");
  auto refusedNs = gwctlAsNobody({"ns", "add", n1});
  EXPECT_NE(refusedNs.status, 0);
  EXPECT_NE(refusedNs.err.find("adding a namespace is for root only"), std::string::npos)
      << refusedNs.err;
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  auto exposed = gwctlAsNobody({"expose", "6000", n1 + ":8080"});
  EXPECT_TRUE(exposed.ok()) << exposed.err;
  EXPECT_TRUE(gwctlAsNobody({"list"}).ok());
  // The gateway host's loopback is published by root alone.
  auto loopback = gwctlAsNobody({"expose", "6001", "127.0.0.1:22", "--mode", "proxy"});
  EXPECT_NE(loopback.status, 0);
  EXPECT_NE(loopback.err.find("for root only"), std::string::npos) << loopback.err;
  for (const auto& rootOnly : std::vector<std::vector<std::string>>{
           {"masquerade", "add", "10.88.0.0/16"}, {"conntrack", "flush"}, {"down"}}) {
    auto r = gwctlAsNobody(rootOnly);
    EXPECT_NE(r.status, 0) << rootOnly[0];
    EXPECT_NE(r.err.find("for root only"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(gwctlAsNobody({"unexpose", "6000"}).ok());
  auto raw = gwctlAsNobody({"status"}, "+dac_override");
  EXPECT_TRUE(raw.ok()) << raw.err;
}

TEST_F(ApiSecurityTest, TheProcesssOwnGroupsCountNotTheGroupFile) {
  startDaemon({"--group", "nogroup"});
  std::filesystem::permissions(dir_, std::filesystem::perms::all);
  // uid nobody, whose primary group in /etc/passwd is nogroup, running with gid 1 and no
  // supplementary groups: the process is not in the group, whatever the files say.
  auto outside = run({"setpriv", "--reuid=65534", "--regid=1", "--clear-groups",
                      "--inh-caps=+dac_override", "--ambient-caps=+dac_override", GWCTL_PATH,
                      "--socket", socket_, "status"});
  EXPECT_NE(outside.status, 0);
  EXPECT_NE(outside.err.find("uid 65534"), std::string::npos) << outside.err;
  // The same with nogroup as a supplementary group of the process: let in.
  auto inside = run({"setpriv", "--reuid=65534", "--regid=1", "--groups=65534", GWCTL_PATH,
                     "--socket", socket_, "status"});
  EXPECT_TRUE(inside.ok()) << inside.err;
}

TEST_F(ApiSecurityTest, ASlowClientDoesNotWedgeTheDaemon) {
  startDaemon();
  // Half a request, then silence.
  Child slow = Child::spawn(
      {"sh", "-c", "(printf 'GET /v1/status HTTP/1.1\\r\\nHost: x\\r\\n'; sleep 30) | socat - UNIX-CONNECT:" +
                       socket_});
  ASSERT_TRUE(waitFor([&] { return sh("ss -xp | grep -q socat").ok(); }));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(gwctl({"status"}).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Hostile sizes and shapes get an error reply, and the daemon stays up.
  auto big = sh("head -c 5000000 /dev/zero | tr '\\0' a | curl -s -o /dev/null -w '%{http_code}' "
                "--unix-socket " + socket_ + " -X POST --data-binary @- http://gw/v1/namespaces");
  EXPECT_TRUE(big.out == "413" || big.out == "400" || big.out == "000") << big.out;
  auto garbage = sh("printf 'NOT HTTP AT ALL\\r\\n\\r\\n' | socat -t2 - UNIX-CONNECT:" + socket_);
  EXPECT_NE(garbage.out.find("400"), std::string::npos) << garbage.out;
  auto badJson = sh("curl -s --unix-socket " + socket_ +
                    " -X POST -d '[1,2,3]' http://gw/v1/exposes");
  EXPECT_NE(badJson.out.find("error"), std::string::npos) << badJson.out;
  EXPECT_TRUE(gwctl({"status"}).ok());
  EXPECT_TRUE(daemon_.running());
}

// A client that asks for a large reply and never reads it: the reply is written only as the
// socket takes it, so everyone else is served meanwhile (a blocking write stalled them ~5 s).
TEST_F(ApiSecurityTest, AClientThatNeverReadsItsReplyStallsNobody) {
  startDaemon();
  std::string file = dir_ + "/batch";
  {
    std::ofstream out(file);
    for (int i = 0; i < 3000; ++i) {
      out << 20000 + i << " 10.0.0.9:80\n";
    }
  }
  ASSERT_TRUE(gwctl({"expose", "--file", file}).ok());
  // ~1 MB of expose list asked for, never read: far more than a unix socket buffers.
  std::string asker = R"(
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/exposes HTTP/1.1\r\nHost: gw\r\n\r\n")
print("sent", flush=True)
time.sleep(60)
)";
  std::string sentLog = dir_ + "/asker.log";
  Child reader = Child::spawn({"python3", "-c", asker, socket_}, sentLog);
  ASSERT_TRUE(waitFor([&] {
    std::ifstream in(sentLog);
    std::string word;
    return static_cast<bool>(in >> word) && word == "sent";
  }));
  // Long enough for the daemon to be busy with the big reply.
  ASSERT_TRUE(waitFor([&] { return sh("ss -x | grep -q " + socket_).ok(); }));
  auto slowest = std::chrono::milliseconds(0);
  for (int i = 0; i < 20; ++i) {
    auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(gwctl({"status"}).ok());
    slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start));
  }
  std::cerr << "[ api      ] slowest gwctl status beside a stalled reader: " << slowest.count()
            << " ms\n";
  EXPECT_LT(slowest, std::chrono::seconds(1)) << "a blocked reply write took the daemon";
}

// Many clients at once: every one is answered (the daemon once evicted all but 64 waiting).
TEST_F(ApiSecurityTest, AThousandSimultaneousClientsAreAllAnswered) {
  startDaemon();
  std::string many = R"(
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    conns.append(s)
for s in conns:
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: gw\r\n\r\n")
ok = 0
for s in conns:
    s.settimeout(20)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200")
print(ok)
)";
  auto r = run({"python3", "-c", many, socket_, "1000"}, std::chrono::seconds(60));
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out, "1000\n");
  EXPECT_TRUE(gwctl({"status"}).ok());
}

TEST_F(ApiSecurityTest, PrometheusMetricsOnAnOptInLoopbackAddress) {
  startDaemon({"--metrics", "127.0.0.1:19108"});
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  auto m = shIn(gwh(), "curl -s http://127.0.0.1:19108/metrics");
  ASSERT_TRUE(m.ok()) << m.err;
  EXPECT_NE(m.out.find("gateway_up 1"), std::string::npos) << m.out;
  EXPECT_NE(m.out.find("gateway_namespaces 1"), std::string::npos);
  EXPECT_NE(m.out.find("gateway_expose_packets_total{rule=\"1\""), std::string::npos);
  EXPECT_NE(m.out.find("gateway_conntrack_capacity"), std::string::npos);
  EXPECT_NE(m.out.find("reason=\"nat_dnat\""), std::string::npos);
  // Only GET /metrics there: the API is not reachable over TCP.
  auto api = shIn(gwh(), "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19108/v1/status");
  EXPECT_EQ(api.out, "404");
  // Also on the control socket.
  auto viaSocket = run({"curl", "-s", "--unix-socket", socket_, "http://gw/metrics"});
  EXPECT_NE(viaSocket.out.find("gateway_up 1"), std::string::npos);
}

} // namespace
} // namespace gw::test
