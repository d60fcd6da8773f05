// SPDX-License-Identifier: MIT
#pragma once

// Durations and time points of any std::chrono type, turned into the loop's
// clock ticks: rounded up (a timer never fires early), negative delays as
// zero, and anything past the end of the clock saturated at
// time_point::max() (a deadline that is never reached) instead of wrapping.

#include <braid/detail/loop/timer_queue.hpp>

#include <chrono>
#include <cmath>
#include <type_traits>

namespace braid::detail {

// d as the loop's duration: >= 0, rounded up, at most duration::max().
template <class Rep, class Period>
inline loop_clock::duration to_loop_duration(std::chrono::duration<Rep, Period> d) noexcept {
    using target = loop_clock::duration;
    // Compared in long double nanoseconds, which no std::chrono type overflows
    // (and NaN compares false, so it counts as zero).
    const long double ns = std::chrono::duration<long double, std::nano>(d).count();
    if (!(ns > 0)) {
        return target::zero();
    }
    if (ns >= static_cast<long double>(target::max().count())) {
        return target::max();
    }
    if constexpr (std::is_floating_point_v<Rep>) {
        return target(static_cast<target::rep>(std::ceil(ns)));
    } else {
        return std::chrono::ceil<target>(d);
    }
}

// now + d, saturated at time_point::max().
template <class Rep, class Period>
inline loop_clock::time_point deadline_after(loop_clock::time_point now,
                                             std::chrono::duration<Rep, Period> d) noexcept {
    const loop_clock::duration delay = to_loop_duration(d);
    return now > loop_clock::time_point::max() - delay ? loop_clock::time_point::max()
                                                       : now + delay;
}

// t as the loop's time point: rounded up, saturated at both ends.
template <class Duration>
inline loop_clock::time_point
to_loop_time(std::chrono::time_point<loop_clock, Duration> t) noexcept {
    using target = loop_clock::duration;
    const long double ns =
        std::chrono::duration<long double, std::nano>(t.time_since_epoch()).count();
    if (ns >= static_cast<long double>(target::max().count())) {
        return loop_clock::time_point::max();
    }
    if (ns <= static_cast<long double>(target::min().count())) {
        return loop_clock::time_point::min();
    }
    if constexpr (std::is_floating_point_v<typename Duration::rep>) {
        return loop_clock::time_point(target(static_cast<target::rep>(std::ceil(ns))));
    } else {
        return std::chrono::ceil<target>(t);
    }
}

} // namespace braid::detail
