// SPDX-License-Identifier: MIT
#include "gateway/proxy/Proxy.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gateway/proxy/SockAddr.h"
#include "gateway/proxy/Worker.h"
#include "base/Fd.h"
#include "netns/Namespace.h"

namespace gw {

using proxy::ListenerShared;
using proxy::Worker;

namespace {

constexpr int kBacklog = 4096;
constexpr auto kCloseWait = std::chrono::seconds(3);

bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

Result<UniqueFd> openSocket(const SockAddr& addr, bool reusePort, const std::string& where) {
  UniqueFd fd(socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return sysError("socket for " + where);
  }
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reusePort && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return sysError("SO_REUSEPORT for " + where);
  }
  if (bind(fd.get(), addr.get(), addr.length) != 0) {
    return sysError("bind " + where);
  }
  return fd;
}

// One listening socket per worker in a SO_REUSEPORT group: one socket shared by all rings
// sends every connection to the same ring (accept polls wake exclusively, first waiter first).
// A probe without SO_REUSEPORT binds first, so a port held by anyone, even another
// SO_REUSEPORT group of ours, fails with EADDRINUSE instead of being silently shared.
Result<std::vector<UniqueFd>> openListeners(const SockAddr& requested, unsigned count,
                                            uint16_t* port) {
  std::string where = formatSockAddr(requested.storage);
  auto probe = openSocket(requested, false, where);
  if (!probe) {
    return std::unexpected(probe.error());
  }
  SockAddr addr;
  addr.length = sizeof addr.storage;
  if (getsockname(probe->get(), reinterpret_cast<sockaddr*>(&addr.storage), &addr.length) != 0) {
    return sysError("getsockname " + where);
  }
  *port = addr.port();
  where = formatSockAddr(addr.storage);
  probe->reset();
  std::vector<UniqueFd> fds;
  for (unsigned i = 0; i < count; ++i) {
    auto fd = openSocket(addr, true, where);
    if (!fd) {
      return std::unexpected(fd.error());
    }
    if (listen(fd->get(), kBacklog) != 0) {
      return sysError("listen " + where);
    }
    fds.push_back(std::move(*fd));
  }
  return fds;
}

// An inherited SO_REUSEPORT group: one socket per worker, each checked (a mismatch is an
// error, never a silent rebind). Ours from now on: close-on-exec again.
Result<std::vector<UniqueFd>> adoptListeners(std::vector<int> inherited, unsigned count,
                                             const std::string& address, uint16_t* port) {
  std::vector<UniqueFd> fds;
  for (int fd : inherited) {
    fds.emplace_back(fd);
  }
  if (fds.size() != count) {
    return fail("inherited listener " + address + ": " + std::to_string(fds.size()) +
                    " sockets for " + std::to_string(count) + " proxy threads",
                EINVAL);
  }
  for (const auto& fd : fds) {
    if (auto r = checkInheritedListener(fd.get(), address); !r) {
      return std::unexpected(r.error());
    }
    ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  }
  SockAddr bound;
  bound.length = sizeof bound.storage;
  if (getsockname(fds[0].get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) !=
      0) {
    return sysError("getsockname " + address);
  }
  *port = bound.port();
  return fds;
}

// The workers of one target namespace; they all accept on its listeners.
struct Group {
  std::vector<std::unique_ptr<Worker>> workers;
  size_t listeners = 0;
};

} // namespace

Status checkInheritedListener(int fd, const std::string& address) {
  std::string what = "inherited fd " + std::to_string(fd) + " for listener " + address;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return sysError(what);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return invalid(what + " is not a socket");
  }
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof type;
  getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof listening;
  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  if (type != SOCK_STREAM || listening != 1) {
    return invalid(what + " is not a listening stream socket");
  }
  sockaddr_storage bound{};
  len = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return sysError(what + ": getsockname");
  }
  if (std::string actual = formatSockAddr(bound); actual != address) {
    return invalid(what + " is bound to " + actual);
  }
  return {};
}

struct Proxy::Impl {
  ProxyConfig config; // config.inheritedListeners: those not adopted yet (under mu)
  UniqueFd gatewayNs; // "" targets are connected from here
  std::atomic<uint64_t> globalActive{0};
  std::mutex mu;
  std::map<std::string, Group> groups;
  std::map<uint64_t, std::shared_ptr<ListenerShared>> listeners;
  std::set<uint64_t> removing;
  uint64_t nextId = 1;
  bool stopped = false;

  Result<Group*> groupFor(const std::string& netns);
  // Cancels the accepts of `listener` on every worker, waits, then closes the socket.
  static void stopAccepting(ListenerShared& listener, const std::vector<Worker*>& workers);
  static void closeRemaining(uint64_t id, const std::vector<Worker*>& workers,
                             const std::function<bool()>& done);
};

