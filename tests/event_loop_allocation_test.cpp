// SPDX-License-Identifier: MIT
// braid::event_loop's hot path allocates nothing once warmed up: steps and
// yields need no storage (the ready queue links its items), and (with the
// frame pool, which is off under sanitizers) frames of awaited tasks and
// call_soon callbacks come from the pool. This file replaces the global
// operator new and delete (all but the aligned forms) to count allocations,
// so it is a test program of its own.

#include <braid/event_loop.hpp>
#include <braid/when_all.hpp>

#include "support/catch.hpp"
#include "support/replace_new.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>
#include <tuple>
#include <vector>

namespace {

// Counted only while `counting` is set, so Catch's own allocations do not
// count.
bool counting = false;
std::size_t allocations = 0;

// Allocations made while f runs.
template <class F>
std::size_t allocations_during(F&& f) {
    allocations = 0;
    counting = true;
    f();
    counting = false;
    return allocations;
}

braid::task<> yielder(int yields) {
    for (int i = 0; i < yields; ++i) {
        co_await braid::yield();
    }
}

} // namespace

void* braid_test::counted_allocation(std::size_t size) {
    if (counting) {
        ++allocations;
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}

TEST_CASE("steps and yields allocate nothing, from a loop's first step on", "[loop][allocation]") {
    // The ready queue links its items through them: it has no memory of its
    // own to grow.
    braid::event_loop loop;
    for (int i = 0; i < 100; ++i) {
        loop.spawn(yielder(1000));
    }
    const std::size_t during = allocations_during([&] { loop.run(); });
    CHECK(during == 0);
    CHECK(loop.rounds() > 100'000);
}

#if BRAID_FRAME_POOL
namespace {

braid::task<int> finishes_at_once(int i) {
    co_return i;
}

braid::task<> awaiter(int awaits, int& sum) {
    for (int i = 0; i < awaits; ++i) {
        braid::task<int> child = finishes_at_once(i);
        sum += co_await std::move(child);
        co_await braid::yield();
    }
}

} // namespace

TEST_CASE("with the frame pool, awaits of finishing tasks and call_soon allocate nothing once "
          "warmed up",
          "[loop][allocation]") {
    braid::event_loop loop;
    int sum = 0;
    // Warm up: the pool's lists get their blocks.
    loop.run_until_complete(awaiter(1000, sum));
    for (int i = 0; i < 100; ++i) {
        loop.call_soon([&sum, i] { sum += i; });
    }
    loop.run();

    const std::size_t during = allocations_during([&] {
        loop.run_until_complete(awaiter(10'000, sum));
        for (int round = 0; round < 100; ++round) {
            for (int i = 0; i < 100; ++i) {
                loop.call_soon([&sum, i] { sum += i; });
            }
            loop.run();
        }
    });
    CHECK(during == 0);
    CHECK(sum > 0);
}

TEST_CASE("with the frame pool, when_all of up to four tasks allocates only what it returns once "
          "warmed up",
          "[loop][allocation][when_all]") {
    braid::event_loop loop;
    // Warm up the pool's lists and the loop's queue and table of spawned tasks.
    auto pair_of = [](int a) {
        return braid::when_all(finishes_at_once(a), finishes_at_once(a + 1));
    };
    auto four_of = [](int a) {
        std::vector<braid::task<int>> tasks;
        for (int i = 0; i < 4; ++i) {
            tasks.push_back(finishes_at_once(a + i));
        }
        return tasks;
    };
    (void)loop.run_until_complete(pair_of(0));
    (void)loop.run_until_complete(braid::when_all(four_of(0)));
    loop.run_until_complete(yielder(1000)); // the queue's second block

    int sum = 0;
    // The tuple form: the children's watches and the when_all itself come
    // from the frame and the pool; nothing else is allocated.
    CHECK(allocations_during([&] {
              for (int i = 0; i < 100; ++i) {
                  auto [a, b] = loop.run_until_complete(pair_of(i));
                  sum += a + b;
              }
          }) == 0);
    // The vector form allocates its result vector, once per call.
    std::vector<std::vector<braid::task<int>>> inputs;
    for (int i = 0; i < 100; ++i) {
        inputs.push_back(four_of(i));
    }
    CHECK(allocations_during([&] {
              for (auto& tasks : inputs) {
                  sum += loop.run_until_complete(braid::when_all(std::move(tasks))).back();
              }
          }) == 100);
    CHECK(sum > 0);
}
#endif
