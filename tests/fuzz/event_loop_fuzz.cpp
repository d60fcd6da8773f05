// SPDX-License-Identifier: MIT
// A fuzz target for braid::event_loop. The input is decoded into a small
// program of tasks and callbacks (tests/support/loop_program.hpp), which runs
// on the loop under every built-in policy and on the model of the loop's
// rules (tests/support/loop_model.hpp). A difference in anything a user can
// observe (what each task ends with, the order of events, their rounds), a
// frame or callback never freed, or a sanitizer's report is a failure: the
// program is printed and the process aborts.
//
// The input is text, so the corpus reads as what it tests. Each letter is an
// operation of the task whose body it is in (a digit d after z, h, m and o is
// a delay of d milliseconds, 1 without one; time is a manual clock's):
//
//   y          co_await braid::yield()
//   z          co_await braid::sleep_for(d)
//   h          co_await an awaitable that is not braid's: a call_later(d)
//              callback resumes the task, which cancellation cannot interrupt
//   a(...)     co_await a new task whose body is ...
//   c(...)     the same, catching the task's exception
//   s(...)     spawn a task and keep it: the body's next kept task
//   l(...)     make a task and keep it, not started
//   j, k       co_await the last kept task (k: catching its exception); a
//              digit after the letter names kept task (digit % count) instead
//   d{...}     add a done callback to the last kept task (or digit)
//   w(.)(.)..  co_await braid::when_all of new tasks (W: catching)
//   i, I       co_await braid::when_all of kept tasks, moved into it (I:
//              catching): those the digits after the letter name, or the
//              last kept task; the body names them no more
//   b, B       the same with braid::when_any
//   v(.)(.)..  co_await braid::when_any of new tasks (V: catching)
//   o(...)     co_await braid::wait_for(a new task, d) (O: catching)
//   g(...)     spawn a new task in this body's task_group
//   q          co_await the group's wait() (Q: catching)
//   f(...)     spawn a fire-and-forget task
//   n{...}     call_soon a callback
//   m{...}     call_later(d, a callback), keeping its handle
//   u          cancel() the body's last call_later handle (or digit)
//   x          cancel() the last kept task (or digit)
//   e{...}     call_soon_threadsafe a callback (from the loop's thread)
//   p          stop() the loop
//   t          throw
//
// "Catching" catches what the awaited task throws, never braid::cancelled.
// In a task's body, ! or ? begins its clean-up: braid::cancelled reaching
// the body before it is caught, the clean-up runs, and the task returns
// normally (!) or throws braid::cancelled again (?). The clean-up's j, k, d
// and x name only the tasks it keeps itself.
//
// A callback's body {...} holds f, n, m, u, x, e, p and t; its u and x name
// the kept tasks and handles of the task body it is written in. The top level
// is the body of the main task, which runs with run_until_complete; then
// run() runs what is left. Anywhere in the input, R makes errors leave run()
// (the default exception handler; the loop is run again) instead of going to
// a handler that records them, D destroys the loop as soon as main is done,
// and F runs the rest with run_forever() (and a last timer that stops it)
// instead of run(). Any other byte is ignored, a missing ( or { is an empty
// body, and a bracket that follows no operation opens a group that is skipped.
//
// Adding an operation: its op_kind in loop_program.hpp and its cases in
// loop_runner.hpp and loop_model.hpp, then one line in `letters` below (and a new operand kind
// if it carries a new kind of argument).
//
// Built with -fsanitize=fuzzer it is a libFuzzer target (BRAID_FUZZ_SECONDS);
// linked with replay.cpp it runs the corpus in tests/fuzz/corpus as a plain
// test in every preset. With BRAID_FUZZ_TRACE set in the environment it
// prints each program and what the loop did with it.

#include "support/builtin_policies.hpp"
#include "support/counted.hpp"
#include "support/loop_model.hpp"
#include "support/loop_program.hpp"
#include "support/loop_runner.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace braid_test;

// What an operation's letter is followed by.
enum class operand : std::uint8_t {
    none,
    task,              // (body of a new task)
    tasks,             // (body)(body)...: new tasks, none or more
    callback,          // {body of a callback}
    delay,             // a digit: milliseconds
    delay_task,        // both
    delay_callback,    // both
    slot,              // an optional digit naming one of the body's kept tasks
    slots,             // digits naming kept tasks, none or more (none: the last)
    slot_and_callback, // both
    timer,             // an optional digit naming one of the body's call_later handles
};

struct letter {
    char code;
    op_kind kind;
    operand takes;
    bool catching;     // catches what the awaited task throws
    bool in_callbacks; // also allowed in a callback's body
};

