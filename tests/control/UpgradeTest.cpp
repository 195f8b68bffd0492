// SPDX-License-Identifier: MIT
// Binary upgrade (issue 10 §2): SIGUSR2 makes gatewayd execute the binary now on disk, which
// adopts the listening sockets; proxied streams keep going in the old process, new connects
// are never refused, and a new binary that fails leaves the old one serving.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// "server PORT": an echo server. "client HOST PORT STOPFILE PROGRESS": STREAMS long-lived
// streams sending random data and hashing what they send and what comes back, and a loop
// connecting (and echoing 4 bytes) over and over, until STOPFILE exists. PROGRESS gets the
// counters as JSON every 50 ms, and once more, final, at the end.
constexpr const char* kUpgradePy = R"PY(
import hashlib, json, os, socket, sys, threading, time
if sys.argv[1] == "server":
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", int(sys.argv[2])))
    l.listen(512)
    def echo(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()
    while True:
        threading.Thread(target=echo, args=(l.accept()[0],), daemon=True).start()
addr = (sys.argv[2], int(sys.argv[3]))
stop, progress = sys.argv[4], sys.argv[5]
STREAMS = 3
lock = threading.Lock()
st = {"bytes": 0, "streamsOk": 0, "hashMismatch": 0, "connects": 0, "refused": 0,
      "resets": 0, "errors": [], "final": False}
def count(key, n=1):
    with lock:
        st[key] += n
def failure(e):
    with lock:
        if isinstance(e, ConnectionRefusedError):
            st["refused"] += 1
        elif isinstance(e, ConnectionResetError) or isinstance(e, BrokenPipeError):
            st["resets"] += 1
        else:
            st["errors"].append(repr(e))
def stream(i):
    try:
        s = socket.create_connection(addr, timeout=10)
        sent, back = hashlib.sha256(), hashlib.sha256()
        n, got = 0, 0
        while not os.path.exists(stop):
            chunk = os.urandom(16384)
            s.sendall(chunk)
            sent.update(chunk)
            n += len(chunk)
            while got < n:
                d = s.recv(65536)
                if not d:
                    raise EOFError("stream %d: end of stream after %d of %d bytes" % (i, got, n))
                back.update(d)
                got += len(d)
            count("bytes", len(chunk))
            time.sleep(0.002)
        s.shutdown(socket.SHUT_WR)
        if s.recv(1) != b"":
            raise EOFError("stream %d: data after the end" % i)
        s.close()
        if sent.digest() != back.digest():
            count("hashMismatch")
        else:
            count("streamsOk")
    except Exception as e:
        failure(e)
def connector():
    while not os.path.exists(stop):
        try:
            c = socket.create_connection(addr, timeout=10)
            c.sendall(b"ping")
            d = b""
            while len(d) < 4:
                x = c.recv(4 - len(d))
                if not x:
                    raise EOFError("connect %d: closed before the echo" % st["connects"])
                d += x
            c.close()
            if d != b"ping":
                count("hashMismatch")
            count("connects")
        except Exception as e:
            failure(e)
        time.sleep(0.005)
def report():
    with lock:
        text = json.dumps(st)
    with open(progress + ".tmp", "w") as f:
        f.write(text)
    os.rename(progress + ".tmp", progress)
threads = [threading.Thread(target=stream, args=(i,)) for i in range(STREAMS)]
threads.append(threading.Thread(target=connector))
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    report()
    time.sleep(0.05)
st["final"] = True
report()
)PY";

class UpgradeTest : public ServiceFixture, public ::testing::WithParamInterface<std::string> {
protected:
  void TearDown() override {
    if (newPid_ > 0) { // started by the old gatewayd, not by us: stopped by its pid
      ::kill(newPid_, SIGTERM);
      waitFor([&] { return gone(newPid_); }, std::chrono::seconds(15));
    }
    ServiceFixture::TearDown();
  }

  static bool gone(pid_t pid) {
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    size_t paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
  }

