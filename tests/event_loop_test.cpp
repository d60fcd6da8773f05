// SPDX-License-Identifier: MIT
// braid::event_loop: spawning, ownership, call_soon, running, errors, misuse.

#include <braid/event_loop.hpp>

#include "support/catch.hpp"
#include "support/counted.hpp"
#include "support/errors.hpp"
#include "support/trace.hpp"

#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using braid_test::contains;
using braid_test::counted;
using braid_test::log_errors;

namespace {

braid::task<int> steps(int count, counted, braid_test::trace* events = nullptr,
                       std::string name = {}) {
    for (int i = 0; i < count; ++i) {
        if (events != nullptr) {
            (*events)(name + " " + std::to_string(i));
        }
        co_await braid::yield();
    }
    co_return count;
}

braid::task<int> fail_after(int yields, std::string message) {
    for (int i = 0; i < yields; ++i) {
        co_await braid::yield();
    }
    throw std::runtime_error(message);
}

braid::task<> forever() {
    for (;;) {
        co_await braid::yield();
    }
}

} // namespace

TEST_CASE("a fire-and-forget task runs to the end and is then freed", "[loop][lifetime]") {
    counted::reset();
    braid::event_loop loop;
    int result = 0;
    loop.spawn(steps(3, counted{}).add_done_callback([&](auto& t) { result = t.result(); }));
    CHECK(counted::alive == 1); // the loop keeps the dropped task
    loop.run();
    CHECK(result == 3);
    CHECK(counted::alive == 0); // freed when it finished
}

TEST_CASE("a spawned task the caller keeps can be observed after it finishes", "[loop][lifetime]") {
    counted::reset();
    {
        braid::event_loop loop;
        auto t = steps(2, counted{});
        CHECK(&loop.spawn(t) == &t);
        CHECK_FALSE(t.done());
        loop.run();
        CHECK(t.done());
        CHECK(t.result() == 2);
        CHECK(counted::alive == 1); // the caller still holds it
    }
    CHECK(counted::alive == 0);
}

TEST_CASE("dropping the task object of a running spawned task does not stop it",
          "[loop][lifetime]") {
    counted::reset();
    braid::event_loop loop;
    std::optional<braid::task<int>> t(steps(5, counted{}));
    loop.spawn(*t);
    loop.call_soon([&] { t.reset(); });
    loop.run();
    CHECK(counted::alive == 0);
    CHECK(loop.rounds() == 7); // 6 steps of the task and the callback
}

TEST_CASE("destroying a loop frees its unfinished tasks without running them", "[loop][lifetime]") {
    counted::reset();
    bool callback_ran = false;
    {
        braid::event_loop loop;
        loop.spawn(forever());
        loop.spawn(steps(100, counted{}).add_done_callback([&](auto&) { callback_ran = true; }));
        auto nested = [](counted c) -> braid::task<int> {
            (void)c;
            co_return co_await steps(100, counted{});
        };
        loop.spawn(nested(counted{}));
        loop.call_soon([] {});
        for (int i = 0; i < 10; ++i) {
            loop.call_soon([] {});
        }
        // Run a little, so tasks are suspended in the middle.
        auto two_yields = []() -> braid::task<> {
            co_await braid::yield();
            co_await braid::yield();
        };
        loop.spawn(two_yields());
        auto stopper = [&]() -> braid::task<> { co_return; };
        loop.run_until_complete(stopper());
        // steps' argument, nested's argument, and the argument of the task
        // nested awaits (a parameter of its frame and the temporary that
        // lives in nested's frame until the co_await's full-expression ends).
        CHECK(counted::alive == 4);
    }
    CHECK(counted::alive == 0);
    CHECK_FALSE(callback_ran);
}

