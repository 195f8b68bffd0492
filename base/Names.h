// SPDX-License-Identifier: MIT
// What the kernel and iproute2 accept as names, checked before anything is made.
#pragma once

#include <string_view>

#include "base/Error.h"

namespace gw {

// A named network namespace (/run/netns/NAME): letters, digits, '_', '.', '-', at most 15.
Status validateNamespaceName(std::string_view name);
// The kernel's dev_valid_name(): 1..15 chars, no '/', ':' or whitespace, not "." or "..".
Status validateIfName(std::string_view name);

} // namespace gw
