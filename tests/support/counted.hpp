// SPDX-License-Identifier: MIT
#pragma once

// braid_test::counted: a value that counts how many of its kind are alive, to
// check that frames (and what they hold) are destroyed exactly once.

#include <cstddef>

namespace braid_test {

struct counted {
    static inline int alive = 0;
    static inline int constructed = 0;

    counted() noexcept { ++alive, ++constructed; }
    counted(const counted&) noexcept { ++alive, ++constructed; }
    counted(counted&&) noexcept { ++alive, ++constructed; }
    counted& operator=(const counted&) = default;
    counted& operator=(counted&&) = default;
    ~counted() { --alive; }

    static void reset() noexcept { alive = 0, constructed = 0; }
};

} // namespace braid_test
