// SPDX-License-Identifier: MIT
#pragma once

// detail::promise_base: the part of every braid::task's promise that does not
// depend on the result type: ownership, state, the awaiting coroutine, done
// callbacks and the link to the scheduler (event loop core) that runs it.
//
// Ownership. A frame has a count of owners (refs_): each braid::task object
// that refers to it, plus one for the loop while the task is spawned and not
// finished. The frame is destroyed when the count reaches zero, so it is freed
// exactly once: by the last task object, or by the loop when a fire-and-forget
// task finishes (or when the loop is destroyed first).
//
//        task<T> object ──┐
//                         ├──► frame { promise_base, locals }
//   event_loop (spawned) ─┘          │ continuation_ ──► awaiting frame
//                                    │ sched_ ─────────► detail::scheduler
//
// Everything here is single-threaded: a task and its loop are used from the
// loop's thread only.

#include <braid/detail/frame_pool.hpp>
#include <braid/errors.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace braid::detail {

class scheduler;
class promise_base;

void destroy_frame(promise_base& p) noexcept;

enum class task_state : std::uint8_t {
    created,   // frame made, body not started (tasks are lazy)
    started,   // spawned on a loop, or started by a co_await; not finished
    done,      // finished with a value or an exception
    abandoned, // its loop was destroyed before it finished: it never will
};

// A type-erased done callback. invoke runs it with the task whose frame is
// given; destroy frees the node. Nodes form a list in registration order.
struct callback_node {
    callback_node* next = nullptr;
    void (*invoke)(callback_node*, void* frame) = nullptr;
    void (*destroy)(callback_node*) noexcept = nullptr;
};

// Rarely used parts of a task, allocated on first use so frames stay small.
struct task_extras {
    std::string name;
    callback_node* first = nullptr;
    callback_node* last = nullptr;
    std::stop_source stop{std::nostopstate}; // made by the first get_stop_token
};

// What a suspended task waits for, when cancellation must reach it there: an
// object in the awaiter, registered with the task's promise while the task is
// suspended (promise_base::waiting_on_). One path reaches every kind:
// promise_base::request_cancel calls `cancel`, which stops the wait and makes
// the task ready again (it then receives braid::cancelled at its co_await),
// except for `child`, where it passes the cancellation to the awaited task,
// and `group`, where it cancels the tasks the group waits for (the task is
// woken once they have all finished).
enum class wait_kind : std::uint8_t {
    child,  // co_await of another task
    sleep,  // a timer
    thread, // run_in's work on another thread
    stream, // a stream_executor result
    io,     // a file descriptor
    group,  // when_all, when_any, wait_for, task_group::wait
};

// No default member initialisers: a task's awaiter sets them only when the
// awaiting task really suspends, off the fast path of an await that finishes
// at once.
struct suspension {
    void (*cancel)(suspension*) noexcept;
    wait_kind kind;
};

class promise_base {
public:
    promise_base() noexcept = default;
    promise_base(const promise_base&) = delete;
    promise_base& operator=(const promise_base&) = delete;

    ~promise_base() {
        if (extras_ != nullptr) {
            // The task never finished (its loop or last owner dropped it):
            // its callbacks never run.
            for (callback_node* n = extras_->first; n != nullptr;) {
                callback_node* next = n->next;
                n->destroy(n);
                n = next;
            }
            delete extras_;
        }
    }

    static void* operator new(std::size_t size) { return allocate_frame(size); }
    static void operator delete(void* frame, std::size_t size) noexcept {
        deallocate_frame(frame, size);
    }

    // Tasks are lazy. A task cancelled after it was spawned but before its
    // first step finishes as cancelled without running its body: the
    // exception thrown here goes to unhandled_exception.
    struct initial_awaiter {
        promise_base* p;
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        void await_resume() const { p->check_cancel(); }
    };
    initial_awaiter initial_suspend() noexcept { return {this}; }

    void unhandled_exception() noexcept {
        exception_ = std::current_exception();
        finish_rare_ = true;
        try {
            throw;
        } catch (const cancelled&) {
            ended_cancelled_ = true;
        } catch (...) { // any other failure: kept in exception_
        }
    }

    // --- Cancellation (see task::cancel) ----------------------------------------

    // For awaiters: the task suspends waiting on s / has been resumed.
    void suspend_on(suspension* s) noexcept { waiting_on_ = s; }
    void resumed() noexcept { waiting_on_ = nullptr; }
    // At every braid co_await's resumption: a pending cancellation is
    // delivered, once, as braid::cancelled.
    void check_cancel() {
        if (cancel_pending_) [[unlikely]] {
            cancel_pending_ = false;
            throw cancelled{};
        }
    }
    [[nodiscard]] bool cancel_pending() const noexcept { return cancel_pending_; }
    [[nodiscard]] bool ended_cancelled() const noexcept { return ended_cancelled_; }
    // Asks the task to stop. Defined in scheduler_impl.hpp.
    bool request_cancel();
    // The task's stop token, requested when the task is cancelled.
    std::stop_token stop_token() {
        task_extras& e = extras();
        if (!e.stop.stop_possible()) {
            e.stop = std::stop_source();
            if (cancel_requested_) {
                e.stop.request_stop();
            }
        }
        return e.stop.get_token();
    }

    // State, for task and the scheduler.
    [[nodiscard]] task_state state() const noexcept { return state_; }
    void rethrow_if_failed() const {
        if (exception_) {
            std::rethrow_exception(exception_);
        }
    }
    [[nodiscard]] bool failed() const noexcept { return static_cast<bool>(exception_); }
    [[nodiscard]] const std::exception_ptr& error() const noexcept { return exception_; }
    [[nodiscard]] scheduler* owner() const noexcept { return sched_; }

