// SPDX-License-Identifier: MIT
// gatewayd + gwctl end to end: the tutorials' topologies built through the API, checked with
// iproute2's JSON output and real pings.
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

bool netnsListed(const std::string& name) {
  for (const auto& n : ipJson({"netns", "list"})) {
    if (n.value("name", "") == name) {
      return true;
    }
  }
  return false;
}

// "10.88.0.2/16" addresses of `dev` inside `ns`, from `ip -j addr`.
std::vector<std::string> addressesOf(const std::string& ns, const std::string& dev) {
  std::vector<std::string> out;
  for (const auto& link : ipJson({"-n", ns, "addr", "show", "dev", dev})) {
    for (const auto& a : link.value("addr_info", json::array())) {
      if (a.value("family", "") == "inet") {
        out.push_back(a["local"].get<std::string>() + "/" + std::to_string(a["prefixlen"].get<int>()));
      }
    }
  }
  return out;
}

json linkOf(const std::string& ns, const std::string& dev) {
  auto links = ipJson({"-d", "-n", ns, "link", "show", "dev", dev});
  return links.empty() ? json() : links[0];
}

size_t linkCount(const std::string& ns) {
  return ipJson({"-n", ns, "link", "show"}).size();
}

class ServiceTest : public ServiceFixture {};

