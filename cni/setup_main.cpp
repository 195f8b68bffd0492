// SPDX-License-Identifier: MIT
// gateway-cni-setup install|uninstall: gateway-portmap into a node's CNI config in place of
// portmap, and portmap back. Exit 0 done (or nothing to do), 1 refused or failed, 2 usage.
#include <iostream>
#include <string>
#include <string_view>

#include "cni/Setup.h"

namespace {

constexpr const char* kUsage =
    "usage: gateway-cni-setup install|uninstall [--conf-dir DIR] [--bin-dir DIR]\n"
    "                         [--socket PATH] [--plugin PATH]\n"
    "  install    copy the plugin into --bin-dir, then chain gateway-portmap into the\n"
    "             runtime's network config (the lexically first *.conf, *.conflist or *.json\n"
    "             in --conf-dir) in place of portmap, or after the last plugin\n"
    "  uninstall  put back what install replaced (the file as it was, if unchanged since)\n"
    "  --conf-dir DIR   the node's CNI config dir (/etc/cni/net.d)\n"
    "  --bin-dir DIR    the node's CNI plugin dir (/opt/cni/bin)\n"
    "  --socket PATH    gatewayd's socket, written into the config (/run/gateway/gateway.sock)\n"
    "  --plugin PATH    the gateway-portmap binary to copy (/usr/lib/cni/gateway-portmap)\n";

int usage(const std::string& why) {
  std::cerr << "gateway-cni-setup: " << why << "\n" << kUsage;
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage("a command is required");
  }
  std::string_view command = argv[1];
  if (command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  if (command != "install" && command != "uninstall") {
    return usage("unknown command '" + std::string(command) + "'");
  }
  gw::cni::setup::Options options;
  for (int i = 2; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::string* out = flag == "--conf-dir" ? &options.confDir
                       : flag == "--bin-dir" ? &options.binDir
                       : flag == "--socket"  ? &options.socket
                       : flag == "--plugin"  ? &options.plugin
                                             : nullptr;
    if (!out) {
      return usage("unknown option '" + std::string(flag) + "'");
    }
    if (i + 1 >= argc || std::string_view(argv[i + 1]).empty()) {
      return usage(std::string(flag) + " needs a value");
    }
    *out = argv[++i];
  }
  if (options.socket.front() != '/') {
    return usage("--socket '" + options.socket + "' is not an absolute path");
  }
  auto report = command == "install" ? gw::cni::setup::install(options)
                                     : gw::cni::setup::uninstall(options);
  if (!report) {
    std::cerr << "gateway-cni-setup " << command << ": " << report.error().str() << "\n";
    return 1;
  }
  for (const auto& line : *report) {
    std::cout << "gateway-cni-setup " << command << ": " << line << "\n";
  }
  return 0;
}
