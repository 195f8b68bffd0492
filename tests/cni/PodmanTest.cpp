// SPDX-License-Identifier: MIT
// Podman 4.3 with its CNI backend runs a real container (a static busybox rootfs) on a conflist
// of Debian's bridge + host-local chained with gateway-portmap, inside the node namespace where
// gatewayd runs: `podman run -p` publishes through our plugin (exposes owned by
// cni/NET/ID/eth0), clients reach the container, `podman rm` takes the exposes away, and
// nothing of Podman is left (storage, mounts, cgroups, processes). Root; label cni.
//
// Podman here needs (../shared/PLATFORM.md): the CNI backend and cgroupfs in a containers.conf,
// vfs storage under --root/--runroot, runc, explicit ulimits, --rootfs, and nsenter --net
// (not `ip netns exec`). conmon binds every published host port itself (TCP listen, UDP bound)
// and holds it for the container's life; Podman runs CNI ADD before it binds them.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kCniPath = "/usr/lib/cni";
constexpr const char* kBusybox = "/usr/bin/busybox"; // busybox-static
constexpr const char* kPage = "podman-container";
constexpr const char* kSubnet = "10.97.0.0/24";

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

class CniPodmanTest : public ServiceFixture {
protected:
  void SetUp() override {
    ServiceFixture::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    for (const char* tool : {"/usr/bin/podman", "/usr/sbin/runc", "/usr/bin/conmon", kBusybox}) {
      if (!fs::exists(tool)) {
        GTEST_FAIL() << tool << " missing: run deploy/install-deps.sh";
      }
    }
    if (!fs::exists(std::string(kCniPath) + "/bridge")) {
      GTEST_FAIL() << "containernetworking-plugins missing: run deploy/install-deps.sh";
    }
    net_ = prefix() + "net";
    cgroup_ = prefix() + "podman";
    podmanDir_ = dir_ + "/podman";
    writeFiles();
  }

  void TearDown() override {
    // Before the fixture stops gatewayd (DEL needs it) and removes dir_ (mounts are under it).
    auto left = cleanupPodman();
    if (!left.empty()) {
      ADD_FAILURE() << "Podman left behind (now removed):\n" << left;
    }
    ServiceFixture::TearDown();
  }

  // containers.conf, the conflist, a plugin dir holding our plugin, and the rootfs.
  void writeFiles() {
    for (const char* sub : {"net", "plugins", "rootfs/bin", "rootfs/www", "tmp"}) {
      fs::create_directories(podmanDir_ + "/" + sub);
    }
    fs::create_symlink(GATEWAY_PORTMAP_PATH, podmanDir_ + "/plugins/gateway-portmap");
    json conflist = {
        {"cniVersion", "1.0.0"},
        {"name", net_},
        {"plugins",
         json::array(
             {{{"type", "bridge"},
               {"bridge", prefix() + "br0"},
               {"isGateway", true},
               {"ipMasq", false},
               // "ranges", not "subnet": Podman reads the network's subnets from it.
               {"ipam",
                {{"type", "host-local"},
                 {"ranges", json::array({json::array({{{"subnet", kSubnet}}})})},
                 {"dataDir", podmanDir_ + "/ipam"},
                 {"routes", json::array({{{"dst", "0.0.0.0/0"}}})}}}},
              {{"type", "gateway-portmap"},
               {"socket", socket_},
               {"capabilities", {{"portMappings", true}}}}})}};
    std::ofstream(podmanDir_ + "/net/" + net_ + ".conflist") << conflist.dump(2);
    std::ofstream(podmanDir_ + "/containers.conf")
        << "[network]\n"
        << "network_backend=\"cni\"\n"
        << "network_config_dir=\"" << podmanDir_ << "/net\"\n"
        << "cni_plugin_dirs=[\"" << kCniPath << "\",\"" << podmanDir_ << "/plugins\"]\n"
        << "[engine]\n"
        << "cgroup_manager=\"cgroupfs\"\n"
        << "events_logger=\"file\"\n";
    std::string bin = podmanDir_ + "/rootfs/bin/";
    fs::copy_file(kBusybox, bin + "busybox");
    fs::copy_file(UDP_ECHO_PATH, bin + "udp-echo");
    for (const char* tool : {"sh", "httpd"}) {
      fs::create_symlink("busybox", bin + tool);
    }
    std::ofstream(podmanDir_ + "/rootfs/www/whoami") << kPage;
  }

