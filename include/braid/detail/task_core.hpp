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
#include <braid/detail/hot_inline.hpp>
#include <braid/detail/loop/ready_queue.hpp>
#include <braid/errors.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
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
    created,        // frame made, body not started (tasks are lazy)
    started,        // spawned on a loop, or started by a co_await; not finished
    running_inline, // started and running inside its awaiter's await_suspend, not
                    // yet suspended (it returns there when it finishes)
    done,           // finished with a value or an exception
    abandoned,      // its loop was destroyed before it finished: it never will
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
// suspended (promise_base::wait_word_). One path reaches every kind:
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

// --- How an awaiter finds its task at resumption ------------------------------
//
// The initial awaiter and yield's awaiter always suspend, and at resumption
// they deliver a pending cancellation, so they need their task's promise
// then. Keeping its address in the awaiter costs nothing with clang, which
// computes it from the frame's. g++ 12 keeps every awaiter in a slot of its
// own (docs/compilers.md, "g++ gives every awaiter of a coroutine a slot of
// its own"): two such pointers took the benchmark's yielding task from an
// 88-byte frame (a 96-byte malloc chunk) to 104 (112). So with g++ the
// awaiters keep nothing, and read instead the frame the loop's thread has
// just resumed: every resumption of a braid task at one of these two awaits
// is done by the loop (scheduler::resume and resume_traced, and
// promise_base::await_from for a child it starts), which stores the frame in
// tls_resumed_frame right before it, and the awaiter reads it as the first
// thing the resumed coroutine does. Not with clang: it may compute a
// thread_local's address before a suspension and use it after, on another
// thread (see frame_pool.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#define BRAID_DETAIL_RESUMED_FRAME_BY_THREAD 1
#else
#define BRAID_DETAIL_RESUMED_FRAME_BY_THREAD 0
#endif

#if BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
// One variable in the whole program, also when braid is used in shared
// objects built with -fvisibility=hidden: the loop that stores it and the
// task that reads it may have been compiled into different ones.
[[gnu::visibility("default")]] inline thread_local constinit void* tls_resumed_frame = nullptr;
#endif

// The loop is about to resume the braid frame h.
inline void note_resuming([[maybe_unused]] std::coroutine_handle<> h) noexcept {
#if BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
    tls_resumed_frame = h.address();
#endif
}

// What an awaiter that always suspends keeps of its task: the promise's
// address, or nothing (see above). get() is valid in await_resume only.
class resumed_task {
public:
    resumed_task() noexcept = default;
    explicit resumed_task([[maybe_unused]] promise_base& p) noexcept
#if !BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
        : p_(&p)
#endif
    {
    }
    void set([[maybe_unused]] promise_base& p) noexcept {
#if !BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
        p_ = &p;
#endif
    }
    [[nodiscard]] promise_base& get() const noexcept;

private:
#if !BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
    promise_base* p_ = nullptr;
#endif
};

class promise_base {
public:
    promise_base() noexcept : wait_word_(0) {}
    promise_base(const promise_base&) = delete;
    promise_base& operator=(const promise_base&) = delete;

