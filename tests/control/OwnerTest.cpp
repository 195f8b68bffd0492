// SPDX-License-Identifier: MIT
// Exposes with an owner (the CNI plugin's rules): listed with it, kept across a restart,
// removed together by `gwctl unexpose --owner`, again without error.
#include <fstream>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

using nlohmann::json;

class OwnerTest : public ServiceFixture {};

TEST_F(OwnerTest, AnOwnersRulesSurviveARestartAndGoTogether) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  const std::string owner = "cni/0123abcd/eth0";
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080", "--owner", owner}).ok());
  ASSERT_TRUE(gwctl({"expose", "6001", n1 + ":53", "--proto", "udp", "--owner", owner}).ok());
  ASSERT_TRUE(gwctl({"expose", "6002", n1 + ":8082"}).ok());
  auto owned = [&] {
    size_t n = 0;
    for (const auto& e : gwctlJson({"list"})) {
      n += e.value("owner", "") == owner ? 1 : 0;
    }
    return n;
  };
  EXPECT_EQ(owned(), 2u);
  auto filtered = gwctlJson({"list", "--owner", owner});
  ASSERT_EQ(filtered.size(), 2u) << filtered.dump();
  EXPECT_EQ(filtered[0].value("owner", ""), owner);
  auto table = gwctl({"list", "--owner", owner});
  EXPECT_EQ(table.out.find(":6002"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(":6001"), std::string::npos) << table.out;
  EXPECT_EQ(gwctl({"list", "--owner", "not ok"}).status, 2);
  ASSERT_EQ(restartDaemon(15), 0);
  EXPECT_EQ(owned(), 2u) << "the state keeps the owner";

  auto gone = gwctl({"unexpose", "--owner", owner});
  ASSERT_TRUE(gone.ok()) << gone.err;
  EXPECT_EQ(gone.out, "unexposed 2 rules of " + owner + "\n");
  EXPECT_EQ(owned(), 0u);
  EXPECT_EQ(gwctlJson({"list"}).size(), 1u) << "the unowned rule stays";
  auto again = gwctl({"unexpose", "--owner", owner});
  EXPECT_TRUE(again.ok()) << again.err;
  EXPECT_EQ(again.out, "unexposed 0 rules of " + owner + "\n");

  auto bad = gwctl({"unexpose", "--owner", "not ok"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.err.find("owner 'not ok'"), std::string::npos) << bad.err;
  auto badAdd = gwctl({"expose", "6003", n1 + ":8083", "--owner", "-x"});
  EXPECT_FALSE(badAdd.ok());
  EXPECT_EQ(gwctlJson({"list"}).size(), 1u) << "nothing half-made";
}

// The plugin's ADD over the API: PUT /v1/owners/OWNER with the whole set, twice, the second
// replacing the first; a clash with another rule's port changes nothing.
TEST_F(OwnerTest, PutReplacesAnOwnersSet) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  auto put = [&](const std::string& body) {
    return run({"curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--unix-socket",
                socket_, "-X", "PUT", "-H", "Content-Type: application/json", "--data", body,
                "http://gateway/v1/owners/cni%2Fabc%2Feth0"});
  };
  auto first = put(R"([{"hostPort":"6000","target":")" + n1 + R"(:8080"}])");
  EXPECT_EQ(first.out, "200") << first.err;
  auto second = put(R"([{"hostPort":"6000","target":")" + n1 + R"(:8080"},)" +
                    R"({"hostPort":"6001","target":")" + n1 + R"(:53","proto":"udp"}])");
  EXPECT_EQ(second.out, "200") << second.err;
  ASSERT_TRUE(gwctl({"expose", "6002", n1 + ":9000"}).ok());
  auto clash = put(R"([{"hostPort":"6002","target":")" + n1 + R"(:8080"}])");
  EXPECT_EQ(clash.out, "409") << clash.err;
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 3u) << list.dump();
  size_t owned = 0;
  for (const auto& e : list) {
    owned += e.value("owner", "") == "cni/abc/eth0" ? 1 : 0;
  }
  EXPECT_EQ(owned, 2u);
}

// After a reboot the CNI plugin's containers are gone (their namespaces with the boot): the
// first start drops their rules (host.json names the boot it was written in); other owners'
// and unowned rules stay, and a restart within one boot keeps everything.
TEST_F(OwnerTest, ContainerRulesOfAnEarlierBootAreDropped) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080", "--owner", "cni/net/c0ffee/eth0"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6001", n1 + ":8081", "--owner", "deploy/web"}).ok());
  ASSERT_TRUE(gwctl({"expose", "6002", n1 + ":8082"}).ok());
  ASSERT_EQ(restartDaemon(15), 0);
  EXPECT_EQ(gwctlJson({"list"}).size(), 3u) << "the same boot: kept";

  ASSERT_EQ(stopDaemon(), 0);
  std::string hostFile = dir_ + "/state/host.json";
  auto host = json::parse(readFile(hostFile));
  ASSERT_EQ(host.value("bootId", ""), readFile("/proc/sys/kernel/random/boot_id").substr(0, 36));
  host["bootId"] = "00000000-0000-0000-0000-000000000000"; // as an earlier boot wrote it
  std::ofstream(hostFile) << host.dump();
  startDaemon();
  auto list = gwctlJson({"list"});
  ASSERT_EQ(list.size(), 2u) << list.dump();
  EXPECT_EQ(list[0].value("owner", ""), "deploy/web");
  EXPECT_FALSE(list[1].contains("owner") && !list[1]["owner"].is_null()) << list.dump();
  EXPECT_NE(readFile(log_).find("1 container attachment(s) of the earlier boot dropped"),
            std::string::npos);
  // Its port is free for this boot's containers.
  EXPECT_TRUE(gwctl({"expose", "6000", n1 + ":8080", "--owner", "cni/net/beef/eth0"}).ok());
}

} // namespace
} // namespace gw::test
