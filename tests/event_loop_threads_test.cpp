// SPDX-License-Identifier: MIT
// The event loop and other threads: call_soon_threadsafe, stop, run_forever.
// Worker threads only record; every assertion is on the test's thread.

#include <braid/event_loop.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using clock_type = braid::event_loop::clock;

namespace {

braid::task<> yield_n(long n, long& steps) {
    for (long i = 0; i < n; ++i) {
        ++steps;
        co_await braid::yield();
    }
}

} // namespace

TEST_CASE("a thread-safe call made while the loop is not running runs on the next run",
          "[threads][loop]") {
    braid::event_loop loop;
    std::vector<int> order;
    loop.call_soon_threadsafe([&](int v) { order.push_back(v); }, 1);
    std::thread other([&] { loop.call_soon_threadsafe([&] { order.push_back(2); }); });
    other.join();
    CHECK(order.empty());
    loop.run();
    CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("thread-safe calls join the back of the ready queue, at the latest when the pass in "
          "progress ends",
          "[threads][loop]") {
    for (const bool timer_pending : {false, true}) {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        std::vector<std::string> log;
        auto task = [&](std::string name) -> braid::task<> {
            log.push_back(name + "0");
            loop.call_soon_threadsafe([&, name] { log.push_back("call from " + name); });
            co_await braid::yield();
            log.push_back(name + "1");
        };
        if (timer_pending) {
            loop.call_later(1h, [] {});
        }
        loop.spawn(task("a"));
        loop.spawn(task("b"));
        loop.run();
        if (timer_pending) {
            // Passes are counted: the pass {a0, b0} ends, then both calls
            // are collected, behind the tasks' second steps.
            CHECK(log ==
                  std::vector<std::string>{"a0", "b0", "a1", "b1", "call from a", "call from b"});
        } else {
            // Nothing else pending: the loop was not counting passes, so it
            // collects right after the step that queued a call (the end of
            // the pass in progress is unknown; collecting sooner keeps the
            // promise of at least once per pass).
            CHECK(log ==
                  std::vector<std::string>{"a0", "b0", "a1", "call from a", "b1", "call from b"});
        }
    }
}

TEST_CASE("a busy loop still collects thread-safe calls once per pass", "[threads][loop]") {
    braid::event_loop loop;
    std::atomic<long> steps{0};
    std::atomic<bool> ran{false};
    auto spinner = [&]() -> braid::task<> {
        while (!ran.load()) {
            steps.fetch_add(1, std::memory_order_relaxed);
            co_await braid::yield();
        }
    };
    std::thread other([&] {
        braid_test::wait_until([&] { return steps > 1000; }); // the loop is busy
        loop.call_soon_threadsafe([&] { ran = true; });
    });
    loop.run_until_complete(spinner());
    other.join();
    CHECK(ran.load());
}

TEST_CASE("call_soon_threadsafe wakes a loop that sleeps", "[threads][loop]") {
    braid::event_loop loop;
    bool ran = false;
    std::thread other([&] {
        std::this_thread::sleep_for(20ms); // the loop is asleep by now
        loop.call_soon_threadsafe([&] {
            ran = true;
            loop.stop();
        });
    });
    const auto before = clock_type::now();
    loop.run_forever();
    other.join();
    CHECK(ran);
    CHECK(clock_type::now() - before < braid_test::hang_guard);
}

TEST_CASE("stop from another thread ends a loop sleeping for an hour promptly", "[threads][stop]") {
    braid::event_loop loop;
    bool fired = false;
    loop.call_later(1h, [&] { fired = true; });
    std::thread other([&] {
        std::this_thread::sleep_for(20ms);
        loop.stop();
    });
    const auto before = clock_type::now();
    loop.run_forever();
    const auto took = clock_type::now() - before;
    other.join();
    CHECK_FALSE(fired);
    CHECK(took < 10s); // about 20 ms
}

TEST_CASE("stop ends run too, after the step in progress", "[threads][stop]") {
    braid::event_loop loop;
    std::vector<std::string> log;
    auto task = [&](std::string name, bool stops) -> braid::task<> {
        for (int i = 0; i < 3; ++i) {
            log.push_back(name + std::to_string(i));
            if (stops && i == 1) {
                loop.stop();
            }
            co_await braid::yield();
        }
    };
    loop.spawn(task("a", true));
    loop.spawn(task("b", false));
    loop.run();
    CHECK(log == std::vector<std::string>{"a0", "b0", "a1"});
    loop.run(); // the rest is still there
    CHECK(log == std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "b2"});
}

