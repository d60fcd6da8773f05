// SPDX-License-Identifier: MIT
#pragma once

// Measures how much heap a piece of a benchmark keeps: the change in bytes
// that malloc has handed out (glibc's mallinfo2, so chunk headers and every
// allocation path count: operator new, aligned new, aligned_alloc, ...), in
// the heap and in blocks big enough for malloc to map on their own.
// Returns -1 where mallinfo2 is not available.

#include <cstddef>

namespace braid_bench {

// Starts a measurement.
void start_counting_allocations() noexcept;
// Heap bytes in use now minus at the start, or -1 when unknown.
std::ptrdiff_t stop_counting_allocations() noexcept;

} // namespace braid_bench
