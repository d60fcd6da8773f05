// SPDX-License-Identifier: MIT
#pragma once

// braid::task<T>: a lazy coroutine that produces a T (or an exception).
//
//   braid::task<int> answer() { co_return 42; }
//   braid::task<int> twice() { co_return 2 * co_await answer(); }
//
// Calling a task function allocates its frame and runs nothing: the body
// starts when the task is awaited by another task, spawned on an event_loop,
// or run with event_loop::run_until_complete.
//
// Ownership: a task object owns its frame, and an event_loop that a task is
// spawned on owns it too until it finishes. The frame is freed when the last
// owner lets go, so a spawned task may be dropped (fire-and-forget) and still
// runs to the end. A task object is move-only; a moved-from or
// default-constructed task is empty and every use of it throws usage_error.
//
// Threads: a task, its loop and its callbacks are used from one thread.

#include <braid/detail/hot_inline.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>

#include <concepts>
#include <coroutine>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace braid {

template <class T = void>
class task;

class event_loop;

namespace detail {

template <class T>
class promise;

// For braid's own composition functions: a task's promise, and its result
// with void as std::monostate.
struct task_access {
    template <class T>
    static promise_base& promise_of(task<T>& t, const char* function);
};

// Storage for the result, by kind of T.
template <class T>
class promise_result : public promise_base {
public:
    template <class U = T>
        requires std::constructible_from<T, U&&>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        value_.emplace(std::forward<U>(value));
    }
    T& value() noexcept { return *value_; }

private:
    std::optional<T> value_;
};

template <class T>
class promise_result<T&> : public promise_base {
public:
    void return_value(T& value) noexcept { value_ = std::addressof(value); }
    T& value() const noexcept { return *value_; }

private:
    T* value_ = nullptr;
};

template <>
class promise_result<void> : public promise_base {
public:
    void return_void() const noexcept {}
    void value() const noexcept {}
};

template <class T>
class promise final : public promise_result<T> {
public:
    task<T> get_return_object() noexcept;
    final_awaiter final_suspend() const noexcept { return {}; }
};

[[noreturn]] inline void throw_empty_task(const char* function) {
    throw usage_error(std::string("braid::task::") + function +
                      ": the task is empty (default-constructed or moved from)");
}

[[noreturn]] inline void throw_not_finished(const char* function, task_state state) {
    if (state == task_state::abandoned) {
        throw task_not_finished(std::string("braid::task::") + function +
                                ": the task never finished: the event_loop it ran on was "
                                "destroyed first");
    }
    throw task_not_finished(std::string("braid::task::") + function +
                            ": the task has not finished yet; await it, run it with "
                            "event_loop::run_until_complete, or read it in a done callback");
}

} // namespace detail