TEST_CASE("thousands of spawned tasks, some finished and their places taken by new ones, are "
          "all run or freed",
          "[loop][lifetime]") {
    // More tasks than fit in one block of the loop's table of spawned tasks,
    // so that finishing frees places in several blocks and new tasks reuse
    // them before the table grows.
    counted::reset();
    int finished = 0;
    {
        braid::event_loop loop;
        for (int i = 0; i < 1500; ++i) {
            loop.spawn(steps(i % 4, counted{}).add_done_callback([&](auto&) { ++finished; }));
        }
        // Three passes: the tasks of 0, 1 and 2 steps finish, those of 3 do not.
        loop.run_until_complete([]() -> braid::task<> {
            co_await braid::yield();
            co_await braid::yield();
        }());
        CHECK(finished == 1125);
        CHECK(counted::alive == 375);
        for (int i = 0; i < 1700; ++i) {
            loop.spawn(steps(100, counted{}));
        }
        CHECK(counted::alive == 2075);
    }
    CHECK(counted::alive == 0);
    CHECK(finished == 1125);
}

TEST_CASE("a task with 65,535 owners refuses another with a usage_error", "[loop][lifetime]") {
    // Only task objects kept from done callbacks can make so many owners.
    braid::event_loop loop;
    std::vector<std::string> errors;
    loop.set_exception_handler([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const braid::usage_error& ex) {
            errors.emplace_back(ex.what());
        }
    });
    std::vector<braid::task<int>> kept;
    auto t = steps(0, counted{});
    for (int i = 0; i < 65'535; ++i) {
        t.add_done_callback([&](braid::task<int>& view) { kept.push_back(std::move(view)); });
    }
    loop.spawn(t);
    loop.run();
    // t, the loop while the task ran, and 65,533 kept views.
    CHECK(kept.size() == 65'533);
    REQUIRE(errors.size() == 2);
    CHECK_THAT(errors[0], contains("at most 65,535 owners"));
    CHECK(kept.back().result() == 0);
}

TEST_CASE("a task kept by the caller outlives its destroyed loop as an abandoned task",
          "[loop][lifetime]") {
    counted::reset();
    auto t = steps(10, counted{});
    {
        braid::event_loop loop;
        loop.spawn(t);
        loop.call_soon([] {});
        loop.run_until_complete([]() -> braid::task<> { co_return; }());
    }
    CHECK(counted::alive == 1);
    CHECK_FALSE(t.done());
    REQUIRE_THROWS_AS(t.result(), braid::task_not_finished);
    REQUIRE_THROWS_WITH(t.result(), contains("destroyed"));
    braid::event_loop other;
    REQUIRE_THROWS_AS(other.spawn(t), braid::usage_error);
    REQUIRE_THROWS_AS(other.run_until_complete(t), braid::task_not_finished);
    auto awaiter = [&]() -> braid::task<> { co_await t; };
    REQUIRE_THROWS_AS(other.run_until_complete(awaiter()), braid::task_not_finished);
    REQUIRE_THROWS_WITH(other.run_until_complete(awaiter()), contains("operator co_await"));
    t = {};
    CHECK(counted::alive == 0);
}

TEST_CASE("call_soon callbacks and task steps share one FIFO queue", "[loop][call_soon]") {
    braid::event_loop loop;
    braid_test::trace events;
    loop.call_soon([&] { events("cb a"); });
    loop.spawn(steps(2, counted{}, &events, "t"));
    loop.call_soon([&] { events("cb b"); });
    loop.spawn(steps(1, counted{}, &events, "u"));
    loop.call_soon([&] {
        events("cb c");
        loop.call_soon([&] { events("cb d"); });
    });
    loop.run();
    // Each yield puts the task behind what is queued; cb d, queued by cb c,
    // runs after the steps that were already waiting.
    CHECK(events.events() ==
          std::vector<std::string>{"cb a", "t 0", "cb b", "u 0", "cb c", "t 1", "cb d"});
    CHECK(loop.rounds() == 9); // 4 callbacks, 3 steps of t, 2 of u
}

TEST_CASE("call_soon stores the callable and its arguments by value", "[loop][call_soon]") {
    braid::event_loop loop;
    std::vector<int> seen;
    int x = 1;
    loop.call_soon([&seen](int v, const std::string& s) { seen.push_back(v + int(s.size())); }, x,
                   std::string("abc"));
    x = 100; // the callback got its own copy
    loop.call_soon([&seen](std::unique_ptr<int> p) { seen.push_back(*p); },
                   std::make_unique<int>(7));
    struct adder {
        std::vector<int>* out;
        void add(int v) const { out->push_back(v); }
    };
    adder a{&seen};
    loop.call_soon(&adder::add, a, 9);
    loop.run();
    CHECK(seen == std::vector<int>{4, 7, 9});
}

