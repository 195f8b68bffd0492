// SPDX-License-Identifier: MIT
// What the expose service needs of the io_uring proxy: listeners and their counters.
// host/ProxyOnDemand starts the real proxy at the first listener; unit tests use a fake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/Error.h"
#include "gateway/proxy/Proxy.h"

namespace gw {

class ProxyControl {
public:
  virtual ~ProxyControl() = default;

  virtual Result<uint64_t> addListener(const ProxyListenerSpec& spec) = 0;
  virtual Status removeListener(uint64_t id, bool drain) = 0;
  virtual Result<ProxyListenerStats> listenerStats(uint64_t id) = 0;
  // nullopt while the proxy has never been started.
  virtual std::optional<size_t> activeConnections() = 0;
  // Closes every listener and connection (drain: let open ones finish first).
  virtual void stop(bool drain) = 0;

  // Upgrade (SIGUSR2). Defaults: a proxy with nothing to hand over.
  virtual std::vector<ListenerFds> listenerFds() { return {}; }
  virtual void releaseListeners() {}
  // After start: closes inherited sockets no expose adopted, returning their addresses.
  virtual std::vector<std::string> closeUnadopted() { return {}; }
};

} // namespace gw