template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::promise<T>;
    using value_type = T;

    // An empty task (see valid()).
    task() noexcept = default;
    task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, {});
        }
        return *this;
    }
    // Forced inline (with reset() and the awaiter's await_ready()): clang 16
    // kept them out of line in every awaiting coroutine; inline, an await of a
    // child that finishes at once took about a tenth less time under clang.
    BRAID_DETAIL_HOT_INLINE ~task() { reset(); }

    // False for a default-constructed or moved-from task.
    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }

    // True once the body has returned or thrown.
    [[nodiscard]] bool done() const { return checked("done").state() == detail::task_state::done; }

    // The value the task returned, or its exception rethrown. Throws
    // task_not_finished when it has not finished. On an lvalue the value stays
    // in the task (a reference to it is returned); on an rvalue it is moved out.
    decltype(auto) result() & { return finished("result").value(); }
    decltype(auto) result() const& {
        if constexpr (std::is_void_v<T>) {
            finished("result");
        } else {
            return static_cast<const std::remove_reference_t<T>&>(finished("result").value());
        }
    }
    T result() && {
        if constexpr (std::is_void_v<T> || std::is_reference_v<T>) {
            return finished("result").value();
        } else {
            return std::move(finished("result").value());
        }
    }

    // Runs f(task&) when the task finishes, before the loop runs anything
    // else; callbacks run in the order they were added, and result() is
    // readable inside them. On a task that is already done, f runs now.
    // An exception from f goes to the loop's exception handler (or out of
    // this call, when f runs now).
    template <class F>
        requires std::invocable<std::decay_t<F>&, task&>
    task& add_done_callback(F&& f) & {
        add_callback(std::forward<F>(f));
        return *this;
    }
    template <class F>
        requires std::invocable<std::decay_t<F>&, task&>
    task&& add_done_callback(F&& f) && {
        add_callback(std::forward<F>(f));
        return std::move(*this);
    }

    // Asks the task to stop; false when it has already finished (or its loop
    // is gone), true otherwise, also when a cancellation is already pending.
    //   - Suspended at a braid co_await (a yield, a sleep, run_in,
    //     async_next, an I/O wait): it stops waiting (the timer is removed,
    //     the descriptor forgotten, run_in's result dropped when it comes) and
    //     receives braid::cancelled from that co_await when it next runs.
    //   - Awaiting another task: the cancellation is passed down to that task
    //     instead, and comes back up as its braid::cancelled (if the child
    //     catches it and returns a value, this task goes on with the value).
    //   - Awaiting when_all, when_any, wait_for or a task_group: those cancel
    //     what they wait for, wait for it to finish, then this task receives
    //     braid::cancelled.
    //   - Ready to run, or running (or suspended on an awaitable that is not
    //     braid's, which nothing interrupts): the cancellation is pending. A
    //     yield delivers it when the task next runs; the next other braid
    //     wait the task begins is reached at once, as above. A task it then
    //     awaits that has not started ends cancelled without running its
    //     body, and the co_await throws braid::cancelled.
    //   - Never started (not spawned, not awaited): it finishes as cancelled
    //     at once, without running its body; its done callbacks all run
    //     inside this call, then the first exception one threw leaves it
    //     (with no loop to report them to, later ones are dropped).
    // The task may catch braid::cancelled, clean up (awaiting is allowed) and
    // return normally; it then finishes with that ending, not cancelled.
    bool cancel() { return checked("cancel").request_cancel(); }

    // True when the task has finished with braid::cancelled; false until it
    // has finished. result() and co_await then throw braid::cancelled.
    [[nodiscard]] bool cancelled() const {
        const promise_type& p = checked("cancelled");
        return p.state() == detail::task_state::done && p.ended_cancelled();
    }

    // A human-readable name for logs, e.g. "factorial(12)". Empty by default.
    task& set_name(std::string name) & {
        checked("set_name").set_name(std::move(name));
        return *this;
    }
    task&& set_name(std::string name) && {
        checked("set_name").set_name(std::move(name));
        return std::move(*this);
    }
    [[nodiscard]] std::string_view name() const { return checked("name").name(); }

    // co_await on a task inside another task: starts it if it has not
    // started, suspends until it finishes, then gives its result (or rethrows
    // its exception). Awaiting an lvalue gives a reference into the task;
    // awaiting an rvalue moves the value out. One coroutine at a time may
    // await a task; the task object must outlive the co_await.
    auto operator co_await() & noexcept { return awaiter<false>(h_); }
    auto operator co_await() && noexcept { return awaiter<true>(h_); }

