// SPDX-License-Identifier: MIT
#pragma once

// braid_test::program: a small program of tasks and callbacks, run on a real
// braid::event_loop by run_on_loop (here) and on an independent model of the
// loop's documented rules by run_model (loop_model.hpp). Both return the
// trace of what a user can observe -- tasks starting, resuming, receiving
// what they awaited, finishing; callbacks running; errors reaching the
// exception handler -- each event stamped with the loop's rounds() and
// ready() at that moment. A test compares the two traces.
//
// A program is a list of scripts (task bodies) and callbacks, each a range of
// operations. Every script runs at most once, started by the one operation
// or root entry that names it, so a script's index is also its task's id, and
// an operation's index is a unique name for the exception it throws.
//
// Adding an operation: a value of op_kind, its case in runner::run_script or
// runner::run_callback_ops below, and its case in the model (the compiler's
// -Wswitch points at both), then the producers of programs (the fuzz
// target's decoder, the model test's generator).
//
// Only the public API is used.

#include <braid/event_loop.hpp>

#include "support/counted.hpp"

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
    await_new,   // co_await a new task running script `target`; its exception propagates
    await_catch, // the same, catching the task's exception
    spawn_kept,  // loop.spawn(t), t (script `target`) kept in slot `slot` of this task
    make_lazy,   // t (script `target`) made and kept in slot `slot`, not started
    join,        // co_await the task in slot `slot` (script `target`); its exception propagates
    join_catch,  // the same, catching the task's exception
    on_done, // the task in slot `slot` (script `target`): add_done_callback(callback `callback`)
    // In task scripts and in callbacks:
    spawn_dropped, // loop.spawn(a new task running script `target`), fire-and-forget
    call_soon,     // loop.call_soon(callback `target`)
    raise,         // throw script_error{index of this operation}
};

struct op {
    op_kind kind;
    std::uint32_t slot = 0;
    std::uint32_t target = 0;
    std::uint32_t callback = 0;
};

struct op_range {
    std::uint32_t first = 0; // index into program::ops
    std::uint32_t last = 0;  // one past the end
    std::uint32_t slots = 0; // spawn_kept and make_lazy operations in the range
};

struct program {
    std::vector<op> ops;
    std::vector<op_range> scripts;
    std::vector<op_range> callbacks;
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
    // Record every event, or only the ends of tasks, errors and main's result.
    bool trace_steps = true;
};

// What a raise operation throws: the index of the operation.
struct script_error : std::exception {
    explicit script_error(std::uint32_t where) noexcept : site(where) {}
    const char* what() const noexcept override { return "braid_test::script_error"; }
    std::uint32_t site;
};

enum class event_kind : std::uint8_t {
    start,      // task `id` begins its body
    resume,     // task `id` resumes after a yield
    got,        // task `id` received `value` from an await or a join
    caught,     // task `id` caught the exception `value` (a site) from an await or a join
    finish,     // task `id` returned `value`
    fail,       // task `id` ended with the exception `value`
    callback,   // call_soon callback `id` runs
    done_value, // done callback `id` runs and its task's result() gives `value`
    done_error, // done callback `id` runs and its task's result() throws `value`
    error,      // the exception `value` reaches the exception handler
    main_value, // run_until_complete(main) returned `value`
    main_error, // run_until_complete(main) threw main's own exception `value`
    destroyed,  // the loop is destroyed
};

struct event {
    event_kind kind;
    std::uint32_t id = 0;
    std::uint32_t value = 0;
    std::uint32_t ready = 0; // loop.ready()
    std::uint64_t round = 0; // loop.rounds()
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
    case event_kind::finish:
        return "finish";
    case event_kind::fail:
        return "fail";
    case event_kind::callback:
        return "callback";
    case event_kind::done_value:
        return "done-callback value";
    case event_kind::done_error:
        return "done-callback error";
    case event_kind::error:
        return "error to handler";
    case event_kind::main_value:
        return "main returned";
    case event_kind::main_error:
        return "main threw";
    case event_kind::destroyed:
        return "loop destroyed";
    }
    return "?";
}

inline std::string describe(const event& e) {
    std::ostringstream out;
    out << "round " << e.round << ", ready " << e.ready << ": " << name_of(e.kind) << " " << e.id
        << " " << e.value;
    return out.str();
}

