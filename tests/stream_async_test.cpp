// SPDX-License-Identifier: MIT
// stream_results::async_next: a stream_executor map consumed by tasks on an
// event loop, whose thread never blocks while results are computed.

#include <braid/event_loop.hpp>
#include <braid/stream_executor.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <chrono>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using braid_test::contains;

namespace {

int slow_double(int x) {
    std::this_thread::sleep_for(200us);
    return 2 * x;
}

} // namespace

TEST_CASE("async_next gives every result in input order, then nullopt for ever",
          "[stream][async]") {
    std::vector<int> got;
    std::optional<int> after_end = 1;
    std::optional<int> again = 1;
    braid::event_loop loop;
    braid::stream_executor ex(2);
    auto consume = [&]() -> braid::task<> {
        auto results = ex.map(slow_double, std::views::iota(0, 50), 4);
        while (auto v = co_await results.async_next()) {
            got.push_back(*v);
        }
        after_end = co_await results.async_next();
        again = co_await results.async_next();
    };
    loop.run_until_complete(consume());
    std::vector<int> expected;
    for (int i = 0; i < 50; ++i) {
        expected.push_back(2 * i);
    }
    CHECK(got == expected);
    CHECK_FALSE(after_end.has_value());
    CHECK_FALSE(again.has_value());
}

TEST_CASE("async_next rethrows f's exception at its position, then the stream is over",
          "[stream][async][errors]") {
    std::vector<int> got;
    std::string error;
    std::optional<int> after = 1;
    braid::event_loop loop;
    braid::stream_executor ex(2);
    auto consume = [&]() -> braid::task<> {
        auto results = ex.map(
            [](int x) {
                if (x == 5) {
                    throw std::runtime_error("f failed at 5");
                }
                return x;
            },
            std::views::iota(0, 20), 3);
        try {
            while (auto v = co_await results.async_next()) {
                got.push_back(*v);
            }
        } catch (const std::runtime_error& e) {
            error = e.what();
        }
        after = co_await results.async_next();
    };
    loop.run_until_complete(consume());
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(error == "f failed at 5");
    CHECK_FALSE(after.has_value());
}

TEST_CASE("two tasks consume two maps with async_next while a timer ticks", "[stream][async]") {
    braid::event_loop loop;
    braid::stream_executor ex(2);
    int ticks = 0;
    braid::timer_handle tick;
    std::function<void()> on_tick = [&] {
        ++ticks;
        tick = loop.call_later(1ms, on_tick);
    };
    tick = loop.call_later(1ms, on_tick);
    auto consume = [&](int n) -> braid::task<long> {
        auto results = ex.map(slow_double, std::views::iota(0, n), 8);
        long sum = 0;
        while (auto v = co_await results.async_next()) {
            sum += *v;
        }
        co_return sum;
    };
    braid::task<long> a = consume(300);
    braid::task<long> b = consume(200);
    loop.spawn(a);
    loop.spawn(b);
    auto both = [&]() -> braid::task<> {
        co_await a;
        co_await b;
        tick.cancel();
    };
    loop.run_until_complete(both());
    CHECK(a.result() == 300 * 299);
    CHECK(b.result() == 200 * 199);
    CHECK(ticks > 0); // the loop kept serving its timer meanwhile
}

TEST_CASE("async_next and the iterator read the same results one after the other",
          "[stream][async]") {
    braid::event_loop loop;
    braid::stream_executor ex(2);
    auto results = ex.map([](int x) { return x; }, std::views::iota(0, 6), 2);
    auto it = results.begin();
    CHECK(*it == 0); // loaded, not yet taken
    std::vector<int> got;
    auto consume = [&]() -> braid::task<> {
        got.push_back(*co_await results.async_next()); // the loaded 0
        got.push_back(*co_await results.async_next());
    };
    loop.run_until_complete(consume());
    for (int v : results) {
        got.push_back(v);
    }
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("async_next on a moved-from results object, or from two tasks at once, is a "
          "usage_error",
          "[stream][async][misuse]") {
    braid::event_loop loop;
    braid::stream_executor ex(1);
    braid_test::gate computed; // result 0 waits until both tasks have tried
    auto results = ex.map(
        [&](int x) {
            computed.wait();
            return 2 * x;
        },
        std::views::iota(0, 1000), 2);
    auto moved = std::move(results);
    REQUIRE_THROWS_WITH(loop.run_until_complete(results.async_next()),
                        contains("braid::stream_results::async_next: the results object was "
                                 "moved from"));
    braid::task<std::optional<int>> first = moved.async_next();
    loop.spawn(first);
    auto second = [&]() -> braid::task<> {
        co_await braid::yield(); // first is waiting for result 0 now
        REQUIRE_THROWS_AS(co_await moved.async_next(), braid::usage_error);
        // Catch2 assertions ran on the loop's thread, which is this one.
        computed.open();
    };
    loop.run_until_complete(second());
    loop.run_until_complete(first);
    CHECK(first.result() == 0);
    // An empty (default-constructed) results object is at its end.
    braid::stream_results<int> empty;
    CHECK_FALSE(loop.run_until_complete(empty.async_next()).has_value());
}

TEST_CASE("a shutdown while a task awaits async_next ends it with executor_shut_down",
          "[stream][async][shutdown]") {
    braid::event_loop loop;
    braid::stream_executor ex(1);
    braid_test::gate started;
    braid_test::gate release;
    auto results = ex.map(
        [&](int x) {
            started.open();
            release.wait();
            return x;
        },
        std::views::iota(0, 100), 1);
    std::thread stopper([&] {
        started.wait();
        std::thread opener([&] {
            std::this_thread::sleep_for(20ms);
            release.open(); // lets the running f finish so shutdown can join
        });
        ex.shutdown();
        opener.join();
    });
    auto consume = [&]() -> braid::task<int> {
        int n = 0;
        while (co_await results.async_next()) {
            ++n;
        }
        co_return n;
    };
    int read = -1;
    bool shut_down = false;
    try {
        read = loop.run_until_complete(consume());
    } catch (const braid::executor_shut_down&) {
        shut_down = true;
    }
    stopper.join();
    // Either the one result computed before the shutdown was read and then
    // the cut reported, or the cut came first: never a hang, never silence.
    CHECK(shut_down);
    CHECK(read == -1);
}

TEST_CASE("a loop destroyed while a task awaits async_next frees the wait",
          "[stream][async][lifetime]") {
    braid::stream_executor ex(1);
    braid_test::gate release;
    auto results = ex.map(
        [&](int x) {
            release.wait();
            return x;
        },
        std::views::iota(0, 10), 1);
    {
        braid::event_loop loop;
        auto consume = [&]() -> braid::task<> { (void)co_await results.async_next(); };
        loop.spawn(consume());
        loop.stop();
        loop.run_forever(); // one pass: the task now waits
    }
    release.open(); // the worker's wake-up finds the loop gone
    std::vector<int> rest;
    for (int v : results) {
        rest.push_back(v);
    }
    CHECK(rest.size() == 10);
}
