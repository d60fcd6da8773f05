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
// operation of the task whose body it is in:
//
//   y        co_await braid::yield()
//   a(...)   co_await a new task whose body is ...
//   c(...)   the same, catching the task's exception
//   s(...)   spawn a task and keep it in this task's next slot
//   l(...)   make a task and keep it in the next slot, not started
//   f(...)   spawn a fire-and-forget task
//   j, k     co_await the task in the last slot (k: catching its exception);
//            a digit after the letter names slot (digit % slots) instead
//   d{...}   add a done callback to the task in the last slot (or digit)
//   n{...}   call_soon a callback
//   t        throw
//
// A callback's body {...} holds f(...), n{...} and t. The top level is the
// body of the main task, which runs with run_until_complete; then run() runs
// what is left. Anywhere in the input, R makes errors leave run() (the
// default exception handler; the loop is run again) instead of going to a
// handler that records them, and D destroys the loop as soon as main is done.
// Any other byte is ignored, a missing ( or { is an empty body, and a bracket
// that follows no operation opens a group that is skipped.
//
// Adding an operation (a timer, a cancellation, a call from another thread):
// its op_kind and its cases in loop_program.hpp and loop_model.hpp, then one
// line in `letters` below (and a new operand kind if it carries a new kind of
// argument).
//
// Built with -fsanitize=fuzzer it is a libFuzzer target (BRAID_FUZZ_SECONDS);
// linked with replay.cpp it runs the corpus in tests/fuzz/corpus as a plain
// test in every preset. With BRAID_FUZZ_TRACE set in the environment it
// prints each program and what the loop did with it.

#include "support/builtin_policies.hpp"
#include "support/counted.hpp"
#include "support/loop_model.hpp"
#include "support/loop_program.hpp"

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
    callback,          // {body of a callback}
    slot,              // an optional digit naming one of this task's slots
    slot_and_callback, // both
};

struct letter {
    char code;
    op_kind kind;
    operand takes;
    bool in_callbacks; // also allowed in a callback's body
};

constexpr letter letters[] = {
    {'y', op_kind::yield, operand::none, false},
    {'a', op_kind::await_new, operand::task, false},
    {'c', op_kind::await_catch, operand::task, false},
    {'s', op_kind::spawn_kept, operand::task, false},
    {'l', op_kind::make_lazy, operand::task, false},
    {'j', op_kind::join, operand::slot, false},
    {'k', op_kind::join_catch, operand::slot, false},
    {'d', op_kind::on_done, operand::slot_and_callback, false},
    {'f', op_kind::spawn_dropped, operand::task, true},
    {'n', op_kind::call_soon, operand::callback, true},
    {'t', op_kind::raise, operand::none, true},
};

// Bounds that keep one input fast: bytes read, tasks and callbacks made, and
// bodies nested (deeper than the 16 nested starts after which the loop goes
// through its trampoline).
constexpr std::size_t max_input = 16 * 1024;
constexpr std::size_t max_scripts = 2000;
constexpr std::size_t max_callbacks = 2000;
constexpr int max_depth = 40;

class decoder {
public:
    decoder(const std::uint8_t* data, std::size_t size)
        : data_(data), size_(std::min(size, max_input)) {}

    program decode() {
        prog_.main = body(0, false, extent::to_end, ')');
        return std::move(prog_);
    }

private:
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

