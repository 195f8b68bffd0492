// SPDX-License-Identifier: MIT
// What runtimes send: a bridge plugin's result as prevResult (Podman 4.3's cni-podman0 with
// IPv4 and IPv6), the portMappings shapes of Podman, nerdctl and containerd, and the
// environment of each command.
#pragma once

#include <map>
#include <string>

#include "cni/Cni.h"

namespace gw::cni::test {

// bridge + host-local's ADD result: the bridge, the host end of the veth, the container's eth0.
inline Json bridgeResult() {
  return Json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [
      {"name": "cni-podman0", "mac": "5e:1a:2b:3c:4d:5e"},
      {"name": "veth1a2b3c4d", "mac": "6e:1a:2b:3c:4d:5e"},
      {"name": "eth0", "mac": "7e:1a:2b:3c:4d:5e", "sandbox": "/run/netns/cni-3f1c"}
    ],
    "ips": [
      {"interface": 2, "address": "10.88.0.3/16", "gateway": "10.88.0.1"},
      {"interface": 2, "address": "fd00:88::3/64", "gateway": "fd00:88::1"}
    ],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    "dns": {}
  })");
}

inline Json config(std::string_view version = "1.0.0") {
  Json c;
  c["cniVersion"] = version;
  c["name"] = "podman";
  c["type"] = "gateway-portmap";
  c["capabilities"] = Json::parse(R"({"portMappings": true})");
  return c;
}

// podman run -p 8080:80 -p 127.0.0.1:8081:80 -p 5353:53/udp
inline Json podmanMappings() {
  return Json::parse(R"([
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
    {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
    {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": ""}
  ])");
}

inline Json addConfig(Json mappings, Json prevResult = bridgeResult(),
                      std::string_view version = "1.0.0") {
  auto c = config(version);
  c["runtimeConfig"]["portMappings"] = std::move(mappings);
  c["prevResult"] = std::move(prevResult);
  return c;
}

inline std::map<std::string, std::string> attachmentEnv(const std::string& command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "3f1c9a7e5b"},
          {"CNI_NETNS", "/run/netns/cni-3f1c"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"},
          {"CNI_PATH", "/usr/lib/cni"}};
}

inline Owner podmanOwner() { return Owner{"podman", "3f1c9a7e5b", "eth0"}; }

} // namespace gw::cni::test
