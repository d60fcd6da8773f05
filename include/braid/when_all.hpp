// SPDX-License-Identifier: MIT
#pragma once

// braid::when_all: runs tasks concurrently on the awaiting task's loop and
// gives all their results, or the first failure.
//
//   auto [a, b] = co_await braid::when_all(fetch("a"), fetch("b")); // a tuple
//   std::vector<int> all = co_await braid::when_all(std::move(tasks)); // in order
//
// It owns the tasks given to it (move them in). They run concurrently on the
// loop of the task that awaits when_all's result. When one fails -- a child
// ending with braid::cancelled counts -- the others are cancelled and awaited,
// then the first exception in time is rethrown: no child outlives the call.
// Cancelling the awaiting task cancels every child, waits for them, then
// delivers braid::cancelled. A void task contributes std::monostate to the
// tuple; when_all of std::vector<task<void>> gives void; of an empty vector, an
// empty vector (or nothing) at once.

#include <braid/detail/loop/join.hpp>
#include <braid/errors.hpp>
#include <braid/task.hpp>

#include <cstddef>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace braid {
namespace detail {

template <class T>
using value_or_monostate_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// A finished task's result, std::monostate for void.
template <class T>
value_or_monostate_t<T> take_result(task<T>& t) {
    if constexpr (std::is_void_v<T>) {
        std::move(t).result();
        return {};
    } else {
        return std::move(t).result();
    }
}

template <class T>
void add_child(join& j, task<T>& t, const char* function) {
    j.add(task_access::promise_of(t, function));
}

} // namespace detail

template <class T>
    requires(!std::is_reference_v<T>)
[[nodiscard]] task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>
when_all(std::vector<task<T>> tasks) {
    detail::join waiting(detail::join::rule::all);
    waiting.reserve(tasks.size());
    for (task<T>& t : tasks) {
        detail::add_child(waiting, t, "when_all");
    }
    if (!tasks.empty()) {
        co_await waiting;
    }
    if (waiting.error()) {
        std::rethrow_exception(waiting.take_error());
    }
    if constexpr (std::is_void_v<T>) {
        co_return;
    } else {
        std::vector<T> results;
        results.reserve(tasks.size());
        for (task<T>& t : tasks) {
            results.push_back(std::move(t).result());
        }
        co_return results;
    }
}

template <class... Ts>
    requires(sizeof...(Ts) > 0 && (!std::is_reference_v<Ts> && ...))
[[nodiscard]] task<std::tuple<detail::value_or_monostate_t<Ts>...>> when_all(task<Ts>... tasks) {
    detail::join waiting(detail::join::rule::all);
    waiting.reserve(sizeof...(Ts));
    (detail::add_child(waiting, tasks, "when_all"), ...);
    co_await waiting;
    if (waiting.error()) {
        std::rethrow_exception(waiting.take_error());
    }
    co_return std::tuple<detail::value_or_monostate_t<Ts>...>(detail::take_result(tasks)...);
}

} // namespace braid
