// SPDX-License-Identifier: MIT
// gateway-cni-setup against fixture conflists in a temp dir (no root): what install makes of
// the configs runtimes ship, that it is idempotent, that uninstall gives the original back and
// that what it cannot understand is refused with the file named and left as it was.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <sys/stat.h>
#include <sys/wait.h>

#include "cni/Setup.h"
#include "tests/cni/FakeGateway.h"
#include "tests/cni/Fixtures.h"

namespace gw::cni::setup {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

Json portmapEntry() {
  return Json::parse(R"({"type":"portmap","capabilities":{"portMappings":true}})");
}

class SetupTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "gw-cni-setup-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "net.d");
    fs::create_directories(root_ / "bin");
    spit(root_ / "gateway-portmap.src", "#!/bin/sh\necho plugin\n");
    options_.confDir = (root_ / "net.d").string();
    options_.binDir = (root_ / "bin").string();
    options_.plugin = (root_ / "gateway-portmap.src").string();
    options_.socket = "/run/gateway/gateway.sock";
  }
  void TearDown() override { fs::remove_all(root_); }

  // A fixture conflist into the conf dir under `name`; its text.
  std::string place(const std::string& fixture, const std::string& name) {
    std::string text = slurp(fs::path(GW_CONFLIST_DIR) / fixture);
    spit(conf(name), text);
    return text;
  }
  fs::path conf(const std::string& name) const { return root_ / "net.d" / name; }
  Json json(const std::string& name) const { return Json::parse(slurp(conf(name))); }

  fs::path root_;
  Options options_;
};

