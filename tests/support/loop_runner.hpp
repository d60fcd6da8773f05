// SPDX-License-Identifier: MIT
#pragma once

// braid_test::run_on_loop: runs a program (loop_program.hpp) on a real
// braid::event_loop with a manual clock -- its scripts as braid tasks, its
// callbacks as call_soon, call_later, thread-safe and done callbacks -- and
// records what a user can observe. Only the public API is used.

#include <braid/event_loop.hpp>
#include <braid/task_group.hpp>
#include <braid/wait_for.hpp>
#include <braid/when_all.hpp>
#include <braid/when_any.hpp>

#include "support/counted.hpp"
#include "support/loop_program.hpp"

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

namespace braid_test {

namespace detail {

// The site or mark of an exception.
inline std::uint32_t site_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(std::move(error));
    } catch (const script_error& e) {
        return e.site;
    } catch (const braid::timeout_error&) {
        return timeout_mark;
    } catch (const braid::cancelled&) {
        return cancelled_mark;
    } catch (...) {
        return other_mark;
    }
}

// Runs a program's scripts as braid tasks and its callbacks as call_soon,
// call_later, thread-safe and done callbacks, recording the trace.
class runner {
public:
    runner(const program& prog, std::vector<event>& trace)
        : prog_(prog), trace_(trace), kept_(prog.scripts.size()), timers_(prog.callbacks.size()) {}
    runner(const runner&) = delete;
    runner& operator=(const runner&) = delete;

    void attach(braid::event_loop& loop) noexcept { loop_ = &loop; }

    void record(event_kind kind, std::uint32_t id, std::uint32_t value) {
        if (prog_.trace_steps || !is_step_detail(kind)) {
            trace_.push_back(event{kind, id, value, static_cast<std::uint32_t>(loop_->ready()),
                                   loop_->rounds(), milliseconds(loop_->time())});
        }
    }

    // The task of script `id`. The counted parameter lives in the frame, so
    // that the test can check every frame is freed exactly once.
    braid::task<std::uint32_t> run_script(std::uint32_t id, counted) {
        const op_range& s = prog_.scripts[id];
        record(event_kind::start, id, 0);
        // Locals of the body, destroyed when it ends, after its last event:
        // the group (which cancels children still running), then the kept tasks.
        const kept_tasks kept{this, id};
        std::optional<braid::task_group> group;
        std::uint32_t value = id;
        std::uint32_t pc = s.first;
        std::uint32_t end = s.last;
        bool cleaning = false;
        // One try for the whole body, so that the runner rethrows an
        // exception once per task it leaves (throwing is slow under the
        // sanitizers): a handler either resumes the loop (after a catching
        // operation, or into the clean-up), or records the end and rethrows.
        for (;;) {
            try {
                for (; pc != end; ++pc) {
                    const op& o = prog_.ops[pc];
                    switch (o.kind) {
                    case op_kind::yield:
                        co_await braid::yield();
                        record(event_kind::resume, id, 0);
                        break;
                    case op_kind::sleep:
                        co_await braid::sleep_for(std::chrono::milliseconds(o.delay));
                        record(event_kind::resume, id, 0);
                        break;
                    case op_kind::await_new: {
                        // Named locals: no temporary with a destructor
                        // inside a co_await expression.
                        braid::task<std::uint32_t> child = run_script(o.target, counted{});
                        const std::uint32_t got = co_await std::move(child);
                        take(id, value, got);
                        break;
                    }
                    case op_kind::spawn_kept:
                        kept_[o.target] = run_script(o.target, counted{});
                        loop_->spawn(kept_[o.target]);
                        break;
                    case op_kind::make_lazy:
                        kept_[o.target] = run_script(o.target, counted{});
                        break;
                    case op_kind::join: {
                        const std::uint32_t got = co_await kept_[o.target];
                        take(id, value, got);
                        break;
                    }
                    case op_kind::on_done:
                        kept_[o.target].add_done_callback(
                            [this, cb = o.callback, tag = counted{}](
                                braid::task<std::uint32_t>& t) { done_callback(cb, t); });
                        break;
                    case op_kind::when_all:
                    case op_kind::all_of_kept: {
                        braid::task<std::vector<std::uint32_t>> all =
                            braid::when_all(o.kind == op_kind::when_all ? children(o.target)
                                                                        : moved_kept(o.target));
                        const std::vector<std::uint32_t> got = co_await std::move(all);
                        std::uint32_t sum = 0;
                        for (std::uint32_t v : got) {
                            sum += v;
                        }
                        take(id, value, sum);
                        break;
                    }
                    case op_kind::when_any:
                    case op_kind::any_of_kept: {
                        braid::task<std::pair<std::size_t, std::uint32_t>> any =
                            braid::when_any(o.kind == op_kind::when_any ? children(o.target)
                                                                        : moved_kept(o.target));
                        const std::pair<std::size_t, std::uint32_t> got = co_await std::move(any);
                        take(id, value, got.second);
                        break;
                    }
                    case op_kind::wait_for: {
                        braid::task<std::uint32_t> child = run_script(o.target, counted{});
                        braid::task<std::uint32_t> bounded =
                            braid::wait_for(std::move(child), std::chrono::milliseconds(o.delay));
                        const std::uint32_t got = co_await std::move(bounded);
                        take(id, value, got);
                        break;
                    }
                    case op_kind::group_spawn:
                        if (!group) {
                            group.emplace(*loop_);
                        }
                        group->spawn(run_script(o.target, counted{}));
                        break;
                    case op_kind::group_wait:
                        if (!group) {
                            group.emplace(*loop_);
                        }
                        co_await group->wait();
                        record(event_kind::waited, id, 0);
                        break;
                    case op_kind::external:
                        co_await resumed_later{*loop_, o.delay};
                        record(event_kind::resume, id, 0);
                        break;
                    case op_kind::spawn_dropped:
                    case op_kind::call_soon:
                    case op_kind::call_later:
                    case op_kind::cancel_timer:
                    case op_kind::cancel:
                    case op_kind::threadsafe:
                    case op_kind::stop:
                    case op_kind::raise:
                        run_shared_op(pc);
                        break;
                    }
                }
                break;
            } catch (const script_error& e) {
                if (!prog_.ops[pc].catching) {
                    record(event_kind::fail, id, e.site);
                    throw;
                }
                record(event_kind::caught, id, e.site);
                ++pc;
            } catch (const braid::timeout_error&) {
                if (!prog_.ops[pc].catching) {
                    record(event_kind::fail, id, timeout_mark);
                    throw;
                }
                record(event_kind::caught, id, timeout_mark);
                ++pc;
            } catch (const braid::cancelled&) {
                if (cleaning || s.cleanup == cleanup_kind::none) {
                    record(event_kind::fail, id, cancelled_mark);
                    throw;
                }
                record(event_kind::caught_cancel, id, 0);
                cleaning = true;
                pc = s.cleanup_first;
                end = s.cleanup_last;
            }
        }
        if (cleaning && s.cleanup == cleanup_kind::rethrow) {
            record(event_kind::fail, id, cancelled_mark);
            throw braid::cancelled{};
        }
        record(event_kind::finish, id, value);
        co_return value;
    }

