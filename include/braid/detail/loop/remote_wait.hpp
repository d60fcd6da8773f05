// SPDX-License-Identifier: MIT
#pragma once

// detail::remote_wait: a task of an event loop waiting for something another
// thread will finish (run_in's pool work, a stream's next result).
//
// Ownership: two references, atomic. The waiting side (an awaiter in the
// task's frame) holds one; the finishing side (a pool job, a stream's waker
// slot) holds the other and hands it to the loop's remote_queue when it is
// done: the loop then resumes the task, if it still waits, and drops that
// reference. If the loop is gone by then, the push fails and the finishing
// side drops its reference itself.
//
//   awaiter (loop thread) ──ref──► remote_wait ◄──ref── pool job / stream (any thread)
//                                       │ loop, waiter: loop thread only
//
// Everything but refs is touched on the loop's thread only: registration in
// the loop's list of outstanding waits (so that run() knows to wait for it and
// the loop can let go of it when it is destroyed), the task to resume, and
// whether it still waits. The finishing thread writes its result into the
// derived object before pushing, which publishes it (release) to the loop's
// take (acquire).

#include <atomic>
#include <coroutine>
#include <cstdint>

namespace braid::detail {

class scheduler;
class remote_queue;

struct remote_wait {
    remote_wait() noexcept = default;
    remote_wait(const remote_wait&) = delete;
    remote_wait& operator=(const remote_wait&) = delete;

    // Loop thread only.
    remote_wait* prev_wait = nullptr;
    remote_wait* next_wait = nullptr;
    scheduler* loop = nullptr; // non-null while the task waits for this
    std::coroutine_handle<> waiter;

    remote_queue* queue = nullptr; // where the finishing side pushes
    std::atomic<std::uint32_t> refs{2};
    void (*free)(remote_wait*) noexcept = nullptr; // deletes the derived object

    void release() noexcept {
        // acq_rel: the last owner sees the other's writes before freeing.
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            free(this);
        }
    }

    // The finishing side, on any thread, when it is done: hands its
    // reference to the loop, and drops the queue reference it was given. The
    // node must not be touched after this. Defined in remote_queue.hpp.
    void complete() noexcept;
    // Instead of complete(), when the finishing side will never complete (the
    // wait was over before it began, or its waker was taken back): gives back
    // the room reserved for the wake-up and the queue reference.
    void withdraw() noexcept;
};

} // namespace braid::detail
