// SPDX-License-Identifier: MIT
#pragma once

// braid_test::run_model: what an event loop must do with a program (see
// loop_program.hpp), computed from the rules braid documents, without braid.
// A deque of items stands for the ready queue, an ordered map for the pending
// timers, a counter for the manual clock; each task is a script with a
// program counter. The rules it applies:
//
// Steps and the queue
// - A step takes the first item of the queue and counts one round; it runs a
//   callback, a timer's callback, a thread-safe call, or a task until the
//   task suspends. Errors reported during a step reach the handler after it,
//   in the order they were reported (the default handler rethrows the first
//   from run(), and the caller runs the loop again).
// - Spawned tasks, call_soon callbacks and woken tasks (a sleep's timer, a
//   cancelled sleep, the end of what when_all, when_any, wait_for or
//   task_group::wait waited for) join the back of the queue. A task that
//   yields (or sleeps for zero or less) goes where the policy says.
// - Awaiting a task that has not started runs it at once, within the same
//   step; awaiting a finished one gives its result at once; awaiting a
//   running one suspends the awaiting task until it finishes, and then it
//   goes on in that same step.
// - A task awaiting an awaitable that is not braid's (the program's: a
//   call_later callback resumes it) goes on inside that callback's step, and
//   whatever its ending lets go on (the task awaiting it) goes on in that
//   same step.
// - When a task finishes, its done callbacks run at once, in the order they
//   were added, then the task awaiting it (if any) goes on. A failed task's
//   exception goes to the handler when nobody can observe it: no task awaits
//   it, it has no done callback, only the loop owns it, and it did not end
//   with braid::cancelled. One that a body keeps instead goes to the handler
//   when the body lets it go (at its end) if its result was never read: by
//   awaiting it or from a done callback added after it finished.
//
// Passes, time and other threads
// - A pass is what was ready when the loop last collected; the loop collects
//   when a run starts, when a pass is over, and whenever nothing is ready.
//   Collecting moves the thread-safe calls queued so far, then the timers
//   due (deadline order, then the order they were made), to the back of the
//   queue. A timer's callback takes a round when it runs, not when it was
//   cancelled meanwhile (it still takes its place in the pass).
// - The loop counts the steps of a pass only while a timer is pending. When
//   a timer or a thread-safe call appears while it does not (none was
//   pending at the last collection, or the last one went since), it collects
//   right after that step; with none pending and no thread-safe call queued,
//   it does not collect until the queue is empty.
// - With nothing ready and nothing to collect, the manual clock moves to the
//   earliest pending deadline; with no timer pending either, run() returns.
// - stop() makes run()/run_forever() return after the step in progress, or,
//   made while neither runs, makes the next one run one pass and return;
//   run_until_complete() does not stop for it.
//
// Cancellation (task::cancel)
// - Of a finished task: false. Of a task never started: it finishes as
//   cancelled at once, its done callbacks run inside cancel(), the first
//   exception one throws leaves cancel().
// - Of a task awaiting another: passed down to the awaited task. Of a
//   sleeping task: its timer goes and it is woken. Of a task awaiting
//   when_all, when_any, wait_for or task_group::wait: every child is
//   cancelled, and it is woken once they have all finished. Otherwise (ready
//   in the queue, running, or awaiting an awaitable that is not braid's):
//   it is pending. A yield delivers it when the task resumes; the next other
//   wait the task begins is reached at once, as cancel() would have reached
//   it there; a task it then awaits that has not started ends cancelled
//   without beginning, and the awaiting task receives that at once. In all
//   these cases braid::cancelled is then delivered once, at the next yield,
//   sleep or composition await at which the task resumes -- or, for a task
//   not begun, instead of its body.
// - when_all: the first failure (a child ending cancelled counts) cancels
//   the others, and is rethrown once all have finished. when_any: the first
//   success cancels the others; all failing rethrows the last failure.
//   wait_for: its timer, when it fires first, cancels the child; a child that
//   then ends cancelled makes it throw timeout_error. A task_group's first
//   failure that is not a cancellation cancels the others (and children
//   spawned after it start cancelled); wait() rethrows it; a group whose
//   body ends with children running cancels them, and a failure no wait()
//   reported -- or one of a child that ends after that -- goes to the handler.
//
// Two orders are braid's choice rather than a documented promise, and the
// model follows them: children are cancelled in the order of their slots (a
// task_group reuses the slot of the child that finished last), and
// wait_for's timer is made before its child is spawned.

#include "support/loop_program.hpp"

#include <braid/policy.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace braid_test {

namespace detail {

template <class Policy>
class loop_model {
public:
    loop_model(const program& prog, Policy policy)
        : prog_(prog), policy_(std::move(policy)), tasks_(prog.scripts.size()),
          kept_(prog.scripts.size(), false), handles_(prog.callbacks.size(), none) {}

