// SPDX-License-Identifier: MIT
// Targets by netns path: a namespace gwctl did not make and that has no name under /run/netns
// (a process's /proc/PID/ns/net, a bind mount elsewhere), as Docker without iptables, LXC or
// systemd-nspawn leave them. Wired by hand; gatewayd finds its addresses, both families.
#include <sys/mount.h>

#include <filesystem>
#include <fstream>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

class NetnsPathTest : public ServiceFixture {
protected:
  void TearDown() override {
    servers_.clear();
    if (!bound_.empty()) {
      (void)::umount2(bound_.c_str(), MNT_DETACH);
    }
    sleeper_.stop(9);
    ServiceFixture::TearDown();
  }

  // A process in a namespace of its own (unshare -n): the namespace lives while it does.
  std::string startSleeper() {
    sleeper_ = Child::spawn({"unshare", "-n", "sleep", "1000"});
    std::string path = "/proc/" + std::to_string(sleeper_.pid()) + "/ns/net";
    std::error_code ec;
    std::string ours = std::filesystem::read_symlink("/proc/self/ns/net", ec).string();
    bool unshared = waitFor([&] {
      std::error_code e;
      auto theirs = std::filesystem::read_symlink(path, e).string();
      return !e && theirs != ours;
    });
    EXPECT_TRUE(unshared) << "unshare -n sleep did not get its namespace";
    return path;
  }

  // veth `hostEnd` in gwh, its peer eth0 in the namespace at `path`: 192.168.N.2/24 and
  // fd00:N::2/64 inside, .1 and ::1 on the host end, default routes to them.
  void wire(const std::string& path, const std::string& hostEnd, int n) {
    std::string in = "nsenter --net=" + path + " ";
    std::string net4 = "192.168." + std::to_string(n) + ".";
    std::string net6 = "fd00:" + std::to_string(n) + "::";
    auto r = sh("ip -n " + gwh() + " link add " + hostEnd + " type veth peer name eth0tmp && " +
                "ip -n " + gwh() + " link set eth0tmp netns " + path + " && " + in +
                "ip link set eth0tmp name eth0 && " + in + "ip link set lo up && " +
                "ip -n " + gwh() + " addr add " + net4 + "1/24 dev " + hostEnd + " && ip -n " +
                gwh() + " addr add " + net6 + "1/64 dev " + hostEnd + " nodad && ip -n " + gwh() +
                " link set " + hostEnd + " up && " + in + "ip addr add " + net4 +
                "2/24 dev eth0 && " + in + "ip addr add " + net6 + "2/64 dev eth0 nodad && " +
                in + "ip link set eth0 up && " + in + "ip route add default via " + net4 +
                "1 && " + in + "ip -6 route add default via " + net6 + "1");
    ASSERT_TRUE(r.ok()) << r.err;
    ASSERT_TRUE(shIn(gwh(), "sysctl -qw net.ipv6.conf.all.forwarding=1").ok());
  }

  // python3 http.server on [::]:port (both families) inside the namespace at `path`, serving
  // "whoami" = `name`.
  void httpServer(const std::string& path, const std::string& name, int port) {
    std::string root = dir_ + "/www-" + name;
    std::filesystem::create_directories(root);
    std::ofstream(root + "/whoami") << name;
    servers_.push_back(Child::spawn({"nsenter", "--net=" + path, "python3", "-u", "-m",
                                     "http.server", std::to_string(port), "--bind", "::",
                                     "--directory", root},
                                    root + ".log"));
    bool up = waitFor([&] {
      return sh("nsenter --net=" + path + " curl -s -m1 -o /dev/null http://127.0.0.1:" +
                std::to_string(port) + "/")
          .ok();
    });
    ASSERT_TRUE(up) << "http server in " << path << " did not start";
  }

  // curl from ext, retried for a bounded time (the first IPv6 neighbour solicitation can be
  // late); "" when it never answers.
  std::string curlExt(const std::string& url, std::chrono::milliseconds within =
                                                  std::chrono::seconds(5)) {
    std::string body;
    waitFor(
        [&] {
          auto r = shIn(ext(), "curl -s -g -m 2 '" + url + "'");
          body = r.ok() ? r.out : std::string();
          return r.ok();
        },
        within);
    return body;
  }

  json ruleOn(int port) {
    for (const auto& e : gwctlJson({"list"})) {
      if (e["hostPort"] == std::to_string(port)) {
        return e;
      }
    }
    return json{};
  }

  Child sleeper_;
  std::vector<Child> servers_;
  std::string bound_;
};