  // podman with this test's storage and configuration, in the node namespace.
  CommandResult podman(const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::vector<std::string> argv = {"env",
                                     "CONTAINERS_CONF=" + podmanDir_ + "/containers.conf",
                                     "nsenter",
                                     "--net=/run/netns/" + gwh(),
                                     "podman",
                                     "--root",
                                     podmanDir_ + "/root",
                                     "--runroot",
                                     podmanDir_ + "/runroot",
                                     "--tmpdir",
                                     podmanDir_ + "/tmp",
                                     "--storage-driver",
                                     "vfs",
                                     "--runtime",
                                     "runc"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
  }

  // `podman run -d` of the busybox container: httpd on 80, the UDP echo on 53. Its id.
  std::string runContainer() {
    auto start = Clock::now();
    auto r = podman({"run", "-d", "--network", net_, "--cgroup-parent", "/" + cgroup_,
                     "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "-p",
                     "8080:80", "-p", "127.0.0.1:8081:80", "-p", "5353:53/udp", "--rootfs",
                     podmanDir_ + "/rootfs", "/bin/sh", "-c",
                     "/bin/udp-echo 53 & exec /bin/httpd -f -p 80 -h /www"});
    runSeconds_ = secondsSince(start);
    std::cout << "podman run: " << runSeconds_ << " s\n";
    RecordProperty("podman_run_ms", static_cast<int>(runSeconds_ * 1000));
    EXPECT_TRUE(r.ok()) << "podman run failed:\n" << r.out << r.err;
    std::string id = trimmed(r.out);
    if (r.ok()) {
      auto key = podman({"inspect", "--format", "{{.NetworkSettings.SandboxKey}}", id});
      sandbox_ = trimmed(key.out);
      EXPECT_TRUE(sandbox_.starts_with("/run/netns/")) << "SandboxKey " << key.out << key.err;
    }
    return r.ok() ? id : "";
  }

  // The container's address, from the rules gatewayd holds for it.
  std::string containerAddr() {
    auto list = gwctlJson({"list"});
    return list.empty() ? "" : list[0].value("targetAddr", "");
  }

  std::string nodeSockets() {
    return run({"nsenter", "--net=/run/netns/" + gwh(), "ss", "-Hlntup"}).out;
  }

  CommandResult udpEcho(const std::string& ns, const std::string& addr, int port) {
    const char* script =
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.settimeout(1)\n"
        "s.sendto(b'ping-udp',(sys.argv[1],int(sys.argv[2])))\n"
        "print(s.recv(100).decode(),end='')\n";
    return run({"ip", "netns", "exec", ns, "python3", "-c", script, addr, std::to_string(port)});
  }

  std::vector<std::string> cgroupDirs() const {
    std::vector<std::string> out;
    for (const auto& h : fs::directory_iterator("/sys/fs/cgroup")) {
      std::string top = h.path().string() + "/" + cgroup_;
      if (fs::exists(top)) {
        out.push_back(top);
      }
    }
    return out;
  }

  // Every process in this test's cgroup parent (conmon, the container, `podman container
  // cleanup` started by conmon): all started by this test.
  std::set<pid_t> ourProcesses() const {
    std::set<pid_t> pids;
    for (const auto& top : cgroupDirs()) {
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(top, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() == "cgroup.procs") {
          std::istringstream in(readFile(it->path()));
          for (pid_t pid = 0; in >> pid;) {
            pids.insert(pid);
          }
        }
      }
    }
    return pids;
  }