// Only the ends of tasks, errors and main's result are recorded without steps.
inline bool is_step_detail(event_kind kind) {
    return kind == event_kind::start || kind == event_kind::resume || kind == event_kind::got ||
           kind == event_kind::caught || kind == event_kind::callback ||
           kind == event_kind::done_value || kind == event_kind::done_error;
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

namespace detail {

// Runs a program's scripts as braid tasks and its callbacks as call_soon and
// done callbacks, recording the trace.
class runner {
public:
    runner(const program& prog, braid::event_loop& loop, std::vector<event>& trace)
        : prog_(prog), loop_(loop), trace_(trace) {}

    void record(event_kind kind, std::uint32_t id, std::uint32_t value) {
        if (prog_.trace_steps || !is_step_detail(kind)) {
            trace_.push_back(
                event{kind, id, value, static_cast<std::uint32_t>(loop_.ready()), loop_.rounds()});
        }
    }

    // The task of script `id`. The counted parameter lives in the frame, so
    // that the test can check every frame is freed exactly once.
    braid::task<std::uint32_t> run_script(std::uint32_t id, counted) {
        const op_range& s = prog_.scripts[id];
        record(event_kind::start, id, 0);
        std::uint32_t value = id;
        std::vector<braid::task<std::uint32_t>> slots;
        slots.reserve(s.slots);
        try {
            for (std::uint32_t pc = s.first; pc != s.last; ++pc) {
                const op& o = prog_.ops[pc];
                switch (o.kind) {
                case op_kind::yield:
                    co_await braid::yield();
                    record(event_kind::resume, id, 0);
                    break;
                case op_kind::await_new: {
                    // The task is a named local: no temporary with a
                    // destructor inside the co_await expression.
                    braid::task<std::uint32_t> child = run_script(o.target, counted{});
                    const std::uint32_t got = co_await std::move(child);
                    value += got;
                    record(event_kind::got, id, got);
                    break;
                }
                case op_kind::await_catch: {
                    braid::task<std::uint32_t> child = run_script(o.target, counted{});
                    try {
                        const std::uint32_t got = co_await std::move(child);
                        value += got;
                        record(event_kind::got, id, got);
                    } catch (const script_error& e) {
                        record(event_kind::caught, id, e.site);
                    }
                    break;
                }
                case op_kind::spawn_kept:
                    slots.push_back(run_script(o.target, counted{}));
                    loop_.spawn(slots.back());
                    break;
                case op_kind::make_lazy:
                    slots.push_back(run_script(o.target, counted{}));
                    break;
                case op_kind::join: {
                    const std::uint32_t got = co_await slots[o.slot];
                    value += got;
                    record(event_kind::got, id, got);
                    break;
                }
                case op_kind::join_catch: {
                    try {
                        const std::uint32_t got = co_await slots[o.slot];
                        value += got;
                        record(event_kind::got, id, got);
                    } catch (const script_error& e) {
                        record(event_kind::caught, id, e.site);
                    }
                    break;
                }
                case op_kind::on_done:
                    slots[o.slot].add_done_callback(
                        [this, cb = o.callback, tag = counted{}](braid::task<std::uint32_t>& t) {
                            done_callback(cb, t);
                        });
                    break;
                case op_kind::spawn_dropped:
                case op_kind::call_soon:
                case op_kind::raise:
                    run_shared_op(pc);
                    break;
                }
            }
        } catch (const script_error& e) {
            record(event_kind::fail, id, e.site);
            throw;
        }
        record(event_kind::finish, id, value);
        co_return value;
    }

    void run_callback(std::uint32_t cb) {
        record(event_kind::callback, cb, 0);
        run_callback_ops(cb);
    }

private:
    void done_callback(std::uint32_t cb, braid::task<std::uint32_t>& t) {
        std::uint32_t outcome = 0;
        bool failed = false;
        try {
            outcome = t.result();
        } catch (const script_error& e) {
            outcome = e.site;
            failed = true;
        }
        record(failed ? event_kind::done_error : event_kind::done_value, cb, outcome);
        run_callback_ops(cb);
    }

    void run_callback_ops(std::uint32_t cb) {
        const op_range& c = prog_.callbacks[cb];
        for (std::uint32_t pc = c.first; pc != c.last; ++pc) {
            run_shared_op(pc);
        }
    }

    // The operations a callback may hold too.
    void run_shared_op(std::uint32_t pc) {
        const op& o = prog_.ops[pc];
        switch (o.kind) {
        case op_kind::spawn_dropped:
            loop_.spawn(run_script(o.target, counted{}));
            break;
        case op_kind::call_soon:
            loop_.call_soon([this, cb = o.target, tag = counted{}] { run_callback(cb); });
            break;
        case op_kind::raise:
            throw script_error(pc);
        default:
            // Only task scripts hold the other kinds; producers never put
            // them in callbacks.
            std::terminate();
        }
    }

    const program& prog_;
    braid::event_loop& loop_;
    std::vector<event>& trace_;
};

inline std::uint32_t site_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(std::move(error));
    } catch (const script_error& e) {
        return e.site;
    }
    // Anything else escaping is a bug the caller sees (it propagates).
}

} // namespace detail

// Runs prog on a braid::event_loop with the given policy and returns what it
// observed. counted::alive tells the caller afterwards whether every frame
// and callback was freed.
template <braid::scheduling_policy Policy>
std::vector<event> run_on_loop(const program& prog, Policy policy) {
    std::vector<event> trace;
    // Declared before the loop, so a task the loop abandons is freed after it.
    std::optional<braid::task<std::uint32_t>> main;
    {
        braid::event_loop loop{policy};
        detail::runner run(prog, loop, trace);
        if (!prog.rethrowing_handler) {
            loop.set_exception_handler([&](std::exception_ptr e) {
                run.record(event_kind::error, 0, detail::site_of(std::move(e)));
            });
        }
        // Runs the loop with `body`; an error the default handler rethrows is
        // recorded and the loop run again.
        auto keep_running = [&](auto body) {
            for (;;) {
                try {
                    body();
                    return;
                } catch (const script_error& e) {
                    run.record(event_kind::error, 0, e.site);
                }
            }
        };
        for (std::uint32_t root : prog.roots) {
            loop.spawn(run.run_script(root, counted{}));
        }
        if (prog.main) {
            main.emplace(run.run_script(*prog.main, counted{}));
            keep_running([&] {
                try {
                    const std::uint32_t value = loop.run_until_complete(*main);
                    run.record(event_kind::main_value, 0, value);
                } catch (const script_error& e) {
                    // Main's own exception ends it; another one is an error
                    // the default handler rethrew (sites are unique).
                    if (main->done()) {
                        try {
                            (void)main->result();
                        } catch (const script_error& own) {
                            if (own.site == e.site) {
                                run.record(event_kind::main_error, 0, e.site);
                                return;
                            }
                        }
                    }
                    throw;
                }
            });
            if (prog.destroy_after_main) {
                run.record(event_kind::destroyed, 0, 0);
                return trace;
            }
        }
        keep_running([&] { loop.run(); });
    }
    return trace;
}

} // namespace braid_test