constexpr letter letters[] = {
    {'y', op_kind::yield, operand::none, false, false},
    {'z', op_kind::sleep, operand::delay, false, false},
    {'h', op_kind::external, operand::delay, false, false},
    {'a', op_kind::await_new, operand::task, false, false},
    {'c', op_kind::await_new, operand::task, true, false},
    {'s', op_kind::spawn_kept, operand::task, false, false},
    {'l', op_kind::make_lazy, operand::task, false, false},
    {'j', op_kind::join, operand::slot, false, false},
    {'k', op_kind::join, operand::slot, true, false},
    {'d', op_kind::on_done, operand::slot_and_callback, false, false},
    {'w', op_kind::when_all, operand::tasks, false, false},
    {'W', op_kind::when_all, operand::tasks, true, false},
    {'i', op_kind::all_of_kept, operand::slots, false, false},
    {'I', op_kind::all_of_kept, operand::slots, true, false},
    {'b', op_kind::any_of_kept, operand::slots, false, false},
    {'B', op_kind::any_of_kept, operand::slots, true, false},
    {'v', op_kind::when_any, operand::tasks, false, false},
    {'V', op_kind::when_any, operand::tasks, true, false},
    {'o', op_kind::wait_for, operand::delay_task, false, false},
    {'O', op_kind::wait_for, operand::delay_task, true, false},
    {'g', op_kind::group_spawn, operand::task, false, false},
    {'q', op_kind::group_wait, operand::none, false, false},
    {'Q', op_kind::group_wait, operand::none, true, false},
    {'f', op_kind::spawn_dropped, operand::task, false, true},
    {'n', op_kind::call_soon, operand::callback, false, true},
    {'m', op_kind::call_later, operand::delay_callback, false, true},
    {'u', op_kind::cancel_timer, operand::timer, false, true},
    {'x', op_kind::cancel, operand::slot, false, true},
    {'e', op_kind::threadsafe, operand::callback, false, true},
    {'p', op_kind::stop, operand::none, false, true},
    {'t', op_kind::raise, operand::none, false, true},
};

// Bounds that keep one input fast: bytes read, tasks, callbacks and
// when_all/when_any lists made, and bodies nested (deeper than the 16 nested
// starts after which the loop goes through its trampoline).
constexpr std::size_t max_input = 16 * 1024;
constexpr std::size_t max_scripts = 2000;
constexpr std::size_t max_callbacks = 2000;
constexpr std::size_t max_lists = 500;
constexpr int max_depth = 40;

class decoder {
public:
    decoder(const std::uint8_t* data, std::size_t size)
        : data_(data), size_(std::min(size, max_input)) {}

    program decode() {
        prog_.main = body(0, nullptr, extent::to_end, ')');
        return std::move(prog_);
    }

private:
    // What a task body has made so far, for the operations that name it (in
    // the body, and in the callbacks written in it).
    struct scope {
        std::vector<std::uint32_t> kept;   // the script of each kept task
        std::vector<std::uint32_t> timers; // the callback of each call_later
    };

    [[nodiscard]] bool at(char c) const { return pos_ < size_ && data_[pos_] == c; }

    // Skips a bracketed group whose opening bracket has just been read.
    void skip_group() {
        int open = 1;
        while (pos_ < size_ && open > 0) {
            const char c = static_cast<char>(data_[pos_++]);
            open += (c == '(' || c == '{') ? 1 : (c == ')' || c == '}') ? -1 : 0;
        }
    }

    // What a body reads: up to its closing bracket, to the end of the input
    // (the top level), or nothing (an operation with no bracket after it).
    enum class extent : std::uint8_t { bracketed, to_end, empty };

