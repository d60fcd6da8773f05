// SPDX-License-Identifier: MIT
// Random programs of tasks run on braid::event_loop under every built-in
// policy, their traces checked against the model of the loop's rules in
// support/loop_model.hpp (a deque and a program counter per task, no braid).
//
// The small runs (every preset) trace every step and use every operation:
// yields, awaits of new tasks (some yield, some finish at once, a few chains
// deeper than the loop starts by nested calls), tasks spawned and joined
// later, lazy tasks, fire-and-forget tasks, call_soon and done callbacks, and
// exceptions, caught or not. The stress run (label `stress`, release presets)
// is a million tasks of random step counts and random awaits, traced by the
// order and the round in which every task finishes.
//
// Reproduce a run: BRAID_MODEL_SEED=<seed>, and BRAID_MODEL_TASKS=<n> for the
// stress run's size.

#include <braid/event_loop.hpp>

#include "support/builtin_policies.hpp"
#include "support/catch.hpp"
#include "support/counted.hpp"
#include "support/loop_model.hpp"
#include "support/loop_program.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace braid_test;

namespace {

struct shape {
    std::uint32_t roots = 1000;
    // call_soon and done callbacks, lazy tasks and exceptions, beside the
    // yields, awaits, spawns and joins every program has.
    bool everything = true;
    // How deep tasks start other tasks (besides the rare long chains).
    int depth = 3;
};

// Builds a random program. Every script is generated (and its operations
// appended) after the scripts it starts, so each one is a contiguous range.
class generator {
public:
    generator(std::uint64_t seed, shape s) : rng_(seed), shape_(s) {}

    program make() {
        prog_.trace_steps = shape_.everything;
        prog_.roots.reserve(shape_.roots);
        for (std::uint32_t i = 0; i < shape_.roots; ++i) {
            prog_.roots.push_back(one_in(2000) ? chain(pick(17, 24)) : script(0));
        }
        return std::move(prog_);
    }

private:
    std::uint32_t pick(std::uint32_t lo, std::uint32_t hi) {
        return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng_);
    }
    bool one_in(std::uint32_t n) { return pick(1, n) == 1; }

    std::uint32_t new_id(std::vector<op_range>& ranges) {
        ranges.emplace_back();
        return static_cast<std::uint32_t>(ranges.size() - 1);
    }

    void close(op_range& range, const std::vector<op>& ops, std::uint32_t slots) {
        range.first = static_cast<std::uint32_t>(prog_.ops.size());
        prog_.ops.insert(prog_.ops.end(), ops.begin(), ops.end());
        range.last = static_cast<std::uint32_t>(prog_.ops.size());
        range.slots = slots;
    }

    // A task of random steps: roots take 0-10 operations; half the awaited
    // tasks finish without yielding.
    std::uint32_t script(int depth) {
        const std::uint32_t id = new_id(prog_.scripts);
        const std::uint32_t count = depth == 0 ? pick(0, 10) : (one_in(2) ? 0 : pick(1, 4));
        std::vector<op> ops;
        std::vector<std::uint32_t> slots; // the script of each slot
        for (std::uint32_t i = 0; i < count; ++i) {
            // Out of 100: 50 yield, 20 await, 6 spawn (or make lazy), 12 join
            // (yield when there is nothing to join), 2 fire-and-forget, and
            // 10 call_soon, done callback or throw (yield in the stress run).
            const std::uint32_t roll = pick(0, 99);
            const bool deeper = depth < shape_.depth;
            if (roll < 50) {
                ops.push_back({op_kind::yield});
            } else if (roll < 70 && deeper) {
                const bool catching = shape_.everything && one_in(3);
                ops.push_back(
                    {catching ? op_kind::await_catch : op_kind::await_new, 0, script(depth + 1)});
            } else if (roll < 76 && deeper) {
                const bool lazy = shape_.everything && one_in(4);
                ops.push_back({lazy ? op_kind::make_lazy : op_kind::spawn_kept,
                               static_cast<std::uint32_t>(slots.size()), script(depth + 1)});
                slots.push_back(ops.back().target);
            } else if (roll < 88 && !slots.empty()) {
                const auto slot = pick(0, static_cast<std::uint32_t>(slots.size() - 1));
                const bool catching = shape_.everything && one_in(3);
                ops.push_back({catching ? op_kind::join_catch : op_kind::join, slot, slots[slot]});
            } else if (roll >= 88 && roll < 90 && deeper) {
                ops.push_back({op_kind::spawn_dropped, 0, script(depth + 1)});
            } else if (roll < 90 || !shape_.everything) {
                ops.push_back({op_kind::yield});
            } else if (roll < 94) {
                ops.push_back({op_kind::call_soon, 0, callback(depth + 1)});
            } else if (roll < 97 && !slots.empty()) {
                const auto slot = pick(0, static_cast<std::uint32_t>(slots.size() - 1));
                ops.push_back({op_kind::on_done, slot, slots[slot], callback(depth + 1)});
            } else {
                ops.push_back({op_kind::raise});
            }
        }
        close(prog_.scripts[id], ops, static_cast<std::uint32_t>(slots.size()));
        return id;
    }