TEST_F(SetupTest, ContainerdDefaultGetsOursInPlaceOfPortmap) {
  std::string before = place("10-containerd-net.conflist", "10-containerd-net.conflist");
  auto report = install(options_);
  ASSERT_TRUE(report) << report.error().str();
  Json after = json("10-containerd-net.conflist");
  Json original = Json::parse(before);
  ASSERT_EQ(after["plugins"].size(), 2u);
  EXPECT_EQ(after["plugins"][0], original["plugins"][0]); // bridge untouched
  EXPECT_EQ(after["plugins"][1], Json::parse(R"({"type":"gateway-portmap",
      "capabilities":{"portMappings":true},"socket":"/run/gateway/gateway.sock"})"));
  EXPECT_EQ(after["name"], "containerd-net");
  EXPECT_EQ(after["cniVersion"], "1.0.0");
  // The plugin went into the bin dir, executable.
  fs::path plugin = root_ / "bin" / "gateway-portmap";
  EXPECT_EQ(slurp(plugin), "#!/bin/sh\necho plugin\n");
  struct stat st {};
  ASSERT_EQ(::stat(plugin.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST_F(SetupTest, FlannelKeepsItsDelegateAndPortmapsCapabilities) {
  place("10-flannel.conflist", "10-flannel.conflist");
  options_.socket = "/var/run/gw/api.sock";
  ASSERT_TRUE(install(options_));
  Json after = json("10-flannel.conflist");
  EXPECT_EQ(after["plugins"][0]["delegate"]["hairpinMode"], true);
  EXPECT_EQ(after["plugins"][1]["type"], "gateway-portmap");
  EXPECT_EQ(after["plugins"][1]["capabilities"], Json::parse(R"({"portMappings":true})"));
  EXPECT_EQ(after["plugins"][1]["socket"], "/var/run/gw/api.sock");
  EXPECT_FALSE(after["plugins"][1].contains("snat")); // portmap's own options stay with it
}

TEST_F(SetupTest, WithoutPortmapOursIsAppendedAndUninstallTakesItOut) {
  std::string before = place("20-bridge-only.conflist", "20-bridge-only.conflist");
  ASSERT_TRUE(install(options_));
  Json after = json("20-bridge-only.conflist");
  ASSERT_EQ(after["plugins"].size(), 4u);
  EXPECT_EQ(after["plugins"][3]["type"], "gateway-portmap");
  EXPECT_EQ(after["plugins"][2]["type"], "tuning");
  ASSERT_TRUE(uninstall(options_));
  EXPECT_EQ(slurp(conf("20-bridge-only.conflist")), before);
}

TEST_F(SetupTest, InstallTwiceChangesNothingTheSecondTime) {
  std::string before = place("10-containerd-net.conflist", "10-containerd-net.conflist");
  ASSERT_TRUE(install(options_));
  std::string once = slurp(conf("10-containerd-net.conflist"));
  std::string record = slurp(conf(kRecordName));
  auto again = install(options_);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(again->back(), conf("10-containerd-net.conflist").string() +
                               ": gateway-portmap already chained");
  EXPECT_EQ(slurp(conf("10-containerd-net.conflist")), once);
  EXPECT_EQ(slurp(conf(kRecordName)), record);
  // The record still names the original: uninstall gives it back.
  ASSERT_TRUE(uninstall(options_));
  EXPECT_EQ(slurp(conf("10-containerd-net.conflist")), before);
}

TEST_F(SetupTest, UninstallRestoresTheOriginalByteForByte) {
  // Odd spacing and key order: what the runtime had comes back as it was, not re-rendered.
  std::string before = "{ \"name\":\"n\",   \"cniVersion\":\"1.0.0\",\n\t\"plugins\":[{\"type\""
                       ":\"bridge\"},{\"capabilities\":{\"portMappings\":true},\"type\":"
                       "\"portmap\"}] }";
  spit(conf("05-odd.conflist"), before);
  ASSERT_TRUE(install(options_));
  EXPECT_NE(slurp(conf("05-odd.conflist")), before);
  auto report = uninstall(options_);
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_EQ(slurp(conf("05-odd.conflist")), before);
  EXPECT_FALSE(fs::exists(conf(kRecordName)));
  // The plugin binary stays: a pod added with it may still be deleted through it.
  EXPECT_TRUE(fs::exists(root_ / "bin" / "gateway-portmap"));
  // Uninstall again: nothing of ours left, nothing changed.
  ASSERT_TRUE(uninstall(options_));
  EXPECT_EQ(slurp(conf("05-odd.conflist")), before);
}

TEST_F(SetupTest, UninstallAfterAnotherEditPutsPortmapBackAndKeepsTheEdit) {
  place("10-containerd-net.conflist", "10-containerd-net.conflist");
  ASSERT_TRUE(install(options_));
  Json edited = json("10-containerd-net.conflist");
  edited["plugins"].push_back(
      Json::parse(R"({"type":"bandwidth","capabilities":{"bandwidth":true}})"));
  spit(conf("10-containerd-net.conflist"), edited.dump());
  ASSERT_TRUE(uninstall(options_));
  Json after = json("10-containerd-net.conflist");
  ASSERT_EQ(after["plugins"].size(), 3u);
  EXPECT_EQ(after["plugins"][1], portmapEntry());
  EXPECT_EQ(after["plugins"][2]["type"], "bandwidth");
}

TEST_F(SetupTest, UninstallWithoutARecordPutsADefaultPortmapInOursPlace) {
  spit(conf("10-x.conflist"), R"({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},
      {"type":"gateway-portmap","capabilities":{"portMappings":true}}]})");
  ASSERT_TRUE(uninstall(options_));
  Json after = json("10-x.conflist");
  EXPECT_EQ(after["plugins"][1], portmapEntry());
}

TEST_F(SetupTest, BadJsonIsRefusedAndLeftUntouched) {
  std::string before = place("bad.conflist", "10-bad.conflist");
  auto report = install(options_);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().str().find(conf("10-bad.conflist").string() + ": not JSON"),
            std::string::npos)
      << report.error().str();
  EXPECT_EQ(slurp(conf("10-bad.conflist")), before);
  EXPECT_FALSE(fs::exists(conf(kRecordName)));
  EXPECT_FALSE(fs::exists(root_ / "bin" / "gateway-portmap")); // refused before any write
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "net.d"), fs::directory_iterator()), 1);
}

struct Refusal {
  const char* name;
  const char* text;
  const char* says;
};

class SetupRefusalTest : public SetupTest, public ::testing::WithParamInterface<Refusal> {};

