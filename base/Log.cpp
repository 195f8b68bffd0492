// SPDX-License-Identifier: MIT
#include "base/Log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace gw::log {
namespace {

std::atomic<Level> gLevel{Level::Info};

const char* name(Level level) {
  switch (level) {
  case Level::Debug: return "debug";
  case Level::Info: return "info";
  case Level::Warn: return "warn";
  case Level::Error: return "error";
  }
  return "?";
}

} // namespace

void setLevel(Level level) { gLevel = level; }

bool enabled(Level level) { return level >= gLevel.load(); }

bool parseLevel(std::string_view text, Level& out) {
  for (auto level : {Level::Debug, Level::Info, Level::Warn, Level::Error}) {
    if (text == name(level)) {
      out = level;
      return true;
    }
  }
  return false;
}

void write(Level level, const std::string& line) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per event keeps lines whole when threads log at once.
  std::fprintf(stderr, "%s.%03dZ %s %s\n", stamp, static_cast<int>(ms.count()), name(level),
               line.c_str());
}

} // namespace gw::log
