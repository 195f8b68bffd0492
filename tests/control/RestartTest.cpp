// SPDX-License-Identifier: MIT
// Hitless restart (issue 6 §1): live TCP streams through an expose and through masquerade, and
// UDP request/response, keep going while gatewayd is stopped and started again (SIGTERM,
// SIGKILL, a rebuilt binary). The clients measure the largest gap between answers.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

// Echo servers and a client that sends a line every 50 ms until STOPFILE exists, then prints
// {"maxGap": seconds between answers (also the trailing one), "answers": n, "error": ""}.
// It prints "ready" once the first answer is back. UDP errors (refused) are recorded, not fatal.
constexpr const char* kStreamPy = R"(
import json, os, select, socket, sys, threading, time
mode = sys.argv[1]
if mode == "tcp-server":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen()
    def echo(c):
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
    while True:
        threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
if mode == "udp-server":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(d, a)
tcp = mode == "tcp-client"
host, port, stop = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if tcp:
    s = socket.create_connection((host, port), timeout=5)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
s.setblocking(False)
start = time.monotonic()
last, gap, answers, sent, error, nxt = start, 0.0, 0, 0, "", start
while not os.path.exists(stop) and time.monotonic() < start + 120:
    now = time.monotonic()
    if now >= nxt:
        try:
            s.send(b"%d %.6f\n" % (sent, time.time()))
            sent += 1
        except BlockingIOError:
            pass
        except OSError as e:
            error = repr(e)
            if tcp:
                break
        nxt += 0.05
    if not select.select([s], [], [], max(0.0, min(nxt - time.monotonic(), 0.05)))[0]:
        continue
    try:
        d = s.recv(65536)
    except BlockingIOError:
        continue
    except OSError as e:
        error = repr(e)
        if tcp:
            break
        continue
    if tcp and not d:
        error = "eof"
        break
    now = time.monotonic()
    if answers:
        gap = max(gap, now - last)
    else:
        print("ready", flush=True)
    last = now
    answers += d.count(b"\n")
gap = max(gap, time.monotonic() - last)
print(json.dumps({"maxGap": gap, "answers": answers, "sent": sent, "error": error}), flush=True)
)";

// Rules without their counters: what must be the same before and after a restart.
json rulesOf(json list) {
  for (auto& r : list) {
    for (const char* k : {"packets", "bytes", "connections", "drops"}) {
      r.erase(k);
    }
  }
  return list;
}

// Flows without counters and ages, sorted.
std::set<std::string> flowsOf(const json& flows) {
  std::set<std::string> out;
  for (auto f : flows) {
    for (const char* k : {"idleSeconds", "ageSeconds", "packets", "bytes", "origPackets",
                          "replyPackets"}) {
      f.erase(k);
    }
    out.insert(f.dump());
  }
  return out;
}

// The first three hook with gatewayd's default (tcx where the kernel has it). SigkillClsact:
// clsact filters both runs; ClsactToDefault: clsact, then a start with the default (an upgrade
// that changes the hook under live flows).
enum class RestartKind { Sigterm, Sigkill, RebuiltBinary, SigkillClsact, ClsactToDefault };

std::string nameOf(RestartKind kind) {
  switch (kind) {
  case RestartKind::Sigterm:
    return "SigtermThenStart";
  case RestartKind::Sigkill:
    return "SigkillThenStart";
  case RestartKind::RebuiltBinary:
    return "RebuiltBinary";
  case RestartKind::SigkillClsact:
    return "SigkillClsact";
  case RestartKind::ClsactToDefault:
    return "ClsactToDefault";
  }
  return "unknown";
}

void PrintTo(RestartKind kind, std::ostream* os) {
  *os << nameOf(kind);
}

