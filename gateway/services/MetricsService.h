// SPDX-License-Identifier: MIT
// The Prometheus text of GET /metrics. The counters are read once per scrape; what needs a
// walk of the conntrack map (SNAT ports in use) comes from the last maintenance round.
#pragma once

#include <string>

#include "gateway/services/ConntrackService.h"
#include "gateway/services/Context.h"
#include "gateway/services/ExposeService.h"
#include "gateway/services/ProxyControl.h"

namespace gw {

class MetricsService {
public:
  MetricsService(ServiceContext& ctx, ExposeService& exposes, ConntrackService& conntrack,
                 ProxyControl& proxy)
      : ctx_(ctx), exposes_(exposes), conntrack_(conntrack), proxy_(proxy) {}

  std::string render();
  // GET /v1/stats: the data path's counters (when loaded) and the proxy's.
  Result<api::StatsInfo> stats();

private:
  ServiceContext& ctx_;
  ExposeService& exposes_;
  ConntrackService& conntrack_;
  ProxyControl& proxy_;
};

} // namespace gw