  // A copy of the built gatewayd, so that the test can put another file in its place.
  std::string binary() const { return dir_ + "/gatewayd"; }
  void installBinary(const std::string& from) {
    std::string tmp = binary() + ".new";
    std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(tmp, std::filesystem::perms::owner_all);
    std::filesystem::rename(tmp, binary()); // as dpkg does: the running file is never written
  }
  void installScript(const std::string& text) {
    std::string tmp = binary() + ".new";
    std::ofstream(tmp) << text;
    std::filesystem::permissions(tmp, std::filesystem::perms::owner_all);
    std::filesystem::rename(tmp, binary());
  }

  // gatewayd from the copy, an echo server in a managed namespace, exposed in proxy mode.
  void startWithProxyExpose(const std::vector<std::string>& extraArgs = {}) {
    installBinary(GATEWAYD_PATH);
    auto argv = daemonArgv(binary());
    argv.insert(argv.end(), {"--proxy-relay", GetParam()});
    argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
    daemon_ = Child::spawn(argv, log_);
    ASSERT_TRUE(waitFor([&] { return gwctl({"status"}).ok() || !daemon_.running(); },
                        std::chrono::seconds(20)));
    ASSERT_TRUE(daemon_.running()) << "gatewayd did not come up";
    std::string n1 = nsName("n1");
    ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
    server_ = Child::spawn({"ip", "netns", "exec", n1, "python3", "-c", kUpgradePy, "server",
                            "8080"});
    ASSERT_TRUE(waitFor([&] { return shIn(n1, "ss -Hltn | grep -q ':8080 '").ok(); }));
    auto r = gwctl({"expose", "6000", n1 + ":8080", "--mode", "proxy"});
    ASSERT_TRUE(r.ok()) << r.err;
  }

  void startClient() {
    stopFile_ = dir_ + "/stop";
    progressFile_ = dir_ + "/progress.json";
    client_ = Child::spawn({"ip", "netns", "exec", ext(), "python3", "-c", kUpgradePy, "client",
                            kUplinkAddr, "6000", stopFile_, progressFile_},
                           dir_ + "/client.log");
    ASSERT_TRUE(waitFor([&] {
      auto p = progress();
      return p.value("connects", 0) > 5 && p.value("bytes", 0) > 1'000'000;
    })) << progress().dump() << readFile(dir_ + "/client.log");
  }
  json progress() const {
    auto j = json::parse(readFile(progressFile_), nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }
  // Stops the client; returns its final counters.
  json finishClient() {
    std::ofstream(stopFile_) << "stop";
    EXPECT_TRUE(waitFor([&] { return progress().value("final", false); },
                        std::chrono::seconds(30)))
        << readFile(dir_ + "/client.log");
    return progress();
  }
  int statusPid() {
    auto r = gwctl({"status", "-j"});
    auto j = json::parse(r.out, nullptr, false);
    return r.ok() && !j.is_discarded() ? j.value("pid", 0) : 0;
  }

  Child server_;
  Child client_;
  std::string stopFile_;
  std::string progressFile_;
  pid_t newPid_ = 0;
};

TEST_P(UpgradeTest, SigUsr2RunsTheNewBinaryAndKeepsProxiedConnections) {
  startWithProxyExpose({"--metrics", "127.0.0.1:9108"});
  startClient();
  pid_t oldPid = daemon_.pid();
  // The package's postinst reloads (instead of restarting) a gatewayd that blocks SIGUSR2.
  std::string procStatus = readFile("/proc/" + std::to_string(oldPid) + "/status");
  std::string blocked = procStatus.substr(procStatus.find("SigBlk:") + 7);
  EXPECT_NE(std::stoull(blocked.substr(0, blocked.find('\n')), nullptr, 16) & (1ull << 11), 0u)
      << procStatus;
  installBinary(GATEWAYD_PATH); // another file: "the binary now on disk"
  json before = progress();
  auto start = Clock::now();
  ASSERT_EQ(::kill(oldPid, SIGUSR2), 0);
  ASSERT_TRUE(waitFor(
      [&] {
        int pid = statusPid();
        newPid_ = pid != 0 && pid != oldPid ? pid : 0;
        return newPid_ != 0;
      },
      std::chrono::seconds(30)))
      << readFile(log_);
  double switchSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  json atSwitch = progress();
  // Streams keep going after the switch, and new connections reach the new process.
  ASSERT_TRUE(waitFor([&] {
    auto p = progress();
    return p.value("connects", 0) > atSwitch.value("connects", 0) + 20 &&
           p.value("bytes", 0) > atSwitch.value("bytes", 0) + 1'000'000;
  })) << progress().dump();
  std::string exe = run({"readlink", "/proc/" + std::to_string(newPid_) + "/exe"}).out;
  EXPECT_EQ(exe.find("(deleted)"), std::string::npos) << exe; // runs the file on disk now
  EXPECT_TRUE(daemon_.running()); // the old one holds its streams still
  EXPECT_NE(readFile(log_).find("upgrade: adopting the control socket and 1 proxy listeners"),
            std::string::npos);
  EXPECT_TRUE(shIn(gwh(), "curl -sf http://127.0.0.1:9108/metrics | grep -q gateway_").ok());
  json end = finishClient();
  EXPECT_EQ(end["resets"], 0) << end.dump();
  EXPECT_EQ(end["refused"], 0) << end.dump();
  EXPECT_EQ(end["hashMismatch"], 0) << end.dump();
  EXPECT_EQ(end["streamsOk"], 3) << end.dump();
  EXPECT_TRUE(end["errors"].empty()) << end.dump();
  // Its streams done, the old process exits (0) without tearing anything down.
  EXPECT_TRUE(waitFor([&] { return !daemon_.running(); }, std::chrono::seconds(15)));
  EXPECT_EQ(daemon_.stop(SIGTERM), 0);
  EXPECT_EQ(statusPid(), newPid_);
  EXPECT_TRUE(std::filesystem::exists(socket_));
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["path"], "proxy");
  EXPECT_GT(list[0]["connections"].get<int>(), 20) << list.dump(); // accepted by the new one
  std::cout << "upgrade (" << GetParam() << " relay): switch " << switchSeconds << " s, "
            << (atSwitch.value("connects", 0) - before.value("connects", 0))
            << " connects during the switch, " << end.value("connects", 0) << " in all, "
            << end.value("bytes", 0) << " bytes echoed over 3 streams, 0 resets, 0 refused\n";
  std::istringstream lines(readFile(log_));
  for (std::string line; std::getline(lines, line);) {
    if (line.find("upgrade:") != std::string::npos) {
      std::cout << "  log: " << line << "\n";
    }
  }
}