TEST_CASE("a callback that is never run is freed with the loop", "[loop][call_soon][lifetime]") {
    counted::reset();
    {
        braid::event_loop loop;
        loop.call_soon([c = counted{}] { (void)c; });
        CHECK(counted::alive == 1);
    }
    CHECK(counted::alive == 0);
}

TEST_CASE("run_until_complete runs other ready work too and returns the task's result",
          "[loop][run]") {
    braid::event_loop loop;
    braid_test::trace events;
    loop.spawn(steps(5, counted{}, &events, "bg"));
    auto t = steps(2, counted{}, &events, "fg");
    CHECK(loop.run_until_complete(t) == 2);
    CHECK(t.done());
    CHECK(events.events() == std::vector<std::string>{"bg 0", "fg 0", "bg 1", "fg 1", "bg 2"});
    // The rest still runs when asked.
    loop.run();
    CHECK(events.events().size() == 7);
}

TEST_CASE("run_until_complete accepts spawned, unspawned and finished tasks", "[loop][run]") {
    braid::event_loop loop;
    SECTION("a task already spawned") {
        auto t = steps(3, counted{});
        loop.spawn(t);
        CHECK(loop.run_until_complete(t) == 3);
    }
    SECTION("a task already finished") {
        auto t = steps(1, counted{});
        loop.run_until_complete(t);
        const auto before = loop.rounds();
        CHECK(loop.run_until_complete(t) == 1);
        CHECK(loop.rounds() == before);
    }
    SECTION("an rvalue task") {
        CHECK(loop.run_until_complete(steps(4, counted{})) == 4);
    }
}

TEST_CASE("run_until_complete reports a task that can never finish instead of hanging",
          "[loop][run][misuse]") {
    braid::event_loop loop;
    auto never = []() -> braid::task<int> {
        auto other_loop_task = steps(1, counted{});
        braid::event_loop other;
        other.spawn(other_loop_task);
        co_return co_await other_loop_task; // nothing on this loop will ever finish it
    };
    REQUIRE_THROWS_AS(loop.run_until_complete(never()), braid::task_not_finished);
    REQUIRE_THROWS_WITH(loop.run_until_complete(never()), contains("nothing left to run"));
}

TEST_CASE("running a loop from inside itself is a usage_error", "[loop][misuse]") {
    braid::event_loop loop;
    std::vector<std::string> errors;
    loop.call_soon([&] {
        try {
            loop.run();
        } catch (const std::logic_error& e) {
            errors.emplace_back(e.what());
        }
        try {
            loop.run_until_complete(steps(1, counted{}));
        } catch (const braid::usage_error& e) {
            errors.emplace_back(e.what());
        }
    });
    auto inner = [&]() -> braid::task<> {
        CHECK(loop.is_running());
        REQUIRE_THROWS_AS(loop.run(), braid::usage_error);
        co_return;
    };
    loop.spawn(inner());
    loop.run();
    REQUIRE(errors.size() == 2);
    CHECK_THAT(errors[0], contains("braid::event_loop::run: called from inside"));
    CHECK_THAT(errors[1], contains("braid::event_loop::run_until_complete: called from inside"));
    CHECK_FALSE(loop.is_running());
}

TEST_CASE("spawning a task twice, or a finished one, is a usage_error", "[loop][misuse]") {
    braid::event_loop loop;
    auto t = steps(1, counted{});
    loop.spawn(t);
    REQUIRE_THROWS_AS(loop.spawn(t), braid::usage_error);
    REQUIRE_THROWS_WITH(loop.spawn(t), contains("already started"));
    loop.run();
    REQUIRE_THROWS_WITH(loop.spawn(t), contains("already finished"));

    auto parent = [&]() -> braid::task<> {
        auto child = steps(2, counted{});
        auto awaiting = [&]() -> braid::task<int> { co_return co_await child; };
        auto a = awaiting();
        loop.spawn(a);
        co_await braid::yield(); // a starts child
        REQUIRE_THROWS_AS(loop.spawn(child), braid::usage_error);
        co_await a;
    };
    loop.run_until_complete(parent());
}