TEST_CASE("stop before run_forever makes it run one pass and return", "[threads][stop]") {
    braid::event_loop loop;
    std::vector<std::string> log;
    auto task = [&](std::string name) -> braid::task<> {
        for (int i = 0; i < 3; ++i) {
            log.push_back(name + std::to_string(i));
            co_await braid::yield();
        }
    };
    loop.spawn(task("a"));
    loop.spawn(task("b"));
    loop.stop();
    loop.run_forever();
    CHECK(log == std::vector<std::string>{"a0", "b0"});
    loop.stop();
    loop.run_forever();
    CHECK(log == std::vector<std::string>{"a0", "b0", "a1", "b1"});
}

TEST_CASE("run_until_complete does not stop for stop(), and the stop waits for the next run",
          "[threads][stop]") {
    braid::event_loop loop;
    long other_steps = 0;
    loop.spawn(yield_n(100, other_steps));
    auto stopper = [&]() -> braid::task<int> {
        loop.stop();
        co_await braid::yield();
        co_return 5;
    };
    CHECK(loop.run_until_complete(stopper()) == 5);
    const long before = other_steps;
    loop.run_forever(); // the pending stop: one pass
    CHECK(other_steps == before + 1);
}

TEST_CASE("exceptions from thread-safe callbacks go to the exception handler",
          "[threads][errors]") {
    braid::event_loop loop;
    loop.call_soon_threadsafe([] { throw std::runtime_error("from a thread"); });
    REQUIRE_THROWS_WITH(loop.run(), "from a thread");
}

TEST_CASE("destroying a loop frees thread-safe calls it never ran", "[threads][lifetime]") {
    const long alive_before = braid_test::atomic_counted::live().load();
    {
        braid::event_loop loop;
        std::thread other([&] {
            for (int i = 0; i < 10; ++i) {
                loop.call_soon_threadsafe([c = braid_test::atomic_counted{}] {});
            }
        });
        other.join();
    }
    CHECK(braid_test::atomic_counted::live().load() == alive_before);
}

TEST_CASE("thread-safe calls collected together each take a step: ready() counts each, and a "
          "stop after the first leaves the rest, in order, to the next run or to the destructor",
          "[threads][loop]") {
    const long alive_before = braid_test::atomic_counted::live().load();
    std::vector<int> order;
    std::vector<std::size_t> ready_seen;
    {
        braid::event_loop loop;
        std::thread other([&] {
            for (int i = 0; i < 5; ++i) {
                loop.call_soon_threadsafe([&, i, c = braid_test::atomic_counted{}] {
                    order.push_back(i);
                    ready_seen.push_back(loop.ready());
                    if (i == 0 || i == 2) {
                        loop.stop();
                    }
                });
            }
        });
        other.join();
        loop.run(); // collects the five at once, runs the first
        CHECK(order == std::vector<int>{0});
        CHECK(loop.ready() == 4);
        loop.run(); // the second and third
        CHECK(order == std::vector<int>{0, 1, 2});
        CHECK(ready_seen == std::vector<std::size_t>{4, 3, 2});
        CHECK(loop.ready() == 2);
        CHECK(braid_test::atomic_counted::live().load() == alive_before + 2);
        // The last two are dropped unrun with the loop.
    }
    CHECK(order == std::vector<int>{0, 1, 2});
    CHECK(braid_test::atomic_counted::live().load() == alive_before);
}

