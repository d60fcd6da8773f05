// SPDX-License-Identifier: MIT
#pragma once

// braid::manual_clock: a clock that moves only when told to, for tests of
// code that waits for time.
//
//   braid::manual_clock clock;
//   braid::event_loop loop{braid::interleaved, clock}; // the clock outlives the loop
//   loop.call_later(1h, f);
//   loop.run(); // returns at once: f ran, and clock.now() is one hour later
//
// A loop given a manual clock reads its time from it and never sleeps for a
// timer: when nothing is ready and no thread-safe call, run_in or async_next
// is outstanding, it moves the clock to the earliest pending deadline and goes
// on. So a test of an hour of timers runs in microseconds, with exact times.
//
// The clock's time points are those of std::chrono::steady_clock (the event
// loop's clock), starting at its epoch unless given a start. It never moves
// backwards. It is not thread-safe: advance it on the thread of the loop that
// uses it (for example from a task or callback, or between runs).

#include <chrono>
#include <stdexcept>

namespace braid {

class manual_clock {
public:
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::steady_clock::time_point;

    // Starts at the steady clock's epoch: time_point{}.
    manual_clock() noexcept = default;
    explicit manual_clock(time_point start) noexcept : now_(start) {}

    manual_clock(const manual_clock&) = delete;
    manual_clock& operator=(const manual_clock&) = delete;

    [[nodiscard]] time_point now() const noexcept { return now_; }

    // Moves the clock forward by d, saturating at time_point::max(). A
    // negative d throws std::invalid_argument (the clock never goes back).
    void advance(duration d) {
        if (d < duration::zero()) {
            throw std::invalid_argument(
                "braid::manual_clock::advance: negative duration; the clock never moves back");
        }
        now_ = now_ > time_point::max() - d ? time_point::max() : now_ + d;
    }

    // Moves the clock to t. A t before now() throws std::invalid_argument.
    void advance_to(time_point t) {
        if (t < now_) {
            throw std::invalid_argument(
                "braid::manual_clock::advance_to: a time before now(); the clock never moves back");
        }
        now_ = t;
    }

private:
    time_point now_{};
};

} // namespace braid
