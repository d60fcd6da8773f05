// SPDX-License-Identifier: MIT
// braid::task: laziness, results of every kind, exceptions, awaiting, stack
// depth, done callbacks, names and misuse.

#include <braid/event_loop.hpp>
#include <braid/task.hpp>
#include <braid/yield.hpp>

#include "support/catch.hpp"
#include "support/counted.hpp"
#include "support/trace.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using braid_test::contains;
using braid_test::counted;

namespace {

braid::task<int> value_of(int x) {
    co_return x;
}

braid::task<> nothing() {
    co_return;
}

braid::task<std::unique_ptr<int>> boxed(int x) {
    co_return std::make_unique<int>(x);
}

braid::task<int&> reference_to(int& x) {
    co_return x;
}

braid::task<int> fails(std::string message) {
    throw std::runtime_error(message);
    co_return 0;
}

braid::task<int> fails_after_yield(std::string message) {
    co_await braid::yield();
    throw std::runtime_error(message);
}

braid::task<int> runs_and_counts(int& runs, counted) {
    ++runs;
    co_return runs;
}

// The deepest stack address a coroutine body reached, relative to a base.
struct stack_probe {
    const char* base = nullptr;
    std::ptrdiff_t deepest = 0;
    void sample() noexcept {
        const auto* here = static_cast<const char*>(__builtin_frame_address(0));
        const std::ptrdiff_t depth = base - here;
        if (depth > deepest) {
            deepest = depth;
        }
    }
};

// A recursion of awaits far deeper than the stack could hold if each level
// nested a call: 100,000 levels at even 100 bytes each is 10 MB.
braid::task<std::uint64_t> depth_of(int n, stack_probe& probe) {
    probe.sample();
    if (n == 0) {
        co_return 0;
    }
    co_return 1 + co_await depth_of(n - 1, probe);
}

braid::task<int> sync_child(int i, stack_probe& probe) {
    probe.sample();
    co_return i & 1;
}

braid::task<std::uint64_t> many_sync_children(int count, stack_probe& probe) {
    std::uint64_t sum = 0;
    for (int i = 0; i < count; ++i) {
        sum += static_cast<std::uint64_t>(co_await sync_child(i, probe));
    }
    co_return sum;
}

braid::task<int> throws_at_depth(int n) {
    if (n == 0) {
        throw std::out_of_range("bottom");
    }
    co_return co_await throws_at_depth(n - 1);
}

// A stack that grew by a frame per level would be megabytes deep; one that
// does not stays within a few kilobytes of where the loop started.
constexpr std::ptrdiff_t constant_stack_bound = 256 * 1024;

[[gnu::noinline]] const char* stack_here() {
    return static_cast<const char*>(__builtin_frame_address(0));
}

} // namespace

TEST_CASE("calling a task function runs nothing until the task is started", "[task][lazy]") {
    counted::reset();
    int runs = 0;
    {
        auto t = runs_and_counts(runs, counted{});
        CHECK(runs == 0);
        CHECK(counted::alive == 1); // the frame exists and holds its argument
        CHECK_FALSE(t.done());

        braid::event_loop loop;
        CHECK(loop.run_until_complete(t) == 1);
        CHECK(runs == 1);
    }
    CHECK(counted::alive == 0);
}

TEST_CASE("a task that is never started is freed without running", "[task][lazy]") {
    counted::reset();
    int runs = 0;
    { auto t = runs_and_counts(runs, counted{}); }
    CHECK(runs == 0);
    CHECK(counted::alive == 0);
}

TEST_CASE("an awaited task starts when it is awaited, not when it is made", "[task][lazy]") {
    braid_test::trace events;
    auto child = [&]() -> braid::task<int> {
        events("child runs");
        co_return 7;
    };
    auto parent = [&]() -> braid::task<int> {
        auto c = child();
        events("child made");
        const int v = co_await c;
        events("child awaited");
        co_return v;
    };
    braid::event_loop loop;
    CHECK(loop.run_until_complete(parent()) == 7);
    CHECK(events.events() == std::vector<std::string>{"child made", "child runs", "child awaited"});
}