TEST_CASE("4 threads x 100,000 thread-safe calls while the loop runs tasks and timers: "
          "none lost, each thread's order kept",
          "[threads][stress]") {
    braid_test::watchdog guard("thread-safe call stress");
    constexpr int threads = 4;
    constexpr int per_thread = 100'000;
    braid::event_loop loop;
    std::vector<std::vector<int>> seen(threads);
    for (auto& s : seen) {
        s.reserve(per_thread);
    }
    long steps = 0;
    loop.spawn(yield_n(200'000, steps));
    int ticks = 0;
    std::function<void()> tick = [&] {
        ++ticks;
        loop.call_later(100us, tick);
    };
    loop.call_later(100us, tick);
    int finished = 0;
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t) {
        senders.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                loop.call_soon_threadsafe(
                    [&seen, t, i] { seen[static_cast<std::size_t>(t)].push_back(i); });
            }
            loop.call_soon_threadsafe([&] {
                if (++finished == threads) {
                    loop.stop();
                }
            });
        });
    }
    loop.run_forever();
    for (auto& s : senders) {
        s.join();
    }
    for (int t = 0; t < threads; ++t) {
        const auto& s = seen[static_cast<std::size_t>(t)];
        REQUIRE(s.size() == static_cast<std::size_t>(per_thread));
        bool in_order = true;
        for (int i = 0; i < per_thread; ++i) {
            in_order = in_order && s[static_cast<std::size_t>(i)] == i;
        }
        CHECK(in_order);
    }
    CHECK(ticks > 0);
}

TEST_CASE("run_forever with nothing to do waits for stop instead of returning", "[threads][stop]") {
    braid::event_loop loop;
    std::atomic<bool> stop_called{false};
    std::thread other([&] {
        std::this_thread::sleep_for(30ms);
        stop_called = true;
        loop.stop();
    });
    loop.run_forever();
    const bool returned_after_stop = stop_called.load();
    other.join();
    CHECK(returned_after_stop);
}

// The loop was not counting passes (nothing pending) when the call or timer
// appeared: it must collect right after that step, not count down what was
// ready at its last collection (here the 3 tasks at the start of run()).
TEST_CASE("a thread-safe call or a due timer made while no timer is pending waits only for the "
          "pass in progress",
          "[threads][loop]") {
    for (const bool threadsafe : {true, false}) {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        std::uint64_t ran_at = 0;
        auto a = [&]() -> braid::task<> {
            co_await braid::yield();
            // Round 4: B and C have finished; the pass in progress is {A}.
            if (threadsafe) {
                loop.call_soon_threadsafe([&] { ran_at = loop.rounds(); });
            } else {
                loop.call_later(0ms, [&] { ran_at = loop.rounds(); });
            }
            for (int i = 0; i < 4; ++i) {
                co_await braid::yield();
            }
        };
        auto quick = []() -> braid::task<> { co_return; };
        loop.spawn(a());
        loop.spawn(quick());
        loop.spawn(quick());
        loop.run();
        // The pass {A} ends after round 4; the call joins the back, behind A,
        // and runs in round 6.
        INFO((threadsafe ? "call_soon_threadsafe" : "call_later(0ms)"));
        CHECK(ran_at == 6);
    }
}

// The loop counted passes (a timer was pending at its last collection), then
// stopped (the timer was cancelled), then a timer appeared again: the steps
// run meanwhile belong to the pass in progress too.
TEST_CASE("a due timer made after the only pending timer was cancelled waits only for the pass "
          "in progress",
          "[threads][loop]") {
    for (const bool threadsafe : {false, true}) {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        std::vector<std::string> log;
        braid::timer_handle far = loop.call_later(1h, [&] { log.push_back("far"); });
        loop.call_soon([&] {
            log.push_back("cancel");
            far.cancel(); // nothing pending now
        });
        loop.call_soon([&] {
            log.push_back("queue x");
            loop.call_soon([&] {
                log.push_back("x");
                loop.call_soon([&] { log.push_back("y"); });
            });
        });
        loop.call_soon([&] { log.push_back("a"); });
        loop.call_soon([&] {
            log.push_back("b");
            if (threadsafe) {
                loop.call_soon_threadsafe([&] { log.push_back("due"); });
            } else {
                loop.call_later(0ms, [&] { log.push_back("due"); });
            }
        });
        loop.call_soon([&] { log.push_back("c"); });
        loop.run();
        // The pass is {cancel, queue x, a, b, c}; "due" is collected at its
        // end at the latest, behind x, so it runs before what x queues.
        INFO((threadsafe ? "call_soon_threadsafe" : "call_later(0ms)"));
        CHECK(log == std::vector<std::string>{"cancel", "queue x", "a", "b", "c", "x", "due", "y"});
    }
}
