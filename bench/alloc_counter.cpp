// SPDX-License-Identifier: MIT

#include "alloc_counter.hpp"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define BRAID_BENCH_HAVE_MALLINFO2 1
#endif

namespace braid_bench {
namespace {
std::ptrdiff_t in_use_at_start = 0;

std::ptrdiff_t heap_in_use() noexcept {
#ifdef BRAID_BENCH_HAVE_MALLINFO2
    // uordblks leaves out blocks malloc mapped on their own (a ready queue or
    // table past the mmap threshold): hblkhd has those.
    const auto info = mallinfo2();
    return static_cast<std::ptrdiff_t>(info.uordblks + info.hblkhd);
#else
    return -1;
#endif
}
} // namespace

void start_counting_allocations() noexcept {
    in_use_at_start = heap_in_use();
}

std::ptrdiff_t stop_counting_allocations() noexcept {
    const std::ptrdiff_t now = heap_in_use();
    return now < 0 ? -1 : now - in_use_at_start;
}

} // namespace braid_bench
