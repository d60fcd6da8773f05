// SPDX-License-Identifier: MIT
// Tasks suspended on awaitables that are not braid's: the adapter a user
// writes for a callback-based API parks the coroutine's handle and resumes it
// later from a callback on the loop's thread. The loop does not know what such
// a task waits for; what must still hold is that it goes on when resumed (from
// a callback, a timer, a thread-safe call from another thread, another task's
// step, or between runs), that a cancellation reaches it at its next braid
// wait (without waiting for that wait to end), that composition waits for
// it, that a run which can never finish it says so instead of hanging, that a
// task finishing inside the call that resumed it hands on to the task
// awaiting it and is freed, and that destroying the loop destroys its frame.

#include <braid/braid.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Where an adapter keeps the coroutine waiting for its callback.
struct parking {
    std::coroutine_handle<> waiter;
    int value = 0;

    // The callback's side: hands over the value and resumes the waiter.
    void deliver(int v) {
        REQUIRE(waiter);
        value = v;
        std::exchange(waiter, {}).resume();
    }
};

// The awaitable: parks the coroutine and gives the value delivered.
struct park {
    parking& at;
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { at.waiter = h; }
    [[nodiscard]] int await_resume() const noexcept { return at.value; }
};

class reasons final : public braid::tracer {
public:
    std::vector<std::string> seen;
    void on_suspend(const void*, braid::suspend_reason why, time_point) override {
        seen.emplace_back(braid::to_string(why));
    }
};

} // namespace

TEST_CASE("a task parked on an awaitable of its own goes on when a callback resumes it, and a "
          "tracer sees it wait for `other`",
          "[user_awaitable][tracer]") {
    braid::event_loop loop;
    reasons trace;
    loop.set_tracer(&trace);
    parking slot;
    auto body = [&]() -> braid::task<int> {
        loop.call_soon([&] { slot.deliver(21); });
        const int v = co_await park{slot};
        co_return v * 2;
    };
    CHECK(loop.run_until_complete(body()) == 42);
    loop.set_tracer(nullptr);
    CHECK(trace.seen == std::vector<std::string>{"other"});
}

TEST_CASE("a task parked on an awaitable of its own is resumed from a timer's callback",
          "[user_awaitable][timer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    parking slot;
    auto body = [&]() -> braid::task<int> {
        loop.call_later(5s, [&] { slot.deliver(7); });
        co_return co_await park{slot} + 1;
    };
    const auto start = clock.now();
    braid::task<int> t = body();
    loop.spawn(t);
    loop.run();
    CHECK(t.done());
    CHECK(t.result() == 8);
    CHECK(clock.now() == start + 5s);
}

TEST_CASE("a task parked on an awaitable of its own is resumed through call_soon_threadsafe "
          "from another thread",
          "[user_awaitable][threads]") {
    const braid_test::watchdog guard("user_awaitable_test: resumed from another thread");
    braid::event_loop loop;
    parking slot;
    std::atomic<bool> parked{false};
    int result = 0;
    auto body = [&]() -> braid::task<> {
        result = co_await park{slot};
        loop.stop();
    };
    // The adapter's other thread: its callback is posted to the loop, which
    // resumes the coroutine on the loop's own thread.
    std::thread other([&] {
        if (braid_test::wait_until([&] { return parked.load(); })) {
            loop.call_soon_threadsafe([&] { slot.deliver(99); });
        }
    });
    loop.spawn(body());
    loop.call_soon([&] { parked = true; }); // runs after the task has parked
    // run_forever: the loop knows of nothing to wait for, so only
    // run_forever keeps it waiting for the thread-safe call.
    loop.run_forever();
    other.join();
    CHECK(result == 99);
}