  std::vector<std::string> ourMounts() const {
    std::vector<std::string> out;
    std::istringstream in(readFile("/proc/mounts"));
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string source, target;
      fields >> source >> target;
      if (target.starts_with(podmanDir_ + "/") || (!sandbox_.empty() && target == sandbox_)) {
        out.push_back(target);
      }
    }
    return out;
  }

  // Removes whatever Podman left of this test; says what there was. Idempotent.
  std::string cleanupPodman() {
    std::ostringstream left;
    if (podmanDir_.empty() || cgroup_.empty() || net_.empty()) {
      return {}; // SetUp stopped before naming anything
    }
    if (fs::exists(podmanDir_ + "/root")) {
      auto ps = podman({"ps", "-a", "-q"});
      if (!trimmed(ps.out).empty()) {
        left << "containers: " << ps.out;
        podman({"rm", "-f", "-t", "0", "--all"});
      }
    }
    // conmon exits after the container, and runs `podman container cleanup` on its way out.
    if (!waitFor([&] { return ourProcesses().empty(); }, std::chrono::seconds(10))) {
      for (pid_t pid : ourProcesses()) {
        left << "process " << pid << ": " << readFile("/proc/" + std::to_string(pid) + "/comm");
        ::kill(pid, SIGKILL);
      }
      waitFor([&] { return ourProcesses().empty(); }, std::chrono::seconds(5));
    }
    auto mounts = ourMounts();
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      left << "mount " << *it << "\n";
      run({"umount", "-l", *it});
    }
    if (!sandbox_.empty() && fs::exists(sandbox_)) {
      left << "netns file " << sandbox_ << "\n";
      fs::remove(sandbox_);
    }
    for (const auto& top : cgroupDirs()) {
      // Podman leaves TOP/conmon (shared by every conmon under TOP) and TOP itself.
      std::error_code ec;
      for (const auto& sub : fs::directory_iterator(top, ec)) {
        if (sub.is_directory()) {
          if (sub.path().filename() != "conmon") {
            left << "cgroup " << sub.path().string() << "\n";
          }
          ::rmdir(sub.path().c_str());
        }
      }
      ::rmdir(top.c_str());
    }
    // libcni's result cache is machine-wide (/var/lib/cni); DEL removes our entries.
    std::error_code ec;
    for (const auto& f : fs::directory_iterator("/var/lib/cni/results", ec)) {
      if (f.path().filename().string().starts_with(net_ + "-")) {
        left << "CNI cache " << f.path().string() << "\n";
        fs::remove(f.path());
      }
    }
    fs::remove_all(podmanDir_, ec);
    return left.str();
  }

  std::string net_;
  std::string cgroup_;
  std::string podmanDir_;
  std::string sandbox_; // the container's netns, made by Podman
  double runSeconds_ = 0;
};