    std::vector<event> run() {
        if (needs_sentinel(prog_)) {
            (void)add_timer(end_of_time_ms, timer_kind::sentinel, 0);
        }
        for (std::uint32_t root : prog_.roots) {
            spawn(root, owner_kind::loop);
        }
        if (prog_.main) {
            const std::uint32_t main = *prog_.main;
            for (;;) {
                const status r = run_until_done(main);
                if (r == status::threw) {
                    continue;
                }
                if (r == status::stuck) {
                    record(event_kind::main_stuck, 0, 0);
                    break;
                }
                const outcome end = tasks_[main].end;
                record(end.failed ? event_kind::main_error : event_kind::main_value, 0, end.value);
                break;
            }
            if (prog_.destroy_after_main) {
                record(event_kind::destroyed, 0, 0);
                return std::move(trace_);
            }
        }
        for (;;) {
            if (run_loop() == status::threw) {
                continue;
            }
            record(event_kind::returned, 0, 0);
            if (prog_.forever ? sentinel_fired_ : !std::exchange(stop_called_, false)) {
                break;
            }
        }
        return std::move(trace_);
    }

private:
    static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();

    struct outcome {
        bool failed = false;
        std::uint32_t value = 0; // the result, or the site or mark of the exception
    };
    static bool is_cancellation(outcome o) { return o.failed && o.value == cancelled_mark; }

    enum class phase : std::uint8_t { created, started, done };
    enum class task_kind : std::uint8_t {
        script,
        all,     // when_all's task
        any,     // when_any's task
        bounded, // wait_for's task
    };
    // Who holds the task object besides the loop.
    enum class owner_kind : std::uint8_t {
        loop,        // nobody: fire-and-forget (or given to a task_group)
        caller,      // the test (main)
        task,        // kept for task `owner`, until that task's body ends
        composition, // the frame of when_all, when_any or wait_for
    };
    // What a suspended task waits for, when cancelling must reach it there.
    enum class wait_kind : std::uint8_t { none, child, sleep, join };

    struct task_state {
        phase state = phase::created;
        task_kind kind = task_kind::script;
        owner_kind held_by = owner_kind::loop;
        wait_kind waiting = wait_kind::none;
        bool begun = false; // the body has started
        bool spawned = false;
        bool unread = false; // failed while kept, its error not read yet
        bool cancel_pending = false;
        bool cleaning = false;             // in the clean-up section
        std::uint32_t pc = 0;              // the operation being run or awaited
        std::uint32_t section_end = 0;     // the end of the section being run
        std::uint32_t value = 0;           // the sum that becomes the result
        std::uint32_t continuation = none; // the task awaiting this one
        std::uint32_t waits_on = none;     // the child, timer or join it waits for
        std::uint32_t join = none;         // a script's task_group, a composition's join
        outcome end;                       // once done
    };

    enum class rule : std::uint8_t { all, any, group };
    struct join_state {
        rule kind = rule::all;
        std::vector<std::uint32_t> children; // by slot; none once finished
        std::vector<std::uint32_t> members;  // every child, in order
        std::vector<std::uint32_t> free_slots;
        std::uint32_t remaining = 0;
        std::uint32_t waiter = none;
        std::uint32_t winner = none;   // any: the slot of the first success
        std::uint32_t deadline = none; // wait_for: its timer
        std::optional<outcome> error;
        bool fired = false;    // wait_for: its timer ran
        bool orphaned = false; // a group whose body has ended
    };

    // external: the callback that resumes a task awaiting an awaitable that
    // is not braid's (`id` is the task).
    enum class timer_kind : std::uint8_t { callback, sleep, deadline, sentinel, external };
    enum class timer_phase : std::uint8_t { pending, due, done, cancelled };
    struct timer_state {
        std::int64_t deadline;
        std::uint64_t seq;
        timer_kind kind;
        timer_phase state;
        std::uint32_t id; // the callback, the sleeping task, or the join
    };

    enum class item_kind : std::uint8_t { task, callback, timer, threadsafe };
    struct item {
        item_kind kind;
        std::uint32_t id;
    };

    // A done callback: the program's, or the watch of a join on a child.
    struct on_finish {
        bool watch;
        std::uint32_t id; // the callback, or the join
        std::uint32_t slot;
    };

    enum class resumption : std::uint8_t { first_step, from_queue, from_child, from_external };
    enum class next_kind : std::uint8_t { suspended, start_child, ended };
    struct next {
        next_kind kind;
        std::uint32_t child = none;
        outcome end{};
    };

    enum class status : std::uint8_t { returned, threw, stopped, stuck, go_on };
    enum class idle_mode : std::uint8_t { until_stuck, forever, until_done };

    // --- Recording ------------------------------------------------------------

    void record(event_kind kind, std::uint32_t id, std::uint32_t value) {
        if (prog_.trace_steps || !is_step_detail(kind)) {
            trace_.push_back(
                event{kind, id, value, static_cast<std::uint32_t>(ready_.size()), round_, now_});
        }
    }

    // --- The queue and the timers ---------------------------------------------

    void spawn(std::uint32_t t, owner_kind owner) {
        task_state& s = tasks_[t];
        s.state = phase::started;
        s.spawned = true;
        s.held_by = owner;
        ready_.push_back(item{item_kind::task, t});
    }

    // A yielding task (or one sleeping for zero or less): where the policy says.
    void place(std::uint32_t t) {
        const braid::yield_info info{{}, round_, ready_.size()};
        if (policy_.on_yield(info) == braid::placement::front) {
            ready_.push_front(item{item_kind::task, t});
        } else {
            ready_.push_back(item{item_kind::task, t});
        }
    }

