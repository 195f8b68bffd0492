// SPDX-License-Identifier: MIT
// gatewayd: the host gateway service. Owns namespaces, links and NAT rules; serves gwctl.
#include <grp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <poll.h>

#include <bpf/libbpf.h>

#include <boost/program_options.hpp>
#include <cstdarg>
#include <cstddef>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "control/ApiServer.h"
#include "control/ApiClient.h"
#include "gateway/Gateway.h"
#include "gateway/Upgrade.h"
#include "base/Fd.h"
#include "base/Log.h"
#include "netns/Namespace.h"
#include "gateway/datapath/Datapath.h"

namespace po = boost::program_options;

namespace {

// libbpf's messages become log lines. It warns about an existing clsact qdisc, which is
// expected (we then leave that qdisc alone): that one goes to debug.
int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) {
    return 0;
  }
  char line[1024];
  int n = std::vsnprintf(line, sizeof line, format, args);
  std::string text(line);
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  if (text.find("Exclusivity flag on") != std::string::npos) {
    gw::log::debug("libbpf: ", text);
  } else {
    gw::log::warn("libbpf: ", text);
  }
  return n;
}

// sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or '@' abstract).
void notifySystemd(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') {
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) {
    return;
  }
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') {
    addr.sun_path[0] = '\0';
  }
  gw::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd) {
    (void)::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                   reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  }
}

// Every proxied connection holds two descriptors: the soft limit (1,024 by default) would cap
// the proxy at ~500 connections. The hard limit is ours to take; above it needs
// CAP_SYS_RESOURCE (the unit's LimitNOFILE raises both).
void raiseFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) {
    return;
  }
  rlim_t was = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    gw::log::warn("RLIMIT_NOFILE stays ", was, ": ", std::strerror(errno));
    return;
  }
  gw::log::info("RLIMIT_NOFILE raised from ", was, " to ", lim.rlim_cur,
                " (the proxy holds two per connection)");
}

int die(const std::string& message) {
  std::fprintf(stderr, "%sgatewayd: %s\n", gw::log::journalPrefix(gw::log::Level::Error),
               message.c_str());
  return 1;
}

