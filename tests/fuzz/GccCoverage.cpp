// SPDX-License-Identifier: MIT
// Edge coverage for libFuzzer's engine when g++ builds the targets (libfuzzer-gcc). g++ has no
// -fsanitize=fuzzer: its -fsanitize-coverage=trace-pc calls __sanitizer_cov_trace_pc() once per
// basic block, which libFuzzer 14 refuses. Here it hashes (previous block, this block) into
// inline 8-bit counters libFuzzer reads, as AFL counts edges; the build weakens libFuzzer's
// own definition (objcopy) so this one is linked. Built without coverage: it must not call
// itself. trace-cmp's float and double comparisons have no libFuzzer hook: ignored.
#include <cstddef>
#include <cstdint>

extern "C" void __sanitizer_cov_8bit_counters_init(uint8_t* start, uint8_t* stop);

namespace {

constexpr size_t kSlots = 1 << 16;
uint8_t gCounters[kSlots];
thread_local uintptr_t gPrevious;

__attribute__((constructor)) void registerCounters() {
  __sanitizer_cov_8bit_counters_init(gCounters, gCounters + kSlots);
}

} // namespace

extern "C" {

void __sanitizer_cov_trace_pc() {
  auto pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  uintptr_t block = (pc ^ (pc >> 16)) * 0x9E3779B1u;
  gCounters[(block ^ gPrevious) & (kSlots - 1)]++;
  gPrevious = block >> 1; // A->B and B->A count apart
}

void __sanitizer_cov_trace_cmpf(float, float) {}
void __sanitizer_cov_trace_cmpd(double, double) {}

} // extern "C"
