// SPDX-License-Identifier: MIT
// One event per line on stderr: "2026-11-23T07:30:00.123Z info ns add netns1 ...".
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace gw::log {

enum class Level { Debug = 0, Info, Warn, Error };

void setLevel(Level level);
bool parseLevel(std::string_view text, Level& out);
bool enabled(Level level);
void write(Level level, const std::string& line);
// "<N>" (syslog priority) when stderr is systemd's journal stream, else "": for lines written
// to stderr by other means, so that the journal files them at their level too.
const char* journalPrefix(Level level);

template <class... Args>
void emit(Level level, const Args&... args) {
  if (!enabled(level)) {
    return;
  }
  std::ostringstream os;
  (os << ... << args);
  write(level, os.str());
}

template <class... Args>
void debug(const Args&... args) { emit(Level::Debug, args...); }
template <class... Args>
void info(const Args&... args) { emit(Level::Info, args...); }
template <class... Args>
void warn(const Args&... args) { emit(Level::Warn, args...); }
template <class... Args>
void error(const Args&... args) { emit(Level::Error, args...); }

} // namespace gw::log
