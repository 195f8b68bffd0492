// SPDX-License-Identifier: MIT
// What a start's reconcile repaired in the kernel, for the log: a line for each of the first
// few, then a count, so that a crash that left thousands of map entries does not flood it.
#pragma once

#include <cstddef>
#include <string>

#include "base/Log.h"

namespace gw {

class RepairLog {
public:
  static constexpr size_t kNamed = 10;

  // `what` is what summary() counts: "expose map entries without state removed".
  explicit RepairLog(std::string what) : what_(std::move(what)) {}

  // One repair: logged as "reconcile: <args>" while fewer than kNamed were.
  template <class... Args>
  void add(const Args&... args) {
    if (count_++ < kNamed) {
      log::warn("reconcile: ", args...);
    }
  }
  size_t count() const { return count_; }

  // "reconcile: N <what>", once anything was repaired.
  void summary() const {
    if (count_ > kNamed) {
      log::warn("reconcile: ", count_, " ", what_, " (the first ", kNamed, " named above)");
    } else if (count_ > 0) {
      log::warn("reconcile: ", count_, " ", what_);
    }
  }

private:
  std::string what_;
  size_t count_ = 0;
};

} // namespace gw
