// SPDX-License-Identifier: MIT
#pragma once

// Scheduling policies of braid::event_loop.
//
// The loop keeps one FIFO ready queue of task steps and call_soon callbacks.
// A policy decides one thing: when a running task gives the loop a turn
// (co_await braid::yield()), does that task go to the back of the queue, or to
// the front (so that it runs again before anything else)?
//
//   braid::interleaved  back: round-robin, every ready task gets a step in turn
//   braid::sequential   front: each task runs to completion before the next
//
// Newly spawned tasks and call_soon callbacks always go to the back.
//
// A policy of your own is any type with a member
//   braid::placement on_yield(const braid::yield_info&)
// (see the scheduling_policy concept). Pass an instance to the loop's
// constructor; the loop keeps its own copy and calls it on the loop's thread.
// When on_yield is a constant expression of an empty type (as for the two
// built-in policies) the loop evaluates it once, so the policy costs nothing
// per yield; otherwise it is one indirect call per yield.

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
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

namespace detail {

// True when P's decision is a compile-time constant that needs no state.
template <class P>
concept constant_policy =
    scheduling_policy<P> && std::is_empty_v<P> && std::default_initializable<P> &&
    requires { typename std::integral_constant<placement, P{}.on_yield(yield_info{})>; };

} // namespace detail
} // namespace braid
