// SPDX-License-Identifier: MIT
#pragma once

// co_await braid::yield(): inside a task, gives the event loop a turn. The
// task is put back in the loop's ready queue where the loop's scheduling
// policy says (the back for braid::interleaved, the front for
// braid::sequential, the front until its slice is used up for the slices of
// policy.hpp) and resumes when the loop takes it from there. Each resumption
// is one of the loop's rounds.
//
// Only a braid::task can yield (the awaiter needs the task's loop); using it in
// another kind of coroutine does not compile.

#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/task_core.hpp>

#include <coroutine>

namespace braid {

class yield_awaiter {
public:
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    // Not noexcept: a scheduling policy of the user's own may throw from
    // on_yield, which then surfaces at the co_await (queueing itself cannot
    // fail).
    template <detail::braid_promise P>
    BRAID_DETAIL_HOT_INLINE void await_suspend(std::coroutine_handle<P> self) {
        task_.set(self.promise());
        self.promise().owner()->yield(self);
    }
    // A task cancelled while it waited in the ready queue gets
    // braid::cancelled here.
    BRAID_DETAIL_HOT_INLINE void await_resume() const { task_.get().check_cancel(); }

private:
    detail::resumed_task task_; // nothing with g++ (detail/task_core.hpp)
};

[[nodiscard]] inline yield_awaiter yield() noexcept {
    return {};
}

} // namespace braid