TEST_P(UpgradeTest, ABrokenNewBinaryLeavesTheOldOneServing) {
  startWithProxyExpose();
  startClient();
  pid_t oldPid = daemon_.pid();
  installScript("#!/bin/sh\nexit 1\n");
  ASSERT_EQ(::kill(oldPid, SIGUSR2), 0);
  ASSERT_TRUE(waitFor([&] {
    return readFile(log_).find("upgrade: new gatewayd") != std::string::npos;
  })) << readFile(log_);
  EXPECT_NE(readFile(log_).find("exited with status 1: this one keeps serving"),
            std::string::npos)
      << readFile(log_);
  EXPECT_EQ(statusPid(), oldPid);
  json atFailure = progress();
  ASSERT_TRUE(waitFor([&] {
    auto p = progress();
    return p.value("connects", 0) > atFailure.value("connects", 0) + 20 &&
           p.value("bytes", 0) > atFailure.value("bytes", 0) + 1'000'000;
  })) << progress().dump();
  // Fully back: changes are accepted again, and a later good upgrade still works.
  std::string n1 = prefix() + "n1";
  auto added = gwctl({"expose", "6001", n1 + ":8080", "--mode", "proxy"});
  EXPECT_TRUE(added.ok()) << added.err;
  json end = finishClient();
  EXPECT_EQ(end["resets"], 0) << end.dump();
  EXPECT_EQ(end["refused"], 0) << end.dump();
  EXPECT_EQ(end["hashMismatch"], 0) << end.dump();
  EXPECT_EQ(end["streamsOk"], 3) << end.dump();
  EXPECT_TRUE(end["errors"].empty()) << end.dump();
  EXPECT_TRUE(daemon_.running());
  installBinary(GATEWAYD_PATH);
  ASSERT_EQ(::kill(oldPid, SIGUSR2), 0);
  ASSERT_TRUE(waitFor(
      [&] {
        int pid = statusPid();
        newPid_ = pid != 0 && pid != oldPid ? pid : 0;
        return newPid_ != 0;
      },
      std::chrono::seconds(30)))
      << readFile(log_);
  EXPECT_EQ(gwctlJson({"list"}).size(), 2u);
  EXPECT_TRUE(waitFor([&] { return !daemon_.running(); }, std::chrono::seconds(15)));
  std::cout << "broken binary (" << GetParam() << " relay): old pid kept serving, "
            << end.value("connects", 0) << " connects, " << end.value("bytes", 0)
            << " bytes, 0 resets\n";
}

