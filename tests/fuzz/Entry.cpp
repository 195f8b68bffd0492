// SPDX-License-Identifier: MIT
// libFuzzer's entry point for one target, named by GW_FUZZ_TARGET (tests/fuzz/CMakeLists.txt):
// apart from the targets so each FuzzX.cpp is compiled once for its binary and the regression
// test both.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/FuzzTargets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gw::fuzz::GW_FUZZ_TARGET(data, size);
}