    // Set by the stop operation; the driver reads and clears it.
    bool stop_called = false;
    bool sentinel_fired = false;

private:
    // An awaitable that is not braid's: it keeps the task's handle in a
    // call_later callback, which resumes the task from inside that callback.
    // The loop knows nothing of the wait, so cancellation cannot reach it.
    struct resumed_later {
        braid::event_loop& loop;
        std::int32_t delay; // milliseconds
        [[nodiscard]] bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> task) {
            loop.call_later(std::chrono::milliseconds(delay),
                            [task, tag = counted{}] { task.resume(); });
        }
        void await_resume() const noexcept {}
    };

    // Lets go of the tasks a body kept, when the body ends.
    struct kept_tasks {
        kept_tasks(runner* r, std::uint32_t id) noexcept : owner(r), script(id) {}
        kept_tasks(const kept_tasks&) = delete;
        kept_tasks& operator=(const kept_tasks&) = delete;
        ~kept_tasks() { owner->release_kept(script); }
        runner* owner;
        std::uint32_t script;
    };

    static std::int64_t milliseconds(braid::event_loop::clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }

    void release_kept(std::uint32_t script) noexcept {
        const op_range& s = prog_.scripts[script];
        auto release = [&](std::uint32_t first, std::uint32_t last) {
            for (std::uint32_t pc = first; pc != last; ++pc) {
                const op& o = prog_.ops[pc];
                if (o.kind == op_kind::spawn_kept || o.kind == op_kind::make_lazy) {
                    kept_[o.target] = {};
                }
            }
        };
        release(s.first, s.last);
        release(s.cleanup_first, s.cleanup_last);
    }

    void take(std::uint32_t id, std::uint32_t& value, std::uint32_t got) {
        value += got;
        record(event_kind::got, id, got);
    }

    std::vector<braid::task<std::uint32_t>> children(std::uint32_t list) {
        std::vector<braid::task<std::uint32_t>> tasks;
        tasks.reserve(prog_.lists[list].size());
        for (std::uint32_t script : prog_.lists[list]) {
            tasks.push_back(run_script(script, counted{}));
        }
        return tasks;
    }

    // The kept tasks of the scripts in a list, moved out: no longer kept.
    std::vector<braid::task<std::uint32_t>> moved_kept(std::uint32_t list) {
        std::vector<braid::task<std::uint32_t>> tasks;
        tasks.reserve(prog_.lists[list].size());
        for (std::uint32_t script : prog_.lists[list]) {
            tasks.push_back(std::move(kept_[script]));
        }
        return tasks;
    }

    void done_callback(std::uint32_t cb, braid::task<std::uint32_t>& t) {
        std::uint32_t outcome = 0;
        bool failed = false;
        try {
            outcome = t.result();
        } catch (...) {
            outcome = site_of(std::current_exception());
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
            loop_->spawn(run_script(o.target, counted{}));
            break;
        case op_kind::call_soon:
            loop_->call_soon([this, cb = o.target, tag = counted{}] {
                record(event_kind::callback, cb, 0);
                run_callback_ops(cb);
            });
            break;
        case op_kind::call_later:
            timers_[o.target] = loop_->call_later(std::chrono::milliseconds(o.delay),
                                                  [this, cb = o.target, tag = counted{}] {
                                                      record(event_kind::timer, cb, 0);
                                                      run_callback_ops(cb);
                                                  });
            break;
        case op_kind::cancel_timer:
            record(event_kind::timer_cancel, o.target, timers_[o.target].cancel() ? 1 : 0);
            break;
        case op_kind::cancel: {
            braid::task<std::uint32_t>& t = kept_[o.target];
            if (!t.valid()) {
                record(event_kind::cancel, o.target, 2);
            } else {
                const bool said = t.cancel();
                record(event_kind::cancel, o.target, said ? 1 : 0);
            }
            break;
        }
        case op_kind::threadsafe:
            loop_->call_soon_threadsafe([this, cb = o.target, tag = counted{}] {
                record(event_kind::threadsafe, cb, 0);
                run_callback_ops(cb);
            });
            break;
        case op_kind::stop:
            record(event_kind::stop, 0, 0);
            stop_called = true;
            loop_->stop();
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
    std::vector<event>& trace_;
    braid::event_loop* loop_ = nullptr;
    std::vector<braid::task<std::uint32_t>> kept_; // by script
    std::vector<braid::timer_handle> timers_;      // by callback
};

inline std::exception_ptr exception_of(braid::task<std::uint32_t>& t) {
    try {
        (void)t.result();
    } catch (...) {
        return std::current_exception();
    }
    return nullptr;
}

} // namespace detail

