// SPDX-License-Identifier: MIT
// A separate translation unit, so that the replaced operators are never
// inlined into the code that allocates (g++ 12 then warns about new/free).

#include "alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace {
bool counting = false;
std::ptrdiff_t net_bytes = 0;
} // namespace

namespace braid_bench {

void start_counting_allocations() noexcept {
    net_bytes = 0;
    counting = true;
}

std::ptrdiff_t stop_counting_allocations() noexcept {
    counting = false;
    return net_bytes;
}

} // namespace braid_bench

void* operator new(std::size_t size) {
    if (counting) {
        net_bytes += static_cast<std::ptrdiff_t>(size);
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}

void operator delete(void* p) noexcept { std::free(p); }

void operator delete(void* p, std::size_t size) noexcept {
    if (counting) {
        net_bytes -= static_cast<std::ptrdiff_t>(size);
    }
    std::free(p);
}