    std::int64_t deadline_after(std::int32_t delay) const {
        return now_ + std::max<std::int64_t>(delay, 0);
    }

    std::uint32_t add_timer(std::int64_t deadline, timer_kind kind, std::uint32_t id) {
        const auto t = static_cast<std::uint32_t>(timers_.size());
        timers_.push_back(timer_state{deadline, seq_, kind, timer_phase::pending, id});
        pending_timers_.emplace(std::make_pair(deadline, seq_), t);
        ++seq_;
        return t;
    }

    bool cancel_timer(std::uint32_t t) {
        timer_state& tm = timers_[t];
        switch (tm.state) {
        case timer_phase::pending:
            pending_timers_.erase(std::make_pair(tm.deadline, tm.seq));
            tm.state = timer_phase::cancelled;
            if (!world_on()) {
                counting_ = false; // the count of the pass in progress is lost
            }
            return true;
        case timer_phase::due: // its item stays in the queue, and runs nothing
            tm.state = timer_phase::cancelled;
            return true;
        default:
            return false;
        }
    }

    void fire_due_timers() {
        while (!pending_timers_.empty() && pending_timers_.begin()->first.first <= now_) {
            const std::uint32_t t = pending_timers_.begin()->second;
            pending_timers_.erase(pending_timers_.begin());
            timer_state& tm = timers_[t];
            if (tm.kind == timer_kind::sleep) {
                tm.state = timer_phase::done;
                ready_.push_back(item{item_kind::task, tm.id});
            } else {
                tm.state = timer_phase::due;
                ready_.push_back(item{item_kind::timer, t});
            }
        }
    }

    void collect() {
        for (std::uint32_t cb : remote_) {
            ready_.push_back(item{item_kind::threadsafe, cb});
        }
        remote_.clear();
        remote_bit_ = false;
        fire_due_timers();
        pass_left_ = ready_.size();
        counting_ = world_on();
    }

    // Whether the loop counts its passes: while a timer is pending.
    [[nodiscard]] bool world_on() const { return !pending_timers_.empty(); }

    // --- Running --------------------------------------------------------------

    // Hands pending errors to the handler; false when the default one rethrew.
    bool deliver() {
        while (!pending_.empty()) {
            const std::uint32_t error = pending_.front();
            pending_.pop_front();
            record(event_kind::error, 0, error);
            if (prog_.rethrowing_handler) {
                return false;
            }
        }
        return true;
    }

    // After each step: errors, a stop, the end of the pass.
    status attend(bool honour_stop) {
        if (!deliver()) {
            return status::threw;
        }
        if (honour_stop && stop_) {
            stop_ = false;
            return status::stopped;
        }
        if (!world_on() && !remote_bit_) {
            return status::go_on; // nothing to collect: passes are not counted
        }
        if (!counting_) {
            // Something appeared while passes were not counted: the end of
            // the pass in progress is unknown, so the loop collects now.
            collect();
        } else if (pass_left_ > 1) {
            --pass_left_;
        } else if (!ready_.empty()) {
            collect();
        }
        return status::go_on;
    }

    // Nothing is ready: collects, moves the clock, or gives up.
    status idle(idle_mode mode) {
        for (;;) {
            if (mode != idle_mode::until_done && stop_) {
                stop_ = false;
                return status::stopped;
            }
            collect();
            if (!ready_.empty()) {
                return status::go_on;
            }
            if (pending_timers_.empty()) {
                if (mode != idle_mode::forever) {
                    return status::stuck;
                }
                // Programs under run_forever() keep the sentinel pending.
                std::fprintf(stderr, "loop_model: run_forever would wait for ever\n");
                std::abort();
            }
            now_ = std::max(now_, pending_timers_.begin()->first.first);
            fire_due_timers();
            pass_left_ = ready_.size();
            counting_ = world_on();
            if (!ready_.empty()) {
                return status::go_on;
            }
        }
    }

    // run(), or run_forever() when the program says so.
    status run_loop() {
        if (stop_) {
            stop_ = false;
            return run_one_pass();
        }
        if (!deliver()) {
            return status::threw;
        }
        collect();
        for (;;) {
            if (ready_.empty()) {
                const status r = idle(prog_.forever ? idle_mode::forever : idle_mode::until_stuck);
                if (r != status::go_on) {
                    return status::returned;
                }
                continue;
            }
            step();
            const status a = attend(true);
            if (a == status::stopped) {
                return status::returned;
            }
            if (a == status::threw) {
                return a;
            }
        }
    }

    // What a stop() made before the run asks for: what is ready, once.
    status run_one_pass() {
        collect();
        for (std::size_t n = ready_.size(); n > 0 && !ready_.empty(); --n) {
            step();
            const status a = attend(true);
            if (a == status::stopped) {
                return status::returned;
            }
            if (a == status::threw) {
                return a;
            }
        }
        return status::returned;
    }

