// SPDX-License-Identifier: MIT
// Undo steps for a change made of several kernel steps: run in reverse unless committed.
#pragma once

#include <functional>
#include <vector>

namespace gw {

class Rollback {
public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback() { undo(); }
  void add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  // Runs the undo steps now, in reverse (then there is nothing left to undo).
  void undo() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
      (*it)();
    }
    undo_.clear();
  }
  void commit() { undo_.clear(); }

private:
  std::vector<std::function<void()>> undo_;
};

} // namespace gw