TEST_F(ServiceTest, NsListAgreesWithIproute2) {
  startDaemon();
  std::string a = nsName("a");
  std::string b = nsName("b");
  ASSERT_TRUE(gwctl({"ns", "add", a}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", b}).ok());
  auto list = gwctlJson({"ns", "list"});
  ASSERT_EQ(list.size(), 2u);
  for (const auto& n : list) {
    std::string name = n["name"];
    EXPECT_TRUE(netnsListed(name)) << name;
    EXPECT_EQ(n["state"], "up");
    EXPECT_EQ(n["gateway"], "10.88.0.1");
    EXPECT_EQ(addressesOf(name, "eth0"), std::vector<std::string>{n["prefix"]});
    // The gateway end lives in the gateway host, enslaved to gw0 and up.
    auto host = linkOf(gwh(), n["link"]);
    ASSERT_FALSE(host.is_null()) << n["link"];
    EXPECT_EQ(host.value("master", ""), "gw0");
    EXPECT_NE(host.value("flags", json::array()).dump().find("\"UP\""), std::string::npos);
    // Default route via the gateway and lo up inside.
    auto routes = ipJson({"-n", name, "route", "show", "default"});
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(routes[0].value("gateway", ""), "10.88.0.1");
    EXPECT_NE(linkOf(name, "lo").value("flags", json::array()).dump().find("\"UP\""),
              std::string::npos);
  }
  EXPECT_NE(list[0]["address"], list[1]["address"]);
  EXPECT_EQ(addressesOf(gwh(), "gw0"), std::vector<std::string>{"10.88.0.1/16"});
  auto forward = shIn(gwh(), "cat /proc/sys/net/ipv4/ip_forward");
  EXPECT_EQ(forward.out, "1\n");
  // `ip netns exec` works on ours.
  EXPECT_TRUE(run({"ip", "netns", "exec", a, "true"}).ok());
}

TEST_F(ServiceTest, ThreeNamespacesOnABridgePingEachOtherAndTheGateway) {
  startDaemon();
  std::vector<std::string> names = {nsName("a"), nsName("b"), nsName("c")};
  std::vector<std::string> addrs;
  for (const auto& n : names) {
    auto r = gwctlJson({"ns", "add", n});
    addrs.push_back(r["address"]);
  }
  for (const auto& from : names) {
    for (const auto& to : addrs) {
      EXPECT_TRUE(pingFrom(from, to)) << from << " -> " << to;
    }
    EXPECT_TRUE(pingFrom(from, "10.88.0.1")) << from << " -> gateway";
    // The gateway host's uplink address: a namespace pinging the gateway host.
    EXPECT_TRUE(pingFrom(from, kUplinkAddr)) << from << " -> gateway host";
  }
  EXPECT_TRUE(pingFrom(gwh(), addrs[0]));
}

TEST_F(ServiceTest, PointToPointSubnetAsInTheTutorial) {
  startDaemon();
  std::string n = nsName("p");
  auto r = gwctlJson({"ns", "add", n, "--subnet", "192.168.1.0/24"});
  EXPECT_EQ(r["address"], "192.168.1.2");
  EXPECT_EQ(r["gateway"], "192.168.1.1");
  EXPECT_EQ(addressesOf(gwh(), r["link"]), std::vector<std::string>{"192.168.1.1/24"});
  EXPECT_EQ(addressesOf(n, "eth0"), std::vector<std::string>{"192.168.1.2/24"});
  EXPECT_TRUE(pingFrom(n, "192.168.1.1"));
  EXPECT_TRUE(pingFrom(gwh(), "192.168.1.2"));
  EXPECT_TRUE(pingFrom(n, kUplinkAddr));
}

TEST_F(ServiceTest, NsDelRemovesEverythingNsAddMade) {
  startDaemon();
  size_t before = linkCount(gwh());
  std::string a = nsName("a");
  std::string p = nsName("p");
  ASSERT_TRUE(gwctl({"ns", "add", a}).ok());
  ASSERT_TRUE(gwctl({"ns", "add", p, "--subnet", "192.168.7.0/24"}).ok());
  EXPECT_EQ(linkCount(gwh()), before + 3); // gw0 + two gateway ends
  ASSERT_TRUE(gwctl({"ns", "del", a}).ok());
  ASSERT_TRUE(gwctl({"ns", "del", p}).ok());
  EXPECT_FALSE(netnsListed(a));
  EXPECT_FALSE(netnsListed(p));
  EXPECT_EQ(linkCount(gwh()), before);
  EXPECT_TRUE(gwctlJson({"ns", "list"}).empty());
}

// One line on stderr naming the problem, a non-zero exit, nothing half-made.
void expectRefused(const CommandResult& r, const std::string& mention) {
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find(mention), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr: " << r.err;
}

TEST_F(ServiceTest, BadInputIsRefusedClearlyAndLeavesNothing) {
  startDaemon();
  auto namespacesBefore = ipJson({"netns", "list"}).size();
  size_t linksBefore = linkCount(gwh());
  expectRefused(gwctl({"ns", "add", "a-name-longer-than-15"}), "a-name-longer-than-15");
  expectRefused(gwctl({"ns", "add", "bad/name"}), "bad/name");
  expectRefused(gwctl({"ns", "add", ".."}), "..");
  expectRefused(gwctl({"ns", "add", ext()}), ext()); // exists (made by ip netns add)
  expectRefused(gwctl({"ns", "del", prefix() + "nope"}), prefix() + "nope");
  expectRefused(gwctl({"ns", "add", nsName("x"), "--subnet", "192.168.1.0/33"}), "192.168.1.0/33");
  expectRefused(gwctl({"ns", "add", nsName("x"), "--subnet", "banana"}), "banana");
  // Overlaps the uplink's subnet and, later, the default bridge.
  expectRefused(gwctl({"ns", "add", nsName("x"), "--subnet", "198.18.0.0/16"}), "198.18.0.0/16");
  ASSERT_TRUE(gwctl({"ns", "add", nsName("a")}).ok());
  expectRefused(gwctl({"ns", "add", nsName("x"), "--subnet", "10.88.4.0/24"}), "10.88.0.0/16");
  expectRefused(gwctl({"ns", "add", nsName("x"), "--bridge", "br-new"}), "--subnet");
  expectRefused(gwctl({"ns", "add", nsName("x"), "--bridge", "bad name!"}), "bad name!");
  // An exhausted pool: a /30 bridge has room for one namespace.
  ASSERT_TRUE(gwctl({"ns", "add", nsName("s1"), "--bridge", "gwtsmall", "--subnet",
                     "10.99.0.0/30"}).ok());
  expectRefused(gwctl({"ns", "add", nsName("s2"), "--bridge", "gwtsmall"}), "exhausted");
  expectRefused(gwctl({"frobnicate"}), "frobnicate");
  // Only the two good namespaces and their links were made.
  EXPECT_EQ(ipJson({"netns", "list"}).size(), namespacesBefore + 2);
  EXPECT_EQ(linkCount(gwh()), linksBefore + 4); // gw0, gwtsmall, two gateway ends
  EXPECT_EQ(gwctlJson({"ns", "list"}).size(), 2u);
}

TEST_F(ServiceTest, DaemonNotRunningAndUnknownUplinkAreClearErrors) {
  expectRefused(gwctl({"ns", "list"}), "gatewayd is not running");
  auto r = run({GATEWAYD_PATH, "--uplink", "nosuchlink0", "--netns", gwh(), "--socket",
                dir_ + "/x.sock", "--state-dir", dir_ + "/state"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("nosuchlink0"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x.sock"));
  auto noNs = run({GATEWAYD_PATH, "--uplink", "up0", "--netns", prefix() + "nons", "--socket",
                   dir_ + "/x.sock"});
  EXPECT_NE(noNs.status, 0);
  EXPECT_NE(noNs.err.find(prefix() + "nons"), std::string::npos) << noNs.err;
}

TEST_F(ServiceTest, FailureMidwayRollsBack) {
  startDaemon({}, {"GATEWAY_FAILPOINTS=ns-add-after-veth"});
  size_t linksBefore = linkCount(gwh());
  std::string a = nsName("a");
  auto r = gwctl({"ns", "add", a});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("rolled back"), std::string::npos) << r.err;
  // The namespace, the veth and the bridge made by this command are gone again.
  EXPECT_FALSE(netnsListed(a));
  EXPECT_EQ(linkCount(gwh()), linksBefore);
  EXPECT_TRUE(gwctlJson({"ns", "list"}).empty());
}

TEST_F(ServiceTest, RestartAdoptsWhatExistsAndRecreatesWhatIsMissing) {
  startDaemon();
  std::string a = nsName("a");
  std::string b = nsName("b");
  auto ra = gwctlJson({"ns", "add", a});
  auto rb = gwctlJson({"ns", "add", b});
  stopDaemon(9); // killed: no chance to tidy up
  ASSERT_TRUE(run({"ip", "netns", "del", b}).ok());
  startDaemon();
  auto list = gwctlJson({"ns", "list"});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["address"], ra["address"]);
  EXPECT_EQ(list[1]["address"], rb["address"]);
  EXPECT_EQ(list[1]["state"], "up");
  // Recreated, and nothing duplicated.
  EXPECT_EQ(addressesOf(a, "eth0").size(), 1u);
  EXPECT_EQ(addressesOf(b, "eth0").size(), 1u);
  EXPECT_EQ(addressesOf(gwh(), "gw0").size(), 1u);
  EXPECT_EQ(ipJson({"-n", a, "route", "show", "default"}).size(), 1u);
  EXPECT_TRUE(pingFrom(a, rb["address"]));
}

TEST_F(ServiceTest, CorruptStateRefusesToStartAndKeepsTheBackup) {
  // Changes go to state.journal; a clean stop folds them into state.json, keeping the
  // previous state.json as the backup: two runs make one.
  startDaemon();
  ASSERT_TRUE(gwctl({"ns", "add", nsName("a")}).ok());
  stopDaemon();
  startDaemon();
  ASSERT_TRUE(gwctl({"ns", "add", nsName("b")}).ok());
  stopDaemon();
  std::string state = dir_ + "/state/state.json";
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state/state.journal"));
  ASSERT_TRUE(std::filesystem::exists(state + ".bak"));
  std::filesystem::resize_file(state, std::filesystem::file_size(state) / 2);
  auto r = run({GATEWAYD_PATH, "--uplink", "up0", "--netns", gwh(), "--socket", socket_,
                "--state-dir", dir_ + "/state"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find(state), std::string::npos) << r.err;
  // The backup is the last good state: one namespace (before the second add).
  std::ifstream in(state + ".bak");
  auto bak = json::parse(in, nullptr, false);
  ASSERT_FALSE(bak.is_discarded());
  EXPECT_EQ(bak["namespaces"].size(), 1u);
}

TEST_F(ServiceTest, ApiSpeaksHttpForCurl) {
  startDaemon();
  auto r = run({"curl", "-s", "--unix-socket", socket_, "http://gateway/v1/status"});
  ASSERT_TRUE(r.ok()) << r.err;
  auto j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["uplink"]["name"], "up0");
  auto bad = run({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket_,
                  "-X", "POST", "-d", "{not json", "http://gateway/v1/namespaces"});
  EXPECT_EQ(bad.out, "400");
  auto missing = run({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                      socket_, "http://gateway/v1/nothing"});
  EXPECT_EQ(missing.out, "404");
}

} // namespace
} // namespace gw::test

namespace gw::test {
namespace {

TEST_F(ServiceTest, ReadinessIsNotifiedToSystemd) {
  // A stand-in for systemd's notify socket.
  std::string path = dir_ + "/notify";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  startDaemon({}, {"NOTIFY_SOCKET=" + path});
  char buf[512] = {};
  ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  ASSERT_GT(n, 0) << "no sd_notify message";
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("READY=1", 0), 0u) << buf;
  // Ready means the API answers.
  EXPECT_TRUE(gwctl({"status"}).ok());
}

} // namespace
} // namespace gw::test