// Runs prog on a braid::event_loop with the given policy and a manual clock,
// and returns what it observed. counted::alive tells the caller afterwards
// whether every frame and callback was freed.
template <braid::scheduling_policy Policy>
std::vector<event> run_on_loop(const program& prog, Policy policy) {
    using namespace std::chrono_literals;
    std::vector<event> trace;
    braid::manual_clock clock;
    // Before the loop: frames the loop frees let go of their kept tasks here.
    detail::runner run(prog, trace);
    // Declared before the loop, so a task the loop abandons is freed after it.
    std::optional<braid::task<std::uint32_t>> main;
    {
        braid::event_loop loop{policy, clock};
        run.attach(loop);
        if (!prog.rethrowing_handler) {
            loop.set_exception_handler([&](std::exception_ptr e) {
                run.record(event_kind::error, 0, detail::site_of(std::move(e)));
            });
        }
        if (needs_sentinel(prog)) {
            loop.call_at(
                braid::event_loop::clock::time_point(std::chrono::milliseconds(end_of_time_ms)),
                [&] {
                    run.record(event_kind::sentinel, 0, 0);
                    run.sentinel_fired = true;
                    if (prog.forever) {
                        loop.stop();
                    }
                });
        }
        for (std::uint32_t root : prog.roots) {
            loop.spawn(run.run_script(root, counted{}));
        }
        bool destroy = false;
        if (prog.main) {
            main.emplace(run.run_script(*prog.main, counted{}));
            for (;;) {
                try {
                    const std::uint32_t value = loop.run_until_complete(*main);
                    run.record(event_kind::main_value, 0, value);
                    break;
                } catch (...) {
                    // Main's own exception ends it; another one is an error
                    // the default handler rethrew.
                    const std::exception_ptr e = std::current_exception();
                    if (main->done() && e == detail::exception_of(*main)) {
                        run.record(event_kind::main_error, 0, detail::site_of(e));
                        break;
                    }
                    try {
                        std::rethrow_exception(e);
                    } catch (const braid::task_not_finished&) {
                        run.record(event_kind::main_stuck, 0, 0);
                        break;
                    } catch (...) {
                        run.record(event_kind::error, 0, detail::site_of(e));
                    }
                }
            }
            if (prog.destroy_after_main) {
                run.record(event_kind::destroyed, 0, 0);
                destroy = true;
            }
        }
        while (!destroy) {
            try {
                if (prog.forever) {
                    loop.run_forever();
                } else {
                    loop.run();
                }
            } catch (...) {
                run.record(event_kind::error, 0, detail::site_of(std::current_exception()));
                continue;
            }
            run.record(event_kind::returned, 0, 0);
            // run() returns early only for a stop; run_forever() only for one.
            if (prog.forever ? run.sentinel_fired : !std::exchange(run.stop_called, false)) {
                break;
            }
        }
    }
    return trace;
}

} // namespace braid_test
