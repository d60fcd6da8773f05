// SPDX-License-Identifier: MIT
// Scheduling policies: when each task finishes under interleaved, sequential
// and the slices, checked against models computed here independently of the
// loop, and policies of one's own.

#include <braid/event_loop.hpp>
#include <braid/policy.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <stdexcept>
#include <utility>
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

// Slices of k steps: the task at the front runs min(k, steps left) steps, then
// goes to the back if it has steps left.
std::vector<std::uint64_t> slice_model(const std::vector<int>& steps, int k) {
    std::vector<std::uint64_t> rounds(steps.size(), 0);
    std::deque<std::pair<std::size_t, int>> queue; // task, steps left
    for (std::size_t i = 0; i < steps.size(); ++i) {
        queue.emplace_back(i, steps[i]);
    }
    std::uint64_t round = 0;
    while (!queue.empty()) {
        auto [task, left] = queue.front();
        queue.pop_front();
        const int run = std::min(k, left);
        round += static_cast<std::uint64_t>(run);
        if (left == run) {
            rounds[task] = round;
        } else {
            queue.emplace_back(task, left - run);
        }
    }
    return rounds;
}

// A clock that moves only when a test moves it.
struct manual_clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<manual_clock>;
    static constexpr bool is_steady = true;
    static inline rep ticks = 0;
    static time_point now() noexcept { return time_point(duration(ticks)); }
};

// A task of `steps` steps, each of which moves the manual clock by `cost`.
braid::task<> costly_task(int steps, manual_clock::rep cost) {
    for (int i = 1; i <= steps; ++i) {
        manual_clock::ticks += cost;
        if (i < steps) {
            co_await braid::yield();
        }
    }
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
static_assert(braid::scheduling_policy<braid::step_slice>);
static_assert(braid::scheduling_policy<braid::time_slice>);
static_assert(braid::scheduling_policy<braid::basic_time_slice<manual_clock>>);
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

TEST_CASE("the tutorial's factorials under slices of 3 and 4 steps", "[policy][slice][tutorial]") {
    const std::vector<int> steps{10, 6, 2};
    // 3 steps: 12 12 12 8 8 8 4 4 | 12 12 12 8 8 8 | 12 12 12 | 12.
    braid::event_loop three{braid::step_slice{3}};
    CHECK(finishing_rounds(three, steps) == std::vector<std::uint64_t>{18, 14, 8});
    // 4 steps: 12 12 12 12 8 8 8 8 4 4 | 12 12 12 12 8 8 | 12 12.
    braid::event_loop four{braid::step_slice{4}};
    CHECK(finishing_rounds(four, steps) == std::vector<std::uint64_t>{18, 16, 10});
}

TEST_CASE("step_slice finishes random sets of tasks when the slice model says",
          "[policy][slice][model]") {
    std::mt19937 rng(20261122);
    std::uniform_int_distribution<int> count(1, 12);
    std::uniform_int_distribution<int> length(1, 30);
    std::uniform_int_distribution<int> slice(1, 12);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<int> steps(static_cast<std::size_t>(count(rng)));
        for (int& s : steps) {
            s = length(rng);
        }
        const int k = slice(rng);
        INFO("trial " << trial << ", " << steps.size() << " tasks, slices of " << k);
        braid::event_loop loop{braid::step_slice{static_cast<std::uint32_t>(k)}};
        REQUIRE(finishing_rounds(loop, steps) == slice_model(steps, k));
    }
}

TEST_CASE("a slice of one step is interleaved, a slice longer than every task is sequential",
          "[policy][slice][model]") {
    std::mt19937 rng(20261123);
    std::uniform_int_distribution<int> count(1, 12);
    std::uniform_int_distribution<int> length(1, 20);
    for (int trial = 0; trial < 100; ++trial) {
        std::vector<int> steps(static_cast<std::size_t>(count(rng)));
        for (int& s : steps) {
            s = length(rng);
        }
        INFO("trial " << trial);
        braid::event_loop one{braid::step_slice{1}};
        REQUIRE(finishing_rounds(one, steps) == interleaved_model(steps));
        braid::event_loop long_slices{braid::step_slice{20}};
        REQUIRE(finishing_rounds(long_slices, steps) == sequential_model(steps));
    }
}

TEST_CASE("under step_slice, a callback queued during a slice waits for the slices queued "
          "before it",
          "[policy][slice]") {
    braid::event_loop loop{braid::step_slice{3}};
    std::vector<int> order;
    auto body = [&](int base) -> braid::task<> {
        for (int i = 1; i <= 4; ++i) {
            order.push_back(base + i);
            if (i == 1) {
                loop.call_soon([&order, base] { order.push_back(base + 100); });
            }
            if (i < 4) {
                co_await braid::yield();
            }
        }
    };
    loop.spawn(body(0));
    loop.spawn(body(10));
    loop.run();
    // a's callback is queued behind b, so it runs after a's slice and b's;
    // a goes to the back behind it.
    CHECK(order == std::vector<int>{1, 2, 3, 11, 12, 13, 100, 4, 110, 14});
}