class RestartTest : public ServiceFixture,
                    public ::testing::WithParamInterface<RestartKind> {
protected:
  struct Stream {
    std::string name;
    std::string log;
    Child child;
  };

  void server(const std::string& ns, const std::string& mode, int port) {
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "python3", "-u", "-c", kStreamPy,
                                     mode, std::to_string(port)}));
    std::string ss = mode == "tcp-server" ? "ss -ltn" : "ss -lun";
    ASSERT_TRUE(waitFor(
        [&] { return shIn(ns, ss + " | grep -q ':" + std::to_string(port) + " '").ok(); }))
        << mode << " in " << ns << " did not start";
  }

  void client(const std::string& name, const std::string& ns, const std::string& mode,
              const std::string& host, int port) {
    std::string log = dir_ + "/" + name + ".out";
    streams_.push_back({name, log,
                        Child::spawn({"ip", "netns", "exec", ns, "python3", "-u", "-c", kStreamPy,
                                      mode, host, std::to_string(port), stopFile()},
                                     log)});
  }

  std::string stopFile() const { return dir_ + "/stop"; }

  bool allReady() {
    for (auto& s : streams_) {
      if (readFile(s.log).find("ready") == std::string::npos) {
        return false;
      }
    }
    return true;
  }

  // Ends the streams and returns each one's report, by name.
  std::map<std::string, json> finish() {
    std::ofstream(stopFile()) << "stop";
    std::map<std::string, json> out;
    for (auto& s : streams_) {
      bool exited = waitFor([&] { return !s.child.running(); }, std::chrono::seconds(10));
      EXPECT_TRUE(exited) << s.name << " did not stop";
      std::string text = readFile(s.log);
      auto pos = text.rfind('{');
      out[s.name] = pos == std::string::npos
                        ? json()
                        : json::parse(text.substr(pos), nullptr, false);
      EXPECT_TRUE(out[s.name].is_object()) << s.name << ": " << text;
    }
    return out;
  }

  std::vector<Child> servers_;
  std::vector<Stream> streams_;
};

