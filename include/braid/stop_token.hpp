// SPDX-License-Identifier: MIT
#pragma once

// co_await braid::get_stop_token(): inside a task, a std::stop_token that is
// requested when the task is cancelled (task::cancel), to hand to code that
// cannot see braid::cancelled -- a function running on another thread, a
// blocking loop that polls it, a std::stop_callback.
//
//   braid::task<> crunch(braid::thread_pool& pool) {
//       std::stop_token stop = co_await braid::get_stop_token();
//       co_await braid::run_in(pool, [stop] { while (!stop.stop_requested()) step(); });
//   }
//
// The token is requested on the loop's thread, inside cancel(); callbacks
// registered with std::stop_callback run there. Asking for the token never
// suspends the task. Only a braid::task can ask (the awaiter needs its
// promise).

#include <braid/detail/task_core.hpp>

#include <coroutine>
#include <stop_token>
#include <utility>

namespace braid {

// It holds only the task's promise, so the temporary in a co_await
// expression has nothing to destroy; the token is made in await_resume.
class [[nodiscard]] stop_token_awaiter {
public:
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    // Never suspends.
    template <detail::braid_promise P>
    bool await_suspend(std::coroutine_handle<P> self) noexcept {
        task_ = &self.promise();
        return false;
    }
    // Not noexcept: the first token of a task allocates.
    std::stop_token await_resume() const { return task_->stop_token(); }

private:
    detail::promise_base* task_ = nullptr;
};

[[nodiscard]] inline stop_token_awaiter get_stop_token() noexcept {
    return {};
}

} // namespace braid