TEST_CASE("an exception nobody can observe is rethrown by run after its step", "[loop][errors]") {
    braid::event_loop loop;
    braid_test::trace events;
    loop.spawn(fail_after(1, "lost?"));
    loop.spawn(steps(3, counted{}, &events, "other"));
    REQUIRE_THROWS_WITH(loop.run(), "lost?");
    // Rethrown right after the failing step (the third round); the loop can
    // then go on.
    CHECK(events.events() == std::vector<std::string>{"other 0"});
    CHECK(loop.rounds() == 3);
    loop.run();
    CHECK(events.events().size() == 3);
}

TEST_CASE("exceptions from callbacks go to the loop too", "[loop][errors]") {
    braid::event_loop loop;
    SECTION("from a call_soon callback") {
        loop.call_soon([] { throw std::runtime_error("from call_soon"); });
        REQUIRE_THROWS_WITH(loop.run(), "from call_soon");
    }
    SECTION("from a done callback") {
        loop.spawn(steps(1, counted{}).add_done_callback([](auto&) {
            throw std::runtime_error("from done callback");
        }));
        REQUIRE_THROWS_WITH(loop.run(), "from done callback");
    }
    SECTION("run_until_complete rethrows them too") {
        loop.spawn(fail_after(0, "background"));
        REQUIRE_THROWS_WITH(loop.run_until_complete(steps(3, counted{})), "background");
    }
}

TEST_CASE("an exception handler replaces the default and the loop goes on", "[loop][errors]") {
    braid::event_loop loop;
    std::vector<std::string> logged;
    log_errors(loop, logged);
    loop.spawn(fail_after(2, "one"));
    loop.spawn(fail_after(0, "two"));
    loop.call_soon([] { throw std::runtime_error("three"); });
    int done = 0;
    loop.spawn(steps(4, counted{}).add_done_callback([&](auto& t) { done = t.result(); }));
    loop.run();
    CHECK(logged == std::vector<std::string>{"two", "three", "one"});
    CHECK(done == 4);

    loop.set_exception_handler(nullptr); // back to rethrowing
    loop.spawn(fail_after(0, "four"));
    REQUIRE_THROWS_WITH(loop.run(), "four");
}

TEST_CASE("a failed task whose object is kept is not reported to the loop", "[loop][errors]") {
    braid::event_loop loop;
    auto t = fail_after(1, "mine");
    loop.spawn(t);
    REQUIRE_NOTHROW(loop.run());
    REQUIRE_THROWS_WITH(t.result(), "mine");
}

TEST_CASE("a kept failed task dropped without reading its error reports it to the loop then",
          "[loop][errors]") {
    braid::event_loop loop;
    std::vector<std::string> handled;
    log_errors(loop, handled);
    auto t = fail_after(1, "unread");
    loop.spawn(t);
    loop.run();
    CHECK(handled.empty()); // whoever holds it may still read it
    t = {};                 // dropped unread, outside run(): reported now
    CHECK(handled.empty()); // ... and handled by the next run
    loop.run();
    CHECK(handled == std::vector<std::string>{"unread"});

    // Dropped by a task during a step: handled after that step.
    auto u = fail_after(0, "dropped in a step");
    loop.spawn(u);
    loop.run();
    loop.spawn([](braid::task<int> held) -> braid::task<> {
        held = {};
        co_return;
    }(std::move(u)));
    loop.run();
    CHECK(handled == std::vector<std::string>{"unread", "dropped in a step"});
}