TEST_CASE("run_until_complete of a task parked on an awaitable nobody resumes throws "
          "task_not_finished instead of hanging",
          "[user_awaitable][errors]") {
    braid::event_loop loop;
    parking slot;
    auto body = [&]() -> braid::task<int> { co_return co_await park{slot}; };
    braid::task<int> t = body();
    CHECK_THROWS_AS(loop.run_until_complete(t), braid::task_not_finished);
    CHECK_FALSE(t.done());
    // Resumed later, it finishes at the next run.
    loop.call_soon([&] { slot.deliver(3); });
    CHECK(loop.run_until_complete(t) == 3);
}

TEST_CASE("cancelling a task parked on an awaitable of its own: it goes on when resumed and "
          "receives braid::cancelled at its next braid co_await",
          "[user_awaitable][cancel]") {
    braid::event_loop loop;
    parking slot;
    int got = 0;
    bool after_yield = false;
    auto body = [&]() -> braid::task<int> {
        got = co_await park{slot};
        co_await braid::yield();
        after_yield = true;
        co_return got;
    };
    braid::task<int> t = body();
    loop.spawn(t);
    loop.run(); // parked: nothing else to do
    REQUIRE_FALSE(t.done());
    CHECK(t.cancel());
    loop.run(); // the loop cannot interrupt the wait
    CHECK_FALSE(t.done());
    loop.call_soon([&] { slot.deliver(5); });
    loop.run();
    CHECK(got == 5);
    CHECK_FALSE(after_yield);
    CHECK(t.cancelled());
    CHECK_THROWS_AS(t.result(), braid::cancelled);
}

TEST_CASE("a task cancelled while parked on an awaitable of its own does not sit out the sleep it "
          "begins once resumed",
          "[user_awaitable][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    parking slot;
    bool slept = false;
    auto body = [&]() -> braid::task<int> {
        const int got = co_await park{slot};
        co_await braid::sleep_for(1h); // the pending cancellation ends it at once
        slept = true;
        co_return got;
    };
    braid::task<int> t = body();
    loop.spawn(t);
    loop.run();
    CHECK(t.cancel());
    loop.call_soon([&] { slot.deliver(4); });
    loop.run();
    CHECK(t.cancelled());
    CHECK_FALSE(slept);
    CHECK(clock.now().time_since_epoch() == 0s);
}

TEST_CASE("a task cancelled while parked on an awaitable of its own that then finishes without "
          "another braid co_await ends with its value, not cancelled",
          "[user_awaitable][cancel]") {
    braid::event_loop loop;
    parking slot;
    auto body = [&]() -> braid::task<int> { co_return co_await park{slot}; };
    braid::task<int> t = body();
    loop.spawn(t);
    loop.run();
    CHECK(t.cancel()); // pending: nothing delivers it before the task ends
    loop.call_soon([&] { slot.deliver(6); });
    loop.run();
    REQUIRE(t.done());
    CHECK_FALSE(t.cancelled());
    CHECK(t.result() == 6);
}

TEST_CASE("a child parked on an awaitable of its own: its parent goes on when it is resumed, "
          "and cancelling the parent reaches the child at its next braid co_await",
          "[user_awaitable][cancel]") {
    braid::event_loop loop;
    parking slot;
    auto child = [&]() -> braid::task<int> {
        const int v = co_await park{slot};
        co_await braid::yield();
        co_return v;
    };
    auto parent = [&]() -> braid::task<int> { co_return co_await child() * 10; };

    SECTION("resumed") {
        braid::task<int> p = parent();
        loop.spawn(p);
        loop.run(); // both parked
        loop.call_soon([&] { slot.deliver(4); });
        CHECK(loop.run_until_complete(p) == 40);
    }
    SECTION("cancelled, then resumed") {
        braid::task<int> p = parent();
        loop.spawn(p);
        loop.run();
        CHECK(p.cancel());
        loop.call_soon([&] { slot.deliver(4); });
        loop.run();
        CHECK(p.cancelled());
    }
}