    status run_until_done(std::uint32_t main) {
        if (tasks_[main].state == phase::created) {
            spawn(main, owner_kind::caller);
        }
        if (!deliver()) {
            return status::threw;
        }
        collect();
        while (tasks_[main].state != phase::done) {
            if (ready_.empty() && idle(idle_mode::until_done) != status::go_on) {
                return status::stuck;
            }
            step();
            if (attend(false) == status::threw) {
                return status::threw;
            }
        }
        return status::returned;
    }

    void step() {
        const item it = ready_.front();
        ready_.pop_front();
        ++round_;
        switch (it.kind) {
        case item_kind::task:
            run_chain(it.id, tasks_[it.id].begun ? resumption::from_queue : resumption::first_step,
                      outcome{});
            break;
        case item_kind::callback:
            record(event_kind::callback, it.id, 0);
            report(run_callback_ops(it.id));
            break;
        case item_kind::threadsafe:
            record(event_kind::threadsafe, it.id, 0);
            report(run_callback_ops(it.id));
            break;
        case item_kind::timer: {
            timer_state& tm = timers_[it.id];
            if (tm.state == timer_phase::cancelled) {
                --round_; // nothing ran
                break;
            }
            tm.state = timer_phase::done;
            switch (tm.kind) {
            case timer_kind::callback:
                record(event_kind::timer, tm.id, 0);
                report(run_callback_ops(tm.id));
                break;
            case timer_kind::deadline:
                joins_[tm.id].fired = true;
                cancel_children(tm.id);
                break;
            case timer_kind::sentinel:
                record(event_kind::sentinel, 0, 0);
                sentinel_fired_ = true;
                if (prog_.forever) {
                    stop_ = true;
                }
                break;
            case timer_kind::sleep: // woken at collection, never queued as a timer
                break;
            case timer_kind::external:
                run_chain(tm.id, resumption::from_external, outcome{});
                break;
            }
            break;
        }
        }
    }

    void report(std::optional<std::uint32_t> error) {
        if (error) {
            pending_.push_back(*error);
        }
    }

    // --- Callbacks --------------------------------------------------------------

    // Runs the operations of callback `cb`; returns the site it throws, if any.
    std::optional<std::uint32_t> run_callback_ops(std::uint32_t cb) {
        const op_range& c = prog_.callbacks[cb];
        for (std::uint32_t pc = c.first; pc != c.last; ++pc) {
            if (const auto thrown = shared_op(pc)) {
                return thrown;
            }
        }
        return std::nullopt;
    }

    // The operations a callback may hold too; returns the site thrown, if any.
    std::optional<std::uint32_t> shared_op(std::uint32_t pc) {
        const op& o = prog_.ops[pc];
        switch (o.kind) {
        case op_kind::spawn_dropped:
            spawn(o.target, owner_kind::loop);
            break;
        case op_kind::call_soon:
            ready_.push_back(item{item_kind::callback, o.target});
            break;
        case op_kind::call_later:
            handles_[o.target] = add_timer(deadline_after(o.delay), timer_kind::callback, o.target);
            break;
        case op_kind::cancel_timer: {
            const std::uint32_t t = handles_[o.target];
            const bool said = t != none && cancel_timer(t);
            record(event_kind::timer_cancel, o.target, said ? 1 : 0);
            break;
        }
        case op_kind::cancel: {
            if (!kept_[o.target]) {
                record(event_kind::cancel, o.target, 2);
                break;
            }
            bool said = false;
            if (const auto thrown = cancel(o.target, said)) {
                return thrown;
            }
            record(event_kind::cancel, o.target, said ? 1 : 0);
            break;
        }
        case op_kind::threadsafe:
            remote_.push_back(o.target);
            remote_bit_ = true;
            break;
        case op_kind::stop:
            record(event_kind::stop, 0, 0);
            stop_called_ = true;
            stop_ = true;
            break;
        case op_kind::raise:
            return pc;
        default:
            std::fprintf(stderr, "loop_model: a task operation in a callback\n");
            std::abort();
        }
        return std::nullopt;
    }

    // A program's done callback, run for a task that ended with `end`.
    std::optional<std::uint32_t> run_done_callback(std::uint32_t cb, outcome end) {
        record(end.failed ? event_kind::done_error : event_kind::done_value, cb, end.value);
        return run_callback_ops(cb);
    }

    // --- Cancellation -----------------------------------------------------------

    // task::cancel; `said` is what it returns. Returns the site thrown out of
    // it by a done callback of a task that had not started.
    std::optional<std::uint32_t> cancel(std::uint32_t t, bool& said) {
        switch (tasks_[t].state) {
        case phase::done:
            said = false;
            return std::nullopt;
        case phase::created: {
            said = true;
            tasks_[t].state = phase::done;
            tasks_[t].end = outcome{true, cancelled_mark};
            std::optional<std::uint32_t> first;
            const auto found = callbacks_.find(t);
            if (found != callbacks_.end()) {
                const std::vector<on_finish> list = std::move(found->second);
                callbacks_.erase(found);
                for (const on_finish& f : list) {
                    // (A task not started has no join watching it.)
                    const auto thrown = run_done_callback(f.id, tasks_[t].end);
                    if (thrown && !first) {
                        first = thrown;
                    }
                }
            }
            return first;
        }
        case phase::started:
            break;
        }
        said = true;
        task_state& s = tasks_[t];
        switch (s.waiting) {
        case wait_kind::child: {
            bool ignored = false;
            (void)cancel(s.waits_on, ignored); // started: runs no callback
            return std::nullopt;
        }
        case wait_kind::sleep: {
            s.cancel_pending = true;
            s.waiting = wait_kind::none;
            if (timers_[s.waits_on].state == timer_phase::pending) {
                (void)cancel_timer(s.waits_on);
                ready_.push_back(item{item_kind::task, t});
            }
            return std::nullopt;
        }
        case wait_kind::join:
            s.cancel_pending = true;
            cancel_children(s.waits_on);
            return std::nullopt;
        case wait_kind::none:
            s.cancel_pending = true;
            return std::nullopt;
        }
        return std::nullopt;
    }

