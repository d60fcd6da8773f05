// SPDX-License-Identifier: MIT
#pragma once

// braid::event_loop: a single-threaded loop that runs tasks and callbacks
// from one FIFO ready queue, in the manner of Python's asyncio.
//
//   braid::event_loop loop;                     // interleaved (round-robin)
//   braid::event_loop loop{braid::sequential};  // each task runs to completion
//
//   loop.spawn(t);              // t keeps observing the task
//   loop.spawn(make_task());    // fire-and-forget: the loop keeps it alive
//   loop.call_soon(f, args...); // a plain callback, after what is queued
//   loop.run();                 // until nothing is ready
//   loop.run_until_complete(t); // until t is done; returns its result
//
// Ownership: the loop owns each spawned task until it finishes. Destroying the
// loop frees the tasks it still owns without running them further (their
// callbacks never run); a task whose braid::task object is still alive is
// left to that object, and reports task_not_finished if asked for its result.
// Tasks refer to their loop, so a loop can be neither copied nor moved.
//
// Errors nobody else can observe -- an exception from a task whose object was
// dropped and that has no done callback, from a done callback, or from a
// call_soon callback -- go to the exception handler once the current step is
// over. The default handler rethrows them from run()/run_until_complete();
// set_exception_handler replaces it (for example to log and go on).
//
// Threads: everything, including the tasks' bodies, runs on the thread that
// calls run(); the loop and its tasks must only be used from that thread.

#include <braid/detail/frame_pool.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/errors.hpp>
#include <braid/policy.hpp>
#include <braid/task.hpp>
#include <braid/yield.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace braid {

class event_loop {
public:
    // An interleaved loop.
    event_loop() : core_(interleaved) {}
    // A loop with the given scheduling policy (see policy.hpp).
    template <scheduling_policy Policy>
    explicit event_loop(Policy policy) : core_(std::move(policy)) {}

    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;
    ~event_loop() = default;

    // Schedules a task that has not started. The loop owns it until it
    // finishes; the caller's object still observes it. Returns t.
    template <class T>
    task<T>& spawn(task<T>& t) {
        start(t, "spawn");
        return t;
    }
    // Schedules a task and forgets it: the loop keeps it alive until it ends.
    template <class T>
    void spawn(task<T>&& t) {
        start(t, "spawn");
    }

    // Schedules f(args...) to run after everything already ready. f and the
    // arguments are stored by value (decay-copied) until then.
    template <class F, class... Args>
        requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
    void call_soon(F&& f, Args&&... args) {
        using node_type = call<std::decay_t<F>, std::decay_t<Args>...>;
        auto* node = new node_type(std::forward<F>(f), std::forward<Args>(args)...);
        try {
            core_.call_soon(node);
        } catch (...) {
            delete node;
            throw;
        }
    }

    // Runs until nothing is ready. Throws usage_error when called from inside
    // this loop, and lets out what the exception handler throws.
    void run() {
        detail::scheduler::run_guard guard(core_, "run");
        core_.deliver_pending();
        while (core_.has_ready()) {
            core_.step();
            core_.deliver_pending();
        }
    }

    // Runs until t is done (spawning it first if it has not started), then
    // returns its result or rethrows its exception. The lvalue form returns a
    // reference into t; the rvalue form moves the value out. Throws
    // usage_error when called from inside this loop, and task_not_finished
    // when the loop runs out of work while t still waits for something.
    template <class T>
    decltype(auto) run_until_complete(task<T>& t) {
        drive(t);
        return t.result();
    }
    template <class T>
    T run_until_complete(task<T>&& t) {
        task<T> owned = std::move(t);
        drive(owned);
        return std::move(owned).result();
    }

    // How many items (task steps and callbacks) the loop has taken from its
    // ready queue and run since it was made.
    [[nodiscard]] std::uint64_t rounds() const noexcept { return core_.rounds(); }
    // How many items are waiting in the ready queue.
    [[nodiscard]] std::size_t ready() const noexcept { return core_.ready_count(); }
    // True while run() or run_until_complete() is on the stack.
    [[nodiscard]] bool is_running() const noexcept { return core_.running(); }

    // Replaces the default exception handler (which rethrows from run()).
    // handler(std::exception_ptr) runs on the loop's thread after the step
    // that produced the error; what it throws leaves run().
    template <class Handler>
        requires std::invocable<Handler&, std::exception_ptr>
    void set_exception_handler(Handler handler) {
        core_.set_handler(std::move(handler));
    }
    // Back to the default: rethrow from run().
    void set_exception_handler(std::nullptr_t) noexcept { core_.set_handler(nullptr); }

private:
    template <class F, class... Args>
    struct call final : detail::call_node {
        template <class G, class... A>
        explicit call(G&& g, A&&... a) : fn(std::forward<G>(g)), args(std::forward<A>(a)...) {
            run = &call::run_impl;
            destroy = &call::destroy_impl;
        }
        static void* operator new(std::size_t size) { return detail::allocate_frame(size); }
        static void operator delete(void* p, std::size_t size) noexcept {
            detail::deallocate_frame(p, size);
        }
        static void run_impl(detail::call_node* node) {
            struct deleter {
                call* c;
                ~deleter() { delete c; }
            } owner{static_cast<call*>(node)};
            std::apply(std::move(owner.c->fn), std::move(owner.c->args));
        }
        static void destroy_impl(detail::call_node* node) noexcept {
            delete static_cast<call*>(node);
        }
        F fn;
        std::tuple<Args...> args;
    };

    template <class T>
    void start(task<T>& t, const char* function) {
        auto& p = t.checked(function);
        if (p.state() != detail::task_state::created) {
            throw usage_error(std::string("braid::event_loop::") + function +
                              (p.state() == detail::task_state::done
                                   ? ": the task has already finished"
                                   : ": the task has already started (spawned, or awaited); "
                                     "a task runs once"));
        }
        core_.spawn(p);
    }

    template <class T>
    void drive(task<T>& t) {
        auto& p = t.checked("run_until_complete");
        detail::scheduler::run_guard guard(core_, "run_until_complete");
        if (p.state() == detail::task_state::created) {
            core_.spawn(p);
        }
        core_.deliver_pending();
        while (p.state() != detail::task_state::done) {
            if (p.state() == detail::task_state::abandoned || !core_.has_ready()) {
                throw task_not_finished(
                    "braid::event_loop::run_until_complete: the loop has nothing left to run "
                    "but the task has not finished (it waits for something that nothing "
                    "will do, or it belongs to another loop)");
            }
            core_.step();
            core_.deliver_pending();
        }
    }

    detail::scheduler core_;
};

} // namespace braid