TEST_CASE("a kept failed task's error is read by result(), co_await or a later done callback, "
          "and then not reported",
          "[loop][errors]") {
    braid::event_loop loop;
    auto read_by_result = fail_after(1, "result");
    auto read_by_await = fail_after(1, "await");
    auto read_by_callback = fail_after(1, "callback");
    loop.spawn(read_by_result);
    loop.spawn(read_by_await);
    loop.spawn(read_by_callback);
    REQUIRE_NOTHROW(loop.run());
    CHECK_THROWS_WITH(read_by_result.result(), "result");
    std::string awaited;
    loop.run_until_complete([](braid::task<int>& t, std::string& out) -> braid::task<> {
        try {
            (void)co_await t;
        } catch (const std::exception& e) {
            out = e.what();
        }
    }(read_by_await, awaited));
    CHECK(awaited == "await");
    std::string seen;
    read_by_callback.add_done_callback([&](braid::task<int>& t) {
        try {
            (void)t.result();
        } catch (const std::exception& e) {
            seen = e.what();
        }
    });
    CHECK(seen == "callback");
    read_by_result = {};
    read_by_await = {};
    read_by_callback = {};
    REQUIRE_NOTHROW(loop.run());
}

TEST_CASE("a kept failed task outliving its loop can be read, and dropped unread quietly",
          "[loop][errors]") {
    braid::task<int> read_later;
    braid::task<int> dropped_later;
    {
        braid::event_loop loop;
        read_later = fail_after(1, "after the loop");
        dropped_later = fail_after(1, "nobody reads this");
        loop.spawn(read_later);
        loop.spawn(dropped_later);
        loop.run();
    }
    CHECK_THROWS_WITH(read_later.result(), "after the loop");
    dropped_later = {}; // no loop to report to: nothing happens, nothing leaks
    read_later = {};
}

TEST_CASE("several errors in one step are all delivered, one per rethrow", "[loop][errors]") {
    braid::event_loop loop;
    auto t = steps(0, counted{});
    t.add_done_callback([](auto&) { throw std::runtime_error("first"); });
    t.add_done_callback([](auto&) { throw std::runtime_error("second"); });
    loop.spawn(std::move(t));
    REQUIRE_THROWS_WITH(loop.run(), "first");
    REQUIRE_THROWS_WITH(loop.run(), "second");
    REQUIRE_NOTHROW(loop.run());
}

TEST_CASE("rounds counts every item taken from the ready queue", "[loop][rounds]") {
    braid::event_loop loop;
    CHECK(loop.rounds() == 0);
    loop.call_soon([] {});
    loop.spawn(steps(3, counted{})); // 4 steps
    CHECK(loop.ready() == 2);
    loop.run();
    CHECK(loop.rounds() == 5);
    CHECK(loop.ready() == 0);

    // Awaiting a task that completes at once is part of the same round.
    auto parent = []() -> braid::task<int> {
        int sum = 0;
        for (int i = 0; i < 10; ++i) {
            sum += co_await steps(0, counted{});
        }
        co_return sum;
    };
    loop.run_until_complete(parent());
    CHECK(loop.rounds() == 6);
}

namespace {

// A chain of `depth` awaits whose innermost task yields (far more often than
// the tests let it run). Each level holds two counted: its parameter, and the
// argument it passed to the next level (a temporary that lives in its frame
// until the co_await is over).
braid::task<int> suspended_chain(int depth, counted c) {
    if (depth == 0) {
        for (int i = 0; i < 1'000'000; ++i) {
            co_await braid::yield();
        }
        co_return 0;
    }
    co_return 1 + co_await suspended_chain(depth - 1, c);
}

} // namespace

TEST_CASE("destroying a loop frees a 100,000-deep chain of suspended awaits",
          "[loop][lifetime][stack]") {
    counted::reset();
    {
        braid::event_loop loop;
        loop.spawn(suspended_chain(100'000, counted{}));
        loop.run_until_complete([]() -> braid::task<> { co_return; }());
        CHECK(counted::alive == 200'001);
    }
    CHECK(counted::alive == 0);
}

TEST_CASE("dropping an abandoned 100,000-deep chain frees it", "[loop][lifetime][stack]") {
    counted::reset();
    auto root = suspended_chain(100'000, counted{});
    {
        braid::event_loop loop;
        loop.spawn(root);
        loop.run_until_complete([]() -> braid::task<> { co_return; }());
    }
    CHECK(counted::alive == 200'001);
    root = {};
    CHECK(counted::alive == 0);
}