    void cancel_children(std::uint32_t j) {
        for (std::size_t i = 0; i < joins_[j].children.size(); ++i) {
            const std::uint32_t c = joins_[j].children[i];
            if (c != none) {
                bool ignored = false;
                (void)cancel(c, ignored);
            }
        }
    }

    // --- Joins: when_all, when_any, wait_for, task_group -------------------------

    // A child of join j starts (spawned) and is watched.
    void start_child_of(std::uint32_t j, std::uint32_t c, owner_kind owner) {
        spawn(c, owner);
        join_state& g = joins_[j];
        std::uint32_t slot = 0;
        if (g.kind == rule::group && !g.free_slots.empty()) {
            slot = g.free_slots.back();
            g.free_slots.pop_back();
            g.children[slot] = c;
        } else {
            slot = static_cast<std::uint32_t>(g.children.size());
            g.children.push_back(c);
        }
        g.members.push_back(c);
        ++g.remaining;
        callbacks_[c].push_back(on_finish{true, j, slot});
    }

    void child_done(std::uint32_t j, std::uint32_t slot) {
        apply_rule(j, slot);
        join_state& g = joins_[j];
        if (--g.remaining == 0 && g.waiter != none) {
            ready_.push_back(item{item_kind::task, g.waiter});
            g.waiter = none;
        }
    }

    // when_all or when_any of kept tasks: each is taken where it stands, in
    // order. One that finished before counts at once, and its failure as read
    // (it reaches the caller through the join, or is a loser's), which may
    // cancel those after it before they are reached; the others are started
    // if need be and watched.
    void adopt_children(std::uint32_t j, const std::vector<std::uint32_t>& kept) {
        for (const std::uint32_t c : kept) {
            joins_[j].children.push_back(c);
            joins_[j].members.push_back(c);
        }
        for (std::uint32_t slot = 0; slot < kept.size(); ++slot) {
            const std::uint32_t c = kept[slot];
            if (tasks_[c].state == phase::done) {
                tasks_[c].unread = false;
                apply_rule(j, slot);
                continue;
            }
            if (tasks_[c].state == phase::created) {
                spawn(c, owner_kind::composition);
            } else {
                tasks_[c].held_by = owner_kind::composition;
            }
            ++joins_[j].remaining;
            callbacks_[c].push_back(on_finish{true, j, slot});
        }
    }

    // What a child's ending does to its join.
    void apply_rule(std::uint32_t j, std::uint32_t slot) {
        const std::uint32_t c = joins_[j].children[slot];
        joins_[j].children[slot] = none;
        if (joins_[j].kind == rule::group) {
            joins_[j].free_slots.push_back(slot);
        }
        const outcome end = tasks_[c].end;
        if (joins_[j].orphaned) {
            if (end.failed && !is_cancellation(end)) {
                pending_.push_back(end.value);
            }
        } else {
            switch (joins_[j].kind) {
            case rule::all:
                if (end.failed && !joins_[j].error) {
                    joins_[j].error = end;
                    cancel_children(j);
                }
                break;
            case rule::any:
                if (!end.failed && joins_[j].winner == none) {
                    joins_[j].winner = slot;
                    cancel_children(j);
                } else if (end.failed) {
                    joins_[j].error = end;
                }
                break;
            case rule::group:
                if (end.failed && !is_cancellation(end) && !joins_[j].error) {
                    joins_[j].error = end;
                    cancel_children(j);
                }
                break;
            }
        }
    }

    std::uint32_t new_join(rule kind) {
        joins_.emplace_back();
        joins_.back().kind = kind;
        return static_cast<std::uint32_t>(joins_.size() - 1);
    }

    std::uint32_t group_of(std::uint32_t t) {
        if (tasks_[t].join == none) {
            const std::uint32_t j = new_join(rule::group);
            tasks_[t].join = j;
        }
        return tasks_[t].join;
    }

    // The end of a body holding a task_group.
    void destroy_group(std::uint32_t j) {
        if (joins_[j].remaining > 0) {
            cancel_children(j);
            joins_[j].orphaned = true;
        }
        if (joins_[j].error) {
            pending_.push_back(joins_[j].error->value);
            joins_[j].error.reset();
        }
    }

    // --- Tasks --------------------------------------------------------------------