TEST_F(NetnsPathTest, AProcessNamespaceIsServedOnBothFamiliesAcrossARestartUntilItGoes) {
  addUplink6();
  startDaemon();
  std::string path = startSleeper();
  wire(path, "gwt-pth", 52);
  httpServer(path, "proc-ns", 8080);

  auto added = gwctlJson({"expose", "6200", path + ":8080"});
  EXPECT_EQ(added["targetAddr"], "192.168.52.2");
  std::string v4 = std::string("http://") + kUplinkAddr + ":6200/whoami";
  std::string v6 = std::string("http://[") + kUplinkAddr6 + "]:6200/whoami";
  EXPECT_EQ(curlExt(v4), "proc-ns");
  EXPECT_EQ(curlExt(v6), "proc-ns");
  json rule = ruleOn(6200);
  EXPECT_EQ(rule["path"], "ebpf") << rule.dump();
  EXPECT_EQ(rule["target"], path + ":8080");

  // A restart finds the namespace again by its path.
  stopDaemon();
  startDaemon();
  EXPECT_EQ(curlExt(v4), "proc-ns") << "after a restart";
  EXPECT_EQ(curlExt(v6), "proc-ns") << "IPv6 after a restart";

  // The process ends and its namespace with it: listed as not served, saying why.
  sleeper_.stop(9);
  // Noticed by gatewayd itself (logged), before anyone lists.
  EXPECT_TRUE(waitFor([&] {
    return readFile(log_).find(path + " is gone") != std::string::npos;
  })) << readFile(log_);
  bool gone = waitFor([&] { return ruleOn(6200)["path"] == "none"; });
  rule = ruleOn(6200);
  EXPECT_TRUE(gone) << rule.dump();
  EXPECT_NE(rule["why"].get<std::string>().find(path + " is gone"), std::string::npos)
      << rule.dump();
  EXPECT_EQ(curlExt(v4, std::chrono::milliseconds(500)), "");
  // And after a restart too: kept in the state, not served, and logged.
  stopDaemon();
  startDaemon();
  rule = ruleOn(6200);
  EXPECT_EQ(rule["path"], "none") << rule.dump();
  EXPECT_NE(rule["why"].get<std::string>().find(path), std::string::npos) << rule.dump();
  EXPECT_NE(readFile(log_).find("not served"), std::string::npos);
  EXPECT_TRUE(gwctl({"unexpose", "6200"}).ok());
}

TEST_F(NetnsPathTest, WhatIsNotANetworkNamespaceIsRefusedByName) {
  startDaemon();
  std::filesystem::create_directories(dir_ + "/adir");
  for (const std::string& bad : {std::string("/etc/passwd"), dir_ + "/adir",
                                 std::string("/proc/self/ns/mnt")}) {
    auto r = gwctl({"expose", "6210", bad + ":80"});
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.err.find(bad + " is not a network namespace"), std::string::npos)
        << bad << ": " << r.err;
  }
  auto missing = gwctl({"expose", "6210", dir_ + "/nothing-here:80"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find(dir_ + "/nothing-here"), std::string::npos) << missing.err;
  EXPECT_TRUE(gwctlJson({"list"}).empty());
}

TEST_F(NetnsPathTest, ABindMountOfAManagedNamespaceIsThatNamespace) {
  startDaemon();
  std::string web = nsName("web");
  ASSERT_TRUE(gwctl({"ns", "add", web}).ok());
  // As CNI keeps its namespaces: a bind mount outside /run/netns.
  bound_ = dir_ + "/cni-abc";
  std::ofstream(bound_).close();
  ASSERT_TRUE(sh("mount --bind /run/netns/" + web + " " + bound_).ok());
  httpServer(bound_, "cni-abc", 8080);
  auto added = gwctlJson({"expose", "6220", bound_ + ":8080"});
  auto ns = gwctlJson({"ns", "list"});
  std::string addr;
  for (const auto& n : ns) {
    if (n["name"] == web) {
      addr = n["address"].get<std::string>();
    }
  }
  EXPECT_EQ(added["targetAddr"], addr) << added.dump();
  // Its IPv6 address too, as for the name.
  ASSERT_TRUE(added["families"].is_array() && added["families"].size() == 2) << added.dump();
  EXPECT_EQ(added["families"][1]["path"], "ebpf") << added.dump();
  EXPECT_EQ(curlExt(std::string("http://") + kUplinkAddr + ":6220/whoami"), "cni-abc");
}

} // namespace
} // namespace gw::test
