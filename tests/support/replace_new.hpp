// SPDX-License-Identifier: MIT
#pragma once

// Replaces the global operator new and delete (all but the aligned forms) so
// that a test program can count or fail allocations: every new calls
// braid_test::counted_allocation, which the including file defines (it must
// allocate with std::malloc, which every delete here frees with). Include it
// in one file of a test program only, as a program has one operator new.

#include <cstddef>
#include <cstdlib>
#include <new>

namespace braid_test {
void* counted_allocation(std::size_t size);
} // namespace braid_test

void* operator new(std::size_t size) {
    return braid_test::counted_allocation(size);
}
void* operator new[](std::size_t size) {
    return braid_test::counted_allocation(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return braid_test::counted_allocation(size);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return braid_test::counted_allocation(size);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
