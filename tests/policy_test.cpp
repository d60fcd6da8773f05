// SPDX-License-Identifier: MIT
// Scheduling policies: when each task finishes under interleaved and
// sequential, checked against models computed here independently of the loop,
// and policies of one's own.

#include <braid/event_loop.hpp>
#include <braid/policy.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace {

// A task of `steps` steps: it yields steps - 1 times.
braid::task<> task_of(int steps) {
    for (int i = 1; i < steps; ++i) {
        co_await braid::yield();
    }
}

// Spawns one task per entry of `steps`, in order, runs the loop and returns
// the round in which each one finished.
std::vector<std::uint64_t> finishing_rounds(braid::event_loop& loop,
                                            const std::vector<int>& steps) {
    std::vector<std::uint64_t> finished(steps.size(), 0);
    for (std::size_t i = 0; i < steps.size(); ++i) {
        loop.spawn(task_of(steps[i]).add_done_callback(
            [&finished, &loop, i](auto&) { finished[i] = loop.rounds(); }));
    }
    loop.run();
    return finished;
}

// Run to completion: a task finishes after its own steps and all the steps of
// the tasks before it.
std::vector<std::uint64_t> sequential_model(const std::vector<int>& steps) {
    std::vector<std::uint64_t> rounds;
    std::uint64_t total = 0;
    for (int s : steps) {
        total += static_cast<std::uint64_t>(s);
        rounds.push_back(total);
    }
    return rounds;
}

// Round-robin: when task i takes its last (s_i-th) step, every task before it
// has taken min(s_j, s_i) steps and every task after it min(s_j, s_i - 1).
std::vector<std::uint64_t> interleaved_model(const std::vector<int>& steps) {
    std::vector<std::uint64_t> rounds;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        std::uint64_t r = static_cast<std::uint64_t>(steps[i]);
        for (std::size_t j = 0; j < steps.size(); ++j) {
            if (j < i) {
                r += static_cast<std::uint64_t>(std::min(steps[j], steps[i]));
            } else if (j > i) {
                r += static_cast<std::uint64_t>(std::min(steps[j], steps[i] - 1));
            }
        }
        rounds.push_back(r);
    }
    return rounds;
}

// A policy of one's own: a task keeps the loop for up to `quantum`
// consecutive steps, then goes to the back.
struct quantum_policy {
    int quantum = 2;
    std::coroutine_handle<> last{};
    int streak = 0;
    std::vector<braid::yield_info>* seen = nullptr;

    braid::placement on_yield(const braid::yield_info& info) {
        if (seen != nullptr) {
            seen->push_back(info);
        }
        if (info.coroutine == last) {
            ++streak;
        } else {
            last = info.coroutine;
            streak = 1;
        }
        return streak < quantum ? braid::placement::front : braid::placement::back;
    }
};

static_assert(braid::scheduling_policy<braid::interleaved_t>);
static_assert(braid::scheduling_policy<braid::sequential_t>);
static_assert(braid::scheduling_policy<quantum_policy>);
static_assert(!braid::scheduling_policy<int>);

} // namespace

TEST_CASE("the tutorial's factorials finish after 10, 16, 18 rounds sequentially and 18, 14, 6 "
          "interleaved",
          "[policy][tutorial]") {
    // The factorials of Interleaving computations (Jordan Moldow's Python
    // generator tutorial): factorial(12), (8), (4) take 10, 6 and 2 steps.
    const std::vector<int> steps{10, 6, 2};
    braid::event_loop sequential{braid::sequential};
    CHECK(finishing_rounds(sequential, steps) == std::vector<std::uint64_t>{10, 16, 18});
    braid::event_loop interleaved{braid::interleaved};
    CHECK(finishing_rounds(interleaved, steps) == std::vector<std::uint64_t>{18, 14, 6});
    braid::event_loop by_default;
    CHECK(finishing_rounds(by_default, steps) == std::vector<std::uint64_t>{18, 14, 6});
}

TEST_CASE("both policies finish random sets of tasks when the models say", "[policy][model]") {
    std::mt19937 rng(20261121);
    std::uniform_int_distribution<int> count(1, 12);
    std::uniform_int_distribution<int> length(1, 20);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<int> steps(static_cast<std::size_t>(count(rng)));
        for (int& s : steps) {
            s = length(rng);
        }
        INFO("trial " << trial << ", " << steps.size() << " tasks");
        braid::event_loop sequential{braid::sequential};
        REQUIRE(finishing_rounds(sequential, steps) == sequential_model(steps));
        braid::event_loop interleaved{braid::interleaved};
        REQUIRE(finishing_rounds(interleaved, steps) == interleaved_model(steps));
    }
}

TEST_CASE("under sequential, call_soon callbacks still wait their turn at the back", "[policy]") {
    braid::event_loop loop{braid::sequential};
    std::vector<int> order;
    // A named lambda: a coroutine lambda's captures live in the lambda object,
    // which must outlive the task.
    auto body = [&]() -> braid::task<> {
        order.push_back(1);
        loop.call_soon([&] { order.push_back(100); });
        co_await braid::yield();
        order.push_back(2);
        co_await braid::yield();
        order.push_back(3);
    };
    loop.spawn(body());
    loop.run();
    CHECK(order == std::vector<int>{1, 2, 3, 100});
}

TEST_CASE("a task awaited by a task yields where the policy says, as one task", "[policy]") {
    auto parent = [](std::vector<char>& out, char name) -> braid::task<> {
        auto child = [](std::vector<char>& o, char n) -> braid::task<> {
            o.push_back(n);
            co_await braid::yield();
            o.push_back(n);
        };
        co_await child(out, name);
        co_await child(out, name);
    };
    std::vector<char> out;
    braid::event_loop interleaved;
    interleaved.spawn(parent(out, 'a'));
    interleaved.spawn(parent(out, 'b'));
    interleaved.run();
    CHECK(out == std::vector<char>{'a', 'b', 'a', 'a', 'b', 'b', 'a', 'b'});

    out.clear();
    braid::event_loop sequential{braid::sequential};
    sequential.spawn(parent(out, 'a'));
    sequential.spawn(parent(out, 'b'));
    sequential.run();
    CHECK(out == std::vector<char>{'a', 'a', 'a', 'a', 'b', 'b', 'b', 'b'});
}

TEST_CASE("a policy of one's own decides where each yielding task goes", "[policy][custom]") {
    std::vector<braid::yield_info> seen;
    braid::event_loop loop{quantum_policy{2, {}, 0, &seen}};
    // Two tasks of four steps, two steps at a time: a a b b a a b b.
    CHECK(finishing_rounds(loop, {4, 4}) == std::vector<std::uint64_t>{6, 8});
    REQUIRE(seen.size() == 6);
    CHECK(seen[0].round == 1);
    CHECK(seen[0].ready == 1); // the other task waits
    CHECK(seen[5].round == 7);
    CHECK(seen[5].ready == 0);
    CHECK(seen[0].coroutine != seen[2].coroutine);
}