    // A task's body (enclosing null) or a callback's, written in the task
    // body whose scope is `enclosing`. Returns its id, or nothing when the
    // bounds are reached (a bracketed body is then skipped).
    std::optional<std::uint32_t> body(int depth, scope* enclosing, extent reads, char close) {
        const bool callback = enclosing != nullptr;
        std::vector<op_range>& ranges = callback ? prog_.callbacks : prog_.scripts;
        if (depth > max_depth || ranges.size() >= (callback ? max_callbacks : max_scripts)) {
            if (reads == extent::bracketed) {
                skip_group();
            }
            return std::nullopt;
        }
        const auto id = static_cast<std::uint32_t>(ranges.size());
        ranges.emplace_back();
        scope own;
        scope& names = callback ? *enclosing : own;
        std::vector<op> ops;
        std::vector<op> cleanup;
        cleanup_kind cleans = cleanup_kind::none;
        while (reads != extent::empty && pos_ < size_) {
            const char c = static_cast<char>(data_[pos_++]);
            if (reads == extent::bracketed && c == close) {
                break;
            }
            if (c == 'R' || c == 'D' || c == 'F') {
                (c == 'R'   ? prog_.rethrowing_handler
                 : c == 'D' ? prog_.destroy_after_main
                            : prog_.forever) = true;
                continue;
            }
            if ((c == '!' || c == '?') && !callback && cleans == cleanup_kind::none) {
                cleans = c == '!' ? cleanup_kind::swallow : cleanup_kind::rethrow;
                // The main section may have been cut short before it made
                // them: the clean-up names only the tasks it keeps itself.
                own.kept.clear();
                continue;
            }
            if (c == '(' || c == '{') {
                skip_group();
                continue;
            }
            const letter* l = std::find_if(std::begin(letters), std::end(letters),
                                           [c](const letter& x) { return x.code == c; });
            if (l == std::end(letters) || (callback && !l->in_callbacks)) {
                continue;
            }
            if (auto o = operation(*l, depth, names)) {
                if (o->kind == op_kind::spawn_kept || o->kind == op_kind::make_lazy) {
                    names.kept.push_back(o->target);
                } else if (o->kind == op_kind::all_of_kept || o->kind == op_kind::any_of_kept) {
                    for (const std::uint32_t moved : prog_.lists[o->target]) {
                        std::erase(names.kept, moved);
                    }
                } else if (o->kind == op_kind::call_later) {
                    names.timers.push_back(o->target);
                }
                (cleans == cleanup_kind::none ? ops : cleanup).push_back(*o);
            }
        }
        op_range& range = ranges[id];
        range.first = static_cast<std::uint32_t>(prog_.ops.size());
        prog_.ops.insert(prog_.ops.end(), ops.begin(), ops.end());
        range.last = static_cast<std::uint32_t>(prog_.ops.size());
        range.cleanup_first = range.last;
        prog_.ops.insert(prog_.ops.end(), cleanup.begin(), cleanup.end());
        range.cleanup_last = static_cast<std::uint32_t>(prog_.ops.size());
        range.cleanup = cleans;
        return id;
    }

    // The operation of letter l with its operands, or nothing when it names
    // something the body does not have or a body past the bounds.
    std::optional<op> operation(const letter& l, int depth, scope& names) {
        op o{l.kind, l.catching};
        switch (l.takes) {
        case operand::none:
            return o;
        case operand::task:
        case operand::delay_task:
        case operand::delay:
        case operand::delay_callback: {
            if (l.takes != operand::task) {
                o.delay = digit().value_or(1);
            }
            if (l.takes == operand::delay) {
                return o;
            }
            const auto target = l.takes == operand::delay_callback
                                    ? nested(depth, &names, '{', '}')
                                    : nested(depth, nullptr, '(', ')');
            if (!target) {
                return std::nullopt;
            }
            o.target = *target;
            return o;
        }
        case operand::tasks: {
            std::vector<std::uint32_t> children;
            while (at('(')) {
                if (const auto child = nested(depth, nullptr, '(', ')')) {
                    children.push_back(*child);
                }
            }
            // when_any of no task is a usage_error, not a program.
            if (prog_.lists.size() >= max_lists ||
                (children.empty() && l.kind == op_kind::when_any)) {
                return std::nullopt;
            }
            o.target = static_cast<std::uint32_t>(prog_.lists.size());
            prog_.lists.push_back(std::move(children));
            return o;
        }
        case operand::slots: {
            std::vector<std::uint32_t> moved;
            while (const std::optional<std::uint32_t> d = digit()) {
                if (!names.kept.empty()) {
                    const std::uint32_t script = names.kept[*d % names.kept.size()];
                    if (std::find(moved.begin(), moved.end(), script) == moved.end()) {
                        moved.push_back(script);
                    }
                }
            }
            if (moved.empty() && !names.kept.empty()) {
                moved.push_back(names.kept.back());
            }
            if (moved.empty() || prog_.lists.size() >= max_lists) {
                return std::nullopt;
            }
            o.target = static_cast<std::uint32_t>(prog_.lists.size());
            prog_.lists.push_back(std::move(moved));
            return o;
        }
        case operand::callback: {
            const auto target = nested(depth, &names, '{', '}');
            if (!target) {
                return std::nullopt;
            }
            o.target = *target;
            return o;
        }
        case operand::slot:
        case operand::slot_and_callback:
        case operand::timer: {
            const std::vector<std::uint32_t>& named =
                l.takes == operand::timer ? names.timers : names.kept;
            const std::optional<std::uint32_t> d = digit();
            const std::optional<std::uint32_t> cb = l.takes == operand::slot_and_callback
                                                        ? nested(depth, &names, '{', '}')
                                                        : std::optional<std::uint32_t>(0);
            if (named.empty() || !cb) {
                return std::nullopt;
            }
            o.target = named[d ? *d % named.size() : named.size() - 1];
            o.callback = *cb;
            return o;
        }
        }
        return std::nullopt;
    }