private:
    friend class detail::promise<T>;
    friend class event_loop;
    friend struct detail::task_access;
    using handle_type = std::coroutine_handle<promise_type>;

    explicit task(handle_type h) noexcept : h_(h) {}

    // A second owner of a frame (for done callbacks). Throws usage_error
    // when the frame has too many owners (see promise_base::add_ref).
    static task borrow(handle_type h) {
        h.promise().add_ref();
        return task(h);
    }

    BRAID_DETAIL_HOT_INLINE void reset() noexcept {
        if (h_) {
            h_.promise().release_and_destroy();
            h_ = {};
        }
    }

    promise_type& checked(const char* function) const {
        if (!h_) {
            detail::throw_empty_task(function);
        }
        return h_.promise();
    }

    promise_type& finished(const char* function) const {
        promise_type& p = checked(function);
        if (p.state() != detail::task_state::done) {
            detail::throw_not_finished(function, p.state());
        }
        p.rethrow_if_failed();
        return p;
    }

    template <class F>
    struct callback final : detail::callback_node {
        explicit callback(F&& f) : fn(std::move(f)) {
            invoke = &callback::invoke_impl;
            destroy = &callback::destroy_impl;
        }
        explicit callback(const F& f) : fn(f) {
            invoke = &callback::invoke_impl;
            destroy = &callback::destroy_impl;
        }
        static void* operator new(std::size_t size) { return detail::allocate_frame(size); }
        static void operator delete(void* p, std::size_t size) noexcept {
            detail::deallocate_frame(p, size);
        }
        static void invoke_impl(detail::callback_node* node, void* frame) {
            task view = borrow(handle_type::from_address(frame));
            std::invoke(static_cast<callback*>(node)->fn, view);
        }
        static void destroy_impl(detail::callback_node* node) noexcept {
            delete static_cast<callback*>(node);
        }
        F fn;
    };

    template <class F>
    void add_callback(F&& f) {
        promise_type& p = checked("add_done_callback");
        if (p.state() == detail::task_state::done) {
            std::decay_t<F> fn(std::forward<F>(f));
            std::invoke(fn, *this);
            return;
        }
        p.reserve_callbacks();
        p.append_callback(new callback<std::decay_t<F>>(std::forward<F>(f)));
    }

    // Registered with the awaiting task while it waits, so that cancelling
    // that task passes the cancellation down to this one.
    template <bool Move>
    struct awaiter : detail::suspension {
        explicit awaiter(handle_type child) noexcept : h(child) {}

        [[nodiscard]] BRAID_DETAIL_HOT_INLINE bool await_ready() const {
            if (!h) {
                detail::throw_empty_task("operator co_await");
            }
            const promise_type& p = h.promise();
            const detail::task_state state = p.state();
            if (state == detail::task_state::created) [[likely]] {
                return false;
            }
            if (state == detail::task_state::done) {
                return true;
            }
            if (state == detail::task_state::abandoned) {
                detail::throw_not_finished("operator co_await", state);
            }
            if (p.awaited()) {
                throw usage_error("braid::task::operator co_await: the task is already awaited "
                                  "by another coroutine; one coroutine at a time may await a "
                                  "task (use add_done_callback to be told too)");
            }
            return false;
        }

        // Forced inline: with the rare paths suspend_on and await_from call
        // out to, clang 16 kept it out of line, a call per await (13 % of an
        // await's time).
        template <detail::braid_promise P>
        BRAID_DETAIL_HOT_INLINE bool await_suspend(std::coroutine_handle<P> awaiting) noexcept {
            if (!h.promise().await_from(awaiting, awaiting.promise())) {
                return false; // finished at once: the common, fast case
            }
            cancel = &awaiter::cancel_child;
            kind = detail::wait_kind::child;
            parent = &awaiting.promise();
            parent->suspend_on(this);
            return true;
        }

        decltype(auto) await_resume() const {
            if (parent != nullptr) {
                parent->resumed();
            }
            promise_type& p = h.promise();
            p.rethrow_if_failed();
            if constexpr (Move && !std::is_void_v<T> && !std::is_reference_v<T>) {
                return T(std::move(p.value()));
            } else {
                return p.value();
            }
        }

        static void cancel_child(detail::suspension* s) noexcept {
            // A child being awaited has started: cancelling it runs no callback.
            (void)static_cast<awaiter*>(s)->h.promise().request_cancel();
        }

        handle_type h;
        detail::promise_base* parent = nullptr; // set when the awaiting task suspends
    };

    handle_type h_;
};

template <class T>
detail::promise_base& detail::task_access::promise_of(task<T>& t, const char* function) {
    return t.checked(function);
}

template <class T>
task<T> detail::promise<T>::get_return_object() noexcept {
    // The loop finds a task's promise from its frame's address as a
    // promise_base (promise_of_frame): it must sit where a promise_base
    // would, which holds up to 16-byte alignment with g++ and clang (and the
    // frame allocator aligns to 16 bytes anyway).
    static_assert(alignof(promise<T>) <= 16,
                  "braid::task<T>: T must not be aligned to more than 16 bytes");
    return task<T>(std::coroutine_handle<promise>::from_promise(*this));
}

} // namespace braid
