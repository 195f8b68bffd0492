// SPDX-License-Identifier: MIT
// The gateway host's addresses as they change while gatewayd runs (a bridge a CNI plugin
// makes, an address set by hand or by DHCP), and exposes limited to a loopback address (a
// runtime's -p 127.0.0.1:PORT): reached by the host itself only.
#include <filesystem>
#include <fstream>

#include "tests/control/ServiceFixture.h"

namespace gw::test {
namespace {

class AddressTest : public ServiceFixture {
protected:
  // A web server on [::]:port in ns answering GET /whoami with the namespace's name.
  void httpServer(const std::string& ns, int port) {
    std::string root = dir_ + "/www-" + ns;
    std::filesystem::create_directories(root);
    std::ofstream(root + "/whoami") << ns;
    servers_.push_back(Child::spawn({"ip", "netns", "exec", ns, "python3", "-m", "http.server",
                                     std::to_string(port), "--bind", "::", "--directory",
                                     root}));
    ASSERT_TRUE(waitFor([&] {
      return shIn(ns, "curl -s -m1 -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/")
          .ok();
    }));
  }
  std::string curlIn(const std::string& ns, const std::string& url) {
    return shIn(ns, "curl -s -m3 " + url).out;
  }

  std::vector<Child> servers_;
};

// An IPv6 address the uplink gets after start is served within a bounded wait (the
// local-address map and the uplink's IPv6 address follow), and one taken away stops being
// the host's.
TEST_F(AddressTest, AnAddressAddedAfterStartIsServed) {
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(n1, 8080);
  ASSERT_TRUE(gwctl({"expose", "6000", n1 + ":8080"}).ok());
  addUplink6();
  std::string url = std::string("http://[") + kUplinkAddr6 + "]:6000/whoami";
  EXPECT_TRUE(waitFor([&] { return curlIn(ext(), url) == n1; })) << curlIn(ext(), url);
  EXPECT_EQ(gwctlJson({"status"})["uplink"].value("address6", ""), kUplinkAddr6);
  EXPECT_NE(readFile(log_).find("IPv6 address (none) -> fd00:18::1"), std::string::npos);

  // A second IPv4 address by hand: an expose on any address answers there too.
  ASSERT_TRUE(sh("ip -n " + gwh() + " addr add 10.18.0.77/24 dev up0").ok());
  EXPECT_TRUE(waitFor([&] { return curlIn(ext(), "http://10.18.0.77:6000/whoami") == n1; }));
  ASSERT_TRUE(sh("ip -n " + gwh() + " addr del 10.18.0.77/24 dev up0").ok());
  EXPECT_TRUE(waitFor([&] {
    return readFile(log_).find("local address 10.18.0.77 is no longer") != std::string::npos;
  }));
}

// -p 127.0.0.1:PORT and [::1]:PORT: the host itself reaches the container there; the
// uplink's address does not answer on those ports.
TEST_F(AddressTest, AnExposeOnLoopbackIsTheHostsOnly) {
  addUplink6();
  startDaemon();
  std::string n1 = nsName("n1");
  ASSERT_TRUE(gwctl({"ns", "add", n1}).ok());
  httpServer(n1, 8080);
  auto v4 = gwctl({"expose", "6001", n1 + ":8080", "--host-ip", "127.0.0.1"});
  ASSERT_TRUE(v4.ok()) << v4.err;
  auto v6 = gwctl({"expose", "6002", n1 + ":8080", "--host-ip", "::1"});
  ASSERT_TRUE(v6.ok()) << v6.err;
  EXPECT_EQ(curlIn(gwh(), "http://127.0.0.1:6001/whoami"), n1);
  EXPECT_EQ(curlIn(gwh(), "http://[::1]:6002/whoami"), n1);
  EXPECT_EQ(curlIn(gwh(), "http://127.0.0.1:6002/whoami"), "");
  EXPECT_EQ(curlIn(ext(), std::string("http://") + kUplinkAddr + ":6001/whoami"), "");
  EXPECT_EQ(curlIn(ext(), std::string("http://[") + kUplinkAddr6 + "]:6002/whoami"), "");
}

} // namespace
} // namespace gw::test
