// SPDX-License-Identifier: MIT
// The API's endpoints (control/Api.h's paths): each decodes its request into the schema's
// struct, calls one service and encodes the answer.
#pragma once

#include <functional>

#include "control/Api.h"
#include "gateway/State.h"
#include "gateway/api/Router.h"
#include "gateway/services/ConntrackService.h"
#include "gateway/services/ExposeService.h"
#include "gateway/services/MasqueradeService.h"
#include "gateway/services/MetricsService.h"
#include "gateway/services/NamespaceService.h"

namespace gw {

struct ApiEndpoints {
  NamespaceService& namespaces;
  ExposeService& exposes;
  MasqueradeService& masquerades;
  ConntrackService& conntrack;
  MetricsService& metrics;
  const State& state;
  std::function<api::StatusInfo()> status;
  std::function<Status()> down; // removes everything, then the daemon exits
};

void addApiRoutes(Router& router, ApiEndpoints endpoints);

} // namespace gw
