// SPDX-License-Identifier: MIT
#pragma once

// braid_test::run_model: what an event loop must do with a program (see
// loop_program.hpp), computed from the rules braid documents, without braid.
// A deque of task ids and callback ids stands for the ready queue; each task
// is a script with a program counter. The rules it applies:
//
// - A step takes the first item of the queue and counts one round; it runs a
//   callback, or a task until the task yields or waits for a task that has
//   not finished. Errors reported during a step reach the handler after it,
//   in the order they were reported.
// - Spawned tasks and call_soon callbacks join the back of the queue. A task
//   that yields goes where the policy says (the model asks the policy, giving
//   it the round and the number of items ready; `coroutine` is left empty).
// - Awaiting a task that has not started runs it at once, within the same
//   step; awaiting a finished one gives its result at once; awaiting a
//   running one suspends the awaiting task (off the queue) until the awaited
//   one finishes, and then it goes on in that same step.
// - When a task finishes, its done callbacks run at once, in the order they
//   were added, then the task awaiting it (if any) goes on. A callback added
//   to a finished task runs at once, and what it throws goes to the caller.
// - A failed task's exception goes to the handler when nobody can observe it:
//   no task awaits it, it has no done callback, and only the loop owns it
//   (fire-and-forget, or kept by a task that has finished).
// - Exceptions from call_soon and done callbacks go to the handler.

#include "support/loop_program.hpp"

#include <braid/policy.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <optional>
#include <unordered_map>
#include <vector>

namespace braid_test {

namespace detail {

template <class Policy>
class loop_model {
public:
    loop_model(const program& prog, Policy policy)
        : prog_(prog), policy_(std::move(policy)), tasks_(prog.scripts.size()) {}

    std::vector<event> run() {
        for (std::uint32_t root : prog_.roots) {
            spawn(root, owner_kind::loop);
        }
        if (prog_.main) {
            const std::uint32_t main = *prog_.main;
            spawn(main, owner_kind::caller);
            while (tasks_[main].state != phase::done) {
                if (ready_.empty()) {
                    // Programs never make a task wait for itself; a model
                    // that gets here is wrong, not the loop.
                    std::fprintf(stderr, "loop_model: main can never finish\n");
                    std::abort();
                }
                step();
            }
            const task_state& m = tasks_[main];
            record(m.failed ? event_kind::main_error : event_kind::main_value, 0, m.result);
            if (prog_.destroy_after_main) {
                record(event_kind::destroyed, 0, 0);
                return std::move(trace_);
            }
        }
        while (!ready_.empty()) {
            step();
        }
        return std::move(trace_);
    }

private:
    static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();

    enum class phase : std::uint8_t { created, started, done };
    // Who holds the task object besides the loop.
    enum class owner_kind : std::uint8_t {
        loop,   // nobody: fire-and-forget
        caller, // the test (main)
        task,   // a slot of task `owner`, until that task's body ends
    };

    struct task_state {
        phase state = phase::created;
        bool begun = false; // the body has started
        bool spawned = false;
        bool failed = false;
        owner_kind held_by = owner_kind::loop;
        std::uint32_t owner = none;
        std::uint32_t pc = 0;              // the operation being run or awaited
        std::uint32_t value = 0;           // the sum that becomes the result
        std::uint32_t result = 0;          // once done: the value, or the site of the exception
        std::uint32_t continuation = none; // the task awaiting this one
    };

    struct item {
        bool is_callback;
        std::uint32_t id;
    };

    struct outcome {
        bool failed;
        std::uint32_t value;
    };

    void record(event_kind kind, std::uint32_t id, std::uint32_t value) {
        if (prog_.trace_steps || !is_step_detail(kind)) {
            trace_.push_back(
                event{kind, id, value, static_cast<std::uint32_t>(ready_.size()), round_});
        }
    }

    void spawn(std::uint32_t id, owner_kind owner, std::uint32_t owner_task = none) {
        task_state& t = tasks_[id];
        t.state = phase::started;
        t.spawned = true;
        t.held_by = owner;
        t.owner = owner_task;
        ready_.push_back(item{false, id});
    }

    void step() {
        const item it = ready_.front();
        ready_.pop_front();
        ++round_;
        if (it.is_callback) {
            record(event_kind::callback, it.id, 0);
            if (const auto site = run_callback_ops(it.id)) {
                pending_.push_back(*site);
            }
        } else {
            run_task(it.id, outcome{false, 0});
        }
        for (std::uint32_t site : pending_) {
            record(event_kind::error, 0, site);
        }
        pending_.clear();
    }

    // Runs the operations of callback `cb`; returns the site it throws, if any.
    std::optional<std::uint32_t> run_callback_ops(std::uint32_t cb) {
        const op_range& c = prog_.callbacks[cb];
        for (std::uint32_t pc = c.first; pc != c.last; ++pc) {
            const op& o = prog_.ops[pc];
            switch (o.kind) {
            case op_kind::spawn_dropped:
                spawn(o.target, owner_kind::loop);
                break;
            case op_kind::call_soon:
                ready_.push_back(item{true, o.target});
                break;
            case op_kind::raise:
                return pc;
            default:
                std::fprintf(stderr, "loop_model: a task operation in a callback\n");
                std::abort();
            }
        }
        return std::nullopt;
    }

    // Runs a done callback of a task that ended with `end`.
    std::optional<std::uint32_t> run_done_callback(std::uint32_t cb, outcome end) {
        record(end.failed ? event_kind::done_error : event_kind::done_value, cb, end.value);
        return run_callback_ops(cb);
    }

