// SPDX-License-Identifier: MIT
// The benchmark drives the programs through the unit tests' loader (tests/bpf/BpfLoader.h).
#pragma once

#include "tests/bpf/BpfLoader.h"

namespace gw::bench {
using test::BpfLoader;
using test::Bytes;
using test::ctEntry;
using test::ctKey;
using test::isXdp;
using test::Prog;
using test::progName;
using test::RunResult;
} // namespace gw::bench
