// SPDX-License-Identifier: MIT
// What the services share: the state and where it is committed, and the data path when it is
// loaded. The daemon owns them; services hold references.
#pragma once

#include <string>

#include "base/Error.h"
#include "gateway/State.h"
#include "gateway/datapath/Datapath.h"

namespace gw {

// The eBPF data path, or why there is none.
struct DatapathRef {
  Datapath* dp = nullptr;
  std::string error; // why it did not load

  Result<Datapath*> get() const {
    if (dp == nullptr) {
      return unavailable("the eBPF data path is not loaded: " + error);
    }
    return dp;
  }
  explicit operator bool() const { return dp != nullptr; }
};

struct ServiceContext {
  State& state;
  StateSink& store;
  DatapathRef& datapath;
  std::string uplink; // the uplink's name, for answers
};

} // namespace gw