TEST_CASE("tasks return values, nothing, move-only values and references", "[task][result]") {
    braid::event_loop loop;

    SECTION("a value") {
        CHECK(loop.run_until_complete(value_of(42)) == 42);
    }
    SECTION("void") {
        auto t = nothing();
        loop.run_until_complete(t);
        CHECK(t.done());
        static_assert(std::is_void_v<decltype(t.result())>);
    }
    SECTION("a move-only value, moved out of an rvalue task") {
        std::unique_ptr<int> p = loop.run_until_complete(boxed(5));
        REQUIRE(p != nullptr);
        CHECK(*p == 5);
    }
    SECTION("a move-only value stays in an lvalue task and can be moved out later") {
        auto t = boxed(6);
        loop.run_until_complete(t);
        CHECK(*t.result() == 6);
        std::unique_ptr<int> p = std::move(t).result();
        CHECK(*p == 6);
    }
    SECTION("a reference refers to the original object") {
        int x = 1;
        int& r = loop.run_until_complete(reference_to(x));
        CHECK(&r == &x);
        static_assert(std::is_same_v<decltype(loop.run_until_complete(reference_to(x))), int&>);
    }
    SECTION("co_await gives a value, a move-only value and a reference") {
        int x = 3;
        auto parent = [&]() -> braid::task<int> {
            const int a = co_await value_of(1);
            std::unique_ptr<int> b = co_await boxed(2);
            int& c = co_await reference_to(x);
            c = 30;
            co_return a + *b;
        };
        CHECK(loop.run_until_complete(parent()) == 3);
        CHECK(x == 30);
    }
    SECTION("awaiting an lvalue task gives a reference into it") {
        auto parent = []() -> braid::task<bool> {
            auto child = boxed(9);
            std::unique_ptr<int>& in_child = co_await child;
            co_return in_child.get() == child.result().get();
        };
        CHECK(loop.run_until_complete(parent()));
    }
}

TEST_CASE("exceptions propagate through nested awaits and out of result()", "[task][errors]") {
    braid::event_loop loop;

    SECTION("through three levels of co_await") {
        auto level2 = []() -> braid::task<int> { co_return co_await fails("deep"); };
        auto level1 = [&]() -> braid::task<int> { co_return co_await level2(); };
        REQUIRE_THROWS_WITH(loop.run_until_complete(level1()), "deep");
    }
    SECTION("a parent can catch a child's exception and go on") {
        auto parent = []() -> braid::task<std::string> {
            try {
                co_await fails_after_yield("caught");
            } catch (const std::runtime_error& e) {
                co_return std::string("handled ") + e.what();
            }
            co_return "not reached";
        };
        CHECK(loop.run_until_complete(parent()) == "handled caught");
    }
    SECTION("result() rethrows every time it is asked") {
        auto t = fails("again");
        REQUIRE_THROWS_AS(loop.run_until_complete(t), std::runtime_error);
        CHECK(t.done());
        REQUIRE_THROWS_WITH(t.result(), "again");
        REQUIRE_THROWS_WITH(t.result(), "again");
    }
    SECTION("the exception type is kept") {
        REQUIRE_THROWS_AS(loop.run_until_complete(throws_at_depth(10)), std::out_of_range);
    }
}

