// SPDX-License-Identifier: MIT
#pragma once

// Counts the bytes a benchmark allocates through the global operator new while
// counting is switched on (off by default, so that timing runs pay one branch
// per allocation and nothing else). Defined in alloc_counter.cpp, which
// replaces the global operator new and delete of the benchmark program.

#include <cstddef>

namespace braid_bench {

// Starts counting from zero.
void start_counting_allocations() noexcept;
// Stops counting; returns bytes allocated minus bytes freed since the start.
std::ptrdiff_t stop_counting_allocations() noexcept;

} // namespace braid_bench