TEST_CASE("under step_slice, a child task's yields count in its parent's slice",
          "[policy][slice]") {
    auto parent = [](std::vector<char>& out, char name) -> braid::task<> {
        auto child = [](std::vector<char>& o, char n) -> braid::task<> {
            o.push_back(n);
            co_await braid::yield();
            o.push_back(n);
        };
        co_await child(out, name); // the parent's second step begins in the child
        co_await braid::yield();
        co_await child(out, name);
        co_await braid::yield();
    };
    // Each parent takes 5 steps: child, child + yield, child, child + yield, end.
    std::vector<char> out;
    braid::event_loop loop{braid::step_slice{3}};
    loop.spawn(parent(out, 'a'));
    loop.spawn(parent(out, 'b'));
    loop.run();
    // a's slice is its steps 1-3 (a, a, a), then b's (b, b, b), then the rest.
    CHECK(out == std::vector<char>{'a', 'a', 'a', 'b', 'b', 'b', 'a', 'b'});
}

TEST_CASE("a task that waits for another ends its slice", "[policy][slice]") {
    braid::event_loop loop{braid::step_slice{4}};
    std::vector<int> order;
    // `worker` takes 3 steps; `waiter` takes a step, then waits for it.
    auto worker = [&]() -> braid::task<> {
        for (int i = 1; i <= 3; ++i) {
            order.push_back(i);
            if (i < 3) {
                co_await braid::yield();
            }
        }
    };
    auto waiter = [&](braid::task<>& w) -> braid::task<> {
        order.push_back(10);
        co_await braid::yield();
        order.push_back(11);
        co_await w;
        order.push_back(12);
        co_await braid::yield();
        order.push_back(13);
    };
    auto other = [&]() -> braid::task<> {
        for (int i = 1; i <= 5; ++i) {
            order.push_back(20 + i);
            if (i < 5) {
                co_await braid::yield();
            }
        }
    };
    braid::task<> w = worker();
    braid::task<> wt = waiter(w);
    loop.spawn(wt);
    loop.spawn(other());
    loop.spawn(w);
    loop.run();
    // waiter: 10, 11, then waits (its slice ends after two steps); other runs
    // a whole slice of 4; worker runs all 3 steps, and waiter goes on in the
    // round worker finishes (12), yielding at the end of the third step of a
    // slice that began with worker's first: it keeps the loop for one more
    // step (13). Then other's last step.
    CHECK(order == std::vector<int>{10, 11, 21, 22, 23, 24, 1, 2, 3, 12, 13, 25});
}

TEST_CASE("slices reject a slice of no steps, or of negative time", "[policy][slice]") {
    CHECK_THROWS_AS(braid::step_slice{0}, std::invalid_argument);
    CHECK_THROWS_AS(braid::time_slice{std::chrono::microseconds{-1}}, std::invalid_argument);
    CHECK_THROWS_AS((braid::time_slice{std::chrono::microseconds{1}, 0}), std::invalid_argument);
    CHECK(braid::step_slice{5}.steps() == 5);
    CHECK(braid::time_slice{std::chrono::microseconds{3}}.time() == std::chrono::nanoseconds{3000});
}

TEST_CASE("time_slice moves a task to the back once it has run for the slice's time",
          "[policy][slice][time]") {
    using slice = braid::basic_time_slice<manual_clock>;
    manual_clock::ticks = 0;
    std::vector<std::uint64_t> finished(3, 0);
    braid::event_loop loop{slice{std::chrono::nanoseconds{10}}};
    // a: 6 steps of 3 ns, b: 3 steps of 4 ns, c: 2 steps of 20 ns.
    loop.spawn(costly_task(6, 3).add_done_callback([&](auto&) { finished[0] = loop.rounds(); }));
    loop.spawn(costly_task(3, 4).add_done_callback([&](auto&) { finished[1] = loop.rounds(); }));
    loop.spawn(costly_task(2, 20).add_done_callback([&](auto&) { finished[2] = loop.rounds(); }));
    loop.run();
    // a's first slice is timed from its first yield (at 3 ns: nothing yielded
    // before it): it yields at 3, 6, 9, 12 and 15 ns and goes to the back
    // at 15 (rounds 1-5). b's slice is timed from a's last yield (15 ns): it
    // yields at 19 (front) and 23 ns (front), then finishes at 27 (rounds
    // 6-8). c's slice is timed from its own first yield at 47 ns, as the round
    // before ended with b finishing: it keeps the loop and finishes at 67
    // (rounds 9-10). a's last step: round 11.
    CHECK(finished == std::vector<std::uint64_t>{11, 8, 10});
    CHECK(manual_clock::ticks == 6 * 3 + 3 * 4 + 2 * 20);
}

TEST_CASE("time_slice ends a slice after max_steps even when time is left",
          "[policy][slice][time]") {
    using slice = braid::basic_time_slice<manual_clock>;
    manual_clock::ticks = 0;
    std::vector<char> order;
    auto body = [&](char name) -> braid::task<> {
        for (int i = 1; i <= 4; ++i) {
            order.push_back(name);
            manual_clock::ticks += 1;
            if (i < 4) {
                co_await braid::yield();
            }
        }
    };
    braid::event_loop loop{slice{std::chrono::nanoseconds{1000}, 2}};
    loop.spawn(body('a'));
    loop.spawn(body('b'));
    loop.run();
    CHECK(order == std::vector<char>{'a', 'a', 'b', 'b', 'a', 'a', 'b', 'b'});
}
