// SPDX-License-Identifier: MIT
#pragma once

// A loop's wait timeout (none, or a duration; a negative one counts as zero)
// as the blocking system calls take it: a timespec, or null for no limit.
// Used by the two places a loop sleeps, epoll_pwait2 and its futex.

#include <chrono>
#include <optional>

#include <time.h>

namespace braid::detail {

// Fills spec and returns it, or returns null when there is no timeout.
inline timespec* to_timespec(const std::optional<std::chrono::nanoseconds>& timeout,
                             timespec& spec) noexcept {
    if (!timeout) {
        return nullptr;
    }
    const auto ns = timeout->count() < 0 ? 0 : timeout->count();
    spec.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return &spec;
}

} // namespace braid::detail
