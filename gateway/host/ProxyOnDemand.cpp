// SPDX-License-Identifier: MIT
#include "gateway/host/ProxyOnDemand.h"

namespace gw {

Result<uint64_t> ProxyOnDemand::addListener(const ProxyListenerSpec& spec) {
  if (!proxy_) {
    auto started = Proxy::start(config_);
    if (!started) {
      return std::unexpected(started.error());
    }
    proxy_ = std::move(*started);
  }
  return proxy_->addListener(spec);
}

Status ProxyOnDemand::removeListener(uint64_t id, bool drain) {
  if (!proxy_) {
    return notFound("no proxy listener " + std::to_string(id));
  }
  return proxy_->removeListener(id, drain);
}

Result<ProxyListenerStats> ProxyOnDemand::listenerStats(uint64_t id) {
  if (!proxy_) {
    return notFound("no proxy listener " + std::to_string(id));
  }
  return proxy_->listenerStats(id);
}

std::optional<size_t> ProxyOnDemand::activeConnections() {
  if (!proxy_) {
    return std::nullopt;
  }
  return proxy_->activeConnections();
}

void ProxyOnDemand::stop(bool drain) {
  if (proxy_) {
    proxy_->stop(drain);
    proxy_.reset();
  }
}

} // namespace gw