TEST_P(SetupRefusalTest, NamesTheFileAndWhatWasWrong) {
  spit(conf("10-net.conflist"), GetParam().text);
  auto report = install(options_);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().str().find(conf("10-net.conflist").string() + ": "), std::string::npos)
      << report.error().str();
  EXPECT_NE(report.error().str().find(GetParam().says), std::string::npos)
      << report.error().str();
  EXPECT_EQ(slurp(conf("10-net.conflist")), GetParam().text);
  EXPECT_FALSE(fs::exists(conf(kRecordName)));
}

INSTANTIATE_TEST_SUITE_P(
    Conflists, SetupRefusalTest,
    ::testing::Values(
        Refusal{"Array", "[]", "not a JSON object"},
        Refusal{"NoVersion", R"({"name":"n","plugins":[{"type":"bridge"}]})", "\"cniVersion\""},
        Refusal{"OldVersion", R"({"cniVersion":"0.2.0","name":"n","plugins":[{"type":"bridge"}]})",
                "cniVersion '0.2.0'"},
        Refusal{"NoName", R"({"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]})", "\"name\""},
        Refusal{"NoPlugins", R"({"cniVersion":"1.0.0","name":"n","plugins":[]})", "\"plugins\""},
        Refusal{"UntypedPlugin",
                R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"x":1}]})",
                "plugins[1]: \"type\""},
        Refusal{"TwoPortmaps", R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"portmap"},
                {"type":"bridge"},{"type":"portmap"}]})",
                "plugins[0] (portmap), plugins[2] (portmap)"},
        Refusal{"OursAndPortmap", R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},
                {"type":"portmap"},{"type":"gateway-portmap"}]})",
                "plugins[1] (portmap), plugins[2] (gateway-portmap)"}),
    [](const auto& info) { return std::string(info.param.name); });

// flannel's stock conflist (cniVersion 0.3.1): ours takes portmap's place, and back.
TEST_F(SetupTest, RealFlannelAt031IsChained) {
  std::string before = place("10-flannel-0.3.1.conflist", "10-flannel.conflist");
  auto report = install(options_);
  ASSERT_TRUE(report) << report.error().str();
  Json after = json("10-flannel.conflist");
  ASSERT_EQ(after["plugins"].size(), 2u) << after.dump();
  EXPECT_EQ(after["plugins"][1]["type"], "gateway-portmap");
  EXPECT_EQ(after["plugins"][1]["capabilities"]["portMappings"], true);
  ASSERT_TRUE(uninstall(options_));
  EXPECT_EQ(slurp(conf("10-flannel.conflist")), before);
}

TEST_F(SetupTest, PicksTheLexicallyFirstConfigAndNeverItsOwnFiles) {
  place("20-bridge-only.conflist", "20-b.conflist");
  place("10-containerd-net.conflist", "10-a.conflist");
  spit(conf("05-notes.txt"), "not a config");
  spit(conf("99-z.json"), "{}");
  auto picked = pickConfFile(options_.confDir);
  ASSERT_TRUE(picked);
  EXPECT_EQ(*picked, "10-a.conflist");
  ASSERT_TRUE(install(options_));
  // The record (and temp files) sort first ('.') but are never a runtime's config.
  ASSERT_TRUE(fs::exists(conf(kRecordName)));
  picked = pickConfFile(options_.confDir);
  ASSERT_TRUE(picked);
  EXPECT_EQ(*picked, "10-a.conflist");
  EXPECT_EQ(json("10-a.conflist")["plugins"][1]["type"], "gateway-portmap");
  EXPECT_EQ(json("20-b.conflist")["plugins"].size(), 3u); // the others untouched
}

TEST_F(SetupTest, ASinglePluginConfFirstIsRefused) {
  std::string text = R"({"cniVersion":"1.0.0","name":"n","type":"bridge"})";
  spit(conf("05-single.conf"), text);
  place("10-containerd-net.conflist", "10-containerd-net.conflist");
  auto report = install(options_);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().str().find("05-single.conf: runtimes read a .conf"), std::string::npos)
      << report.error().str();
  EXPECT_EQ(slurp(conf("05-single.conf")), text);
}