    // A task's body (callback false) or a callback's. Returns its id, or
    // nothing when the bounds are reached (a bracketed body is then skipped).
    std::optional<std::uint32_t> body(int depth, bool callback, extent reads, char close) {
        std::vector<op_range>& ranges = callback ? prog_.callbacks : prog_.scripts;
        if (depth > max_depth || ranges.size() >= (callback ? max_callbacks : max_scripts)) {
            if (reads == extent::bracketed) {
                skip_group();
            }
            return std::nullopt;
        }
        const auto id = static_cast<std::uint32_t>(ranges.size());
        ranges.emplace_back();
        std::vector<op> ops;
        std::vector<std::uint32_t> slots; // the script of each slot
        while (reads != extent::empty && pos_ < size_) {
            const char c = static_cast<char>(data_[pos_++]);
            if (reads == extent::bracketed && c == close) {
                break;
            }
            if (c == 'R') {
                prog_.rethrowing_handler = true;
                continue;
            }
            if (c == 'D') {
                prog_.destroy_after_main = true;
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
            if (auto o = operation(*l, depth, slots)) {
                if (o->kind == op_kind::spawn_kept || o->kind == op_kind::make_lazy) {
                    o->slot = static_cast<std::uint32_t>(slots.size());
                    slots.push_back(o->target);
                }
                ops.push_back(*o);
            }
        }
        op_range& range = ranges[id];
        range.first = static_cast<std::uint32_t>(prog_.ops.size());
        prog_.ops.insert(prog_.ops.end(), ops.begin(), ops.end());
        range.last = static_cast<std::uint32_t>(prog_.ops.size());
        range.slots = static_cast<std::uint32_t>(slots.size());
        return id;
    }

    // The operation of letter l with its operands, or nothing when it names
    // a slot the task does not have or a body past the bounds.
    std::optional<op> operation(const letter& l, int depth,
                                const std::vector<std::uint32_t>& slots) {
        op o{l.kind};
        std::optional<std::uint32_t> slot;
        if (l.takes == operand::slot || l.takes == operand::slot_and_callback) {
            slot = slot_operand(slots.size());
            if (slot) {
                o.slot = *slot;
                o.target = slots[*slot];
            }
        }
        switch (l.takes) {
        case operand::none:
            return o;
        case operand::task: {
            const auto target = nested(depth, false, '(', ')');
            if (!target) {
                return std::nullopt;
            }
            o.target = *target;
            return o;
        }
        case operand::callback: {
            const auto target = nested(depth, true, '{', '}');
            if (!target) {
                return std::nullopt;
            }
            o.target = *target;
            return o;
        }
        case operand::slot:
            return slot ? std::optional<op>(o) : std::nullopt;
        case operand::slot_and_callback: {
            const auto cb = nested(depth, true, '{', '}');
            if (!slot || !cb) {
                return std::nullopt;
            }
            o.callback = *cb;
            return o;
        }
        }
        return std::nullopt;
    }

    // The body after an operation: bracketed, or empty when no bracket follows.
    std::optional<std::uint32_t> nested(int depth, bool callback, char open, char close) {
        if (at(open)) {
            ++pos_;
            return body(depth + 1, callback, extent::bracketed, close);
        }
        return body(depth + 1, callback, extent::empty, close);
    }

    std::optional<std::uint32_t> slot_operand(std::size_t slots) {
        std::optional<std::uint32_t> digit;
        if (pos_ < size_ && data_[pos_] >= '0' && data_[pos_] <= '9') {
            digit = data_[pos_++] - '0';
        }
        if (slots == 0) {
            return std::nullopt;
        }
        return digit ? *digit % slots : slots - 1;
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
    program prog_;
};

// The program in the input's own notation, for failure reports.
class printer {
public:
    explicit printer(const program& prog) : prog_(prog) {}

    std::string print() {
        out_.clear();
        if (prog_.rethrowing_handler) {
            out_ += 'R';
        }
        if (prog_.destroy_after_main) {
            out_ += 'D';
        }
        ops(prog_.scripts[*prog_.main]);
        return out_;
    }

private:
    void ops(const op_range& range) {
        for (std::uint32_t pc = range.first; pc != range.last; ++pc) {
            const op& o = prog_.ops[pc];
            const letter& l = *std::find_if(std::begin(letters), std::end(letters),
                                            [&](const letter& x) { return x.kind == o.kind; });
            out_ += l.code;
            if (l.takes == operand::slot || l.takes == operand::slot_and_callback) {
                out_ += '[' + std::to_string(o.slot) + ']';
            }
            if (l.takes == operand::task) {
                nested('(', prog_.scripts[o.target], ')');
            } else if (l.takes == operand::callback) {
                nested('{', prog_.callbacks[o.target], '}');
            } else if (l.takes == operand::slot_and_callback) {
                nested('{', prog_.callbacks[o.callback], '}');
            }
        }
    }

    void nested(char open, const op_range& range, char close) {
        out_ += open;
        ops(range);
        out_ += close;
    }

    const program& prog_;
    std::string out_;
};

[[noreturn]] void fail(const program& prog, const char* policy, const std::string& problem) {
    std::fprintf(stderr, "event_loop_fuzz: under %s: %s\nthe program (slots in brackets): %s\n",
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