    // A chain of awaits `depth` deep (past the depth the loop starts awaited
    // tasks by nested calls), yielding here and there and at the bottom.
    std::uint32_t chain(std::uint32_t depth) {
        const std::uint32_t id = new_id(prog_.scripts);
        std::vector<op> ops;
        if (one_in(4)) {
            ops.push_back({op_kind::yield});
        }
        if (depth == 0) {
            ops.push_back({op_kind::yield});
        } else {
            ops.push_back({op_kind::await_new, 0, chain(depth - 1)});
        }
        if (one_in(4)) {
            ops.push_back({op_kind::yield});
        }
        close(prog_.scripts[id], ops, 0);
        return id;
    }

    // A callback that sometimes spawns a task, queues another callback or throws.
    std::uint32_t callback(int depth) {
        const std::uint32_t id = new_id(prog_.callbacks);
        std::vector<op> ops;
        if (depth < 4 && one_in(4)) {
            ops.push_back({op_kind::spawn_dropped, 0, script(3)});
        }
        if (depth < 4 && one_in(4)) {
            ops.push_back({op_kind::call_soon, 0, callback(depth + 1)});
        }
        if (one_in(5)) {
            ops.push_back({op_kind::raise});
        }
        close(prog_.callbacks[id], ops, 0);
        return id;
    }

    std::mt19937_64 rng_;
    shape shape_;
    program prog_;
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    return text != nullptr ? std::strtoull(text, nullptr, 10) : fallback;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs prog on the loop and on the model under every built-in policy; ""
// when they agree and every frame and callback was freed.
std::string check_program(const program& prog, bool report_times) {
    std::string problem;
    for_each_builtin_policy([&](const char* name, auto policy) {
        if (!problem.empty()) {
            return;
        }
        counted::reset();
        auto start = std::chrono::steady_clock::now();
        const std::vector<event> loop = run_on_loop(prog, policy);
        const double loop_seconds = seconds_since(start);
        start = std::chrono::steady_clock::now();
        const std::vector<event> model = run_model(prog, policy);
        const double model_seconds = seconds_since(start);
        if (report_times) {
            std::printf("model test, %s: %zu events, loop %.2f s, model %.2f s\n", name,
                        loop.size(), loop_seconds, model_seconds);
        }
        problem = compare_traces(model, loop);
        if (problem.empty() && counted::alive != 0) {
            problem = std::to_string(counted::alive) + " frames or callbacks never freed";
        }
        if (!problem.empty()) {
            problem = std::string("under ") + name + ": " + problem;
        }
    });
    return problem;
}

} // namespace

TEST_CASE("random programs of tasks and callbacks run as the model predicts, step by step, under "
          "every built-in policy",
          "[loop][model]") {
    const std::uint64_t base = env_or("BRAID_MODEL_SEED", 20261128);
    for (std::uint64_t seed = base; seed < base + 40; ++seed) {
        const program prog = generator(seed, shape{500, true, 3}).make();
        INFO("BRAID_MODEL_SEED=" << seed << ": " << prog.scripts.size() << " tasks");
        const std::string problem = check_program(prog, false);
        INFO(problem);
        REQUIRE(problem.empty());
    }
}

TEST_CASE("a million tasks of random steps and awaits finish in the order and the rounds the model "
          "predicts, under every built-in policy",
          "[.][stress]") {
    const std::uint64_t seed = env_or("BRAID_MODEL_SEED", 20261128);
    const auto roots = static_cast<std::uint32_t>(env_or("BRAID_MODEL_TASKS", 1'000'000));
    const auto start = std::chrono::steady_clock::now();
    const program prog = generator(seed, shape{roots, false, 1}).make();
    std::printf("model test: %u spawned tasks, %zu tasks in all, %zu operations, made in %.2f s\n",
                roots, prog.scripts.size(), prog.ops.size(), seconds_since(start));
    INFO("BRAID_MODEL_SEED=" << seed << ", BRAID_MODEL_TASKS=" << roots);
    const std::string problem = check_program(prog, true);
    INFO(problem);
    REQUIRE(problem.empty());
}