    // Runs task t (starting it, or resuming it) and whatever its ending lets
    // go on, until the step is over.
    void run_chain(std::uint32_t t, resumption how, outcome got) {
        for (;;) {
            const next n = tasks_[t].kind == task_kind::script ? advance_script(t, how, got)
                                                               : advance_composition(t, how);
            switch (n.kind) {
            case next_kind::suspended:
                return;
            case next_kind::start_child:
                t = n.child;
                how = resumption::first_step;
                continue;
            case next_kind::ended: {
                const std::uint32_t continuation = finish(t, n.end);
                if (continuation == none) {
                    return;
                }
                t = continuation;
                how = resumption::from_child;
                got = n.end;
                continue;
            }
            }
        }
    }

    next start_child(std::uint32_t parent, std::uint32_t child) {
        tasks_[child].state = phase::started;
        tasks_[child].continuation = parent;
        tasks_[parent].waiting = wait_kind::child;
        tasks_[parent].waits_on = child;
        return next{next_kind::start_child, child};
    }

    // Task t has begun a wait (a sleep, a started task, a join): a
    // cancellation pending since it ran reaches that wait, as cancel() would.
    void reach_pending(std::uint32_t t) {
        if (std::exchange(tasks_[t].cancel_pending, false)) {
            bool ignored = false;
            (void)cancel(t, ignored); // started: runs no callback
        }
    }

    // Task t, with a cancellation pending, awaits `child`, which has not
    // started: the child ends cancelled without beginning (what its done
    // callbacks throw goes to the handler), and t receives that at once.
    bool passes_cancel(std::uint32_t t, std::uint32_t child) {
        if (!std::exchange(tasks_[t].cancel_pending, false)) {
            return false;
        }
        bool said = false;
        report(cancel(child, said));
        return true;
    }

    next suspended() const { return next{next_kind::suspended}; }
    next ended(outcome end) const { return next{next_kind::ended, none, end}; }

    // What an awaiting operation gives task t: nothing when t goes on, else
    // the exception that t now has to handle.
    std::optional<outcome> receive(std::uint32_t t, const op& o, outcome got) {
        if (!got.failed) {
            tasks_[t].value += got.value;
            record(event_kind::got, t, got.value);
            return std::nullopt;
        }
        return catch_or_throw(t, o, got);
    }

    std::optional<outcome> catch_or_throw(std::uint32_t t, const op& o, outcome thrown) {
        if (o.catching && !is_cancellation(thrown)) {
            record(event_kind::caught, t, thrown.value);
            return std::nullopt;
        }
        return thrown;
    }