TEST_F(CniPodmanTest, RunPublishesThePortsRmTakesThemAway) {
  startDaemon();
  std::string id = runContainer();
  ASSERT_FALSE(id.empty());
  std::string owner = "cni/" + net_ + "/" + id + "/eth0";

  auto list = gwctlJson({"list"});
  std::set<std::tuple<std::string, std::string, std::string>> rules;
  for (const auto& e : list) {
    EXPECT_EQ(e.value("owner", ""), owner) << e.dump();
    rules.insert({e.value("proto", ""), e.value("hostIp", ""), e.value("hostPort", "")});
  }
  std::set<std::tuple<std::string, std::string, std::string>> want = {
      {"tcp", "*", "8080"}, {"tcp", "127.0.0.1", "8081"}, {"udp", "*", "5353"}};
  ASSERT_EQ(rules, want) << list.dump(2);
  std::string addr = containerAddr();
  ASSERT_TRUE(waitFor([&] {
    return shIn(gwh(), "curl -s -m1 http://" + addr + "/whoami").out == kPage;
  })) << "httpd in the container never answered on " << addr << ":80";

  std::string uplink = std::string("http://") + kUplinkAddr;
  auto remote = shIn(ext(), "curl -s -m5 " + uplink + ":8080/whoami");
  EXPECT_EQ(remote.out, kPage) << "8080 from outside: " << remote.err;

  // hostIP 127.0.0.1: the node's own clients reach it, outside clients do not.
  auto local = shIn(gwh(), "curl -sS -m3 http://127.0.0.1:8081/whoami");
  EXPECT_EQ(local.out, kPage)
      << "127.0.0.1:8081 from the node: " << local.err
      << "(a timeout means the connect was not redirected and landed on conmon's listening "
         "socket, which never accepts)\nsockets in the node:\n"
      << nodeSockets();
  auto outside = shIn(ext(), "curl -s -m3 " + uplink + ":8081/whoami");
  EXPECT_NE(outside.out, kPage) << "127.0.0.1:8081 must not answer on the uplink";

  CommandResult udp;
  bool echoed = waitFor([&] {
    udp = udpEcho(ext(), kUplinkAddr, 5353);
    return udp.out == "ping-udp";
  }, std::chrono::seconds(5));
  EXPECT_TRUE(echoed) << "5353/udp from outside: " << udp.out << udp.err;

  auto start = Clock::now();
  auto rm = podman({"rm", "-f", "-t", "0", id});
  double rmSeconds = secondsSince(start);
  std::cout << "podman rm -f -t 0: " << rmSeconds << " s\n";
  RecordProperty("podman_rm_ms", static_cast<int>(rmSeconds * 1000));
  ASSERT_TRUE(rm.ok()) << rm.out << rm.err;

  EXPECT_TRUE(gwctlJson({"list"}).empty()) << "DEL left exposes";
  auto owners = run({"curl", "-s", "--unix-socket", socket_, "http://gateway/v1/owners"});
  EXPECT_EQ(json::parse(owners.out, nullptr, false), json::array()) << owners.out << owners.err;
  EXPECT_NE(shIn(ext(), "curl -s -m2 " + uplink + ":8080/whoami").out, kPage);
  auto ps = podman({"ps", "-a", "-q"});
  EXPECT_TRUE(ps.ok() && trimmed(ps.out).empty()) << ps.out << ps.err;
  EXPECT_TRUE(waitFor([&] { return nodeSockets().find("conmon") == std::string::npos; }))
      << "conmon still holds ports:\n" << nodeSockets();

  // What `podman rm` leaves is Podman's; the rest must be gone already.
  EXPECT_TRUE(waitFor([&] { return ourProcesses().empty(); }))
      << "conmon or podman cleanup still running";
  EXPECT_TRUE(ourMounts().empty()) << "mounts left: " << ourMounts().size();
  EXPECT_FALSE(fs::exists(sandbox_)) << sandbox_;
  auto left = cleanupPodman();
  EXPECT_TRUE(left.empty()) << left;
  EXPECT_TRUE(cgroupDirs().empty()) << "cgroup " << cgroup_ << " not removed";
}

// `podman network reload` runs DEL and ADD again while conmon holds the published ports: ADD
// must not take conmon's reservation for someone else's socket.
TEST_F(CniPodmanTest, NetworkReloadKeepsThePorts) {
  startDaemon();
  std::string id = runContainer();
  ASSERT_FALSE(id.empty());
  auto reload = podman({"network", "reload", id});
  EXPECT_TRUE(reload.ok()) << reload.out << reload.err << "sockets in the node:\n"
                           << nodeSockets();
  auto list = gwctlJson({"list"});
  EXPECT_EQ(list.size(), 3u) << list.dump(2);
  std::string addr = containerAddr();
  bool up = !addr.empty() && waitFor([&] {
    return shIn(gwh(), "curl -s -m1 http://" + addr + "/whoami").out == kPage;
  });
  EXPECT_TRUE(up) << "the container's httpd after the reload";
  auto remote = shIn(ext(), std::string("curl -s -m3 http://") + kUplinkAddr + ":8080/whoami");
  EXPECT_EQ(remote.out, kPage) << "8080 from outside after the reload: " << remote.err;
  auto rm = podman({"rm", "-f", "-t", "0", id});
  EXPECT_TRUE(rm.ok()) << rm.out << rm.err;
  EXPECT_TRUE(gwctlJson({"list"}).empty()) << "DEL left exposes";
}

} // namespace
} // namespace gw::test
