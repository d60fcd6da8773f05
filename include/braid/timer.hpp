// SPDX-License-Identifier: MIT
#pragma once

// braid::timer_handle: names a callback scheduled with event_loop::call_later
// or call_at, so that it can be cancelled before it runs.
//
//   braid::timer_handle h = loop.call_later(5s, give_up);
//   ...
//   h.cancel(); // true: give_up will not run
//
// A default-constructed handle names no timer. Copies name the same timer.
// Dropping every handle does not cancel the timer (it still runs). A handle
// may outlive its loop; cancel() then returns false.
//
// Threads: like the loop, a handle is used on the loop's thread only.

#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/loop/timer_queue.hpp>

#include <chrono>
#include <utility>

namespace braid {

class event_loop;

class timer_handle {
public:
    timer_handle() noexcept = default;
    timer_handle(const timer_handle& other) noexcept : node_(other.node_) {
        if (node_ != nullptr) {
            node_->add_ref();
        }
    }
    timer_handle(timer_handle&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    timer_handle& operator=(const timer_handle& other) noexcept {
        timer_handle copy(other);
        std::swap(node_, copy.node_);
        return *this;
    }
    timer_handle& operator=(timer_handle&& other) noexcept {
        timer_handle moved(std::move(other));
        std::swap(node_, moved.node_);
        return *this;
    }
    ~timer_handle() {
        if (node_ != nullptr) {
            node_->release();
        }
    }

    // Stops the callback from running. True when it did; false when the
    // callback has already run (or is running: a callback cancelling its own
    // timer gets false), was cancelled before, its loop is gone, or the
    // handle is empty. Cancelling destroys the callback and its arguments.
    bool cancel() noexcept {
        if (node_ == nullptr) {
            return false;
        }
        if (node_->state == detail::timer_state::pending ||
            node_->state == detail::timer_state::due) {
            // A pending or due timer always has its loop.
            return node_->loop->cancel_timer(*node_);
        }
        return false;
    }

    // True when the handle names a timer.
    explicit operator bool() const noexcept { return node_ != nullptr; }

    // When the callback is (or was) due; time_point::max() for a timer that
    // never fires. Precondition: the handle names a timer.
    [[nodiscard]] std::chrono::steady_clock::time_point when() const noexcept {
        return std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(node_->deadline));
    }

private:
    friend class event_loop;
    // Adds a reference to node.
    explicit timer_handle(detail::timer_node* node) noexcept : node_(node) { node_->add_ref(); }

    detail::timer_node* node_ = nullptr;
};

} // namespace braid