Result<Group*> Proxy::Impl::groupFor(const std::string& netns) {
  auto it = groups.find(netns);
  if (it != groups.end()) {
    return &it->second;
  }
  UniqueFd nsFd;
  int fd = gatewayNs.get();
  if (!netns.empty()) {
    // A path (/proc/PID/ns/net) is opened as one; a name must be a valid one.
    if (auto valid = netns.front() == '/' ? Status{} : validateNamespaceName(netns); !valid) {
      return std::unexpected(valid.error());
    }
    auto opened = openNamespace(netns);
    if (!opened) {
      return std::unexpected(opened.error());
    }
    nsFd = std::move(*opened);
    fd = nsFd.get();
  }
  Group group;
  for (unsigned i = 0; i < config.threads; ++i) {
    auto worker = Worker::start({config, fd, &globalActive});
    if (!worker) {
      Error e = worker.error();
      e.message = "proxy worker for namespace '" + netns + "': " + e.message;
      return std::unexpected(e);
    }
    group.workers.push_back(std::move(*worker));
  }
  return &groups.emplace(netns, std::move(group)).first->second;
}

void Proxy::Impl::stopAccepting(ListenerShared& listener, const std::vector<Worker*>& workers) {
  std::latch cancelled(static_cast<std::ptrdiff_t>(workers.size()));
  for (Worker* w : workers) {
    w->removeListener(listener.id, [&cancelled] { cancelled.count_down(); });
  }
  cancelled.wait();
  listener.fds.clear(); // no ring holds them any more: the port is free now
}

void Proxy::Impl::closeRemaining(uint64_t id, const std::vector<Worker*>& workers,
                                 const std::function<bool()>& done) {
  if (done()) {
    return;
  }
  for (Worker* w : workers) {
    w->closeConnections(id);
  }
  waitUntil(done, kCloseWait);
}

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Proxy::~Proxy() {
  stop(false);
}

Result<std::unique_ptr<Proxy>> Proxy::start(const ProxyConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  if (impl->config.threads == 0) {
    impl->config.threads = std::max(1u, std::thread::hardware_concurrency());
  }
  unsigned count = config.buffersPerThread;
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) {
    return fail("proxy: buffersPerThread must be a power of two <= 32768", EINVAL);
  }
  if (config.bufferSize < 512) {
    return fail("proxy: bufferSize must be at least 512", EINVAL);
  }
  impl->gatewayNs.reset(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!impl->gatewayNs) {
    return sysError("open /proc/thread-self/ns/net");
  }
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

Result<uint64_t> Proxy::addListener(const ProxyListenerSpec& spec) {
  auto listenAddr = parseSockAddr(spec.listenAddr, spec.listenPort);
  if (!listenAddr) {
    return fail("listen address: " + listenAddr.error().message, EINVAL);
  }
  auto target = parseSockAddr(spec.targetAddr, spec.targetPort);
  if (!target) {
    return fail("target address: " + target.error().message, EINVAL);
  }
  if (spec.targetPort == 0) {
    return fail("target port 0", EINVAL);
  }
  auto listener = std::make_shared<ListenerShared>();
  listener->spec = spec;
  listener->target = *target;
  if (!spec.fallbackAddr.empty()) {
    auto fallback = parseSockAddr(spec.fallbackAddr, spec.targetPort);
    if (!fallback) {
      return fail("fallback target address: " + fallback.error().message, EINVAL);
    }
    listener->fallback = *fallback;
  }
  std::string address = formatSockAddr(listenAddr->storage);
  std::optional<std::vector<int>> inherited;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->config.inheritedListeners.find(address);
    if (spec.listenPort != 0 && it != impl_->config.inheritedListeners.end()) {
      inherited = std::move(it->second);
      impl_->config.inheritedListeners.erase(it);
    }
  }
  auto fds = inherited ? adoptListeners(std::move(*inherited), impl_->config.threads, address,
                                        &listener->boundPort)
                       : openListeners(*listenAddr, impl_->config.threads, &listener->boundPort);
  if (!fds) {
    if (inherited) { // closeUnadopted names it: the upgrade must fail, not go on without it
      std::lock_guard lock(impl_->mu);
      impl_->config.inheritedListeners[address] = {};
    }
    return std::unexpected(fds.error());
  }
  listener->fds = std::move(*fds);
  if (auto bound = parseSockAddr(spec.listenAddr, listener->boundPort); bound) {
    listener->address = formatSockAddr(bound->storage);
  }

  std::lock_guard lock(impl_->mu);
  if (impl_->stopped) {
    return fail("proxy is stopped", ESHUTDOWN);
  }
  auto group = impl_->groupFor(spec.targetNetns);
  if (!group) {
    return std::unexpected(group.error());
  }
  listener->id = impl_->nextId++;
  impl_->listeners.emplace(listener->id, listener);
  ++(*group)->listeners;
  for (size_t i = 0; i < (*group)->workers.size(); ++i) {
    (*group)->workers[i]->addListener(listener, i);
  }
  return listener->id;
}

