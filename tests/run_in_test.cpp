// SPDX-License-Identifier: MIT
// braid::run_in: work handed from a task to a thread_pool or stream_executor,
// finishing on the task's loop, which never blocks meanwhile.

#include <braid/event_loop.hpp>
#include <braid/run_in.hpp>
#include <braid/stream_executor.hpp>
#include <braid/thread_pool.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using braid_test::contains;

TEST_CASE("run_in gives f's value, computed on a worker, back on the loop's thread", "[run_in]") {
    braid::thread_pool pool(2);
    braid::event_loop loop;
    const auto loop_thread = std::this_thread::get_id();
    std::thread::id worker;
    std::thread::id resumed;
    auto task = [&]() -> braid::task<int> {
        const int v = co_await braid::run_in(
            pool,
            [&worker](int a, int b) {
                worker = std::this_thread::get_id();
                return a * b;
            },
            6, 7);
        resumed = std::this_thread::get_id();
        co_return v;
    };
    CHECK(loop.run_until_complete(task()) == 42);
    CHECK(worker != loop_thread);
    CHECK(resumed == loop_thread);
}

TEST_CASE("run_in carries f's exception to the co_await", "[run_in][errors]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    auto task = [&]() -> braid::task<std::string> {
        try {
            co_await braid::run_in(pool, []() -> int { throw std::runtime_error("on a worker"); });
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "no exception";
    };
    CHECK(loop.run_until_complete(task()) == "on a worker");
    // Not caught: the task fails with it.
    REQUIRE_THROWS_WITH(
        loop.run_until_complete(braid::run_in(pool, [] { throw std::logic_error("uncaught"); })),
        "uncaught");
}

TEST_CASE("run_in works with void and move-only results", "[run_in]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    std::atomic<int> calls{0};
    loop.run_until_complete(braid::run_in(pool, [&] { ++calls; }));
    CHECK(calls == 1);
    auto p = loop.run_until_complete(braid::run_in(pool, [] { return std::make_unique<int>(9); }));
    REQUIRE(p != nullptr);
    CHECK(*p == 9);
    // A reference result is given by value.
    static int global = 3;
    braid::task<int> by_value = braid::run_in(pool, []() -> int& { return global; });
    CHECK(loop.run_until_complete(by_value) == 3);
}

TEST_CASE("run_in copies f and the arguments at the call and submits when the task starts",
          "[run_in]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    std::atomic<int> calls{0};
    std::string text = "at the call";
    braid::task<std::string> t = braid::run_in(
        pool,
        [&calls](const std::string& s) {
            ++calls;
            return s;
        },
        text);
    text = "changed";
    std::this_thread::sleep_for(10ms);
    CHECK(calls == 0); // lazy: nothing submitted yet
    CHECK(loop.run_until_complete(t) == "at the call");
    CHECK(calls == 1);
}

TEST_CASE("while run_in's work runs, the loop runs other tasks", "[run_in]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    braid_test::gate release;
    long steps = 0;
    auto ticker = [&]() -> braid::task<> {
        while (!release.is_open()) {
            if (++steps == 1000) {
                release.open(); // the worker has been blocked for 1000 steps
            }
            co_await braid::yield();
        }
    };
    loop.spawn(ticker());
    const int v = loop.run_until_complete(braid::run_in(pool, [&] {
        release.wait();
        return 1;
    }));
    CHECK(v == 1);
    CHECK(steps >= 1000);
}

TEST_CASE("run waits for outstanding run_in work instead of returning", "[run_in][run]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    int result = 0;
    auto task = [&]() -> braid::task<> {
        result = co_await braid::run_in(pool, [] {
            std::this_thread::sleep_for(20ms);
            return 5;
        });
    };
    loop.spawn(task());
    loop.run();
    CHECK(result == 5);
}

TEST_CASE("with a manual clock, pool work that is outstanding beats a timeout", "[run_in][clock]") {
    braid::thread_pool pool(1);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> log;
    loop.call_later(1ms, [&] { log.push_back("timer"); });
    auto task = [&]() -> braid::task<> {
        co_await braid::run_in(pool, [] { std::this_thread::sleep_for(30ms); });
        log.push_back("work");
    };
    loop.spawn(task());
    loop.run();
    CHECK(log == std::vector<std::string>{"work", "timer"});
}

TEST_CASE("run_in on a pool that was shut down fails with executor_shut_down", "[run_in][errors]") {
    braid::thread_pool pool(1);
    pool.shutdown();
    braid::event_loop loop;
    REQUIRE_THROWS_AS(loop.run_until_complete(braid::run_in(pool, [] { return 1; })),
                      braid::executor_shut_down);
    braid::stream_executor ex(1);
    ex.shutdown();
    REQUIRE_THROWS_WITH(loop.run_until_complete(braid::run_in(ex, [] { return 1; })),
                        contains("braid::stream_executor::post"));
}

TEST_CASE("run_in works on a stream_executor too", "[run_in]") {
    braid::stream_executor ex(2);
    braid::event_loop loop;
    auto task = [&]() -> braid::task<int> {
        int sum = 0;
        for (int i = 0; i < 100; ++i) {
            sum += co_await braid::run_in(
                ex, [](int x) { return x; }, i);
        }
        co_return sum;
    };
    CHECK(loop.run_until_complete(task()) == 4950);
}

TEST_CASE("many tasks wait on one pool at once", "[run_in]") {
    braid::thread_pool pool(2);
    braid::event_loop loop;
    std::vector<braid::task<int>> tasks;
    for (int i = 0; i < 200; ++i) {
        tasks.push_back(braid::run_in(pool, [i] { return i * 2; }));
        loop.spawn(tasks.back());
    }
    loop.run();
    for (int i = 0; i < 200; ++i) {
        CHECK(tasks[static_cast<std::size_t>(i)].result() == i * 2);
    }
}

TEST_CASE("a loop destroyed while run_in work is outstanding frees everything, and the late "
          "result is dropped on the worker",
          "[run_in][lifetime]") {
    braid::thread_pool pool(1);
    braid_test::gate worker_may_finish;
    const long alive_before = braid_test::atomic_counted::live().load();
    {
        braid::event_loop loop;
        auto task = [&]() -> braid::task<> {
            auto c = co_await braid::run_in(pool, [&] {
                worker_may_finish.wait();
                return braid_test::atomic_counted(1);
            });
            (void)c;
        };
        loop.spawn(task());
        loop.stop();
        loop.run_forever(); // one pass: the work is submitted
    }
    worker_may_finish.open();
    pool.shutdown(); // the job has finished, pushed into a closed queue, let go
    CHECK(braid_test::atomic_counted::live().load() == alive_before);
}

namespace {

// An executor that drops what it was given without running it.
struct dropping_executor {
    template <class F>
    void post(F&& f) {
        auto dropped = std::forward<F>(f);
        (void)dropped;
    }
};

} // namespace

TEST_CASE("an executor that destroys the work unrun fails the task instead of hanging",
          "[run_in][errors]") {
    dropping_executor ex;
    braid::event_loop loop;
    REQUIRE_THROWS_WITH(loop.run_until_complete(braid::run_in(ex, [] { return 1; })),
                        contains("braid::run_in: the executor destroyed the work"));
}