TEST_CASE("when_any waits for a loser parked on an awaitable of its own until it is resumed",
          "[user_awaitable][composition]") {
    braid::event_loop loop;
    parking slot;
    bool loser_resumed = false;
    auto loser = [&]() -> braid::task<int> {
        const int v = co_await park{slot};
        loser_resumed = true;
        co_await braid::yield(); // the cancellation arrives here
        co_return v;
    };
    auto winner = []() -> braid::task<int> { co_return 1; };

    SECTION("nothing resumes the loser: the run says so") {
        braid::task<std::pair<std::size_t, std::variant<int, int>>> race =
            braid::when_any(loser(), winner());
        CHECK_THROWS_AS(loop.run_until_complete(race), braid::task_not_finished);
        // Resumed at last, the loser ends cancelled and the race is won.
        loop.call_soon([&] { slot.deliver(2); });
        const auto [index, value] = loop.run_until_complete(race);
        CHECK(index == 1);
        CHECK(std::get<1>(value) == 1);
        CHECK(loser_resumed);
    }
    SECTION("a timer resumes the loser") {
        braid::manual_clock clock;
        braid::event_loop timed{braid::interleaved, clock};
        const auto start = clock.now();
        timed.call_later(1s, [&] { slot.deliver(2); });
        const auto [index, value] = timed.run_until_complete(braid::when_any(loser(), winner()));
        CHECK(index == 1);
        CHECK(std::get<1>(value) == 1);
        CHECK(loser_resumed);
        CHECK(clock.now() == start + 1s);
    }
}

TEST_CASE("destroying the loop destroys a task parked on an awaitable of its own, with what "
          "its frame holds",
          "[user_awaitable][lifetime]") {
    parking slot;
    const long before = braid_test::atomic_counted::live().load();
    braid::task<int> kept;
    {
        braid::event_loop loop;
        auto body = [&]() -> braid::task<int> {
            braid_test::atomic_counted held;
            co_return co_await park{slot};
        };
        kept = body();
        loop.spawn(kept);
        loop.spawn(body()); // fire and forget: only the loop holds it
        loop.run();
        CHECK(braid_test::atomic_counted::live().load() == before + 2);
    }
    // The loop freed the task only it held; the kept one is left to its
    // object, which can never run it again. (Resuming slot.waiter now would
    // be a bug: nobody does.)
    CHECK(braid_test::atomic_counted::live().load() == before + 1);
    CHECK_FALSE(kept.done());
    CHECK_THROWS_AS(kept.result(), braid::task_not_finished);
    kept = braid::task<int>();
    CHECK(braid_test::atomic_counted::live().load() == before);
}

TEST_CASE("a task nobody holds, parked on an awaitable of its own and finished by a callback "
          "that resumes it, is freed",
          "[user_awaitable][lifetime]") {
    const long before = braid_test::atomic_counted::live().load();
    braid::event_loop loop;
    parking first;
    parking second;
    int sum = 0;
    // A parameter lives in the frame until the frame is freed (a local would
    // go when the body ends).
    auto body = [&](parking& slot, braid_test::atomic_counted) -> braid::task<> {
        sum += co_await park{slot};
    };
    loop.spawn(body(first, braid_test::atomic_counted()));
    loop.spawn(body(second, braid_test::atomic_counted()));
    loop.run();
    CHECK(braid_test::atomic_counted::live().load() == before + 2);
    // One callback finishes both: each frame is freed, the first too.
    loop.call_soon([&] {
        first.deliver(1);
        second.deliver(2);
    });
    loop.run();
    CHECK(sum == 3);
    CHECK(braid_test::atomic_counted::live().load() == before);
}

TEST_CASE("a child that finishes when a callback resumes it hands the step to its parent, also "
          "when one callback finishes two such children",
          "[user_awaitable][composition]") {
    braid::event_loop loop;
    parking first;
    parking second;
    auto child = [](parking& slot) -> braid::task<int> { co_return co_await park{slot}; };
    auto parent = [&](parking& slot) -> braid::task<int> { co_return co_await child(slot) * 10; };
    braid::task<int> a = parent(first);
    braid::task<int> b = parent(second);
    loop.spawn(a);
    loop.spawn(b);
    loop.run(); // both children parked
    const std::uint64_t rounds = loop.rounds();
    loop.call_soon([&] {
        first.deliver(1);
        second.deliver(2);
    });
    loop.run();
    REQUIRE(a.done());
    REQUIRE(b.done());
    CHECK(a.result() == 10);
    CHECK(b.result() == 20);
    CHECK(loop.rounds() == rounds + 1); // both went on within the callback's round
}