TEST_CASE("a million synchronously completing awaits in a loop do not grow the stack",
          "[task][stack]") {
    stack_probe probe;
    probe.base = stack_here();
    braid::event_loop loop;
    CHECK(loop.run_until_complete(many_sync_children(1'000'000, probe)) == 500'000);
    CHECK(probe.deepest < constant_stack_bound);
}

TEST_CASE("a 100,000-deep recursion of awaits does not grow the stack", "[task][stack]") {
    stack_probe probe;
    probe.base = stack_here();
    braid::event_loop loop;
    CHECK(loop.run_until_complete(depth_of(100'000, probe)) == 100'000);
    CHECK(probe.deepest < constant_stack_bound);
}

TEST_CASE("an exception thrown 100,000 awaits deep reaches the top", "[task][stack][errors]") {
    braid::event_loop loop;
    REQUIRE_THROWS_AS(loop.run_until_complete(throws_at_depth(100'000)), std::out_of_range);
}

TEST_CASE("done callbacks run when the task finishes, in order, and can read the result",
          "[task][callbacks]") {
    braid::event_loop loop;
    braid_test::trace events;

    auto body = [](braid_test::trace& ev) -> braid::task<int> {
        ev("body start");
        co_await braid::yield();
        ev("body end");
        co_return 5;
    };
    auto t = body(events);
    t.add_done_callback([&](braid::task<int>& done) {
        events("first sees " + std::to_string(done.result()) + (done.done() ? " done" : ""));
    });
    t.add_done_callback([&](const braid::task<int>& done) {
        events("second sees " + std::to_string(done.result()));
    });
    loop.spawn(t);
    // Queued after the task's first step, so it runs before the task's last
    // step; the callbacks must run before anything queued after that.
    loop.call_soon([&] { events("call_soon 1"); });
    loop.call_soon([&] {
        events("call_soon 2");
        loop.call_soon([&] { events("call_soon 3"); });
    });
    loop.run();
    CHECK(events.events() == std::vector<std::string>{"body start", "call_soon 1", "call_soon 2",
                                                      "body end", "first sees 5 done",
                                                      "second sees 5", "call_soon 3"});
}

TEST_CASE("a callback added to a finished task runs at once", "[task][callbacks]") {
    braid::event_loop loop;
    auto t = value_of(8);
    loop.run_until_complete(t);
    int seen = 0;
    t.add_done_callback([&](auto& done) { seen = done.result(); });
    CHECK(seen == 8);
}

TEST_CASE("an exception from a callback run at once leaves add_done_callback",
          "[task][callbacks][errors]") {
    braid::event_loop loop;
    auto t = value_of(1);
    loop.run_until_complete(t);
    REQUIRE_THROWS_WITH(
        t.add_done_callback([](auto&) { throw std::runtime_error("from callback"); }),
        "from callback");
}

TEST_CASE("done callbacks see a failed task's exception through result()", "[task][callbacks]") {
    braid::event_loop loop;
    std::string seen;
    auto t = fails("broken");
    t.add_done_callback([&](auto& done) {
        try {
            (void)done.result();
        } catch (const std::exception& e) {
            seen = e.what();
        }
    });
    REQUIRE_THROWS(loop.run_until_complete(t));
    CHECK(seen == "broken");
}

TEST_CASE("a task has an optional name for logs", "[task][name]") {
    auto t = value_of(1);
    CHECK(t.name().empty());
    t.set_name("value_of(1)");
    CHECK(t.name() == "value_of(1)");
    auto named = value_of(2).set_name("two");
    CHECK(named.name() == "two");
}

TEST_CASE("result() before the task is done throws a logic_error that says so", "[task][misuse]") {
    auto t = value_of(1);
    REQUIRE_THROWS_AS(t.result(), braid::task_not_finished);
    REQUIRE_THROWS_AS(t.result(), std::logic_error);
    REQUIRE_THROWS_WITH(t.result(), contains("has not finished"));

    braid::event_loop loop;
    auto slow = fails_after_yield("later");
    loop.spawn(slow);
    bool threw_while_running = false;
    loop.call_soon([&] {
        try {
            (void)slow.result();
        } catch (const braid::task_not_finished&) {
            threw_while_running = true;
        }
    });
    loop.run(); // the failure is the caller's to see, through its task
    CHECK(threw_while_running);
    REQUIRE_THROWS_WITH(slow.result(), "later");
}

TEST_CASE("using an empty task throws usage_error", "[task][misuse]") {
    braid::task<int> empty;
    CHECK_FALSE(empty.valid());
    REQUIRE_THROWS_AS(empty.done(), braid::usage_error);
    REQUIRE_THROWS_AS(empty.result(), braid::usage_error);
    REQUIRE_THROWS_WITH(empty.result(), contains("empty"));
    REQUIRE_THROWS_AS(empty.add_done_callback([](auto&) {}), braid::usage_error);

    auto t = value_of(1);
    auto moved = std::move(t);
    CHECK(moved.valid());
    CHECK_FALSE(t.valid()); // NOLINT(bugprone-use-after-move): testing exactly that
    braid::event_loop loop;
    REQUIRE_THROWS_AS(loop.spawn(t), braid::usage_error);

    auto awaits_empty = []() -> braid::task<int> {
        braid::task<int> nothing_here;
        co_return co_await nothing_here;
    };
    REQUIRE_THROWS_AS(loop.run_until_complete(awaits_empty()), braid::usage_error);
}

TEST_CASE("awaiting a finished task gives its result at once", "[task][await]") {
    braid::event_loop loop;
    auto parent = []() -> braid::task<int> {
        auto child = value_of(4);
        const int first = co_await child;
        const int again = co_await child;
        co_return first + again;
    };
    CHECK(loop.run_until_complete(parent()) == 8);
}

TEST_CASE("a task can await a task spawned on the same loop", "[task][await]") {
    braid::event_loop loop;
    auto producer = []() -> braid::task<int> {
        co_await braid::yield();
        co_await braid::yield();
        co_return 11;
    };
    braid::task<int> spawned = producer();
    loop.spawn(spawned);
    auto consumer = [&]() -> braid::task<int> { co_return 1 + co_await spawned; };
    CHECK(loop.run_until_complete(consumer()) == 12);
    CHECK(spawned.result() == 11);
}

TEST_CASE("two coroutines awaiting one task at once is a usage_error", "[task][await][misuse]") {
    braid::event_loop loop;
    auto slow = []() -> braid::task<int> {
        co_await braid::yield();
        co_return 1;
    };
    braid::task<int> shared = slow();
    auto first = [&]() -> braid::task<int> { co_return co_await shared; };
    auto second = [&]() -> braid::task<int> { co_return co_await shared; };
    auto a = first();
    auto b = second();
    loop.spawn(a);
    loop.spawn(b);
    loop.run();
    CHECK(a.result() == 1);
    REQUIRE_THROWS_AS(b.result(), braid::usage_error);
    REQUIRE_THROWS_WITH(b.result(), contains("already awaited"));
}
