// SPDX-License-Identifier: MIT
#pragma once

// braid::task_group: tasks started together that are waited for together, as
// asyncio's TaskGroup.
//
//   braid::task_group group{loop};
//   for (auto& peer : peers) group.spawn(serve(peer));
//   co_await group.wait(); // all have finished; rethrows the first failure
//
// spawn(t) starts t on the group's loop at once. wait() suspends the awaiting
// task until every child spawned so far has finished. The first child that
// fails (a child ending with braid::cancelled is not a failure) cancels the
// others, and wait() rethrows its exception once all have finished; a child
// spawned while the group is failing starts cancelled. Cancelling the task
// that awaits wait() cancels every child, waits for them, then delivers
// braid::cancelled. After wait() has reported a failure, the group can be used
// again.
//
// Lifetimes: spawn(task&) leaves the task with the caller (who can read its
// result); spawn(task&&) gives it to the loop (fire-and-forget: freed when it
// finishes). Destroying a group whose children still run cancels them: they
// keep running on the loop until they have handled the cancellation, their
// results are discarded, and a failure other than braid::cancelled -- or one
// no wait() has reported -- goes to the loop's exception handler.
//
// Threads: the loop's thread only. At most one task at a time may wait().

#include <braid/detail/loop/join.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/errors.hpp>
#include <braid/event_loop.hpp>
#include <braid/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <string>
#include <utility>

namespace braid {

class task_group {
public:
    explicit task_group(event_loop& loop) : state_(new detail::join(rule())) {
        state_->share_on(loop.core_);
    }
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;
    ~task_group() {
        // A group may outlive its loop (in a task kept after the loop was
        // destroyed): its children are gone then, and so is the handler.
        if (detail::scheduler* loop = state_->loop()) {
            loop->detach(*state_);
            if (state_->remaining() > 0) {
                state_->cancel_children();
                state_->orphan(loop);
            }
            if (std::exception_ptr unreported = state_->take_error()) {
                loop->report(std::move(unreported));
            }
        }
        state_->release();
    }

    // Starts t on the group's loop; the caller keeps observing it. Throws
    // usage_error when t has started (or finished) already.
    template <class T>
    task<T>& spawn(task<T>& t) {
        start(detail::task_access::promise_of(t, "task_group::spawn"));
        return t;
    }
    // Starts t and gives it to the loop, which frees it when it finishes.
    template <class T>
    void spawn(task<T>&& t) {
        start(detail::task_access::promise_of(t, "task_group::spawn"));
    }

    // How many children are running.
    [[nodiscard]] std::size_t running() const noexcept { return state_->remaining(); }

    class [[nodiscard]] waiter {
    public:
        [[nodiscard]] bool await_ready() const {
            if (state_->has_waiter()) {
                throw usage_error("braid::task_group::wait: another task is waiting for this "
                                  "group; one at a time");
            }
            return state_->remaining() == 0;
        }
        template <detail::braid_promise P>
        bool await_suspend(std::coroutine_handle<P> self) noexcept {
            task_ = &self.promise();
            return state_->suspend_group_waiter(self);
        }
        void await_resume() const {
            if (task_ != nullptr) {
                task_->resumed();
                task_->check_cancel();
            }
            if (std::exception_ptr failure = state_->take_error()) {
                std::rethrow_exception(std::move(failure));
            }
        }

    private:
        friend class task_group;
        explicit waiter(detail::join* state) noexcept : state_(state) {}
        detail::join* state_;
        detail::promise_base* task_ = nullptr;
    };

    // co_await group.wait(): until every child has finished; rethrows the
    // first failure.
    waiter wait() noexcept { return waiter(state_); }

private:
    static constexpr detail::join::rule rule() noexcept { return detail::join::rule::group; }

    void start(detail::promise_base& p) {
        if (p.state() != detail::task_state::created) {
            throw usage_error(std::string("braid::task_group::spawn: ") +
                              (p.state() == detail::task_state::done
                                   ? "the task has already finished"
                                   : "the task has already started; a task runs once"));
        }
        detail::scheduler* loop = state_->loop();
        if (loop == nullptr) {
            throw usage_error(
                "braid::task_group::spawn: the group's event_loop has been destroyed");
        }
        state_->start_one(p, *loop);
    }

    detail::join* state_;
};

} // namespace braid