    next advance_script(std::uint32_t t, resumption how, outcome got) {
        const op_range& body = prog_.scripts[t];
        std::optional<outcome> thrown;
        switch (how) {
        case resumption::first_step: {
            task_state& s = tasks_[t];
            if (s.cancel_pending) { // cancelled before its first step: no body
                s.cancel_pending = false;
                return ended(outcome{true, cancelled_mark});
            }
            s.begun = true;
            s.value = t;
            s.pc = body.first;
            s.section_end = body.last;
            record(event_kind::start, t, 0);
            break;
        }
        case resumption::from_queue: {
            task_state& s = tasks_[t];
            const op& o = prog_.ops[s.pc];
            s.waiting = wait_kind::none;
            if (s.cancel_pending) {
                s.cancel_pending = false;
                thrown = outcome{true, cancelled_mark};
            } else if (o.kind == op_kind::group_wait) {
                thrown = group_wait_result(t, o);
            } else {
                record(event_kind::resume, t, 0);
            }
            ++tasks_[t].pc;
            break;
        }
        case resumption::from_child: {
            tasks_[t].waiting = wait_kind::none;
            thrown = receive(t, prog_.ops[tasks_[t].pc], got);
            ++tasks_[t].pc;
            break;
        }
        case resumption::from_external: // a pending cancellation waits for a braid await
            record(event_kind::resume, t, 0);
            ++tasks_[t].pc;
            break;
        }
        for (;;) {
            if (thrown) {
                task_state& s = tasks_[t];
                if (!is_cancellation(*thrown) || s.cleaning || body.cleanup == cleanup_kind::none) {
                    return ended(*thrown);
                }
                record(event_kind::caught_cancel, t, 0);
                s.cleaning = true;
                s.pc = body.cleanup_first;
                s.section_end = body.cleanup_last;
                thrown.reset();
            }
            const std::uint32_t pc = tasks_[t].pc;
            if (pc == tasks_[t].section_end) {
                if (tasks_[t].cleaning && body.cleanup == cleanup_kind::rethrow) {
                    return ended(outcome{true, cancelled_mark});
                }
                return ended(outcome{false, tasks_[t].value});
            }
            const op& o = prog_.ops[pc];
            switch (o.kind) {
            case op_kind::yield:
                place(t);
                return suspended();
            case op_kind::sleep:
                if (o.delay <= 0) {
                    place(t);
                    return suspended();
                }
                tasks_[t].waiting = wait_kind::sleep;
                tasks_[t].waits_on = add_timer(deadline_after(o.delay), timer_kind::sleep, t);
                reach_pending(t);
                return suspended();
            case op_kind::await_new:
                if (passes_cancel(t, o.target)) {
                    thrown = receive(t, o, tasks_[o.target].end);
                    break;
                }
                return start_child(t, o.target);
            case op_kind::spawn_kept:
                spawn(o.target, owner_kind::task);
                kept_[o.target] = true;
                break;
            case op_kind::make_lazy:
                kept_[o.target] = true;
                break;
            case op_kind::join: {
                task_state& c = tasks_[o.target];
                if (c.state == phase::done) {
                    c.unread = false;
                    thrown = receive(t, o, c.end);
                    break;
                }
                if (c.state == phase::created) {
                    if (passes_cancel(t, o.target)) {
                        thrown = receive(t, o, tasks_[o.target].end);
                        break;
                    }
                    return start_child(t, o.target);
                }
                tasks_[o.target].continuation = t;
                tasks_[t].waiting = wait_kind::child;
                tasks_[t].waits_on = o.target;
                reach_pending(t);
                return suspended(); // off the queue until the child finishes
            }
            case op_kind::on_done: {
                task_state& c = tasks_[o.target];
                if (c.state == phase::done) {
                    c.unread = false; // the callback reads the result
                    if (const auto site = run_done_callback(o.callback, c.end)) {
                        thrown = outcome{true, *site}; // out of add_done_callback
                    }
                } else {
                    callbacks_[o.target].push_back(on_finish{false, o.callback, 0});
                }
                break;
            }
            case op_kind::when_all:
            case op_kind::all_of_kept:
            case op_kind::when_any:
            case op_kind::any_of_kept:
            case op_kind::wait_for: {
                const bool of_kept =
                    o.kind == op_kind::all_of_kept || o.kind == op_kind::any_of_kept;
                if (of_kept) {
                    for (const std::uint32_t moved : prog_.lists[o.target]) {
                        kept_[moved] = false; // moved into the composition's frame
                    }
                }
                const bool any = o.kind == op_kind::when_any || o.kind == op_kind::any_of_kept;
                const auto c = static_cast<std::uint32_t>(tasks_.size());
                tasks_.emplace_back();
                tasks_[c].kind = any                           ? task_kind::any
                                 : o.kind == op_kind::wait_for ? task_kind::bounded
                                                               : task_kind::all;
                tasks_[c].held_by = owner_kind::caller; // a local of t
                tasks_[c].pc = pc;
                tasks_[c].join = new_join(any ? rule::any : rule::all);
                if (passes_cancel(t, c)) {
                    thrown = receive(t, o, tasks_[c].end);
                    break;
                }
                return start_child(t, c);
            }
            case op_kind::group_spawn: {
                const std::uint32_t j = group_of(t);
                start_child_of(j, o.target, owner_kind::loop);
                if (joins_[j].error) { // the group is failing: it starts cancelled
                    bool ignored = false;
                    (void)cancel(o.target, ignored);
                }
                break;
            }
            case op_kind::group_wait: {
                const std::uint32_t j = group_of(t);
                if (joins_[j].remaining == 0) { // no suspension
                    thrown = group_wait_result(t, o);
                    break;
                }
                joins_[j].waiter = t;
                tasks_[t].waiting = wait_kind::join;
                tasks_[t].waits_on = j;
                reach_pending(t);
                return suspended();
            }
            case op_kind::external: // waiting stays none: cancel() only marks it
                (void)add_timer(deadline_after(o.delay), timer_kind::external, t);
                return suspended();
            case op_kind::spawn_dropped:
            case op_kind::call_soon:
            case op_kind::call_later:
            case op_kind::cancel_timer:
            case op_kind::cancel:
            case op_kind::threadsafe:
            case op_kind::stop:
            case op_kind::raise:
                if (const auto site = shared_op(pc)) {
                    thrown = outcome{true, *site};
                }
                break;
            }
            ++tasks_[t].pc;
        }
    }

    // What task_group::wait() gives once nothing runs: the failure, or nothing.
    std::optional<outcome> group_wait_result(std::uint32_t t, const op& o) {
        join_state& g = joins_[tasks_[t].join];
        if (g.error) {
            const outcome failure = *g.error;
            g.error.reset();
            return catch_or_throw(t, o, failure);
        }
        record(event_kind::waited, t, 0);
        return std::nullopt;
    }

