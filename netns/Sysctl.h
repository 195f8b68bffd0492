// SPDX-License-Identifier: MIT
// Sysctls through /proc/sys. Keys are relative, e.g. "net/ipv4/ip_forward".
#pragma once

#include <string>
#include <string_view>

#include "base/Error.h"

namespace gw {

// Rejects empty keys, a leading '/', ".." components and NULs.
Status validateSysctlKey(std::string_view key);

// Net sysctls resolve the namespace of the calling thread when the file is opened.
Status writeSysctl(std::string_view key, std::string_view value);
// The value with surrounding whitespace trimmed.
Result<std::string> readSysctl(std::string_view key);
// Enters the namespace, writes, and comes back.
Status writeSysctlIn(int nsFd, std::string_view key, std::string_view value);
Result<std::string> readSysctlIn(int nsFd, std::string_view key);

} // namespace gw
