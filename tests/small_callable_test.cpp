// SPDX-License-Identifier: MIT
// detail::small_callable (what thread_pool queues and what other threads push
// to an event loop) and detail::ring_fifo (the queues that hold them): every
// callable runs once and is destroyed once, whether it is stored inline, on
// the heap or moved by its bytes, whether it throws or is dropped unrun.

#include <braid/detail/ring_fifo.hpp>
#include <braid/detail/small_callable.hpp>

#include "support/catch.hpp"
#include "support/counted.hpp"

#include <array>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace {

using callable = braid::detail::small_callable<4 * sizeof(void*), false>;

struct small_counting {
    int* calls;
    braid_test::counted alive;
    void operator()() const { ++*calls; }
};
struct large_counting {
    int* calls;
    braid_test::counted alive;
    std::array<char, 128> padding{};
    void operator()() const { ++*calls; }
};
struct trivial_adding {
    int* total;
    int amount;
    void operator()() const { *total += amount; }
};
static_assert(std::is_trivially_copyable_v<trivial_adding>);

} // namespace

TEST_CASE("a small callable runs what it holds and destroys it once, inline or on the heap",
          "[small_callable]") {
    braid_test::counted::reset();
    int calls = 0;
    {
        callable a(small_counting{&calls, {}});
        callable b(large_counting{&calls, {}, {}});
        CHECK(braid_test::counted::alive == 2);
        callable moved_a = std::move(a);
        callable moved_b = std::move(b);
        CHECK_FALSE(a);
        CHECK_FALSE(b);
        CHECK(braid_test::counted::alive == 2);
        moved_a();
        moved_b();
        CHECK(calls == 2);
        a = std::move(moved_b); // assigning into an empty one
        moved_a = std::move(a); // assigning over a full one destroys what it held
        CHECK(braid_test::counted::alive == 1);
    }
    CHECK(braid_test::counted::alive == 0);
}

TEST_CASE("a trivially copyable callable moves by its bytes and can be found again",
          "[small_callable]") {
    int total = 0;
    callable c(trivial_adding{&total, 5});
    REQUIRE(c.holds<trivial_adding>());
    CHECK_FALSE(c.holds<small_counting>());
    CHECK(c.get<trivial_adding>().amount == 5);
    callable moved = std::move(c);
    CHECK_FALSE(c.holds<trivial_adding>());
    moved.call_once();
    CHECK(total == 5);
    CHECK_FALSE(moved);
}

TEST_CASE("call_once empties the callable also when the call throws", "[small_callable]") {
    braid_test::counted::reset();
    {
        callable c([alive = braid_test::counted{}] { throw std::runtime_error("boom"); });
        CHECK(braid_test::counted::alive == 1);
        CHECK_THROWS_AS(c.call_once(), std::runtime_error);
        CHECK_FALSE(c);
        CHECK(braid_test::counted::alive == 0);
    }
    CHECK(braid_test::counted::alive == 0);
}

TEST_CASE("a ring fifo keeps order across growth and destroys what is left in it",
          "[small_callable]") {
    braid_test::counted::reset();
    int total = 0;
    {
        braid::detail::ring_fifo<callable> fifo;
        int next = 0;
        int expected = 0;
        // Pushes outrun pops, so the ring wraps and grows several times.
        for (int round = 0; round < 200; ++round) {
            for (int i = 0; i < 3; ++i) {
                const int value = ++next;
                fifo.push(callable([&total, &expected, value, alive = braid_test::counted{}] {
                    CHECK(value == expected + 1); // in push order
                    expected = value;
                    total += value;
                }));
            }
            for (int i = 0; i < 2; ++i) {
                fifo.pop()();
            }
        }
        CHECK(fifo.size() == 200);
        CHECK(braid_test::counted::alive == 200);
    }
    CHECK(braid_test::counted::alive == 0); // the 200 never run are destroyed
    CHECK(total == 400 * 401 / 2);
}
