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
//   loop.call_later(2s, f);     // a callback in two seconds (see timer.hpp)
//   loop.call_soon_threadsafe(f); // from any thread
//   loop.run();                 // until nothing can make progress
//   loop.run_until_complete(t); // until t is done; returns its result
//   loop.run_forever();         // until loop.stop()
//
// Inside tasks: co_await braid::yield(), braid::sleep_for(d), and
// braid::run_in(pool, f) to run f on another thread without blocking.
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
// over. A task that fails while its object is held is left to that object;
// if the last object goes without the error having been read (result(),
// co_await, or a done callback added after the end), the error goes to the
// handler then, unless the loop is gone by that time. The default handler
// rethrows them from run()/run_until_complete(); set_exception_handler
// replaces it (for example to log and go on).
//
// Threads: everything, including the tasks' bodies, runs on the thread that
// calls run(); the loop and its tasks must only be used from that thread,
// except call_soon_threadsafe() and stop(), which any thread may call while
// the loop exists (calling them on a destroyed loop is a bug, as for any
// object).

#include <braid/clock.hpp>
#include <braid/detail/frame_pool.hpp>
#include <braid/detail/loop/deadline.hpp>
#include <braid/detail/loop/nodes.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/loop/timer_queue.hpp>
#include <braid/errors.hpp>
#include <braid/policy.hpp>
#include <braid/sleep.hpp>
#include <braid/task.hpp>
#include <braid/timer.hpp>
#include <braid/tracer.hpp>
#include <braid/yield.hpp>

#include <chrono>
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

class task_group;

class event_loop {
public:
    // The loop's clock (unless it is given a manual_clock, whose time points
    // are the same type).
    using clock = std::chrono::steady_clock;

    // An interleaved loop.
    event_loop() : core_(interleaved) {}
    // A loop with the given scheduling policy (see policy.hpp).
    template <scheduling_policy Policy>
    explicit event_loop(Policy policy) : core_(std::move(policy)) {}
    // A loop whose time is `time`'s, which must outlive the loop (see clock.hpp).
    explicit event_loop(manual_clock& time) : core_(interleaved, &time) {}
    template <scheduling_policy Policy>
    event_loop(Policy policy, manual_clock& time) : core_(std::move(policy), &time) {}

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
        using node_type = detail::soon_call<std::decay_t<F>, std::decay_t<Args>...>;
        core_.call_soon(new node_type(std::forward<F>(f), std::forward<Args>(args)...));
    }

    // Schedules f(args...) (decay-copied, as call_soon) to run once `delay`
    // has passed: it joins the back of the ready queue when the loop next
    // collects due timers, at or after the deadline, never before. Timers
    // run in deadline order, equal deadlines in the order they were made. A
    // delay of zero or less runs as soon as possible; duration::max() never
    // runs. The handle can cancel it; dropping the handle does not.
    template <class Rep, class Period, class F, class... Args>
        requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& f, Args&&... args) {
        return schedule(detail::deadline_after(time(), delay), std::forward<F>(f),
                        std::forward<Args>(args)...);
    }

    // As call_later, at the loop's time `when` (time_point::max(): never).
    template <class Duration, class F, class... Args>
        requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
    timer_handle call_at(std::chrono::time_point<clock, Duration> when, F&& f, Args&&... args) {
        return schedule(detail::to_loop_time(when), std::forward<F>(f),
                        std::forward<Args>(args)...);
    }

    // Queues f(args...) (decay-copied) from any thread, also while the loop
    // sleeps (it wakes up) or is not running (the call waits for the next
    // run). The loop collects it when the pass in progress ends, at the back
    // of the ready queue; calls made by one thread run in the order they were
    // made. What f throws goes to the exception handler. Small callables
    // cost no allocation. Throws std::bad_alloc when the queue cannot grow.
    template <class F, class... Args>
        requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
    void call_soon_threadsafe(F&& f, Args&&... args) {
        auto item =
            detail::remote_item::call(detail::bound_call<std::decay_t<F>, std::decay_t<Args>...>(
                std::forward<F>(f), std::forward<Args>(args)...));
        core_.post(item);
    }

    // The loop's current time: clock::now(), or its manual clock's time.
    [[nodiscard]] clock::time_point time() const noexcept { return core_.now(); }

    // Runs until nothing can make progress any more: nothing is ready, no
    // timer is pending and no run_in or async_next is outstanding (while
    // those wait, the thread sleeps). Returns early after the step in
    // progress when stop() is called. Throws usage_error when called from
    // inside this loop, and lets out what the exception handler throws.
    void run() { core_.run(); }

    // Runs until stop(): when nothing is ready the thread sleeps until a
    // timer is due or another thread calls call_soon_threadsafe() or stop().
    // After a stop() made while the loop was not running, runs what is ready
    // once (one pass) and returns, as asyncio's run_forever does.
    void run_forever() { core_.run_forever(); }

    // Any thread: makes run_forever() and run() return after the step in
    // progress (or, made while neither runs, makes the next one run one
    // pass and return). run_until_complete() does not stop for it: it runs
    // until its task is done, and the stop applies to the next run().
    void stop() noexcept { core_.request_stop(); }

    // Runs until t is done (spawning it first if it has not started), then
    // returns its result or rethrows its exception. While t waits (for a
    // timer, another thread), the thread sleeps. The lvalue form returns a
    // reference into t; the rvalue form moves the value out. Throws
    // usage_error when called from inside this loop, and task_not_finished
    // when the loop runs out of work while t still waits for something.
    template <class T>
    decltype(auto) run_until_complete(task<T>& t) {
        core_.run_until_done(t.checked("run_until_complete"));
        return t.result();
    }
    template <class T>
    T run_until_complete(task<T>&& t) {
        task<T> owned = std::move(t);
        core_.run_until_done(owned.checked("run_until_complete"));
        return std::move(owned).result();
    }

    // How many items (task steps and callbacks) the loop has taken from its
    // ready queue and run since it was made.
    [[nodiscard]] std::uint64_t rounds() const noexcept { return core_.rounds(); }
    // How many items are waiting in the ready queue.
    [[nodiscard]] std::size_t ready() const noexcept { return core_.ready_count(); }
    // True while run(), run_forever() or run_until_complete() is on the stack.
    [[nodiscard]] bool is_running() const noexcept { return core_.running(); }

    // Replaces the default exception handler (which rethrows from run()).
    // handler(std::exception_ptr) runs on the loop's thread after the step
    // that produced the error; what it throws leaves run().
    template <class Handler>
        requires std::invocable<Handler&, std::exception_ptr>
    void set_exception_handler(Handler handler) {
        core_.set_handler(std::move(handler));
    }
    // Installs an observer of the loop (see tracer.hpp), or removes it with
    // nullptr. The loop does not own it: it must outlive the loop, or be
    // removed first. With none, the loop runs no tracing code at all.
    void set_tracer(tracer* t) noexcept { core_.set_tracer(t); }

    // Back to the default: rethrow from run().
    void set_exception_handler(std::nullptr_t) noexcept { core_.set_handler(nullptr); }

private:
    friend class task_group;

    template <class F, class... Args>
    timer_handle schedule(clock::time_point deadline, F&& f, Args&&... args) {
        using node_type = detail::timer_call<std::decay_t<F>, std::decay_t<Args>...>;
        auto* node = new node_type(std::forward<F>(f), std::forward<Args>(args)...);
        try {
            core_.add_timer(*node, deadline);
        } catch (...) {
            node->release();
            throw;
        }
        return timer_handle(node);
    }

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

    detail::scheduler core_;
};

} // namespace braid
