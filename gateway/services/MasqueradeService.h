// SPDX-License-Identifier: MIT
// Masquerade rules: those `masquerade add` asked for, beside the automatic ones of `ns add`.
#pragma once

#include <vector>

#include "control/Api.h"
#include "gateway/services/Context.h"
#include "gateway/services/Topology.h"

namespace gw {

class MasqueradeService {
public:
  // `automatic` gives the subnets that managed namespaces masquerade by themselves.
  MasqueradeService(ServiceContext& ctx, Topology& topology,
                    std::function<std::vector<IpPrefix>()> automatic)
      : ctx_(ctx), topology_(topology), automatic_(std::move(automatic)) {}

  Result<api::MasqueradeAdded> add(const api::MasqueradeRequest& request);
  Result<api::MasqueradeDeleted> remove(const api::MasqueradeQuery& query);
  std::vector<api::MasqueradeInfo> list();
  // On start: gives the data path every masquerade of the state, the automatic ones of
  // managed namespaces included, and removes the entries that no state names; logs both.
  void reconcile();

private:
  // After a `masquerade add/del` of `net` is undone or done: back to what `ns add` made of a
  // managed subnet, else gone.
  void restoreAutomatic(const IpPrefix& net);

  ServiceContext& ctx_;
  Topology& topology_;
  std::function<std::vector<IpPrefix>()> automatic_;
};

} // namespace gw
