// SPDX-License-Identifier: MIT
#include "tests/control/ServiceFixture.h"

#include "netns/Namespace.h"

#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gw::test {

nlohmann::json ipJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip", "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv);
  if (!r.ok() || r.out.empty()) {
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(r.out, nullptr, false);
}

bool pingFrom(const std::string& ns, const std::string& addr) {
  return run({"ip", "netns", "exec", ns, "ping", "-c1", "-W2", addr}).ok();
}

bool TcHooked::has(const std::string& namePrefix) const {
  auto match = [&](const std::string& n) { return n.starts_with(namePrefix.substr(0, 15)); };
  return std::ranges::any_of(clsact, match) || std::ranges::any_of(tcx, match);
}

TcHooked tcHooked(const std::string& ns, const std::string& dev, bool ingress) {
  TcHooked out;
  auto filters = run({"tc", "-n", ns, "filter", "show", "dev", dev, ingress ? "ingress" : "egress"});
  std::istringstream lines(filters.out);
  for (std::string word, last; lines >> word; last = word) {
    if (last == "name") {
      out.clsact.push_back(word);
    }
  }
  auto nsFd = openNamespace(ns);
  if (!nsFd) {
    return out;
  }
  auto inside = NetnsGuard::enter(nsFd->get());
  if (!inside) {
    return out;
  }
  unsigned ifindex = if_nametoindex(dev.c_str());
  uint32_t ids[16] = {};
  uint32_t count = 16;
  uint32_t flags = 0;
  // BPF_TCX_INGRESS/EGRESS (46/47, kernel 6.6); the query's target is the ifindex.
  auto type = static_cast<bpf_attach_type>(ingress ? 46 : 47);
  if (ifindex == 0 ||
      bpf_prog_query(static_cast<int>(ifindex), type, 0, &flags, ids, &count) != 0) {
    return out;
  }
  out.tcxQueried = true;
  for (uint32_t i = 0; i < count; ++i) {
    int fd = bpf_prog_get_fd_by_id(ids[i]);
    if (fd < 0) {
      continue;
    }
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      out.tcx.emplace_back(info.name);
    }
    ::close(fd);
  }
  return out;
}

void ServiceFixture::SetUp() {
  sweepLeftovers();
  dir_ = std::filesystem::temp_directory_path() / (prefix() + "svc");
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  socket_ = dir_ + "/gw.sock";
  log_ = dir_ + "/gatewayd.log";
  gwhNs_ = std::make_unique<TestNamespace>(gwh());
  extNs_ = std::make_unique<TestNamespace>(ext());
  auto r = sh("ip -n " + gwh() + " link add up0 type veth peer name eth0 netns " + ext() +
              " && ip -n " + gwh() + " addr add " + kUplinkAddr + "/24 dev up0" +
              " && ip -n " + gwh() + " link set up0 up" + " && ip -n " + ext() + " addr add " +
              kExternalAddr + "/24 dev eth0" + " && ip -n " + ext() + " link set eth0 up" +
              " && ip -n " + ext() + " route add default via " + kUplinkAddr);
  ASSERT_TRUE(r.ok()) << r.err;
}

void ServiceFixture::addUplink6() {
  auto r = sh("ip -n " + gwh() + " addr add " + kUplinkAddr6 + "/64 dev up0 nodad" + " && ip -n " +
              ext() + " addr add " + kExternalAddr6 + "/64 dev eth0 nodad" + " && ip -n " + ext() +
              " -6 route add default via " + kUplinkAddr6);
  ASSERT_TRUE(r.ok()) << r.err;
}

void ServiceFixture::TearDown() {
  if (daemon_.running()) {
    stopDaemon();
  }
  if (HasFailure()) {
    std::cerr << "---- gatewayd log ----\n" << readFile(log_) << "----------------------\n";
  }
  // Pins (maps, links, the cgroup hook) go with the bpffs gatewayd mounted for this test.
  run({"umount", "-l", dir_ + "/bpffs"});
  for (const auto& ns : created_) {
    run({"ip", "netns", "del", ns});
  }
  extNs_.reset();
  gwhNs_.reset();
  std::filesystem::remove_all(dir_);
}

std::vector<std::string> ServiceFixture::daemonArgv(const std::string& binary) const {
  return {binary.empty() ? GATEWAYD_PATH : binary,
          "--uplink",
          "up0",
          "--netns",
          gwh(),
          "--socket",
          socket_,
          "--state-dir",
          dir_ + "/state",
          "--bpffs",
          dir_ + "/bpffs",
          "--log-level",
          "debug"};
}

void ServiceFixture::startDaemon(const std::vector<std::string>& extraArgs,
                                 const std::vector<std::string>& env) {
  lastArgs_ = extraArgs;
  lastEnv_ = env;
  std::vector<std::string> argv = {"env"};
  argv.insert(argv.end(), env.begin(), env.end());
  auto base = daemonArgv(binary_);
  argv.insert(argv.end(), base.begin(), base.end());
  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
  daemon_ = Child::spawn(argv, log_);
  bool up = waitFor(
      [&] {
        auto status = gwctl({"status"});
        return status.ok() || status.status == kExitDegraded || !daemon_.running();
      },
                    std::chrono::seconds(20));
  ASSERT_TRUE(up && daemon_.running()) << "gatewayd did not come up";
}

int ServiceFixture::stopDaemon(int sig) {
  return daemon_.stop(sig, std::chrono::seconds(10));
}

int ServiceFixture::restartDaemon(int sig, const std::string& binary) {
  int status = stopDaemon(sig);
  binary_ = binary;
  auto args = lastArgs_;
  auto env = lastEnv_;
  startDaemon(args, env);
  return status;
}

CommandResult ServiceFixture::runGatewayd(const std::vector<std::string>& extraArgs,
                                          const std::vector<std::string>& env) {
  std::vector<std::string> argv = {"env"};
  argv.insert(argv.end(), env.begin(), env.end());
  auto base = daemonArgv(binary_);
  argv.insert(argv.end(), base.begin(), base.end());
  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
  return run(argv, std::chrono::seconds(60));
}

CommandResult ServiceFixture::gwctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GWCTL_PATH, "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, std::chrono::seconds(60));
}

nlohmann::json ServiceFixture::gwctlJson(const std::vector<std::string>& args) {
  auto argv = args;
  argv.push_back("-j");
  auto r = gwctl(argv);
  // `gwctl status` answers, and exits 3, while gatewayd runs degraded.
  bool degraded = !args.empty() && args[0] == "status" && r.status == kExitDegraded;
  EXPECT_TRUE(r.ok() || degraded) << "gwctl failed: " << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out;
  return j;
}

std::string ServiceFixture::nsName(const std::string& suffix) {
  std::string name = prefix() + suffix;
  created_.push_back(name);
  return name;
}

} // namespace gw::test
