// SPDX-License-Identifier: MIT
// The fuzz targets as plain functions, so one binary (the regression test) can hold them all;
// Entry.cpp defines LLVMFuzzerTestOneInput for one of them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gw::fuzz {

int fuzzHttp(const uint8_t* data, size_t size);  // tests/fuzz/FuzzHttp.cpp
int fuzzApi(const uint8_t* data, size_t size);   // tests/fuzz/FuzzApi.cpp
int fuzzState(const uint8_t* data, size_t size); // tests/fuzz/FuzzState.cpp

} // namespace gw::fuzz
