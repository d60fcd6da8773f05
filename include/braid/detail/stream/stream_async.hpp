// SPDX-License-Identifier: MIT
#pragma once

// detail::stream_next_awaiter: how stream_results::async_next waits on an
// event loop. It leaves a waker in the map's state; the thread that makes the
// next result ready (a worker, the producer, a shutdown) calls it, which hands
// the waiting task back to its loop through the loop's remote queue
// (remote_wait). The loop's thread never blocks; the wake-up may be early (the
// input published, the result not yet computed), so async_next polls again
// and, if need be, waits again.

#include <braid/detail/loop/remote_queue.hpp>
#include <braid/detail/loop/remote_wait.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/stream/stream_channel.hpp>
#include <braid/detail/task_core.hpp>

#include <coroutine>
#include <cstdint>

namespace braid::detail {

// One wait: a remote_wait (the loop's side, one reference) that is also the
// stream's waker (the stream's side, the other reference while it is left).
struct stream_async_wait final : remote_wait, stream_waker {
    stream_async_wait() noexcept {
        wake = &stream_async_wait::wake_impl;
        free = &stream_async_wait::free_impl;
    }
    static void wake_impl(stream_waker* w) noexcept {
        static_cast<stream_async_wait*>(w)->complete();
    }
    static void free_impl(remote_wait* w) noexcept { delete static_cast<stream_async_wait*>(w); }
};

template <class T>
class stream_next_awaiter : suspension {
public:
    stream_next_awaiter(stream_channel<T>& channel, std::uint64_t seq) noexcept
        : channel_(channel), seq_(seq) {}
    stream_next_awaiter(const stream_next_awaiter&) = delete;
    stream_next_awaiter& operator=(const stream_next_awaiter&) = delete;
    ~stream_next_awaiter() {
        if (node_ == nullptr) {
            return;
        }
        if (node_->loop != nullptr) {
            node_->loop->end_remote_wait(*node_); // destroyed while waiting
        }
        if (channel_.disarm(node_)) {
            // Never woken: the stream's reference, and the queue reference
            // its push would have dropped, come back to us.
            node_->withdraw();
            node_->release();
        }
        node_->release();
    }

    [[nodiscard]] bool await_ready() const noexcept { return false; }

    // Not noexcept: allocating the wait can throw std::bad_alloc.
    template <braid_promise P>
    bool await_suspend(std::coroutine_handle<P> self) {
        scheduler& loop = *self.promise().owner();
        node_ = new stream_async_wait();
        loop.prepare_remote_wait(*node_);
        if (!channel_.arm(seq_, node_)) {
            // Ready already: nothing was left with the stream.
            loop.unprepare_remote_wait(*node_);
            node_->release();
            return false;
        }
        loop.begin_remote_wait(*node_, self);
        cancel = &stream_next_awaiter::cancel_wait;
        kind = wait_kind::stream;
        task_ = &self.promise();
        task_->suspend_on(this);
        return true;
    }

    void await_resume() const {
        if (task_ != nullptr) {
            task_->resumed();
            task_->check_cancel();
        }
    }

private:
    // Cancelling the waiting task: it stops waiting at once; the result, when
    // it comes, stays in the stream for the next reader.
    static void cancel_wait(suspension* s) noexcept {
        auto* self = static_cast<stream_next_awaiter*>(s);
        stream_async_wait* node = self->node_;
        if (scheduler* loop = node->loop) { // still waiting
            loop->end_remote_wait(*node);
            if (self->channel_.disarm(node)) {
                node->withdraw();
                node->release();
            }
            loop->wake(node->waiter);
        }
    }

    stream_channel<T>& channel_;
    std::uint64_t seq_;
    stream_async_wait* node_ = nullptr;
    promise_base* task_ = nullptr; // set when it waits
};

} // namespace braid::detail