TEST_P(RestartTest, FlowsKeepGoingAcrossARestart) {
  bool clsactFirst =
      GetParam() == RestartKind::SigkillClsact || GetParam() == RestartKind::ClsactToDefault;
  startDaemon(clsactFirst ? std::vector<std::string>{"--tc-attach", "clsact"}
                          : std::vector<std::string>{});
  // The kernel has tcx (6.6+) if it answers the query, programs or none.
  bool tcxAfter = GetParam() != RestartKind::SigkillClsact &&
                  tcHooked(gwh(), "up0", true).tcxQueried;
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  server(n1, "tcp-server", 8080);
  server(n1, "udp-server", 7000);
  server(ext(), "tcp-server", 9000);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  ASSERT_TRUE(gwctl({"expose", "7000", n1 + ":7000", "--proto", "udp"}).ok());
  client("expose-tcp", ext(), "tcp-client", kUplinkAddr, 6000);
  client("masquerade-tcp", n1, "tcp-client", kExternalAddr, 9000);
  client("expose-udp", ext(), "udp-client", kUplinkAddr, 7000);
  ASSERT_TRUE(waitFor([&] { return allReady(); })) << "streams did not start";

  auto rulesBefore = rulesOf(gwctlJson({"list"}));
  auto flowsBefore = flowsOf(gwctlJson({"conntrack"}));
  EXPECT_EQ(flowsBefore.size(), 3u) << json(flowsBefore).dump();
  auto listBefore = gwctlJson({"list"});

  // Traffic flows for a while before and after: a fixed observation window, not a wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string binary;
  int expected = 0;
  switch (GetParam()) {
  case RestartKind::Sigterm:
    break;
  case RestartKind::Sigkill:
  case RestartKind::SigkillClsact:
    expected = 128 + SIGKILL;
    break;
  case RestartKind::ClsactToDefault:
    break;
  case RestartKind::RebuiltBinary: {
    // Another file with other bytes, as a package upgrade leaves it.
    binary = dir_ + "/gatewayd-rebuilt";
    std::filesystem::copy_file(GATEWAYD_PATH, binary);
    std::ofstream(binary, std::ios::app) << "rebuilt " << prefix();
    std::filesystem::permissions(binary, std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
    break;
  }
  }
  int sig = GetParam() == RestartKind::Sigkill || GetParam() == RestartKind::SigkillClsact
                ? SIGKILL
                : SIGTERM;
  auto restartStart = std::chrono::steady_clock::now();
  if (GetParam() == RestartKind::ClsactToDefault) {
    EXPECT_EQ(stopDaemon(sig), expected);
    startDaemon();
  } else {
    EXPECT_EQ(restartDaemon(sig, binary), expected);
  }
  auto restartTook = std::chrono::steady_clock::now() - restartStart;
  ASSERT_TRUE(daemon_.running());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));

  auto log = readFile(log_);
  EXPECT_NE(log.find("adopted from pins"), std::string::npos) << "the new gatewayd did not adopt";
  EXPECT_EQ(gwctlJson({"status"})["datapath"]["tc"], tcxAfter ? "tcx" : "clsact");
  // One program on each of the uplink's hooks, however it was hooked before.
  for (bool ingress : {true, false}) {
    auto hooked = tcHooked(gwh(), "up0", ingress);
    EXPECT_EQ(hooked.tcx.size(), tcxAfter ? 1u : 0u) << (ingress ? "ingress" : "egress");
    EXPECT_EQ(hooked.clsact.size(), tcxAfter ? 0u : 1u) << (ingress ? "ingress" : "egress");
    EXPECT_TRUE(hooked.has("gw_uplink")) << (ingress ? "ingress" : "egress");
  }
  EXPECT_EQ(rulesOf(gwctlJson({"list"})), rulesBefore);
  EXPECT_EQ(flowsOf(gwctlJson({"conntrack"})), flowsBefore);
  // Per-rule counters live in pinned maps: they go on counting.
  auto listAfter = gwctlJson({"list"});
  for (size_t i = 0; i < listAfter.size() && i < listBefore.size(); ++i) {
    EXPECT_GT(listAfter[i]["packets"].get<uint64_t>(), listBefore[i]["packets"].get<uint64_t>())
        << listAfter[i].dump();
  }

  auto reports = finish();
  for (const auto& [name, r] : reports) {
    if (!r.is_object()) {
      continue;
    }
    double gap = r.value("maxGap", 99.0);
    std::cout << "[ restart  ] " << name << ": max gap " << gap << " s, " << r["answers"]
              << " answers of " << r["sent"] << " sent, restart took "
              << std::chrono::duration<double>(restartTook).count() << " s\n";
    RecordProperty(name + "_max_gap_ms", static_cast<int>(gap * 1000));
    EXPECT_EQ(r.value("error", "?"), "") << name << " broke: " << r.dump();
    EXPECT_LT(gap, 1.0) << name << " stalled: " << r.dump();
    EXPECT_GT(r.value("answers", 0), 20) << name << ": " << r.dump();
  }
  // Killed, the hooks stay (pinned, attached); --cleanup takes them away.
  EXPECT_EQ(stopDaemon(SIGKILL), 128 + SIGKILL);
  EXPECT_TRUE(tcHooked(gwh(), "up0", true).has("gw_uplink"));
  auto cleanup = runGatewayd({"--cleanup"});
  EXPECT_TRUE(cleanup.ok()) << cleanup.err;
  for (bool ingress : {true, false}) {
    auto hooked = tcHooked(gwh(), "up0", ingress);
    EXPECT_TRUE(hooked.tcx.empty() && hooked.clsact.empty()) << (ingress ? "ingress" : "egress");
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, RestartTest,
                         ::testing::Values(RestartKind::Sigterm, RestartKind::Sigkill,
                                           RestartKind::RebuiltBinary,
                                           RestartKind::SigkillClsact,
                                           RestartKind::ClsactToDefault),
                         [](const auto& info) { return nameOf(info.param); });

} // namespace
} // namespace gw::test
