// SPDX-License-Identifier: MIT
// gatewayd on the host as it is, not as the tests would prepare it: /sys/fs/bpf that is no
// bpffs, an eBPF data path that cannot load, a cleanup after a crash from the state alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/datapath/Bpffs.h"
#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

std::string quote(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    out += (out.empty() ? "'" : " '") + a + "'";
  }
  return out;
}

class HostTest : public ServiceFixture {};

// The machine's own /sys/fs/bpf, seen from a private copy of the mount namespace so that the
// host's mount table is never touched: there it is (made) a plain sysfs directory, as here.
TEST_F(HostTest, DefaultBpffsBelowAnUnmountedSysFsBpfLoadsAndLeavesItAsFound) {
  auto hostBefore = isBpffs(kSystemBpffs);
  ASSERT_TRUE(hostBefore) << hostBefore.error().str();
  std::string pins = std::string(kSystemBpffs) + "/" + prefix() + "gateway";
  std::string gwctl = std::string(GWCTL_PATH) + " --socket " + socket_;
  auto gatewayd = daemonArgv({});
  for (auto it = gatewayd.begin(); it != gatewayd.end(); ++it) {
    if (*it == "--bpffs") {
      *std::next(it) = pins;
    }
  }
  std::string cleanup = std::string(GATEWAYD_PATH) + " --cleanup --netns " + gwh() +
                        " --state-dir " + dir_ + "/state --bpffs " + pins;
  std::string daemon = quote(gatewayd) + " >>" + log_ + " 2>&1";
  // mounts: what is mounted on /sys/fs/bpf in this mount namespace ("" = nothing).
  std::string script = R"sh(
    set -u
    mounts() { awk '$2 == "/sys/fs/bpf" { print $3 }' /proc/self/mounts | tr '\n' ' '; }
    up() { for i in $(seq 200); do )sh" + gwctl + R"sh( status >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
    while [ -n "$(mounts)" ]; do umount /sys/fs/bpf || exit 9; done
    echo "before=$(mounts)"
    )sh" + daemon + R"sh( &
    pid=$!
    up || { echo "not up"; kill $pid; exit 1; }
    )sh" + gwctl + " -j status >" + dir_ + R"sh(/status.json
    echo "running=$(mounts)"
    )sh" + gwctl + R"sh( down >/dev/null || echo "down failed"
    wait $pid
    echo "down=$(mounts)"
    )sh" + daemon + R"sh( &
    pid=$!
    up || { echo "not up again"; kill $pid; exit 1; }
    kill -9 $pid; wait $pid 2>/dev/null
    echo "killed=$(mounts)"
    )sh" + cleanup + " >>" + log_ + R"sh( 2>&1 || echo "cleanup failed"
    echo "cleaned=$(mounts)"
  )sh";
  auto r = run({"unshare", "--mount", "--propagation", "private", "sh", "-c", script},
               std::chrono::seconds(90));
  ASSERT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_NE(r.out.find("before=\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running=bpf \n"), std::string::npos) << "mounted on /sys/fs/bpf\n" << r.out;
  EXPECT_NE(r.out.find("down=\n"), std::string::npos) << "gwctl down unmounts it\n" << r.out;
  EXPECT_NE(r.out.find("killed=bpf \n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cleaned=\n"), std::string::npos)
      << "--cleanup without --uplink unmounts what the killed one mounted\n" << r.out;
  EXPECT_EQ(r.out.find("failed"), std::string::npos) << r.out;
  auto status = nlohmann::json::parse(readFile(dir_ + "/status.json"), nullptr, false);
  ASSERT_TRUE(status.is_object()) << readFile(dir_ + "/status.json");
  EXPECT_EQ(status["datapath"]["loaded"], true) << status.dump();
  EXPECT_EQ(status["state"], "running");
  EXPECT_EQ(status["bpffs"], pins);
  auto hostAfter = isBpffs(kSystemBpffs);
  ASSERT_TRUE(hostAfter);
  EXPECT_EQ(*hostAfter, *hostBefore) << "the host's own /sys/fs/bpf is left as found";
}

TEST_F(HostTest, WithoutTheDatapathItSaysSoOrRefusesToStart) {
  const std::vector<std::string> noBpf = {"GATEWAY_FAILPOINTS=datapath-load"};
  auto refused = runGatewayd({"--datapath", "ebpf"}, noBpf);
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("--datapath ebpf"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("datapath-load"), std::string::npos) << "names the cause";

  startDaemon({}, noBpf);
  auto human = gwctl({"status"});
  EXPECT_EQ(human.status, kExitDegraded) << human.out << human.err;
  EXPECT_NE(human.out.find("DEGRADED"), std::string::npos) << human.out;
  auto status = gwctlJson({"status"});
  EXPECT_EQ(status["state"], "degraded");
  EXPECT_EQ(status["datapath"]["loaded"], false);
  EXPECT_NE(status["datapath"]["error"].get<std::string>().find("datapath-load"),
            std::string::npos);
  EXPECT_NE(readFile(log_).find(" error eBPF data path not loaded"), std::string::npos)
      << readFile(log_);
  auto metrics = sh("curl -s --unix-socket " + socket_ + " http://gw/metrics");
  EXPECT_NE(metrics.out.find("gateway_datapath_loaded 0"), std::string::npos) << metrics.out;
  // Stats still answer, with the proxy's counters, and say the data path's are missing.
  auto stats = gwctl({"stats"});
  EXPECT_EQ(stats.status, 0) << stats.err;
  EXPECT_NE(stats.out.find("eBPF data path not loaded"), std::string::npos) << stats.out;
  EXPECT_EQ(gwctlJson({"stats"})["datapathLoaded"], false);

  stopDaemon();
  startDaemon();
  EXPECT_EQ(gwctl({"status"}).status, 0);
  EXPECT_EQ(gwctlJson({"status"})["state"], "running");
}

} // namespace
} // namespace gw::test
