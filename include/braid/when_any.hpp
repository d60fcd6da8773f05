// SPDX-License-Identifier: MIT
#pragma once

// braid::when_any: runs tasks concurrently on the awaiting task's loop and
// gives the first one to succeed.
//
//   auto [index, page] = co_await braid::when_any(std::move(mirrors));
//
// It owns the tasks given to it (move them in). The first task to finish
// successfully wins: the others are cancelled and awaited before when_any
// returns (no child outlives the call), and it gives std::pair{index, value}
// -- the index alone for void tasks. Tasks that fail do not win; when all
// fail, the exception of the last to fail is rethrown. Cancelling the awaiting
// task cancels every child, waits for them, then delivers braid::cancelled.
// when_any of an empty vector is a usage_error (there is no first result).
//
// The variadic form, when_any(t1, t2, ...), gives std::pair{index,
// std::variant} whose alternative `index` holds the winner's value
// (std::monostate for void).

#include <braid/detail/loop/join.hpp>
#include <braid/errors.hpp>
#include <braid/task.hpp>
#include <braid/when_all.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace braid {

template <class T>
    requires(!std::is_reference_v<T>)
[[nodiscard]] task<std::conditional_t<std::is_void_v<T>, std::size_t, std::pair<std::size_t, T>>>
when_any(std::vector<task<T>> tasks) {
    if (tasks.empty()) {
        throw usage_error("braid::when_any: no tasks; when_any of an empty vector has no first "
                          "result to give");
    }
    detail::join waiting(detail::join::rule::any);
    waiting.reserve(tasks.size());
    for (task<T>& t : tasks) {
        detail::add_child(waiting, t, "when_any");
    }
    co_await waiting;
    const std::size_t index = waiting.winner();
    if (index == detail::join::no_winner) {
        std::rethrow_exception(waiting.take_error()); // all failed: the last failure
    }
    if constexpr (std::is_void_v<T>) {
        co_return index;
    } else {
        co_return std::pair<std::size_t, T>(index, std::move(tasks[index]).result());
    }
}

namespace detail {

template <class Variant, class Tuple, std::size_t... I>
Variant take_winner(Tuple& tasks, std::size_t index, std::index_sequence<I...>) {
    std::optional<Variant> result;
    ((index == I ? (void)result.emplace(std::in_place_index<I>, take_result(std::get<I>(tasks)))
                 : void()),
     ...);
    return std::move(*result);
}

} // namespace detail

template <class... Ts>
    requires(sizeof...(Ts) > 0 && (!std::is_reference_v<Ts> && ...))
[[nodiscard]] task<std::pair<std::size_t, std::variant<detail::value_or_monostate_t<Ts>...>>>
when_any(task<Ts>... tasks) {
    using variant = std::variant<detail::value_or_monostate_t<Ts>...>;
    detail::join waiting(detail::join::rule::any);
    waiting.reserve(sizeof...(Ts));
    (detail::add_child(waiting, tasks, "when_any"), ...);
    co_await waiting;
    const std::size_t index = waiting.winner();
    if (index == detail::join::no_winner) {
        std::rethrow_exception(waiting.take_error());
    }
    std::tuple<task<Ts>&...> all(tasks...);
    co_return std::pair<std::size_t, variant>(
        index, detail::take_winner<variant>(all, index, std::index_sequence_for<Ts...>{}));
}

} // namespace braid