namespace gw::test {
namespace {

// Entries in the pinned expose map: what forwards, whatever the state says.
size_t exposeMapEntries(const std::string& bpffs) {
  auto r = run({"bpftool", "-j", "map", "dump", "pinned", bpffs + "/gw_expose_v4"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_array() ? j.size() : 0;
}

TEST_F(ServiceTest, ACrashMidBatchLeavesNoRuleInTheMapsOnceRestarted) {
  startDaemon({}, {"GATEWAY_FAILPOINTS=expose-batch-midway"});
  std::string file = dir_ + "/batch";
  {
    std::ofstream out(file);
    for (int i = 0; i < 40; ++i) {
      out << 7000 + i << " 10.0.0.9:80\n";
    }
  }
  auto r = gwctl({"expose", "--file", file});
  EXPECT_NE(r.status, 0) << "gatewayd died mid-batch";
  ASSERT_TRUE(waitFor([&] { return !daemon_.running(); }, std::chrono::seconds(10)));
  stopDaemon();
  ASSERT_EQ(exposeMapEntries(dir_ + "/bpffs"), 20u) << "half the batch was in the maps";

  startDaemon();
  EXPECT_EQ(gwctlJson({"list"}).size(), 0u) << "the state never had the batch";
  EXPECT_EQ(exposeMapEntries(dir_ + "/bpffs"), 0u) << "and neither do the maps now";
  auto log = readFile(log_);
  EXPECT_NE(log.find("reconcile: 20 expose map entries without state removed"),
            std::string::npos)
      << log;
}

TEST_F(ServiceTest, ItsFilesAreMadeSafely) {
  // A regular file where the socket should be is refused, not deleted.
  {
    std::ofstream(socket_) << "not a socket";
  }
  auto refused = runGatewayd({});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("not a socket"), std::string::npos) << refused.err;
  std::ifstream kept(socket_);
  std::string word;
  EXPECT_TRUE(static_cast<bool>(kept >> word)) << "the file is still there";
  std::filesystem::remove(socket_);

  // A state directory that is a link, or that is someone else's, is refused.
  std::string elsewhere = dir_ + "/elsewhere";
  std::filesystem::create_directories(elsewhere);
  std::filesystem::create_symlink(elsewhere, dir_ + "/state");
  auto linked = runGatewayd({});
  EXPECT_NE(linked.status, 0);
  EXPECT_NE(linked.err.find("is not a directory (a symlink?)"), std::string::npos) << linked.err;
  std::filesystem::remove(dir_ + "/state");
  std::filesystem::create_directories(dir_ + "/state");
  ASSERT_EQ(::chown((dir_ + "/state").c_str(), 65534, 65534), 0);
  auto foreign = runGatewayd({});
  EXPECT_NE(foreign.status, 0);
  EXPECT_NE(foreign.err.find("is owned by uid 65534"), std::string::npos) << foreign.err;
  std::filesystem::remove(dir_ + "/state");

  // The state directory is root's alone; a link planted for the journal is not followed.
  startDaemon();
  std::string victim = dir_ + "/victim";
  {
    std::ofstream(victim) << "untouched";
  }
  std::filesystem::create_directories(dir_ + "/state");
  std::filesystem::create_symlink(victim, dir_ + "/state/state.journal");
  EXPECT_FALSE(gwctl({"ns", "add", nsName("a")}).ok()) << "the journal is a link: refused";
  std::ifstream in(victim);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "untouched");
  std::filesystem::remove(dir_ + "/state/state.journal");
  EXPECT_TRUE(gwctl({"ns", "add", nsName("b")}).ok());
  auto perms = std::filesystem::status(dir_ + "/state").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
  auto journal = std::filesystem::status(dir_ + "/state/state.journal").permissions();
  EXPECT_EQ(journal & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(ServiceTest, ACrashMidNsAddIsRolledBackOnStart) {
  std::string a = nsName("a");
  std::string hostLink = "gw-" + a;
  ASSERT_LE(hostLink.size(), 15u);
  startDaemon({}, {"GATEWAY_FAILPOINTS=ns-add-before-commit"});
  EXPECT_NE(gwctl({"ns", "add", a}).status, 0) << "gatewayd died before its commit";
  ASSERT_TRUE(waitFor([&] { return !daemon_.running(); }, std::chrono::seconds(10)));
  stopDaemon();
  auto exists = [&] { return run({"ip", "netns", "exec", a, "true"}).ok(); };
  ASSERT_TRUE(exists()) << "the crash left the namespace";
  ASSERT_EQ(ipJson({"-n", gwh(), "link", "show", hostLink}).size(), 1u) << "and its link";

  startDaemon();
  EXPECT_FALSE(exists()) << "rolled back on start";
  EXPECT_EQ(ipJson({"-n", gwh(), "link", "show", hostLink}).size(), 0u);
  EXPECT_EQ(ipJson({"-n", gwh(), "link", "show", "gw0"}).size(), 0u) << "its new bridge too";
  EXPECT_EQ(gwctlJson({"ns", "list"}).size(), 0u);
  auto log = readFile(log_);
  EXPECT_NE(log.find("ns add " + a + " was cut short by a crash: rolled back"), std::string::npos)
      << log;
  EXPECT_TRUE(gwctl({"ns", "add", a}).ok()) << "and the same add works again";
}

} // namespace
} // namespace gw::test