    // The body after an operation: bracketed, or empty when no bracket follows.
    std::optional<std::uint32_t> nested(int depth, scope* enclosing, char open, char close) {
        if (at(open)) {
            ++pos_;
            return body(depth + 1, enclosing, extent::bracketed, close);
        }
        return body(depth + 1, enclosing, extent::empty, close);
    }

    std::optional<std::uint32_t> digit() {
        if (pos_ < size_ && data_[pos_] >= '0' && data_[pos_] <= '9') {
            return data_[pos_++] - '0';
        }
        return std::nullopt;
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
    program prog_;
};

// The program in the input's notation, for failure reports; kept tasks and
// handles are shown by the script or callback they run, in brackets.
class printer {
public:
    explicit printer(const program& prog) : prog_(prog) {}

    std::string print() {
        out_.clear();
        out_ += prog_.rethrowing_handler ? "R" : "";
        out_ += prog_.destroy_after_main ? "D" : "";
        out_ += prog_.forever ? "F" : "";
        script(prog_.scripts[*prog_.main]);
        return out_;
    }

private:
    void script(const op_range& s) {
        ops(s.first, s.last);
        if (s.cleanup != cleanup_kind::none) {
            out_ += s.cleanup == cleanup_kind::swallow ? '!' : '?';
            ops(s.cleanup_first, s.cleanup_last);
        }
    }

    void ops(std::uint32_t first, std::uint32_t last) {
        for (std::uint32_t pc = first; pc != last; ++pc) {
            const op& o = prog_.ops[pc];
            const letter& l =
                *std::find_if(std::begin(letters), std::end(letters), [&](const letter& x) {
                    return x.kind == o.kind && x.catching == o.catching;
                });
            out_ += l.code;
            switch (l.takes) {
            case operand::none:
                break;
            case operand::task:
                task(o.target);
                break;
            case operand::tasks:
                for (std::uint32_t child : prog_.lists[o.target]) {
                    task(child);
                }
                break;
            case operand::callback:
                callback(o.target);
                break;
            case operand::delay:
                out_ += std::to_string(o.delay);
                break;
            case operand::delay_task:
                out_ += std::to_string(o.delay);
                task(o.target);
                break;
            case operand::delay_callback:
                out_ += std::to_string(o.delay);
                callback(o.target);
                break;
            case operand::slot:
                out_ += "[task " + std::to_string(o.target) + ']';
                break;
            case operand::slots:
                for (std::uint32_t kept : prog_.lists[o.target]) {
                    out_ += "[task " + std::to_string(kept) + ']';
                }
                break;
            case operand::slot_and_callback:
                out_ += "[task " + std::to_string(o.target) + ']';
                callback(o.callback);
                break;
            case operand::timer:
                out_ += "[timer " + std::to_string(o.target) + ']';
                break;
            }
        }
    }

    void task(std::uint32_t id) {
        out_ += '(';
        script(prog_.scripts[id]);
        out_ += ')';
    }

    void callback(std::uint32_t id) {
        out_ += '{';
        ops(prog_.callbacks[id].first, prog_.callbacks[id].last);
        out_ += '}';
    }

    const program& prog_;
    std::string out_;
};

[[noreturn]] void fail(const program& prog, const char* policy, const std::string& problem) {
    std::fprintf(stderr,
                 "event_loop_fuzz: under %s: %s\nthe program (kept tasks and handles named by "
                 "what they run): %s\n",
                 policy, problem.c_str(), printer(prog).print().c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const program prog = decoder(data, size).decode();
    static const bool print_traces = std::getenv("BRAID_FUZZ_TRACE") != nullptr;
    if (print_traces) {
        std::printf("program: %s\n", printer(prog).print().c_str());
    }
    for_each_builtin_policy([&](const char* name, auto policy) {
        counted::reset();
        const std::vector<event> loop = run_on_loop(prog, policy);
        if (print_traces) {
            std::printf("under %s:\n", name);
            for (const event& e : loop) {
                std::printf("  %s\n", describe(e).c_str());
            }
        }
        if (counted::alive != 0) {
            fail(prog, name, std::to_string(counted::alive) + " frames or callbacks never freed");
        }
        const std::string problem = compare_traces(run_model(prog, policy), loop);
        if (!problem.empty()) {
            fail(prog, name, problem);
        }
    });
    return 0;
}
