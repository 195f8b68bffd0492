// SPDX-License-Identifier: MIT
#include "base/Log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/stat.h>
#include <unistd.h>

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

// syslog priority of a level, as a "<N>" prefix journald reads off a stream line.
int priority(Level level) {
  switch (level) {
  case Level::Debug: return 7;
  case Level::Info: return 6;
  case Level::Warn: return 4;
  case Level::Error: return 3;
  }
  return 6;
}

// Under systemd stderr is a journal stream ($JOURNAL_STREAM names its device:inode): lines
// prefixed "<N>" get priority N there (`journalctl -p warning`), not all "info".
bool toJournal() {
  static const bool journal = [] {
    const char* env = std::getenv("JOURNAL_STREAM");
    struct stat st{};
    if (env == nullptr || ::fstat(STDERR_FILENO, &st) != 0) {
      return false;
    }
    unsigned long long dev = 0, ino = 0;
    return std::sscanf(env, "%llu:%llu", &dev, &ino) == 2 && dev == st.st_dev &&
           ino == st.st_ino;
  }();
  return journal;
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
  char prefix[8] = "";
  if (toJournal()) {
    std::snprintf(prefix, sizeof prefix, "<%d>", priority(level));
  }
  std::fprintf(stderr, "%s%s.%03dZ %s %s\n", prefix, stamp, static_cast<int>(ms.count()),
               name(level), line.c_str());
}

} // namespace gw::log
