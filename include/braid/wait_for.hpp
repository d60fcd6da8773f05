// SPDX-License-Identifier: MIT
#pragma once

// braid::wait_for(t, d): t's result, unless d passes first.
//
//   try {
//       auto reply = co_await braid::wait_for(ask(peer), 2s);
//   } catch (const braid::timeout_error&) { ... }
//
// It owns t (move it in) and runs it on the awaiting task's loop. If t
// finishes within d, wait_for gives its result (or rethrows its exception).
// Otherwise wait_for cancels t and waits for it to finish: if t ended
// cancelled, wait_for throws braid::timeout_error; if t caught the
// cancellation and ended otherwise (a value, another exception), that ending
// is what wait_for gives. Cancelling the awaiting task cancels t, waits for it,
// then delivers braid::cancelled. Time is the loop's (a manual clock's, in
// tests); d <= 0 cancels t at the loop's next collection of due timers.

#include <braid/detail/loop/deadline.hpp>
#include <braid/detail/loop/join.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/loop/timer_queue.hpp>
#include <braid/errors.hpp>
#include <braid/task.hpp>
#include <braid/when_all.hpp>

#include <chrono>
#include <coroutine>
#include <exception>
#include <new>
#include <utility>

namespace braid {
namespace detail {

// Gives the awaiting task's loop, without suspending.
struct current_loop {
    scheduler* loop = nullptr;
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    template <braid_promise P>
    bool await_suspend(std::coroutine_handle<P> self) noexcept {
        loop = self.promise().owner();
        return false;
    }
    [[nodiscard]] scheduler& await_resume() const noexcept { return *loop; }
};

// The timer of one wait_for: when it fires, the task is cancelled. Cancelled
// when the frame that holds it ends first.
class deadline_guard {
public:
    deadline_guard(scheduler& loop, loop_clock::time_point deadline, join& waiting) {
        auto on_time = [this, &waiting] {
            fired_ = true;
            waiting.cancel_children();
        };
        auto* node = new timer_call<decltype(on_time)>(std::move(on_time));
        try {
            loop.add_timer(*node, deadline);
        } catch (...) {
            node->release();
            throw;
        }
        node->add_ref(); // ours
        node_ = node;
    }
    deadline_guard(const deadline_guard&) = delete;
    deadline_guard& operator=(const deadline_guard&) = delete;
    ~deadline_guard() {
        if (node_->state == timer_state::pending || node_->state == timer_state::due) {
            node_->loop->cancel_timer(*node_);
        }
        node_->release();
    }
    [[nodiscard]] bool fired() const noexcept { return fired_; }

private:
    timer_node* node_ = nullptr;
    bool fired_ = false;
};

} // namespace detail

template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(task<T> t, std::chrono::duration<Rep, Period> d) {
    detail::join waiting(detail::join::rule::all);
    detail::add_child(waiting, t, "wait_for");
    detail::current_loop here;
    detail::scheduler& loop = co_await here;
    detail::deadline_guard deadline(loop, detail::deadline_after(loop.now(), d), waiting);
    co_await waiting;
    if (deadline.fired() && t.cancelled()) {
        throw timeout_error("braid::wait_for: the task did not finish in time; it was cancelled");
    }
    co_return std::move(t).result();
}

} // namespace braid