    ~promise_base() {
        // One test on the path of a plain task that succeeded; the rest out
        // of line, so that the test is inlined where frames are destroyed
        // (clang 16 called the whole destructor, a call per await).
        if (has(failed_bit | watch_bit | extras_bit)) [[unlikely]] {
            free_rare_parts();
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
        resumed_task task;
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        void await_resume() const { task.get().check_cancel(); }
    };
    initial_awaiter initial_suspend() noexcept { return {resumed_task(*this)}; }

    void unhandled_exception() noexcept {
        set_error(std::current_exception());
        try {
            throw;
        } catch (const cancelled&) {
            set(ended_cancelled_bit);
        } catch (...) { // any other failure: kept in exception_
        }
    }

    // --- Cancellation (see task::cancel) ----------------------------------------

    // For awaiters: the task suspends waiting on s / has been resumed. The
    // awaiter registers s last, once the wait is set up: a cancellation
    // requested while the task ran (pending) reaches s at once, as cancel()
    // would have reached it there.
    void suspend_on(suspension* s) noexcept {
        wait_word_ = reinterpret_cast<std::uintptr_t>(s);
        if (has(cancel_pending_bit)) [[unlikely]] {
            cancel_new_wait();
        }
    }
    void resumed() noexcept { wait_word_ = 0; }
    // At every braid co_await's resumption: a pending cancellation is
    // delivered, once, as braid::cancelled.
    void check_cancel() {
        if (has(cancel_pending_bit)) [[unlikely]] {
            deliver_cancel();
        }
    }
    [[nodiscard]] bool cancel_pending() const noexcept { return has(cancel_pending_bit); }
    [[nodiscard]] bool ended_cancelled() const noexcept { return has(ended_cancelled_bit); }
    // Asks the task to stop. Defined in scheduler_impl.hpp.
    bool request_cancel();
    // The task's stop token, requested when the task is cancelled.
    std::stop_token stop_token() {
        task_extras& e = extras();
        if (!e.stop.stop_possible()) {
            e.stop = std::stop_source();
            if (has(cancel_requested_bit)) {
                e.stop.request_stop();
            }
        }
        return e.stop.get_token();
    }

    // State, for task and the scheduler.
    [[nodiscard]] task_state state() const noexcept { return state_; }
    // Rethrows the exception the task ended with, which counts as reading it.
    void rethrow_if_failed() {
        if (has(failed_bit)) [[unlikely]] {
            note_observed();
            std::rethrow_exception(exception_);
        }
    }
    // The error, if any, counts as read, and the loop will not hear of it:
    // the caller gets it (rethrow_if_failed), or a join given the task after
    // it finished (when_all, when_any, wait_for) takes the ending as its own.
    void note_observed() noexcept {
        if (has(unread_bit)) [[unlikely]] {
            note_read();
        }
    }
    [[nodiscard]] bool failed() const noexcept { return has(failed_bit); }
    // The exception the task ended with, or a null one.
    [[nodiscard]] std::exception_ptr error() const noexcept {
        return has(failed_bit) ? exception_ : std::exception_ptr();
    }
    [[nodiscard]] scheduler* owner() const noexcept { return sched_; }

    // Owners: task objects and the loop. Throws usage_error when the count
    // would overflow (only task objects kept from done callbacks can get
    // there: a task object is move-only).
    void add_ref() {
        if (refs_ == max_refs) [[unlikely]] {
            throw usage_error("braid::task: a task has at most 65,535 owners (task objects "
                              "kept from its done callbacks, and its loop); drop some");
        }
        ++refs_;
    }
    // Drops one owner; frees the frame when it was the last (reporting the
    // task's error to its loop first if nobody read it).
    void release_and_destroy() noexcept {
        if (release()) {
            if (has(unread_bit)) [[unlikely]] {
                report_unread();
            }
            destroy_frame(*this);
        }
    }
    // Returns true when the caller must destroy the frame (no owner left).
    [[nodiscard]] bool release() noexcept { return --refs_ == 0; }

    // Name, for logs.
    [[nodiscard]] std::string_view name() const noexcept {
        return has(extras_bit) ? std::string_view(extras_->name) : std::string_view();
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
    [[nodiscard]] bool has_callbacks() const noexcept {
        return has(watch_bit) || (has(extras_bit) && extras_->first != nullptr);
    }
    // A join's done callback (when_all, when_any, wait_for, task_group): the
    // first callback of a task that has no task_extras is held in their
    // slot, so that watching a child allocates none; when the task needs
    // extras later, the watch becomes the first of their callbacks. Never
    // allocates. Precondition: nothing watches the task yet (a task belongs
    // to one join).
    void add_watch(callback_node* node) noexcept {
        if (has(extras_bit)) {
            append_callback(node);
        } else {
            watch_ = node;
            set(watch_bit);
        }
    }
    // Takes back a watch that has not run because its join goes first (the
    // loop was destroyed with both unfinished), so that this task never
    // reaches it.
    void remove_watch(callback_node* node) noexcept {
        if (has(watch_bit)) {
            if (watch_ == node) {
                clear(watch_bit);
                watch_ = nullptr;
            }
            return;
        }
        if (!has(extras_bit)) {
            return;
        }
        callback_node* prev = nullptr;
        for (callback_node* n = extras_->first; n != nullptr; prev = n, n = n->next) {
            if (n == node) {
                (prev != nullptr ? prev->next : extras_->first) = n->next;
                if (extras_->last == n) {
                    extras_->last = prev;
                }
                return;
            }
        }
    }

    // Used by the awaiter of a task: the coroutine that awaits it.
    [[nodiscard]] bool awaited() const noexcept { return static_cast<bool>(continuation_); }
    // What the task waits for while it is suspended (null when nothing a
    // cancellation must reach, or once the task has finished).
    [[nodiscard]] suspension* waiting_on() const noexcept {
        return has(failed_bit) ? nullptr : wait();
    }
    // The ready queue's link for this task (ready_queue.hpp): the word that
    // holds what the task waits for, which a queued task does not need.
    [[nodiscard]] std::uintptr_t& ready_link() noexcept { return wait_word_; }
    // For the awaiter's await_suspend: registers the awaiting task and, if
    // this task has not started, starts it on the awaiting task's loop --
    // or, when the awaiting task has a cancellation pending, cancels it
    // instead, so that it never begins. Returns false when the task finished
    // at once, so the awaiting coroutine goes on without suspending. Defined
    // in scheduler_impl.hpp.
    [[nodiscard]] bool await_from(std::coroutine_handle<> awaiting_frame,
                                  promise_base& awaiting) noexcept;

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
    // An unread error (unread_bit) was read, or is dropped unread and goes
    // to the loop. Defined in scheduler_impl.hpp; out of line, so that the
    // task destructor and await_resume inlined into every body stay small.
    void note_read() noexcept;
    void report_unread() noexcept;

    // ~promise_base's rare part: the exception, and callbacks that never ran
    // (the task never finished: its loop or last owner dropped it).
    BRAID_DETAIL_NOINLINE void free_rare_parts() noexcept {
        if (has(failed_bit)) {
            exception_.~exception_ptr();
        }
        if (has(watch_bit)) {
            watch_->destroy(watch_);
        } else if (has(extras_bit)) {
            for (callback_node* n = extras_->first; n != nullptr;) {
                callback_node* next = n->next;
                n->destroy(n);
                n = next;
            }
            delete extras_;
        }
    }

    task_extras& extras() {
        if (!has(extras_bit)) {
            auto* e = new task_extras();
            if (has(watch_bit)) {
                e->first = e->last = watch_; // registered first, runs first
                clear(watch_bit);
            }
            extras_ = e;
            set(extras_bit);
        }
        return *extras_;
    }
    [[nodiscard]] task_extras* extras_if_made() const noexcept {
        return has(extras_bit) ? extras_ : nullptr;
    }
    // The next done callback to run, taken off the task (in the order they
    // were added), or null.
    callback_node* pop_callback() noexcept {
        if (has(watch_bit)) {
            clear(watch_bit);
            return std::exchange(watch_, nullptr);
        }
        if (!has(extras_bit) || extras_->first == nullptr) {
            return nullptr;
        }
        callback_node* n = extras_->first;
        extras_->first = n->next;
        if (extras_->first == nullptr) {
            extras_->last = nullptr;
        }
        return n;
    }

    // What a cancellation does to the wait s (null: none).
    void cancel_wait(suspension* s) noexcept;
    // suspend_on's rare part: a pending cancellation reaches the new wait.
    void cancel_new_wait() noexcept;
    // await_from's rare part: a pending cancellation passes to a child that
    // has not started.
    void cancel_unstarted_child(promise_base& child) noexcept;

    // Out of line, so that the check at every resumption stays a test and a
    // branch (inline, clang kept the flags in a register for the store here,
    // and saved two more registers in every task body).
    [[noreturn]] BRAID_DETAIL_NOINLINE void deliver_cancel() {
        clear(cancel_pending_bit);
        throw cancelled{};
    }

    // What the task waits for: null when nothing, or while it is in the
    // ready queue (the word is the queue's link then). Not once it has failed.
    [[nodiscard]] suspension* wait() const noexcept {
        return (wait_word_ & queued_tag) != 0 ? nullptr : reinterpret_cast<suspension*>(wait_word_);
    }

    // The task ended with `error`. Precondition: it is not suspended (so the
    // wait word is free) and has no error yet.
    void set_error(std::exception_ptr error) noexcept {
        std::construct_at(&exception_, std::move(error));
        set(failed_bit);
    }

    // Flags, one bit each.
    static constexpr std::uint8_t spawned_bit = 1;        // the loop owns a reference
    static constexpr std::uint8_t failed_bit = 2;         // ended with an exception (exception_)
    static constexpr std::uint8_t extras_bit = 4;         // extras_ is allocated
    static constexpr std::uint8_t cancel_pending_bit = 8; // reaches the next wait (suspend_on)
    static constexpr std::uint8_t cancel_requested_bit =
        16; // cancel() was called: the stop token says so
    static constexpr std::uint8_t ended_cancelled_bit = 32; // finished with braid::cancelled
    static constexpr std::uint8_t watch_bit = 64; // watch_ holds a join's watch (add_watch)
    // A spawned task that failed while task objects held it, nobody awaiting
    // it and no callback: its error is unread, and it stays listed in its
    // loop (root_index_) until the error is read or the last object drops it.
    static constexpr std::uint8_t unread_bit = 128;
    // finish() takes its slow path when one of these is set: the task is
    // spawned, failed, watched, or has extras (callbacks, maybe).
    static constexpr std::uint8_t finish_rare_bits =
        spawned_bit | failed_bit | extras_bit | watch_bit;
    static constexpr std::uint16_t max_refs = 0xffff;

    [[nodiscard]] bool has(std::uint8_t bits) const noexcept { return (flags_ & bits) != 0; }
    void set(std::uint8_t bits) noexcept { flags_ = static_cast<std::uint8_t>(flags_ | bits); }
    void clear(std::uint8_t bits) noexcept { flags_ = static_cast<std::uint8_t>(flags_ & ~bits); }

    // A task never started finishes as cancelled at once (its callbacks run
    // now; the first exception one of them throws leaves request_cancel).
    void finish_unstarted_cancelled();

    // 40 bytes (with 8-byte pointers): every byte here is in every frame,
    // and frames come in 16-byte size classes (frame_pool.hpp). With g++ 12
    // the benchmark's yielding task (16 bytes of resume/destroy pointers,
    // this, and 48 of locals and awaiters) takes a 112-byte chunk, where a
    // 56-byte promise took 128; with clang 16 (16 + 40 + 16), 80 instead of
    // 96. Hence the unions and the narrow fields.

    // Until the task finishes, what it waits for while suspended (a
    // suspension*), or, while it is in the ready queue, the queue's link
    // (queued_tag set); once it has failed (failed_bit), its exception. A
    // failing task is running, neither suspended nor queued, so no two are
    // needed at once. First: the ready queue finds the link 16 bytes into
    // the frame, where a callback node has its own (ready_queue.hpp).
    union {
        std::uintptr_t wait_word_;
        std::exception_ptr exception_;
    };
    std::coroutine_handle<> continuation_; // the coroutine awaiting this task
    scheduler* sched_ = nullptr;           // the loop running this task, once started
    // The parts few tasks need (extras_bit), made on first use; until then,
    // maybe a join's watch (watch_bit), the one callback of most children of
    // when_all and the like. Never both.
    union {
        task_extras* extras_ = nullptr;
        callback_node* watch_;
    };
    std::uint32_t root_index_ = 0; // where the loop lists it, while spawned
    std::uint16_t refs_ = 1;       // the task object get_return_object makes
    task_state state_ = task_state::created;
    std::uint8_t flags_ = 0; // the *_bit flags above
};

static_assert(sizeof(void*) != 8 || sizeof(promise_base) == 40,
              "promise_base is in every frame: keep it at 40 bytes (see its fields)");

inline promise_base& resumed_task::get() const noexcept {
#if BRAID_DETAIL_RESUMED_FRAME_BY_THREAD
    // Where g++ puts a promise aligned to at most 16 bytes (promise<T> checks).
    return std::coroutine_handle<promise_base>::from_address(tls_resumed_frame).promise();
#else
    return *p_;
#endif
}

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
