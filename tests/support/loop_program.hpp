// SPDX-License-Identifier: MIT
#pragma once

// braid_test::program: a small program of tasks and callbacks, run on a real
// braid::event_loop by run_on_loop (loop_runner.hpp) and on an independent
// model of the loop's documented rules by run_model (loop_model.hpp). Both return the
// trace of what a user can observe -- tasks starting, resuming, receiving
// what they awaited, catching a cancellation, finishing; callbacks and timers
// running; cancel() answering; errors reaching the exception handler; run()
// returning -- each event stamped with the loop's rounds(), ready() and time
// (a manual clock, in milliseconds) at that moment. A test compares the two.
//
// A program is a list of scripts (task bodies) and callbacks, each a range of
// operations. Every script runs at most once, started by the one operation
// or root entry that names it, so a script's index is also its task's id, and
// an operation's index is a unique name for the exception it throws. Likewise
// every callback is queued by one operation at most, so a callback's index
// also names the timer that runs it.
//
// A script may end with a clean-up section: when braid::cancelled reaches the
// task in its main section, it runs the clean-up (which may await), then
// returns normally or throws braid::cancelled again.
//
// Tasks made by spawn_kept and make_lazy are kept -- by the test, in a table
// indexed by script -- until the body of the task that made them ends, as if
// they were locals of that body. Operations of that body, and of callbacks it
// creates, name them by script (join, on_done, cancel).
//
// Adding an operation: a value of op_kind, its case in runner::run_script or
// runner::run_shared_op (loop_runner.hpp), and its case in the model (the
// compiler's -Wswitch points at both), then the producers of programs (the
// fuzz target's decoder, the model test's generator).

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace braid_test {

enum class op_kind : std::uint8_t {
    // In task scripts:
    yield,       // co_await braid::yield()
    sleep,       // co_await braid::sleep_for(`delay` ms): zero or less is a yield
    await_new,   // co_await a new task running script `target`
    spawn_kept,  // loop.spawn(t), t a new task of script `target`, kept (see above)
    make_lazy,   // t, a new task of script `target`, kept and not started
    join,        // co_await the kept task of script `target`
    on_done,     // the kept task of script `target`: add_done_callback(callback `callback`)
    when_all,    // co_await braid::when_all(new tasks of the scripts in lists[`target`]): their sum
    when_any,    // co_await braid::when_any(the same): the winner's value
    all_of_kept, // co_await braid::when_all(the kept tasks in lists[`target`], moved): their sum
    any_of_kept, // co_await braid::when_any(the same): the winner's value
    wait_for,    // co_await braid::wait_for(a new task of script `target`, `delay` ms)
    group_spawn, // this task's task_group (made on first use): spawn(a new task of script `target`)
    group_wait,  // co_await this task's task_group.wait()
    external,    // co_await an awaitable that is not braid's, which a call_later(`delay`
                 // ms) callback resumes: cancellation cannot reach the task there
    // In task scripts and in callbacks:
    spawn_dropped, // loop.spawn(a new task running script `target`), fire-and-forget
    call_soon,     // loop.call_soon(callback `target`)
    call_later,    // loop.call_later(`delay` ms, callback `target`); its handle is kept
    cancel_timer,  // the handle of callback `target`'s call_later: cancel()
    cancel,        // the kept task of script `target`: cancel(), unless it is no longer kept
    threadsafe,    // loop.call_soon_threadsafe(callback `target`), from the loop's own thread
    stop,          // loop.stop()
    raise,         // throw script_error{index of this operation}
};

struct op {
    op_kind kind;
    // Awaiting operations: catch what the awaited task throws (script_error,
    // braid::timeout_error), though never braid::cancelled.
    bool catching = false;
    std::uint32_t target = 0;
    std::uint32_t callback = 0;
    std::int32_t delay = 0; // milliseconds
};

enum class cleanup_kind : std::uint8_t {
    none,    // braid::cancelled ends the task
    swallow, // catch it, run the clean-up, return normally
    rethrow, // catch it, run the clean-up, throw braid::cancelled
};

struct op_range {
    std::uint32_t first = 0; // index into program::ops
    std::uint32_t last = 0;  // one past the end
    // A script's clean-up section, after braid::cancelled.
    std::uint32_t cleanup_first = 0;
    std::uint32_t cleanup_last = 0;
    cleanup_kind cleanup = cleanup_kind::none;
};

struct program {
    std::vector<op> ops;
    std::vector<op_range> scripts;
    std::vector<op_range> callbacks;
    // The scripts of when_all's and when_any's tasks, in order.
    std::vector<std::vector<std::uint32_t>> lists;
    // Spawned fire-and-forget, in this order, before the loop runs.
    std::vector<std::uint32_t> roots;
    // Then run with run_until_complete (the caller keeps the task object),
    // after which the loop runs what is left with run().
    std::optional<std::uint32_t> main;
    // Errors leave run()/run_until_complete() (the default exception handler)
    // and the caller runs the loop again, instead of going to a handler.
    bool rethrowing_handler = false;
    // Destroy the loop as soon as main is done instead of running the rest.
    bool destroy_after_main = false;
    // run_forever() instead of run(); a last timer stops it (see below).
    bool forever = false;
    // Record every event, or only the ends of tasks, errors and main's result.
    bool trace_steps = true;
};

// What a raise operation throws: the index of the operation.
struct script_error : std::exception {
    explicit script_error(std::uint32_t where) noexcept : site(where) {}
    const char* what() const noexcept override { return "braid_test::script_error"; }
    std::uint32_t site;
};

// In events and results, beside the sites of script_errors: the exceptions
// braid throws, and anything else (a bug).
inline constexpr std::uint32_t cancelled_mark = 0xFFFF'FFF0; // braid::cancelled
inline constexpr std::uint32_t timeout_mark = 0xFFFF'FFF1;   // braid::timeout_error
inline constexpr std::uint32_t other_mark = 0xFFFF'FFF2;     // anything else

// The time of the last timer, the sentinel, armed before anything else in a
// program run with run_forever(): later than any deadline a program can
// reach, so it fires once all else is done, and calls stop().
inline constexpr std::int64_t end_of_time_ms = 1'000'000'000;

inline bool needs_sentinel(const program& prog) {
    return prog.forever;
}

enum class event_kind : std::uint8_t {
    start,         // task `id` begins its body
    resume,        // task `id` resumes after a yield or a sleep
    got,           // task `id` received `value` from an await
    caught,        // task `id` caught the exception `value` (a site or mark) from an await
    caught_cancel, // task `id` caught braid::cancelled and begins its clean-up
    waited,        // task `id`'s task_group::wait() returned
    finish,        // task `id` returned `value`
    fail,          // task `id` ended with the exception `value` (a site or mark)
    callback,      // call_soon callback `id` runs
    timer,         // call_later callback `id` runs
    threadsafe,    // call_soon_threadsafe callback `id` runs
    done_value,    // done callback `id` runs and its task's result() gives `value`
    done_error,    // done callback `id` runs and its task's result() throws `value`
    cancel,        // cancel() of the kept task of script `id` said `value` (2: not kept)
    timer_cancel,  // the handle of callback `id` said `value` to cancel()
    stop,          // stop() is called
    sentinel,      // the sentinel timer runs
    error,         // the exception `value` reaches the exception handler
    returned,      // run() or run_forever() returned
    main_value,    // run_until_complete(main) returned `value`
    main_error,    // run_until_complete(main) threw main's own exception `value`
    main_stuck,    // run_until_complete(main) threw task_not_finished
    destroyed,     // the loop is destroyed
};

struct event {
    event_kind kind;
    std::uint32_t id = 0;
    std::uint32_t value = 0;
    std::uint32_t ready = 0; // loop.ready()
    std::uint64_t round = 0; // loop.rounds()
    std::int64_t time = 0;   // loop.time(), in milliseconds
    friend bool operator==(const event&, const event&) = default;
};

inline const char* name_of(event_kind kind) {
    switch (kind) {
    case event_kind::start:
        return "start";
    case event_kind::resume:
        return "resume";
    case event_kind::got:
        return "got";
    case event_kind::caught:
        return "caught";
    case event_kind::caught_cancel:
        return "caught cancellation";
    case event_kind::waited:
        return "group waited";
    case event_kind::finish:
        return "finish";
    case event_kind::fail:
        return "fail";
    case event_kind::callback:
        return "callback";
    case event_kind::timer:
        return "timer";
    case event_kind::threadsafe:
        return "thread-safe call";
    case event_kind::done_value:
        return "done-callback value";
    case event_kind::done_error:
        return "done-callback error";
    case event_kind::cancel:
        return "cancel said";
    case event_kind::timer_cancel:
        return "timer cancel said";
    case event_kind::stop:
        return "stop";
    case event_kind::sentinel:
        return "sentinel";
    case event_kind::error:
        return "error to handler";
    case event_kind::returned:
        return "run returned";
    case event_kind::main_value:
        return "main returned";
    case event_kind::main_error:
        return "main threw";
    case event_kind::main_stuck:
        return "main stuck";
    case event_kind::destroyed:
        return "loop destroyed";
    }
    return "?";
}

inline std::string describe_value(std::uint32_t value) {
    switch (value) {
    case cancelled_mark:
        return "cancelled";
    case timeout_mark:
        return "timeout";
    case other_mark:
        return "unexpected exception";
    default:
        return std::to_string(value);
    }
}

inline std::string describe(const event& e) {
    std::ostringstream out;
    out << "round " << e.round << ", ready " << e.ready << ", " << e.time
        << " ms: " << name_of(e.kind) << " " << e.id << " " << describe_value(e.value);
    return out.str();
}

// Only the ends of tasks, errors and main's result are recorded without steps.
inline bool is_step_detail(event_kind kind) {
    switch (kind) {
    case event_kind::finish:
    case event_kind::fail:
    case event_kind::error:
    case event_kind::main_value:
    case event_kind::main_error:
    case event_kind::main_stuck:
    case event_kind::destroyed:
        return false;
    default:
        return true;
    }
}

// "" when the traces are equal; else where they part, with some context.
inline std::string compare_traces(const std::vector<event>& model, const std::vector<event>& loop) {
    std::size_t i = 0;
    while (i < model.size() && i < loop.size() && model[i] == loop[i]) {
        ++i;
    }
    if (i == model.size() && i == loop.size()) {
        return {};
    }
    std::ostringstream out;
    out << "the traces differ at event " << i << " (model " << model.size() << " events, loop "
        << loop.size() << ")\n";
    const std::size_t from = i < 5 ? 0 : i - 5;
    for (std::size_t j = from; j < i + 3; ++j) {
        out << (j == i ? "> " : "  ") << j
            << "  model: " << (j < model.size() ? describe(model[j]) : std::string("(end)"))
            << "  |  loop: " << (j < loop.size() ? describe(loop[j]) : std::string("(end)"))
            << "\n";
    }
    return out.str();
}

} // namespace braid_test
