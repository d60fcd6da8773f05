// SPDX-License-Identifier: MIT
#pragma once

// co_await braid::sleep_for(d) and co_await braid::sleep_until(t): inside a
// task, wait until a time has passed while the event loop runs other work.
//
//   co_await braid::sleep_for(100ms);
//   co_await braid::sleep_until(deadline); // a std::chrono::steady_clock time
//
// Time is the loop's (event_loop::time(): the steady clock, or the loop's
// manual clock). The task wakes at or after the deadline, never before, and
// joins the back of the ready queue; while it sleeps it takes no rounds. A
// duration of zero or less, or a time already reached, behaves like
// co_await braid::yield(). An overflowing duration (duration::max()) sleeps
// for ever. Cancelling a sleeping task removes its timer; the task receives
// braid::cancelled from the co_await.
//
// Only a braid::task can sleep (the awaiter needs the task's loop).

#include <braid/detail/loop/deadline.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/loop/timer_queue.hpp>
#include <braid/detail/task_core.hpp>

#include <chrono>
#include <coroutine>

namespace braid {

class [[nodiscard]] sleep_awaiter : detail::suspension {
public:
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    ~sleep_awaiter() {
        if (node_ != nullptr) {
            // The frame is destroyed while the task sleeps (its loop is being
            // destroyed, or is gone): the timer must not wake it.
            if (node_->state == detail::timer_state::pending) {
                node_->loop->cancel_timer(*node_);
            }
            node_->release();
        }
    }

    [[nodiscard]] bool await_ready() const noexcept { return false; }

    // Not noexcept: scheduling the timer can throw std::bad_alloc, which
    // then surfaces at the co_await.
    template <detail::braid_promise P>
    void await_suspend(std::coroutine_handle<P> self) {
        task_ = &self.promise();
        detail::scheduler& loop = *task_->owner();
        const auto now = loop.now();
        const auto deadline = relative_ ? detail::deadline_after(now, delay_) : deadline_;
        if (deadline <= now) {
            loop.yield(self);
            return;
        }
        auto* node = new detail::timer_node();
        node->waiter = self;
        try {
            loop.add_timer(*node, deadline);
        } catch (...) {
            delete node;
            throw;
        }
        node->add_ref(); // ours, for the destructor
        node_ = node;
        cancel = &sleep_awaiter::cancel_sleep;
        kind = detail::wait_kind::sleep;
        task_->suspend_on(this);
    }

    // A cancelled sleep throws braid::cancelled here.
    void await_resume() const {
        task_->resumed();
        task_->check_cancel();
    }

private:
    template <class Rep, class Period>
    friend sleep_awaiter sleep_for(std::chrono::duration<Rep, Period> d) noexcept;
    template <class Duration>
    friend sleep_awaiter
    sleep_until(std::chrono::time_point<std::chrono::steady_clock, Duration> t) noexcept;

    // Cancelling the sleeping task: the timer goes, the task is ready.
    static void cancel_sleep(detail::suspension* s) noexcept {
        detail::timer_node* node = static_cast<sleep_awaiter*>(s)->node_;
        if (node->state == detail::timer_state::pending) { // not woken yet
            detail::scheduler* loop = node->loop;
            loop->cancel_timer(*node);
            loop->wake(node->waiter);
        }
    }

    explicit sleep_awaiter(std::chrono::steady_clock::duration delay) noexcept
        : delay_(delay), relative_(true) {}
    explicit sleep_awaiter(std::chrono::steady_clock::time_point deadline) noexcept
        : deadline_(deadline), relative_(false) {}

    std::chrono::steady_clock::duration delay_{};
    std::chrono::steady_clock::time_point deadline_{};
    bool relative_;
    detail::timer_node* node_ = nullptr;
    detail::promise_base* task_ = nullptr;
};

// Sleeps for d (rounded up to the clock's resolution) from the co_await.
template <class Rep, class Period>
[[nodiscard]] sleep_awaiter sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
    return sleep_awaiter(detail::to_loop_duration(d));
}

// Sleeps until the loop's time reaches t.
template <class Duration>
[[nodiscard]] sleep_awaiter
sleep_until(std::chrono::time_point<std::chrono::steady_clock, Duration> t) noexcept {
    return sleep_awaiter(detail::to_loop_time(t));
}

} // namespace braid