    // What an await or a join gives task t: returns the task's ending when
    // the exception ends it.
    std::optional<outcome> receive(std::uint32_t t, const op& o, outcome got) {
        const bool catches = o.kind == op_kind::await_catch || o.kind == op_kind::join_catch;
        if (!got.failed) {
            tasks_[t].value += got.value;
            record(event_kind::got, t, got.value);
        } else if (catches) {
            record(event_kind::caught, t, got.value);
        } else {
            return got;
        }
        return std::nullopt;
    }

    // Runs task t (starting it, or resuming it with `incoming`, the ending of
    // the task it awaited) and whatever its ending lets go on, until the step
    // is over.
    void run_task(std::uint32_t t, outcome incoming) {
        for (;;) {
            task_state& s = tasks_[t];
            const op_range& body = prog_.scripts[t];
            std::optional<outcome> ending;
            if (!s.begun) {
                s.begun = true;
                s.state = phase::started;
                s.value = t;
                s.pc = body.first;
                record(event_kind::start, t, 0);
            } else {
                // Resuming at the operation it was suspended at.
                const op& o = prog_.ops[s.pc];
                if (o.kind == op_kind::yield) {
                    record(event_kind::resume, t, 0);
                } else {
                    ending = receive(t, o, incoming);
                }
                ++s.pc;
            }
            std::optional<std::uint32_t> next; // a task started by an await, run now
            while (!ending && !next && s.pc != body.last) {
                const op& o = prog_.ops[s.pc];
                switch (o.kind) {
                case op_kind::yield: {
                    const braid::yield_info info{{}, round_, ready_.size()};
                    if (policy_.on_yield(info) == braid::placement::front) {
                        ready_.push_front(item{false, t});
                    } else {
                        ready_.push_back(item{false, t});
                    }
                    return;
                }
                case op_kind::await_new:
                case op_kind::await_catch:
                    tasks_[o.target].state = phase::started;
                    tasks_[o.target].continuation = t;
                    next = o.target;
                    break;
                case op_kind::spawn_kept:
                    spawn(o.target, owner_kind::task, t);
                    ++s.pc;
                    break;
                case op_kind::make_lazy:
                    ++s.pc;
                    break;
                case op_kind::join:
                case op_kind::join_catch: {
                    task_state& c = tasks_[o.target];
                    if (c.state == phase::done) {
                        ending = receive(t, o, outcome{c.failed, c.result});
                        ++s.pc;
                    } else if (c.state == phase::created) {
                        c.state = phase::started; // started by the await, as await_new
                        c.continuation = t;
                        next = o.target;
                    } else {
                        c.continuation = t;
                        return; // off the queue until c finishes
                    }
                    break;
                }
                case op_kind::on_done: {
                    const task_state& c = tasks_[o.target];
                    if (c.state == phase::done) {
                        if (const auto site =
                                run_done_callback(o.callback, outcome{c.failed, c.result})) {
                            ending = outcome{true, *site}; // out of add_done_callback
                        }
                    } else {
                        done_callbacks_[o.target].push_back(o.callback);
                    }
                    ++s.pc;
                    break;
                }
                case op_kind::spawn_dropped:
                    spawn(o.target, owner_kind::loop);
                    ++s.pc;
                    break;
                case op_kind::call_soon:
                    ready_.push_back(item{true, o.target});
                    ++s.pc;
                    break;
                case op_kind::raise:
                    ending = outcome{true, s.pc};
                    break;
                }
            }
            if (next) {
                t = *next;
                continue;
            }
            const outcome end = ending ? *ending : outcome{false, s.value};
            const std::uint32_t continuation = finish(t, end);
            if (continuation == none) {
                return;
            }
            t = continuation;
            incoming = end;
        }
    }

    // Ends task t; returns the task to go on with, if any.
    std::uint32_t finish(std::uint32_t t, outcome end) {
        task_state& s = tasks_[t];
        record(end.failed ? event_kind::fail : event_kind::finish, t, end.value);
        s.state = phase::done;
        s.failed = end.failed;
        s.result = end.value;
        const auto callbacks = done_callbacks_.find(t);
        const bool has_callbacks = callbacks != done_callbacks_.end();
        const bool only_the_loop_owns =
            s.held_by == owner_kind::loop ||
            (s.held_by == owner_kind::task && tasks_[s.owner].state == phase::done);
        if (end.failed && s.continuation == none && !has_callbacks && s.spawned &&
            only_the_loop_owns) {
            pending_.push_back(end.value);
        }
        if (has_callbacks) {
            for (std::uint32_t cb : callbacks->second) {
                if (const auto site = run_done_callback(cb, end)) {
                    pending_.push_back(*site);
                }
            }
            done_callbacks_.erase(callbacks);
        }
        return s.continuation;
    }

    const program& prog_;
    Policy policy_;
    std::vector<task_state> tasks_;
    std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> done_callbacks_;
    std::deque<item> ready_;
    std::vector<std::uint32_t> pending_;
    std::uint64_t round_ = 0;
    std::vector<event> trace_;
};

} // namespace detail

// The trace a correct loop produces for prog under `policy`.
template <braid::scheduling_policy Policy>
std::vector<event> run_model(const program& prog, Policy policy) {
    return detail::loop_model<Policy>(prog, std::move(policy)).run();
}

} // namespace braid_test
