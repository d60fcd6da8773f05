// SPDX-License-Identifier: MIT
#pragma once

// braid::tracer: an observer of an event loop, to see a schedule instead of
// reading it.
//
//   braid::chrome_tracer trace("schedule.json"); // see chrome_tracer.hpp
//   loop.set_tracer(&trace);
//   loop.run();
//
// The loop calls a tracer on its own thread, at the moments below; a step is
// one resumption of a task by the loop (what rounds() counts), and it runs
// from on_resume to on_suspend or on_finish of that task. When a step
// finishes a task that another was awaiting, the awaiting task goes on in
// the same step: its on_resume follows at once. Tasks started by a co_await
// run their first part inside the step of the task that awaits them.
//
// Tasks are identified by an opaque pointer, stable while the task exists
// (it may be reused after the task is freed); `name` is the task's name
// (task::set_name), empty when it has none. (Naming every task after its
// coroutine function, which std::source_location allows, was measured: 6 to
// 19 more instructions per task made, with g++ and clang, even when nobody
// traces. Name the tasks you want to see.) Times are the loop's
// (event_loop::time()).
//
// With no tracer set, the loop runs code that has no trace of tracing in it:
// installing one switches the loop to a traced copy of its run loop.
// Ownership: the loop does not own its tracer; it must outlive the loop or be
// removed first (set_tracer(nullptr)). Removed from inside a step, it still
// hears of the end of that step. Installed from inside a step, it sees the
// next one.

#include <chrono>
#include <cstdint>
#include <string_view>

namespace braid {

// Why a task's step ended without finishing it: what the task itself waits
// for. run_in, async_next, when_all, when_any and wait_for are tasks: a task
// that awaits one starts it inside its own step and shows `await`; the one
// it awaits shows what it waits for when a step of its own ends (spawned, or
// waiting again).
enum class suspend_reason : std::uint8_t {
    yield,  // co_await braid::yield(), or a sleep of zero
    await,  // co_await of another task
    sleep,  // a timer
    thread, // run_in's work on another thread
    stream, // stream_results::async_next
    io,     // a file descriptor
    group,  // task_group::wait, and when_all, when_any and wait_for inside
    other,  // an awaitable that is not braid's
};

// How a task ended.
enum class task_ending : std::uint8_t { value, exception, cancelled };

[[nodiscard]] constexpr std::string_view to_string(suspend_reason r) noexcept {
    switch (r) {
    case suspend_reason::yield:
        return "yield";
    case suspend_reason::await:
        return "await";
    case suspend_reason::sleep:
        return "sleep";
    case suspend_reason::thread:
        return "thread";
    case suspend_reason::stream:
        return "stream";
    case suspend_reason::io:
        return "io";
    case suspend_reason::group:
        return "group";
    case suspend_reason::other:
        break;
    }
    return "other";
}

[[nodiscard]] constexpr std::string_view to_string(task_ending e) noexcept {
    switch (e) {
    case task_ending::value:
        return "value";
    case task_ending::exception:
        return "exception";
    case task_ending::cancelled:
        break;
    }
    return "cancelled";
}

class tracer {
public:
    using time_point = std::chrono::steady_clock::time_point;

    virtual ~tracer() = default;

    // A task was spawned on the loop.
    virtual void on_spawn(const void* /*task*/, std::string_view /*name*/, time_point /*t*/) {}
    // A step of a task begins.
    virtual void on_resume(const void* /*task*/, std::string_view /*name*/, time_point /*t*/) {}
    // The step ends with the task suspended.
    virtual void on_suspend(const void* /*task*/, suspend_reason /*why*/, time_point /*t*/) {}
    // The step ends with the task finished.
    virtual void on_finish(const void* /*task*/, task_ending /*how*/, time_point /*t*/) {}
    // A callback (call_soon, a timer's, a thread-safe call's) runs.
    virtual void on_callback_begin(time_point /*t*/) {}
    virtual void on_callback_end(time_point /*t*/) {}
    // A timer became due (its callback, or its sleeping task, joins the
    // ready queue).
    virtual void on_timer(time_point /*t*/) {}
    // Another thread's call, or finished work, reached the loop.
    virtual void on_wakeup(time_point /*t*/) {}
};

} // namespace braid