TEST_F(SetupTest, AnEmptyConfDirIsAnErrorNamingIt) {
  auto report = install(options_);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().str().find(options_.confDir + ": no *.conflist"), std::string::npos);
}

TEST_F(SetupTest, WhenTheRuntimesConfigMovesTheOldOneGetsPortmapBack) {
  std::string old = place("20-bridge-only.conflist", "20-old.conflist");
  ASSERT_TRUE(install(options_));
  place("10-containerd-net.conflist", "10-new.conflist");
  ASSERT_TRUE(install(options_));
  EXPECT_EQ(slurp(conf("20-old.conflist")), old);
  EXPECT_EQ(json("10-new.conflist")["plugins"][1]["type"], "gateway-portmap");
}

TEST_F(SetupTest, AChangedSocketIsWrittenAndTheOriginalStillComesBack) {
  std::string before = place("10-containerd-net.conflist", "10-containerd-net.conflist");
  ASSERT_TRUE(install(options_));
  options_.socket = "/run/other/gateway.sock";
  ASSERT_TRUE(install(options_));
  EXPECT_EQ(json("10-containerd-net.conflist")["plugins"][1]["socket"], "/run/other/gateway.sock");
  ASSERT_TRUE(uninstall(options_));
  EXPECT_EQ(slurp(conf("10-containerd-net.conflist")), before);
}

// The entry install writes is one gateway-portmap takes: the runtime hands it over with the
// list's cniVersion and name, runtimeConfig and prevResult, and the ports reach the socket
// install named.
TEST_F(SetupTest, ThePluginAcceptsTheEntryInstallWrites) {
  place("10-containerd-net.conflist", "10-containerd-net.conflist");
  options_.socket = "/run/elsewhere/gw.sock";
  ASSERT_TRUE(install(options_));
  Json list = json("10-containerd-net.conflist");
  Json entry = list["plugins"][1];
  entry["cniVersion"] = list["cniVersion"];
  entry["name"] = list["name"];
  entry["runtimeConfig"]["portMappings"] = Json::parse(
      R"([{"hostPort":8080,"containerPort":80,"protocol":"tcp"}])");
  entry["prevResult"] = cni::test::bridgeResult();
  cni::test::Harness h;
  h.vars = cni::test::attachmentEnv("ADD");
  auto out = h.run(entry.dump());
  ASSERT_EQ(out.exitCode, 0) << out.out;
  ASSERT_EQ(h.sockets, std::vector<std::string>{"/run/elsewhere/gw.sock"});
  ASSERT_EQ(h.gateway.owners.size(), 1u);
  EXPECT_EQ(h.gateway.owners.begin()->second.size(), 2u); // 8080 to the IPv4 and IPv6 address
}

int runTool(const std::string& args) {
  std::string line = std::string(GATEWAY_CNI_SETUP_PATH) + " " + args + " >/dev/null 2>&1";
  int status = std::system(line.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(SetupTest, TheToolExitsNonZeroOnARefusalAndOnBadUsage) {
  std::string before = place("bad.conflist", "10-bad.conflist");
  std::string dirs = "--conf-dir " + options_.confDir + " --bin-dir " + options_.binDir +
                     " --plugin " + options_.plugin;
  EXPECT_EQ(runTool("install " + dirs), 1);
  EXPECT_EQ(slurp(conf("10-bad.conflist")), before);
  EXPECT_EQ(runTool("frobnicate"), 2);
  EXPECT_EQ(runTool("install --color blue"), 2);
  EXPECT_EQ(runTool("install --socket relative.sock"), 2);
  fs::remove(conf("10-bad.conflist"));
  place("10-containerd-net.conflist", "10-containerd-net.conflist");
  EXPECT_EQ(runTool("install " + dirs), 0);
  EXPECT_EQ(runTool("install " + dirs), 0);
  EXPECT_EQ(runTool("uninstall " + dirs), 0);
}

} // namespace
} // namespace gw::cni::setup