    // when_all, when_any and wait_for, as tasks awaited by a script.
    next advance_composition(std::uint32_t c, resumption how) {
        const std::uint32_t j = tasks_[c].join;
        if (how == resumption::first_step) {
            tasks_[c].begun = true;
            const op& o = prog_.ops[tasks_[c].pc];
            if (o.kind == op_kind::wait_for) {
                joins_[j].deadline = add_timer(deadline_after(o.delay), timer_kind::deadline, j);
                start_child_of(j, o.target, owner_kind::composition);
            } else if (o.kind == op_kind::all_of_kept || o.kind == op_kind::any_of_kept) {
                adopt_children(j, prog_.lists[o.target]);
            } else {
                for (std::uint32_t script : prog_.lists[o.target]) {
                    start_child_of(j, script, owner_kind::composition);
                }
            }
            if (joins_[j].remaining > 0) {
                joins_[j].waiter = c;
                tasks_[c].waiting = wait_kind::join;
                tasks_[c].waits_on = j;
                reach_pending(c);
                return suspended();
            }
            // Every child had finished before: no suspension.
        }
        // Woken, or not suspended: every child has finished.
        tasks_[c].waiting = wait_kind::none;
        if (tasks_[c].cancel_pending) {
            tasks_[c].cancel_pending = false;
            return ended(outcome{true, cancelled_mark});
        }
        const join_state& g = joins_[j];
        switch (tasks_[c].kind) {
        case task_kind::all: {
            if (g.error) {
                return ended(*g.error);
            }
            std::uint32_t sum = 0;
            for (std::uint32_t m : g.members) {
                sum += tasks_[m].end.value;
            }
            return ended(outcome{false, sum});
        }
        case task_kind::any:
            if (g.winner != none) {
                return ended(tasks_[g.members[g.winner]].end);
            }
            return ended(*g.error);
        case task_kind::bounded: {
            const outcome end = tasks_[g.members[0]].end;
            if (g.fired && is_cancellation(end)) {
                return ended(outcome{true, timeout_mark});
            }
            return ended(end);
        }
        case task_kind::script:
            break;
        }
        std::abort();
    }

    // Ends task t; returns the task to go on with, if any.
    std::uint32_t finish(std::uint32_t t, outcome end) {
        if (tasks_[t].kind == task_kind::script && tasks_[t].begun) {
            record(end.failed ? event_kind::fail : event_kind::finish, t, end.value);
            // The body's locals: its task_group, then the tasks it kept.
            if (tasks_[t].join != none) {
                destroy_group(tasks_[t].join);
            }
            release_kept(t);
        }
        if (tasks_[t].kind == task_kind::bounded) {
            const std::uint32_t deadline = joins_[tasks_[t].join].deadline;
            (void)cancel_timer(deadline);
        }
        task_state& s = tasks_[t];
        s.state = phase::done;
        s.end = end;
        const auto found = callbacks_.find(t);
        const bool has_callbacks = found != callbacks_.end();
        const bool only_the_loop_owns =
            s.held_by == owner_kind::loop || (s.held_by == owner_kind::task && !kept_[t]);
        const bool unobserved = end.failed && !is_cancellation(end) && s.continuation == none &&
                                !has_callbacks && s.spawned;
        if (unobserved && only_the_loop_owns) {
            pending_.push_back(end.value);
        } else if (unobserved && s.held_by == owner_kind::task) {
            s.unread = true; // reported if the body keeping it lets it go unread
        }
        const std::uint32_t continuation = s.continuation;
        if (has_callbacks) {
            const std::vector<on_finish> list = std::move(found->second);
            callbacks_.erase(found);
            for (const on_finish& f : list) {
                if (f.watch) {
                    child_done(f.id, f.slot);
                } else {
                    report(run_done_callback(f.id, end));
                }
            }
        }
        return continuation;
    }

    void release_kept(std::uint32_t t) {
        const op_range& s = prog_.scripts[t];
        auto release = [&](std::uint32_t first, std::uint32_t last) {
            for (std::uint32_t pc = first; pc != last; ++pc) {
                const op& o = prog_.ops[pc];
                if (o.kind == op_kind::spawn_kept || o.kind == op_kind::make_lazy) {
                    kept_[o.target] = false;
                    // The last owner lets go of an error nobody read.
                    if (std::exchange(tasks_[o.target].unread, false)) {
                        pending_.push_back(tasks_[o.target].end.value);
                    }
                }
            }
        };
        release(s.first, s.last);
        release(s.cleanup_first, s.cleanup_last);
    }

    const program& prog_;
    Policy policy_;
    std::vector<task_state> tasks_; // scripts, then when_all/when_any/wait_for tasks
    std::vector<join_state> joins_;
    std::vector<bool> kept_;             // by script: its task object is kept
    std::vector<std::uint32_t> handles_; // by callback: its call_later's timer
    std::vector<timer_state> timers_;
    std::map<std::pair<std::int64_t, std::uint64_t>, std::uint32_t> pending_timers_;
    std::unordered_map<std::uint32_t, std::vector<on_finish>> callbacks_;
    std::deque<item> ready_;
    std::vector<std::uint32_t> remote_; // thread-safe calls not yet collected
    std::deque<std::uint32_t> pending_; // errors for the handler
    std::uint64_t round_ = 0;
    std::uint64_t seq_ = 0;
    std::int64_t now_ = 0;
    std::size_t pass_left_ = 0;
    bool counting_ = false;    // pass_left_ counts the pass in progress
    bool remote_bit_ = false;  // a thread-safe call was queued since the last collection
    bool stop_ = false;        // the loop's pending stop
    bool stop_called_ = false; // the driver's: a stop since it last looked
    bool sentinel_fired_ = false;
    std::vector<event> trace_;
};

} // namespace detail

// The trace a correct loop produces for prog under `policy`.
template <braid::scheduling_policy Policy>
std::vector<event> run_model(const program& prog, Policy policy) {
    return detail::loop_model<Policy>(prog, std::move(policy)).run();
}

} // namespace braid_test