TEST_CASE("a done callback that resumes a parked task: that task and its parent go on, and so "
          "does the task whose callback it was",
          "[user_awaitable][composition]") {
    braid::event_loop loop;
    parking slot;
    auto child = [&]() -> braid::task<int> { co_return co_await park{slot}; };
    auto parked_parent = [&]() -> braid::task<int> { co_return co_await child() + 1; };
    auto trigger = []() -> braid::task<int> { co_return 100; };
    auto awaiting_trigger = [&](braid::task<int> t) -> braid::task<int> {
        co_return co_await std::move(t) + 5;
    };
    braid::task<int> p = parked_parent();
    loop.spawn(p);
    loop.run(); // p's child parked
    braid::task<int> t = trigger();
    t.add_done_callback([&](braid::task<int>&) { slot.deliver(7); });
    braid::task<int> q = awaiting_trigger(std::move(t));
    CHECK(loop.run_until_complete(q) == 105);
    loop.run();
    REQUIRE(p.done());
    CHECK(p.result() == 8);
}

TEST_CASE("a task resumed between runs by an awaitable of its own goes on when the loop next "
          "runs, and the loop frees what it leaves if it never runs again",
          "[user_awaitable][lifetime]") {
    const long before = braid_test::atomic_counted::live().load();
    parking slot;
    // A parameter lives in the frame until the frame is freed.
    auto child = [&](braid_test::atomic_counted) -> braid::task<int> {
        co_return co_await park{slot};
    };
    auto parent = [&](braid_test::atomic_counted held) -> braid::task<int> {
        co_return co_await child(held) * 3;
    };
    SECTION("runs again") {
        braid::event_loop loop;
        braid::task<int> p = parent(braid_test::atomic_counted());
        loop.spawn(p);
        loop.run();
        slot.deliver(2); // on the loop's thread, outside any run
        loop.run();
        REQUIRE(p.done());
        CHECK(p.result() == 6);
    }
    SECTION("destroyed") {
        {
            braid::event_loop loop;
            loop.spawn(parent(braid_test::atomic_counted()));
            loop.run();
            slot.deliver(2); // the child finishes; its parent waits for a run
        }
        CHECK(braid_test::atomic_counted::live().load() == before);
    }
}

TEST_CASE("a task that resumes another's parked child from inside its own step: both parents go "
          "on",
          "[user_awaitable][composition]") {
    braid::event_loop loop;
    parking slot;
    auto child = [&]() -> braid::task<int> { co_return co_await park{slot}; };
    auto parked_parent = [&]() -> braid::task<int> { co_return co_await child() + 1; };
    auto resumer = [&]() -> braid::task<int> {
        slot.deliver(10); // the child finishes inside this call
        co_return 2;
    };
    auto resumer_parent = [&]() -> braid::task<int> {
        co_await braid::yield(); // so that its ending hands outer to the trampoline
        co_return co_await resumer() * 2;
    };
    auto outer = [&]() -> braid::task<int> { co_return co_await resumer_parent(); };
    braid::task<int> p = parked_parent();
    loop.spawn(p);
    loop.run();
    braid::task<int> q = outer();
    loop.spawn(q);
    const std::uint64_t rounds = loop.rounds();
    loop.run();
    REQUIRE(p.done());
    REQUIRE(q.done());
    CHECK(p.result() == 11);
    CHECK(q.result() == 4);
    CHECK(loop.rounds() == rounds + 2); // outer's first step, then its child's after the yield
}
