// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::stream_backoff: how a stream thread waits a little before it
// sleeps. Handing an item between threads through a condition variable costs
// a system call on each side; most waits in a busy stream are shorter than
// that, so a waiter first spins (with the CPU's pause hint), then yields its
// core (on a machine with fewer cores than busy threads the thread it waits
// for may need that core), and only then blocks.

#include <braid/detail/cpu_relax.hpp>

#include <thread>

namespace braid::detail {

class stream_backoff {
public:
    // Waits a moment and returns true while the caller should keep polling;
    // returns false once it should block instead.
    bool pause() noexcept {
        if (rounds_ < spins) {
            cpu_relax();
        } else if (rounds_ < spins + yields) {
            std::this_thread::yield();
        } else {
            return false;
        }
        ++rounds_;
        return true;
    }

private:
    static constexpr unsigned spins = 16;
    static constexpr unsigned yields = 4;
    unsigned rounds_ = 0;
};

} // namespace braid::detail