Status Proxy::removeListener(uint64_t id, bool drain) {
  std::shared_ptr<ListenerShared> listener;
  std::vector<Worker*> workers;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->listeners.find(id);
    if (it == impl_->listeners.end()) {
      return fail("no proxy listener " + std::to_string(id), ENOENT);
    }
    if (!impl_->removing.insert(id).second) {
      return fail("proxy listener " + std::to_string(id) + " is being removed", EALREADY);
    }
    listener = it->second;
    // The group outlives this call: it is only erased below, once its listener count drops.
    for (auto& w : impl_->groups.at(listener->spec.targetNetns).workers) {
      workers.push_back(w.get());
    }
  }
  Impl::stopAccepting(*listener, workers);
  auto finished = [&listener] { return listener->active.load() == 0; };
  if (drain) {
    waitUntil(finished, impl_->config.drainTimeout);
  }
  Impl::closeRemaining(id, workers, finished);

  Group retired;
  {
    std::lock_guard lock(impl_->mu);
    impl_->listeners.erase(id);
    impl_->removing.erase(id);
    auto it = impl_->groups.find(listener->spec.targetNetns);
    if (it != impl_->groups.end() && --it->second.listeners == 0) {
      // No listener left for that namespace: its threads (and their hold on it) go.
      retired = std::move(it->second);
      impl_->groups.erase(it);
    }
  }
  return {}; // `retired` joins its workers outside the lock
}

Result<ProxyListenerStats> Proxy::listenerStats(uint64_t id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->listeners.find(id);
  if (it == impl_->listeners.end()) {
    return fail("no proxy listener " + std::to_string(id), ENOENT);
  }
  const ListenerShared& l = *it->second;
  ProxyListenerStats s;
  s.accepted = l.accepted.load(std::memory_order_relaxed);
  s.active = l.active.load(std::memory_order_relaxed);
  s.refusedLimit = l.refusedLimit.load(std::memory_order_relaxed);
  s.backendFailed = l.backendFailed.load(std::memory_order_relaxed);
  s.bytesIn = l.bytesIn.load(std::memory_order_relaxed);
  s.bytesOut = l.bytesOut.load(std::memory_order_relaxed);
  return s;
}

Result<uint16_t> Proxy::boundPort(uint64_t id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->listeners.find(id);
  if (it == impl_->listeners.end()) {
    return fail("no proxy listener " + std::to_string(id), ENOENT);
  }
  return it->second->boundPort;
}

size_t Proxy::activeConnections() {
  return impl_->globalActive.load(std::memory_order_relaxed);
}

void Proxy::stop(bool drain) {
  std::vector<std::shared_ptr<ListenerShared>> listeners;
  std::map<std::string, Group> groups;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) {
      return;
    }
    impl_->stopped = true;
  }
  // A removeListener in progress uses the workers: let it finish first.
  waitUntil(
      [this] {
        std::lock_guard lock(impl_->mu);
        return impl_->removing.empty();
      },
      impl_->config.drainTimeout + 2 * kCloseWait);
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [id, l] : impl_->listeners) {
      listeners.push_back(l);
    }
    groups = std::move(impl_->groups);
    impl_->groups.clear();
  }
  // All listeners stop accepting first, then everything drains together.
  for (auto& l : listeners) {
    std::vector<Worker*> workers;
    for (auto& w : groups.at(l->spec.targetNetns).workers) {
      workers.push_back(w.get());
    }
    Impl::stopAccepting(*l, workers);
  }
  std::vector<Worker*> all;
  for (auto& [name, g] : groups) {
    for (auto& w : g.workers) {
      all.push_back(w.get());
    }
  }
  auto finished = [this] { return impl_->globalActive.load() == 0; };
  if (drain) {
    waitUntil(finished, impl_->config.drainTimeout);
  }
  Impl::closeRemaining(0, all, finished);
  {
    std::lock_guard lock(impl_->mu);
    impl_->listeners.clear();
  }
  groups.clear(); // workers stop and join
}

std::vector<ListenerFds> Proxy::listenerFds() {
  std::lock_guard lock(impl_->mu);
  std::vector<ListenerFds> out;
  for (const auto& [id, l] : impl_->listeners) {
    if (impl_->removing.contains(id) || l->fds.empty()) {
      continue;
    }
    ListenerFds entry;
    entry.address = l->address;
    for (const auto& fd : l->fds) {
      entry.fds.push_back(fd.get());
    }
    out.push_back(std::move(entry));
  }
  return out;
}

void Proxy::releaseListeners() {
  waitUntil(
      [this] {
        std::lock_guard lock(impl_->mu);
        return impl_->removing.empty();
      },
      impl_->config.drainTimeout + 2 * kCloseWait);
  std::vector<std::pair<std::shared_ptr<ListenerShared>, std::vector<Worker*>>> all;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [id, l] : impl_->listeners) {
      std::vector<Worker*> workers;
      for (auto& w : impl_->groups.at(l->spec.targetNetns).workers) {
        workers.push_back(w.get());
      }
      all.emplace_back(l, std::move(workers));
    }
  }
  // Closes our fds only: shutdown() would stop the shared socket for the new process too.
  // The listeners stay (their counters, their connections); stop() ends them.
  for (auto& [l, workers] : all) {
    Impl::stopAccepting(*l, workers);
  }
}

std::vector<std::string> Proxy::closeUnadopted() {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (auto& [address, fds] : impl_->config.inheritedListeners) {
    for (int fd : fds) {
      ::close(fd);
    }
    out.push_back(address);
  }
  impl_->config.inheritedListeners.clear();
  return out;
}

} // namespace gw
