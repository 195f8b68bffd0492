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

const char* journalPrefix(Level level) {
  static const char* const prefixes[] = {"<7>", "<6>", "<4>", "<3>"};
  if (!toJournal()) {
    return "";
  }
  switch (level) {
  case Level::Debug: return prefixes[0];
  case Level::Info: return prefixes[1];
  case Level::Warn: return prefixes[2];
  case Level::Error: return prefixes[3];
  }
  return "";
}

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
  std::fprintf(stderr, "%s%s.%03dZ %s %s\n", journalPrefix(level), stamp, static_cast<int>(ms.count()),
               name(level), line.c_str());
}

} // namespace gw::log
