// SPDX-License-Identifier: MIT
#include "gateway/host/ProxyOnDemand.h"

#include <unistd.h>

namespace gw {

Result<uint64_t> ProxyOnDemand::addListener(const ProxyListenerSpec& spec) {
  if (!proxy_) {
    auto started = Proxy::start(config_);
    if (!started) {
      return std::unexpected(started.error());
    }
    proxy_ = std::move(*started);
    config_.inheritedListeners.clear(); // the proxy owns them now
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

std::vector<ListenerFds> ProxyOnDemand::listenerFds() {
  return proxy_ ? proxy_->listenerFds() : std::vector<ListenerFds>{};
}

void ProxyOnDemand::releaseListeners() {
  if (proxy_) {
    proxy_->releaseListeners();
  }
}

std::vector<std::string> ProxyOnDemand::closeUnadopted() {
  std::vector<std::string> out = proxy_ ? proxy_->closeUnadopted() : std::vector<std::string>{};
  for (auto& [address, fds] : config_.inheritedListeners) {
    for (int fd : fds) {
      ::close(fd);
    }
    out.push_back(address);
  }
  config_.inheritedListeners.clear();
  return out;
}

} // namespace gw
