// SPDX-License-Identifier: MIT
// Helpers for integration tests: run commands, wait for conditions, throwaway namespaces.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace gw::test {

struct CommandResult {
  int status = -1; // exit code, or 128+signal
  std::string out;
  std::string err;
  bool ok() const { return status == 0; }
};

// Runs argv (no shell), captures stdout/stderr; killed after `timeout`.
CommandResult run(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Runs `/bin/sh -c script`.
CommandResult sh(const std::string& script,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Runs a shell script inside a named namespace (ip netns exec NS sh -c ...).
CommandResult shIn(const std::string& ns, const std::string& script,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A whole file ("" when it cannot be read).
std::string readFile(const std::string& path);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool waitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A background process we started; stopped (SIGTERM, then SIGKILL) by PID on destruction.
class Child {
public:
  Child() = default;
  // Output goes to `logPath` (empty: /dev/null).
  static Child spawn(const std::vector<std::string>& argv, const std::string& logPath = {});
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig` and waits up to `timeout` for exit; returns the exit status (128+sig if killed).
  int stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(5));

private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A short prefix unique to this test process, e.g. "gwt1k3z-". Names built from it stay short
// (IFNAMSIZ). Leftovers of dead test processes are swept by sweepLeftovers().
const std::string& prefix();

// Deletes namespaces named gwt<base36 pid>-* whose pid is no longer alive (killed earlier runs).
void sweepLeftovers();

// A namespace made with iproute2 (independent of our netns/ code); deleted on destruction.
class TestNamespace {
public:
  explicit TestNamespace(std::string name);
  TestNamespace(const TestNamespace&) = delete;
  TestNamespace& operator=(const TestNamespace&) = delete;
  ~TestNamespace();
  const std::string& name() const { return name_; }
  CommandResult sh(const std::string& script,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

private:
  std::string name_;
};

} // namespace gw::test
