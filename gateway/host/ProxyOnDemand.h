// SPDX-License-Identifier: MIT
// The io_uring proxy as the expose service uses it: started at the first listener.
#pragma once

#include <memory>

#include "gateway/services/ProxyControl.h"

namespace gw {

class ProxyOnDemand final : public ProxyControl {
public:
  explicit ProxyOnDemand(ProxyConfig config) : config_(config) {}
  ~ProxyOnDemand() override { stop(true); }

  Result<uint64_t> addListener(const ProxyListenerSpec& spec) override;
  Status removeListener(uint64_t id, bool drain) override;
  Result<ProxyListenerStats> listenerStats(uint64_t id) override;
  std::optional<size_t> activeConnections() override;
  void stop(bool drain) override;
  std::vector<ListenerFds> listenerFds() override;
  void releaseListeners() override;
  std::vector<std::string> closeUnadopted() override;

private:
  ProxyConfig config_;
  std::unique_ptr<Proxy> proxy_;
};

} // namespace gw