    // Owners: task objects and the loop.
    void add_ref() noexcept { ++refs_; }
    // Drops one owner; frees the frame when it was the last.
    void release_and_destroy() noexcept {
        if (release()) {
            destroy_frame(*this);
        }
    }
    // Returns true when the caller must destroy the frame (no owner left).
    [[nodiscard]] bool release() noexcept { return --refs_ == 0; }

    // Name, for logs.
    [[nodiscard]] std::string_view name() const noexcept {
        return extras_ != nullptr ? std::string_view(extras_->name) : std::string_view();
    }
    void set_name(std::string name) { extras().name = std::move(name); }

    // Appends a done callback (the task must not be done: done tasks run a new
    // callback at once, which task does itself).
    void append_callback(callback_node* node) noexcept {
        task_extras& e = *extras_;
        if (e.last == nullptr) {
            e.first = node;
        } else {
            e.last->next = node;
        }
        e.last = node;
    }
    // Makes sure append_callback will not need to allocate.
    void reserve_callbacks() { (void)extras(); }

    // Used by the awaiter of a task: the coroutine that awaits it.
    [[nodiscard]] bool awaited() const noexcept { return static_cast<bool>(continuation_); }
    // For the awaiter's await_suspend: registers the awaiting coroutine and,
    // if this task has not started, starts it on the awaiting task's loop.
    // Returns false when the task finished at once, so the awaiting coroutine
    // goes on without suspending. Defined in scheduler.hpp.
    [[nodiscard]] bool await_from(std::coroutine_handle<> awaiting,
                                  scheduler* awaiting_sched) noexcept;

    // Called by the final awaiter, with the frame suspended. Defined in
    // scheduler.hpp.
    void finish() noexcept;

protected:
    // This frame. Found from the promise's address, which sits where g++ and
    // clang put a promise aligned to at most 16 bytes (promise<T> checks).
    [[nodiscard]] std::coroutine_handle<> self() noexcept {
        return std::coroutine_handle<promise_base>::from_promise(*this);
    }

private:
    friend class scheduler;
    friend void destroy_frame(promise_base& p) noexcept;
    friend void destroy_suspended_frame(promise_base& p) noexcept;

    // The part of finish() for spawned or failed tasks and callbacks.
    void finish_rare(scheduler& s) noexcept;

    task_extras& extras() {
        if (extras_ == nullptr) {
            extras_ = new task_extras();
            finish_rare_ = true;
        }
        return *extras_;
    }

    // A task never started finishes as cancelled at once (its callbacks run
    // now; the first exception one of them throws leaves request_cancel).
    void finish_unstarted_cancelled();

    std::coroutine_handle<> continuation_; // the coroutine awaiting this task
    scheduler* sched_ = nullptr;           // the loop running this task, once started
    task_extras* extras_ = nullptr;
    suspension* waiting_on_ = nullptr; // what the suspended task waits for
    std::exception_ptr exception_;
    std::uint32_t refs_ = 1;       // the task object get_return_object makes
    std::uint32_t root_index_ = 0; // where the loop lists it, while spawned
    task_state state_ = task_state::created;
    bool spawned_ = false;          // the loop owns a reference
    bool started_inline_ = false;   // being run by its awaiter's await_suspend
    bool finish_rare_ = false;      // spawned, failed or has extras: see finish()
    bool cancel_pending_ = false;   // cancelled; delivered at the next braid co_await
    bool cancel_requested_ = false; // cancel() was called: the stop token says so
    bool ended_cancelled_ = false;  // finished with braid::cancelled
};

// --- Destroying frames ------------------------------------------------------
//
// A suspended frame holds the task it awaits, which holds the one it awaits,
// and so on: destroying the outermost destroys the whole chain by nested
// calls, one per level. A chain of 100,000 suspended awaits (a deep recursion
// whose loop is destroyed before it finishes) would overflow the stack. So
// past destroy_depth nested destructions of suspended frames, the next one is
// put on a per-thread list and destroyed when the outermost destruction
// returns. Up to that depth the order is the usual one (an awaited task is
// destroyed where its task object dies in the awaiting frame); beyond it, an
// awaited task is destroyed after the rest of the frame that awaited it.

inline constexpr unsigned destroy_depth = 64;

// Out of line: it reads thread_locals, and task destructors (which call it)
// run inside coroutine bodies (see frame_pool.hpp).
BRAID_DETAIL_NOINLINE inline void destroy_suspended_frame(promise_base& p) noexcept {
    static thread_local unsigned depth = 0;
    static thread_local std::vector<promise_base*> deferred;
    if (depth == destroy_depth) {
        try {
            deferred.push_back(&p);
            return;
        } catch (...) {
            // No memory to defer it: destroy it here, one level deeper.
        }
    }
    ++depth;
    p.self().destroy();
    --depth;
    while (depth == 0 && !deferred.empty()) {
        promise_base* q = deferred.back();
        deferred.pop_back();
        ++depth;
        q->self().destroy();
        --depth;
    }
}

// Frees a frame that nobody owns any more.
inline void destroy_frame(promise_base& p) noexcept {
    if (p.state_ == task_state::created || p.state_ == task_state::done) {
        p.self().destroy(); // holds no suspended awaits (a finished frame's locals are gone)
    } else {
        destroy_suspended_frame(p);
    }
}

// The promise of a braid coroutine (a task), as seen by awaiters.
template <class P>
concept braid_promise = std::derived_from<P, promise_base>;

// The final awaiter: the frame stays suspended at its end, so the result can
// be read, and promise_base::finish decides who resumes and who frees.
struct final_awaiter {
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> self) const noexcept {
        self.promise().finish();
    }
    void await_resume() const noexcept {}
};

} // namespace braid::detail
