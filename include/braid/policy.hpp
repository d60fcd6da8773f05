// SPDX-License-Identifier: MIT
#pragma once

// Scheduling policies of braid::event_loop.
//
// The loop keeps one FIFO ready queue of task steps and call_soon callbacks.
// A policy decides one thing: when a running task gives the loop a turn
// (co_await braid::yield()), does that task go to the back of the queue, or to
// the front (so that it runs again before anything else)?
//
//   braid::interleaved     back: round-robin, every ready task gets a step in turn
//   braid::sequential      front: each task runs to completion before the next
//   braid::step_slice{k}   front until the task has run k steps in a row, then back
//   braid::time_slice{t}   front until the task has run for t, then back
//
// The two slices sit between the first two: a task that finishes within its
// slice is never interrupted, so switching costs (cold caches, cold frames)
// are paid once per slice rather than once per step, while no task waits
// longer than one slice per task ahead of it. docs/policies.md says when each
// policy wins, with measurements.
//
// Newly spawned tasks and call_soon callbacks always go to the back.
//
// A policy of your own is any type with a member
//   braid::placement on_yield(const braid::yield_info&)
// (see the scheduling_policy concept). Pass an instance to the loop's
// constructor; the loop keeps its own copy and calls it on the loop's thread.
// When on_yield is a constant expression of an empty type (as for interleaved
// and sequential) the loop evaluates it once, so the policy costs nothing per
// yield. The loop calls step_slice directly (about 14 instructions per yield
// more than sequential); any other policy, time_slice included, costs one
// indirect call per yield.

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace braid {

// Where a task that yields is put back in the ready queue.
enum class placement : unsigned char {
    back,  // after everything already ready
    front, // before everything already ready: it is the next thing to run
};

// What a policy is told about a yield.
struct yield_info {
    std::coroutine_handle<> coroutine; // the innermost suspended coroutine (identity only)
    std::uint64_t round = 0;           // event_loop::rounds() at the yield
    std::size_t ready = 0;             // items waiting in the ready queue
};

template <class P>
concept scheduling_policy = std::move_constructible<P> && std::is_object_v<P> &&
                            requires(P& policy, const yield_info& info) {
                                { policy.on_yield(info) } -> std::same_as<placement>;
                            };

// Round-robin: a task that yields goes to the back of the ready queue. Short
// tasks finish early; a task's latency grows with the number of tasks ready.
struct interleaved_t {
    constexpr placement on_yield(const yield_info&) const noexcept { return placement::back; }
};

// Run to completion: a task that yields is resumed again before anything else
// queued, so tasks finish in the order they were started.
struct sequential_t {
    constexpr placement on_yield(const yield_info&) const noexcept { return placement::front; }
};

inline constexpr interleaved_t interleaved{};
inline constexpr sequential_t sequential{};

// Slices of steps: a task that yields goes to the front until it has run
// `steps` steps in a row, then to the back. step_slice{1} is interleaved, and
// a slice longer than every task is sequential. The schedule depends only on
// the tasks, never on time, so it is the same in every run.
//
// How a slice is followed: a task put at the front is the next item the loop
// runs, so a yield in the round right after a front placement continues that
// slice (also when a child task of the same task yields). Any other yield
// starts a new slice: a task that finishes or waits for something ends its
// slice, and the next task to yield gets a whole one. No task ever runs more
// than `steps` steps in a row while others are ready.
class step_slice {
public:
    // Throws std::invalid_argument if steps is 0.
    explicit constexpr step_slice(std::uint32_t steps) : steps_(steps) {
        if (steps == 0) {
            throw std::invalid_argument("braid::step_slice: a slice needs at least one step");
        }
    }

    [[nodiscard]] constexpr std::uint32_t steps() const noexcept { return steps_; }

    constexpr placement on_yield(const yield_info& info) noexcept {
        taken_ = info.round == continues_at_ ? taken_ + 1 : 1;
        if (taken_ < steps_) {
            continues_at_ = info.round + 1;
            return placement::front;
        }
        return placement::back;
    }

private:
    std::uint32_t steps_;
    std::uint32_t taken_ = 0; // steps run in the current slice
    // The round of a yield that would continue the current slice (the loop
    // counts rounds from 1, so 0 continues nothing).
    std::uint64_t continues_at_ = 0;
};

// Slices of time: a task that yields goes to the front until it has run for
// `time` (or for `max_steps` steps, if that comes first), then to the back.
// Cheap steps run many to a slice and expensive ones few, so the time others
// wait is bounded in time rather than in steps. Each yield reads the clock
// (about 25 ns for steady_clock on Linux), so it suits steps of a microsecond
// or more; for tiny steps, step_slice costs less. Schedules depend on timing,
// so they differ from run to run.
//
// A slice is followed as step_slice follows it. It is timed from the yield
// that ended the slice before it, when that yield was in the round just before
// (the usual case when tasks take turns); otherwise (the loop ran a callback,
// or a task that finished, in between) from the task's own first yield.
//
// Clock is any std::chrono clock: basic_time_slice<your_clock> lets a test
// drive the schedule with a clock of its own.
template <class Clock>
    requires std::chrono::is_clock_v<Clock>
class basic_time_slice {
public:
    using clock = Clock;
    using duration = typename Clock::duration;

    // Throws std::invalid_argument if time is negative or max_steps is 0.
    explicit basic_time_slice(duration time,
                              std::uint32_t max_steps = std::numeric_limits<std::uint32_t>::max())
        : time_(time), max_steps_(max_steps) {
        if (time < duration::zero()) {
            throw std::invalid_argument("braid::time_slice: the time of a slice is negative");
        }
        if (max_steps == 0) {
            throw std::invalid_argument("braid::time_slice: a slice needs at least one step");
        }
    }

    [[nodiscard]] duration time() const noexcept { return time_; }
    [[nodiscard]] std::uint32_t max_steps() const noexcept { return max_steps_; }

    placement on_yield(const yield_info& info) noexcept(noexcept(Clock::now())) {
        const typename Clock::time_point now = Clock::now();
        if (info.round == continues_at_) {
            ++taken_;
        } else {
            start_ = info.round == after_last_yield_ ? last_yield_ : now;
            taken_ = 1;
        }
        last_yield_ = now;
        after_last_yield_ = info.round + 1;
        if (taken_ < max_steps_ && now - start_ < time_) {
            continues_at_ = info.round + 1;
            return placement::front;
        }
        return placement::back;
    }

private:
    duration time_;
    std::uint32_t max_steps_;
    std::uint32_t taken_ = 0;                 // steps run in the current slice
    std::uint64_t continues_at_ = 0;          // as in step_slice
    std::uint64_t after_last_yield_ = 0;      // the round after the last yield
    typename Clock::time_point start_{};      // when the current slice began
    typename Clock::time_point last_yield_{}; // when the last yield happened
};

using time_slice = basic_time_slice<std::chrono::steady_clock>;

namespace detail {

// True when P's decision is a compile-time constant that needs no state.
template <class P>
concept constant_policy =
    scheduling_policy<P> && std::is_empty_v<P> && std::default_initializable<P> &&
    requires { typename std::integral_constant<placement, P{}.on_yield(yield_info{})>; };

} // namespace detail
} // namespace braid