// Handed over to a new process: stop accepting (keeping the sockets open for it), then wait
// for our proxied connections to end, bounded by the proxy's idle timeout. Nothing is torn
// down and nothing written: the state and the socket path are the new process's now.
void drainAfterHandover(gw::ApiServer& server, gw::Gateway& gateway) {
  server.release();
  gateway.retire();
  auto bound = gw::ProxyConfig{}.idleTimeout;
  auto until = std::chrono::steady_clock::now() + bound;
  size_t left = gateway.proxiedConnections();
  gw::log::info("upgrade: handed over; ", left, " proxied connections finish here (at most ",
                bound.count(), " s)");
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  timespec step{0, 100'000'000};
  while ((left = gateway.proxiedConnections()) > 0 && std::chrono::steady_clock::now() < until) {
    if (int sig = ::sigtimedwait(&stop, nullptr, &step); sig > 0) {
      gw::log::info("upgrade: signal ", sig, " while draining: closing ", left,
                    " proxied connections");
      return;
    }
  }
  if (left > 0) {
    gw::log::warn("upgrade: closing ", left, " proxied connections still open after ",
                  bound.count(), " s");
  }
}

} // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread blocks it: SIGUSR2 is read through the
  // API server's signalfd, and its default action (terminate) must never hit us mid-start.
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
  auto self = gw::resolveSelf(argc, argv);
  gw::GatewayConfig config;
  std::string configFile;
  std::string logLevel;
  std::string xdpText;
  std::string tcText;
  std::string relayText;
  std::string datapathText;
  std::string group;
  unsigned upgradeTimeout = gw::kUpgradeReadyTimeout.count();
  po::options_description options("gatewayd options");
  options.add_options()
      ("help,h", "show this help")
      ("uplink", po::value(&config.uplink), "interface facing the outside (required)")
      ("netns", po::value(&config.netns),
       "serve a gateway host that is this named network namespace")
      ("socket", po::value(&config.socketPath)->default_value(gw::kDefaultSocket),
       "control socket path")
      ("state-dir", po::value(&config.stateDir)->default_value("/var/lib/gateway"),
       "directory for state.json")
      ("bpffs", po::value(&config.bpffs)->default_value(gw::kDefaultBpffs),
       "bpffs directory for pinned maps and programs (the default falls back to "
       "/run/gateway/bpffs where /sys/fs/bpf cannot be used)")
      ("xdp", po::value(&xdpText)->default_value("auto"), "XDP mode: auto|native|generic|off")
      ("tc-attach", po::value(&tcText)->default_value("auto"),
       "tc hooks: auto (tcx where the kernel has it, else clsact), tcx (links, 6.6+) or clsact")
      ("group", po::value(&group),
       "group whose members may read everything and expose services of managed namespaces")
      ("group-may-publish-any", po::bool_switch(&config.groupMayPublishAny),
       "let --group members also publish any target (the gateway host's loopback, namespaces "
       "wired by hand): root-equivalent, as Docker's socket is")
      ("host-local", po::value(&config.hostLocal)->default_value(true),
       "serve clients on the gateway host itself (cgroup socket hooks)")
      ("ct-tcp-established", po::value<unsigned>(), "TCP established timeout, s (7440)")
      ("ct-tcp-transitory", po::value<unsigned>(), "TCP FIN/RST timeout, s (240)")
      ("ct-tcp-syn", po::value<unsigned>(), "TCP handshake timeout, s (120)")
      ("ct-udp", po::value<unsigned>(), "UDP timeout, s (120)")
      ("ct-icmp", po::value<unsigned>(), "ICMP timeout, s (60)")
      ("gc-interval", po::value<unsigned>(),
       "seconds between conntrack sweeps (5; 20 times a sweep's length when longer)")
      ("proxy-relay", po::value(&relayText)->default_value("buffers"),
       "io_uring proxy relay: buffers (provided buffer ring) or splice (pooled pipes)")
      ("datapath", po::value(&datapathText)->default_value("auto"),
       "auto: without the eBPF data path start degraded (the proxy serves TCP exposes); "
       "ebpf: refuse to start without it")
      ("upgrade-timeout", po::value(&upgradeTimeout)->default_value(upgradeTimeout),
       "seconds a SIGUSR2 upgrade's new gatewayd has to be ready, else it is killed and the "
       "old one goes on serving")
      ("recover", po::bool_switch(&config.recover),
       "a damaged state journal: start from its last good line, logging each change dropped "
       "(default: refuse to start, naming the file and line)")
      ("ct-entries", po::value(&config.ctEntries),
       "conntrack map size, two entries a flow (262144; fixed once pinned)")
      ("cleanup", "remove everything an earlier gatewayd made (namespaces, links, programs, "
                  "pins, state) and exit")
      ("metrics", po::value<std::string>(),
       "serve Prometheus metrics on [IPV4:]PORT (127.0.0.1 when only a port is given)")
      ("config", po::value(&configFile), "config file (key = value, same names as options)")
      ("log-level", po::value(&logLevel)->default_value("info"), "debug|info|warn|error");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    if (vm.contains("config")) {
      std::ifstream in(vm["config"].as<std::string>());
      if (!in) {
        return die("cannot read config file " + vm["config"].as<std::string>());
      }
      po::store(po::parse_config_file(in, options), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return die(std::string(e.what()) + " (see --help)");
  }
  if (vm.contains("help")) {
    std::cout << "usage: gatewayd --uplink IFNAME [options]\n" << options;
    return 0;
  }
  // --cleanup reads what it removes from the state: no uplink needed.
  if (config.uplink.empty() && !vm.contains("cleanup")) {
    return die("--uplink IFNAME is required");
  }
  if (datapathText != "auto" && datapathText != "ebpf") {
    return die("--datapath '" + datapathText + "': expected auto or ebpf");
  }
  config.datapath =
      datapathText == "ebpf" ? gw::DatapathPolicy::Ebpf : gw::DatapathPolicy::Auto;
  gw::log::Level level;
  if (!gw::log::parseLevel(logLevel, level)) {
    return die("--log-level '" + logLevel + "': expected debug, info, warn or error");
  }
  gw::log::setLevel(level);
  raiseFileLimit();
  libbpf_set_print(libbpfPrint);
  if (relayText != "buffers" && relayText != "splice") {
    return die("--proxy-relay '" + relayText + "': expected buffers or splice");
  }
  config.proxyRelay = relayText == "splice" ? gw::RelayMode::Splice : gw::RelayMode::Buffers;
  if (auto tc = gw::parseTcHook(tcText); !tc) {
    return die("--tc-attach: " + tc.error().message);
  } else {
    config.tc = *tc;
  }
  if (auto xdp = gw::parseXdpMode(xdpText); !xdp) {
    return die("--xdp: " + xdp.error().message);
  } else {
    config.xdp = *xdp;
  }
  auto seconds = [&](const char* name, std::chrono::seconds& out) {
    if (vm.contains(name)) {
      out = std::chrono::seconds(vm[name].as<unsigned>());
    }
  };
  seconds("ct-tcp-established", config.timeouts.tcpEstablished);
  seconds("ct-tcp-transitory", config.timeouts.tcpTransitory);
  seconds("ct-tcp-syn", config.timeouts.tcpSyn);
  seconds("ct-udp", config.timeouts.udp);
  seconds("ct-icmp", config.timeouts.icmp);
  seconds("gc-interval", config.gcInterval);
  if (auto r = gw::checkRfcMinimums(config.timeouts); !r) {
    gw::log::warn("conntrack timeouts below RFC 4787/5382 minimums: ", r.error().message);
  }
  std::optional<gid_t> socketGroup;
  if (!group.empty()) {
    struct group* g = ::getgrnam(group.c_str());
    if (g == nullptr) {
      return die("--group '" + group + "': no such group");
    }
    socketGroup = g->gr_gid;
  }

  ::signal(SIGPIPE, SIG_IGN);
  if (vm.contains("cleanup")) {
    if (gw::callApi(config.socketPath, "GET", "/v1/status", {}, std::chrono::seconds(2))) {
      return die("a gatewayd is serving " + config.socketPath + ": use `gwctl down` instead");
    }
    // Acts in the namespace its state was made in, whatever --netns says (it checks both).
    if (!config.netns.empty()) {
      if (auto r = gw::validateNamespaceName(config.netns); !r) {
        return die("--netns: " + r.error().message);
      }
    }
    if (auto r = gw::Gateway::cleanup(config); !r) {
      return die(r.error().str());
    }
    ::unlink(config.socketPath.c_str()); // left by a killed gatewayd; nobody answers on it
    return 0;
  }
  // Enter the gateway host's namespace before any thread exists: every later thread inherits it.
  if (!config.netns.empty()) {
    if (auto r = gw::validateNamespaceName(config.netns); !r) {
      return die("--netns: " + r.error().message);
    }
    auto fd = gw::openNamespace(config.netns);
    if (!fd) {
      return die("--netns " + config.netns + ": " + fd.error().str());
    }
    if (::setns(fd->get(), CLONE_NEWNET) != 0) {
      return die("--netns " + config.netns + ": setns: " + std::strerror(errno));
    }
  }

  // Started by an upgrade: the old gatewayd's sockets are ours to adopt, never to bind anew.
  auto inherited = gw::takeInheritedFds();
  if (!inherited) {
    return die("upgrade: " + inherited.error().str());
  }
  if (*inherited) {
    config.inheritedListeners = (*inherited)->listeners;
    gw::log::info("upgrade: adopting the control socket and ", config.inheritedListeners.size(),
                  " proxy listeners from the previous gatewayd");
  }
  auto server = *inherited ? gw::ApiServer::adopt((*inherited)->api, config.socketPath, socketGroup)
                           : gw::ApiServer::listen(config.socketPath, socketGroup);
  if (!server) {
    return die(server.error().str());
  }
  if (*inherited && (*inherited)->metrics >= 0 && !vm.contains("metrics")) {
    ::close((*inherited)->metrics); // --metrics dropped from the configuration
  }
  if (vm.contains("metrics")) {
    const auto& hostPort = vm["metrics"].as<std::string>();
    auto r = *inherited && (*inherited)->metrics >= 0
                 ? server->adoptMetrics((*inherited)->metrics, hostPort)
                 : server->listenMetrics(hostPort);
    if (!r) {
      return die(r.error().str());
    }
  }
  auto gateway = gw::Gateway::start(config);
  if (!gateway) {
    return die(gateway.error().str());
  }
  gw::log::info("gatewayd serving ", config.socketPath, " uplink ", config.uplink,
                config.netns.empty() ? std::string() : " netns " + config.netns);
  // Degraded (--datapath auto without eBPF) is ready but says so: `systemctl status` shows it.
  notifySystemd("READY=1\nSTATUS=serving " + config.socketPath + "; " + (*gateway)->summary());
  if (*inherited) {
    // The socket already listens: what the old process stopped accepting waits in its backlog.
    gw::signalReady((*inherited)->ready);
    server->claimPath();
  }
  std::optional<gw::UpgradeChild> upgrade;
  auto handler = [&](const gw::http::Request& request, const gw::PeerCredentials& peer) {
    // While a new process starts from the state on disk, nothing may change it here.
    if (upgrade && request.method != "GET") {
      return gw::http::Response{503, "application/json",
                                R"({"error":"an upgrade is in progress: try again"})" "\n"};
    }
    auto response = (*gateway)->handle(
        request, peer.uid == 0 ? gw::api::Caller::Root : gw::api::Caller::GroupMember);
    if ((*gateway)->finished()) {
      server->stop();
    }
    gw::log::debug("api ", request.method, " ", request.target, " uid ", peer.uid, " -> ",
                   response.status);
    return response;
  };
  auto giveUp = [&](const std::string& why) {
    std::string end = gw::abandonChild(*upgrade);
    gw::log::error("upgrade: new gatewayd ", self->binary, " (pid ", upgrade->pid, ") ", why,
                   " and ", end, ": this one keeps serving");
    upgrade.reset();
    server->watch(-1, {});
    server->pauseAccepting(false);
  };
  gw::Result<int> stopped;
  bool handedOver = false;
  while (true) {
    stopped = server->serve(handler, [&] { (*gateway)->tick(); }, std::chrono::seconds(1));
    if (!stopped) {
      break;
    }
    if (*stopped == SIGUSR2) {
      if (upgrade) {
        gw::log::warn("upgrade: SIGUSR2 while pid ", upgrade->pid, " is starting: ignored");
        continue;
      }
      if (!self) {
        gw::log::error("upgrade: ", self.error().str());
        continue;
      }
      if (auto r = (*gateway)->saveSnapshot(); !r) {
        gw::log::warn("state snapshot before upgrade: ", r.error().str(), " (the journal keeps it)");
      }
      gw::InheritedFds fds;
      fds.api = server->listenFd();
      fds.metrics = server->metricsFd();
      for (auto& l : (*gateway)->listenerFds()) {
        fds.listeners[l.address] = l.fds;
      }
      auto child = gw::startUpgrade(*self, fds, std::chrono::seconds(upgradeTimeout));
      if (!child) {
        gw::log::error("upgrade: ", child.error().str(), ": this one keeps serving");
        continue;
      }
      upgrade = std::move(*child);
      gw::log::info("upgrade: started ", self->binary, " as pid ", upgrade->pid, " with ",
                    fds.listeners.size(), " proxy listeners");
      server->watch(upgrade->ready.get(), upgrade->deadline);
      server->pauseAccepting(true);
      continue;
    }
    if (*stopped == gw::ApiServer::kWatchReadable) {
      if (!gw::childReady(*upgrade)) {
        giveUp("exited before it was ready");
        continue;
      }
      gw::log::info("upgrade: pid ", upgrade->pid, " serves ", config.socketPath);
      notifySystemd("MAINPID=" + std::to_string(upgrade->pid));
      upgrade.reset(); // not ours to wait for: it outlives us
      handedOver = true;
      break;
    }
    if (*stopped == gw::ApiServer::kWatchExpired) {
      giveUp("was not ready within " + std::to_string(upgradeTimeout) + " s");
      continue;
    }
    break; // stop() or SIGTERM/SIGINT
  }
  if (!stopped) {
    return die(stopped.error().str());
  }
  if (handedOver) {
    drainAfterHandover(*server, **gateway);
    return 0; // no STOPPING=1: systemd follows the new main pid
  }
  if (upgrade) {
    ::kill(upgrade->pid, SIGTERM); // stopping: the new process has not taken over
    gw::log::info("upgrade: abandoned at stop: pid ", upgrade->pid, " ",
                  gw::abandonChild(*upgrade));
  }
  notifySystemd("STOPPING=1");
  if (!(*gateway)->finished()) {
    if (auto r = (*gateway)->saveSnapshot(); !r) {
      gw::log::warn("state snapshot at stop: ", r.error().str(), " (the journal keeps it)");
    }
  }
  if ((*gateway)->finished()) {
    gw::log::info("gatewayd down: exiting");
  } else {
    gw::log::info("gatewayd stopping on signal ", *stopped,
                  ": the data path keeps forwarding (pinned)");
  }
  return 0;
}