// A new binary that hangs is killed after 30 s and the old one serves on (one relay: it is slow).
using UpgradeTimeoutTest = UpgradeTest;
TEST_P(UpgradeTimeoutTest, ANewBinaryThatNeverGetsReadyIsKilled) {
  startWithProxyExpose({"--upgrade-timeout", "5"});
  startClient();
  pid_t oldPid = daemon_.pid();
  installScript("#!/bin/sh\nexec sleep 600\n");
  auto start = Clock::now();
  ASSERT_EQ(::kill(oldPid, SIGUSR2), 0);
  ASSERT_TRUE(waitFor(
      [&] { return readFile(log_).find("upgrade: new gatewayd") != std::string::npos; },
      std::chrono::seconds(45)))
      << readFile(log_);
  double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_NE(readFile(log_).find("was not ready within 5 s and killed by signal 9"),
            std::string::npos)
      << readFile(log_);
  EXPECT_GE(waited, 4.5);
  EXPECT_EQ(statusPid(), oldPid);
  std::string n1 = prefix() + "n1";
  auto added = gwctl({"expose", "6001", n1 + ":8080", "--mode", "proxy"});
  EXPECT_TRUE(added.ok()) << added.err;
  json end = finishClient();
  EXPECT_EQ(end["resets"], 0) << end.dump();
  EXPECT_EQ(end["refused"], 0) << end.dump();
  EXPECT_EQ(end["hashMismatch"], 0) << end.dump();
  EXPECT_EQ(end["streamsOk"], 3) << end.dump();
  EXPECT_TRUE(end["errors"].empty()) << end.dump();
  std::cout << "hung binary: killed after " << waited << " s; " << end.value("connects", 0)
            << " connects and " << end.value("bytes", 0)
            << " bytes meanwhile through the old one, 0 resets\n";
}
INSTANTIATE_TEST_SUITE_P(Buffers, UpgradeTimeoutTest, ::testing::Values("buffers"));

// What an upgrade hands over is checked before anything is used: bad input is named.
using UpgradeInputTest = ServiceFixture;
TEST_F(UpgradeInputTest, ABadHandoverIsRefusedWithWhatWasWrong) {
  auto garbage = runGatewayd({}, {"GATEWAY_UPGRADE_FDS=api=banana;ready=5"});
  EXPECT_EQ(garbage.status, 1);
  EXPECT_NE(garbage.err.find("api 'banana' is not a descriptor number"), std::string::npos)
      << garbage.err;
  auto closed = runGatewayd({}, {"GATEWAY_UPGRADE_FDS=api=700;ready=701"});
  EXPECT_EQ(closed.status, 1);
  EXPECT_NE(closed.err.find("api fd 700 is not open"), std::string::npos) << closed.err;
  // An open descriptor that is no listening socket: stdin (/dev/null), dup'ed to 3+.
  auto notSocket = run({"sh", "-c",
                        "exec 7</dev/null 8>/dev/null; GATEWAY_UPGRADE_FDS='api=7;ready=8' "
                        "exec " + std::string(GATEWAYD_PATH) + " --uplink up0 --netns " + gwh() +
                            " --socket " + socket_ + " --state-dir " + dir_ + "/state" +
                            " --bpffs " + dir_ + "/bpffs"});
  EXPECT_EQ(notSocket.status, 1);
  EXPECT_NE(notSocket.err.find("inherited control socket fd 7 is not a listening unix socket"),
            std::string::npos)
      << notSocket.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/state.json")); // nothing was started
}

INSTANTIATE_TEST_SUITE_P(Relays, UpgradeTest, ::testing::Values("buffers", "splice"));

} // namespace
} // namespace gw::test
