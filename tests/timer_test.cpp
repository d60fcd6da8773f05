// SPDX-License-Identifier: MIT
// Timers: event_loop::call_later/call_at, braid::timer_handle, sleep_for/
// sleep_until and the manual clock. Exact times come from a manual clock;
// the few tests on the real clock use bounds ten times looser than needed.

#include <braid/event_loop.hpp>

#include "support/catch.hpp"
#include "support/counted.hpp"
#include "support/errors.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>

using namespace std::chrono_literals;
using braid_test::contains;
using braid_test::counted;
using braid_test::log_errors;
using clock_type = braid::event_loop::clock;

namespace {

// Time since the manual clock's start, in whole units, for exact checks.
std::chrono::nanoseconds since_start(const braid::manual_clock& clock) {
    return clock.now().time_since_epoch();
}

braid::task<> sleep_and_log(braid::event_loop& loop, std::chrono::nanoseconds d,
                            std::vector<std::pair<int, std::chrono::nanoseconds>>& log, int id) {
    co_await braid::sleep_for(d);
    log.emplace_back(id, loop.time().time_since_epoch());
}

braid::task<> yield_forever(long& steps) {
    for (;;) {
        ++steps;
        co_await braid::yield();
    }
}

braid::task<> yield_times(int n, std::vector<std::string>& log, std::string name) {
    for (int i = 0; i < n; ++i) {
        log.push_back(name + std::to_string(i));
        co_await braid::yield();
    }
}

// CPU time used by the calling thread.
std::chrono::microseconds thread_cpu_time() {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

} // namespace

TEST_CASE("a manual clock starts at the epoch, moves forward only, and saturates",
          "[timer][clock]") {
    braid::manual_clock clock;
    CHECK(clock.now() == clock_type::time_point{});
    clock.advance(5s);
    CHECK(since_start(clock) == 5s);
    clock.advance_to(clock_type::time_point(7s));
    CHECK(since_start(clock) == 7s);
    REQUIRE_THROWS_AS(clock.advance(-1ns), std::invalid_argument);
    REQUIRE_THROWS_WITH(clock.advance_to(clock_type::time_point(6s)),
                        contains("braid::manual_clock::advance_to"));
    clock.advance(clock_type::duration::max());
    CHECK(clock.now() == clock_type::time_point::max());
    braid::manual_clock later(clock_type::time_point(1h));
    CHECK(since_start(later) == 1h);
}

TEST_CASE("call_later runs the callback at its deadline with its arguments copied", "[timer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    CHECK(loop.time() == clock.now());
    std::string text = "hello";
    std::vector<std::pair<std::string, std::chrono::nanoseconds>> seen;
    loop.call_later(
        3s, [&](const std::string& s) { seen.emplace_back(s, since_start(clock)); }, text);
    text = "changed";
    loop.run(); // the clock jumps: nothing else can happen first
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].first == "hello");
    CHECK(seen[0].second == 3s);
    CHECK(since_start(clock) == 3s);
}

TEST_CASE("timers fire in deadline order, equal deadlines in the order they were made", "[timer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::sequential, clock};
    std::vector<int> order;
    loop.call_later(2s, [&] { order.push_back(1); });
    loop.call_later(1s, [&] { order.push_back(2); });
    loop.call_at(clock_type::time_point(2s), [&] { order.push_back(3); });
    loop.call_later(1s, [&] { order.push_back(4); });
    loop.call_later(1500ms, [&] { order.push_back(5); });
    loop.run();
    CHECK(order == std::vector<int>{2, 4, 5, 1, 3});
}

TEST_CASE("a timer never runs early: the loop's time has reached its deadline", "[timer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int checked = 0;
    for (int i = 0; i < 50; ++i) {
        const auto deadline = loop.time() + std::chrono::milliseconds(i * 37 % 11);
        loop.call_at(deadline, [&, deadline] {
            CHECK(loop.time() >= deadline);
            ++checked;
        });
    }
    loop.run();
    CHECK(checked == 50);
}

TEST_CASE("a negative or zero delay runs the callback as soon as possible", "[timer]") {
    braid::manual_clock clock;
    clock.advance(1h);
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> log;
    loop.spawn(yield_times(3, log, "t"));
    loop.call_later(-5s, [&] { log.push_back("negative"); });
    loop.call_at(clock_type::time_point(1s), [&] { log.push_back("past"); });
    loop.call_later(0s, [&] { log.push_back("zero"); });
    loop.run();
    // Collected when the pass that was ready (the task's first step) is over,
    // in deadline order, at the back of the queue; the clock never moved.
    CHECK(log == std::vector<std::string>{"t0", "past", "negative", "zero", "t1", "t2"});
    CHECK(since_start(clock) == 1h);
}

TEST_CASE("timer_handle::cancel stops a callback that has not run, once", "[timer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int ran = 0;
    braid::timer_handle h = loop.call_later(10s, [&] { ++ran; });
    braid::timer_handle copy = h;
    CHECK(static_cast<bool>(h));
    CHECK(h.when() == clock_type::time_point(10s));
    CHECK(copy.cancel());
    CHECK_FALSE(h.cancel()); // copies name the same timer
    loop.run();
    CHECK(ran == 0);
    CHECK(since_start(clock) == 0s); // never jumps to a cancelled deadline
}

TEST_CASE("an assigned timer_handle names the other's timer, and the one it named still runs",
          "[timer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<int> ran;
    braid::timer_handle first = loop.call_later(1s, [&] { ran.push_back(1); });
    braid::timer_handle second = loop.call_later(2s, [&] { ran.push_back(2); });
    second = first; // a copy: dropping a handle never cancels
    CHECK(second.when() == clock_type::time_point(1s));
    CHECK(second.cancel());
    CHECK_FALSE(first.cancel());
    first = std::move(second);
    CHECK_FALSE(static_cast<bool>(second)); // NOLINT(bugprone-use-after-move): moved-from is empty
    CHECK(first.when() == clock_type::time_point(1s));
    loop.run();
    CHECK(ran == std::vector<int>{2});
}

TEST_CASE("cancel says false after the callback ran, and inside it", "[timer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::timer_handle h;
    CHECK_FALSE(h.cancel()); // an empty handle
    bool inside = true;
    h = loop.call_later(1s, [&] { inside = h.cancel(); });
    loop.run();
    CHECK_FALSE(inside);
    CHECK_FALSE(h.cancel());
}

TEST_CASE("dropping a handle does not cancel the timer", "[timer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int ran = 0;
    {
        (void)loop.call_later(1s, [&] { ++ran; });
    }
    loop.run();
    CHECK(ran == 1);
}

TEST_CASE("a timer that is due but not yet run can still be cancelled", "[timer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<int> order;
    braid::timer_handle second;
    loop.call_later(1s, [&] {
        order.push_back(1);
        CHECK(second.cancel()); // due at the same time, queued behind us
    });
    second = loop.call_later(1s, [&] { order.push_back(2); });
    const auto rounds_before = loop.rounds();
    loop.run();
    CHECK(order == std::vector<int>{1});
    CHECK(loop.rounds() - rounds_before == 1); // the cancelled one is not a round
}

TEST_CASE("cancelling destroys the callback and its arguments at once",
          "[timer][cancel][lifetime]") {
    counted::reset();
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::timer_handle h = loop.call_later(1s, [c = counted{}] { (void)c; });
    CHECK(counted::alive == 1);
    h.cancel();
    CHECK(counted::alive == 0);
}

TEST_CASE("a callback and its arguments are destroyed after it runs, also when it throws",
          "[timer][lifetime]") {
    counted::reset();
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::timer_handle h = loop.call_later(
        1s, [](const counted&) { throw std::runtime_error("timer failed"); }, counted{});
    REQUIRE_THROWS_WITH(loop.run(), "timer failed");
    CHECK(counted::alive == 0);
    CHECK_FALSE(h.cancel());
}

TEST_CASE("exceptions from timer callbacks go to the exception handler", "[timer][errors]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> errors;
    log_errors(loop, errors);
    int after = 0;
    loop.call_later(1s, [] { throw std::runtime_error("first"); });
    loop.call_later(2s, [&] { ++after; });
    loop.run();
    CHECK(errors == std::vector<std::string>{"first"});
    CHECK(after == 1);
}

TEST_CASE("destroying a loop frees its pending timers without running them", "[timer][lifetime]") {
    counted::reset();
    braid::manual_clock clock;
    braid::timer_handle kept;
    int ran = 0;
    {
        braid::event_loop loop{braid::interleaved, clock};
        kept = loop.call_later(1s, [&, c = counted{}] { ++ran; });
        loop.call_later(2s, [&, c = counted{}] { ++ran; });
        loop.call_later(0s, [&, c = counted{}] { ++ran; });
        CHECK(counted::alive == 3);
    }
    CHECK(counted::alive == 0);
    CHECK(ran == 0);
    CHECK_FALSE(kept.cancel()); // the handle outlived its loop
    CHECK(kept.when() == clock_type::time_point(1s));
}

TEST_CASE("a destructor run while the loop is destroyed may schedule more timers",
          "[timer][lifetime]") {
    counted::reset();
    braid::manual_clock clock;
    {
        braid::event_loop loop{braid::interleaved, clock};
        struct reschedules {
            braid::event_loop* loop;
            reschedules(braid::event_loop* l) : loop(l) {}
            reschedules(const reschedules& o) : loop(o.loop) {}
            ~reschedules() {
                if (loop != nullptr) {
                    loop->call_later(1s, [c = counted{}] {});
                    loop->call_soon([c = counted{}] {});
                }
            }
        };
        loop.call_later(1s, [r = reschedules(&loop)] { (void)r; });
    }
    CHECK(counted::alive == 0);
}

TEST_CASE("a deadline past the end of time never fires and never moves the clock",
          "[timer][overflow]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int ran = 0;
    braid::timer_handle forever = loop.call_later(std::chrono::hours::max(), [&] { ++ran; });
    braid::timer_handle also = loop.call_later(clock_type::duration::max(), [&] { ++ran; });
    CHECK(forever.when() == clock_type::time_point::max());
    CHECK(also.when() == clock_type::time_point::max());
    // A pending timer that never fires keeps run() waiting until it is
    // cancelled: here a timer cancels both after an hour.
    loop.call_later(1h, [&] {
        forever.cancel();
        also.cancel();
    });
    loop.run();
    CHECK(ran == 0);
    CHECK(since_start(clock) == 1h);
}

TEST_CASE("durations are rounded up, never truncated, in every unit", "[timer][overflow]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::chrono::nanoseconds> at;
    auto record = [&] { at.push_back(since_start(clock)); };
    loop.call_later(std::chrono::duration<double, std::nano>(1.5), record);
    loop.call_later(std::chrono::duration<long long, std::pico>(2001), record);
    loop.call_later(std::chrono::duration<double>(0.25), record);
    loop.call_later(std::chrono::duration<double>(-3.0), record);
    loop.run();
    CHECK(at == std::vector<std::chrono::nanoseconds>{0ns, 2ns, 3ns, 250ms});
}

TEST_CASE("run returns once only cancelled timers are left", "[timer][run]") {
    braid::event_loop loop; // the real clock: an hour would be noticed
    braid::timer_handle h = loop.call_later(1h, [] {});
    h.cancel();
    const auto before = clock_type::now();
    loop.run();
    CHECK(clock_type::now() - before < 10s);
}

TEST_CASE("under interleaved, due timers and ready tasks take turns", "[timer][policy]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    long a = 0;
    long b = 0;
    loop.spawn(yield_forever(a));
    loop.spawn(yield_forever(b));
    std::vector<std::uint64_t> fired_at;
    loop.call_later(0s, [&] { fired_at.push_back(loop.rounds()); });
    loop.call_later(0s, [&] {
        fired_at.push_back(loop.rounds());
        loop.stop();
    });
    loop.run();
    // The pass that was ready (two task steps) ran, then both timers.
    CHECK(fired_at == std::vector<std::uint64_t>{3, 4});
}

TEST_CASE("under sequential, a due timer waits until the yielding task finishes",
          "[timer][policy]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::sequential, clock};
    std::vector<std::string> log;
    loop.spawn(yield_times(4, log, "t"));
    loop.call_later(0s, [&] { log.push_back("timer"); });
    loop.run();
    CHECK(log == std::vector<std::string>{"t0", "t1", "t2", "t3", "timer"});
}

TEST_CASE("a sleeping task wakes at its deadline and takes no rounds while it sleeps",
          "[timer][sleep]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::pair<int, std::chrono::nanoseconds>> log;
    loop.spawn(sleep_and_log(loop, 30min, log, 1));
    loop.spawn(sleep_and_log(loop, 10min, log, 2));
    loop.spawn(sleep_and_log(loop, 20min, log, 3));
    loop.run();
    using entry = std::pair<int, std::chrono::nanoseconds>;
    CHECK(log == std::vector<entry>{{2, 10min}, {3, 20min}, {1, 30min}});
    CHECK(loop.rounds() == 6); // a first step and a wake-up each
}

TEST_CASE("sleep_until wakes at the time given", "[timer][sleep]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::chrono::nanoseconds woke{};
    auto sleeper = [&]() -> braid::task<> {
        co_await braid::sleep_until(clock_type::time_point(90s));
        woke = since_start(clock);
    };
    loop.run_until_complete(sleeper());
    CHECK(woke == 90s);
}

TEST_CASE("sleeping for zero or less, or until a time passed, behaves like yield",
          "[timer][sleep][policy]") {
    for (bool seq : {false, true}) {
        braid::manual_clock clock;
        clock.advance(1min);
        std::vector<std::string> log;
        auto sleeper = [&](std::string name) -> braid::task<> {
            log.push_back(name + "0");
            co_await braid::sleep_for(0s);
            log.push_back(name + "1");
            co_await braid::sleep_for(-1s);
            log.push_back(name + "2");
            co_await braid::sleep_until(clock_type::time_point(1s));
            log.push_back(name + "3");
        };
        auto run = [&](auto policy) {
            braid::event_loop loop{policy, clock};
            loop.spawn(sleeper("a"));
            loop.spawn(yield_times(2, log, "y"));
            loop.run();
            CHECK(loop.rounds() == 7);
        };
        if (seq) {
            run(braid::sequential);
            CHECK(log == std::vector<std::string>{"a0", "a1", "a2", "a3", "y0", "y1"});
        } else {
            run(braid::interleaved);
            CHECK(log == std::vector<std::string>{"a0", "y0", "a1", "y1", "a2", "a3"});
        }
        CHECK(since_start(clock) == 1min);
    }
}

TEST_CASE("run_until_complete waits for a sleeping task instead of giving up",
          "[timer][sleep][run]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto slow = [&]() -> braid::task<int> {
        co_await braid::sleep_for(1h);
        co_return 7;
    };
    CHECK(loop.run_until_complete(slow()) == 7);
    CHECK(since_start(clock) == 1h);
}

TEST_CASE("destroying a loop frees a sleeping task, and a kept task object outlives it",
          "[timer][sleep][lifetime]") {
    counted::reset();
    braid::manual_clock clock;
    auto sleeper = [](counted) -> braid::task<> { co_await braid::sleep_for(1h); };
    braid::task<> kept = sleeper(counted{});
    {
        braid::event_loop loop{braid::interleaved, clock};
        loop.spawn(sleeper(counted{}));
        loop.spawn(kept);
        auto step = [&]() -> braid::task<> { co_await braid::yield(); };
        loop.run_until_complete(step()); // both sleep now
        CHECK(counted::alive == 2);
    }
    CHECK(counted::alive == 1);
    REQUIRE_THROWS_AS(kept.result(), braid::task_not_finished);
    kept = {};
    CHECK(counted::alive == 0);
}

TEST_CASE("an hour of timers on a manual clock runs at once", "[timer][clock]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int ticks = 0;
    std::function<void()> tick = [&] {
        if (++ticks < 3600) {
            loop.call_later(1s, tick);
        }
    };
    loop.call_later(1s, tick);
    const auto before = clock_type::now();
    loop.run();
    CHECK(ticks == 3600);
    CHECK(since_start(clock) == 1h);
    CHECK(clock_type::now() - before < 30s); // microseconds in a plain build
}

TEST_CASE("a million timers with random deadlines and cancellations fire as a model says",
          "[timer][model]") {
    constexpr int count = 1'000'000;
    std::mt19937_64 rng(20261128);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<braid::timer_handle> handles;
    handles.reserve(count);
    struct planned {
        std::int64_t deadline_ms;
        int id;
    };
    std::vector<planned> model;
    model.reserve(count);
    std::vector<int> fired;
    fired.reserve(count);
    std::vector<char> cancelled(count, 0);
    for (int id = 0; id < count; ++id) {
        const auto ms = static_cast<std::int64_t>(rng() % 100'000);
        handles.push_back(
            loop.call_later(std::chrono::milliseconds(ms), [&fired, id] { fired.push_back(id); }));
        model.push_back({ms, id});
        // Cancel some at once, some from a timer later on (while others fire).
        if (rng() % 4 == 0) {
            cancelled[static_cast<std::size_t>(id)] = handles.back().cancel() ? 1 : 0;
        }
    }
    // At 50 s, cancel a random set of the timers not yet due.
    std::vector<int> late;
    for (int i = 0; i < count / 8; ++i) {
        late.push_back(static_cast<int>(rng() % count));
    }
    loop.call_later(50'000ms - 1ns, [&] {
        for (int id : late) {
            auto& c = cancelled[static_cast<std::size_t>(id)];
            if (model[static_cast<std::size_t>(id)].deadline_ms >= 50'000 && c == 0) {
                c = handles[static_cast<std::size_t>(id)].cancel() ? 1 : 0;
                CHECK(c == 1);
            }
        }
    });
    loop.run();
    std::vector<planned> expected;
    for (const planned& p : model) {
        if (cancelled[static_cast<std::size_t>(p.id)] == 0) {
            expected.push_back(p);
        }
    }
    // Deadline order; equal deadlines in scheduling (id) order; the late
    // cancelling timer is scheduled after all of them.
    std::stable_sort(expected.begin(), expected.end(), [](const planned& a, const planned& b) {
        return a.deadline_ms < b.deadline_ms;
    });
    REQUIRE(fired.size() == expected.size());
    bool same = true;
    for (std::size_t i = 0; i < fired.size() && same; ++i) {
        same = fired[i] == expected[i].id;
    }
    CHECK(same);
    for (auto& h : handles) {
        CHECK_FALSE(h.cancel());
    }
}

// Timers made latest-first each move the earlier ones down the heap, so
// their cancellations are left in it and dropped in bulk once they outnumber
// the live timers.
TEST_CASE("cancelling most of many timers leaves the rest to fire in deadline order",
          "[timer][cancel]") {
    constexpr int count = 1'000;
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<braid::timer_handle> handles;
    std::vector<std::pair<std::chrono::nanoseconds, int>> fired;
    for (int i = count; i > 0; --i) {
        handles.push_back(loop.call_later(std::chrono::seconds(i), [&fired, &clock, i] {
            fired.emplace_back(since_start(clock), i);
        }));
    }
    std::vector<int> expected;
    for (int k = 0; k < count; ++k) {
        const int i = count - k; // handles[k] fires at i seconds
        if (i % 10 == 0) {
            expected.push_back(i);
        } else {
            CHECK(handles[static_cast<std::size_t>(k)].cancel());
        }
    }
    std::reverse(expected.begin(), expected.end());
    loop.run();
    REQUIRE(fired.size() == expected.size());
    for (std::size_t n = 0; n < fired.size(); ++n) {
        CHECK(fired[n].second == expected[n]);
        CHECK(fired[n].first == std::chrono::seconds(expected[n])); // no stop at a cancelled one
    }
    for (auto& h : handles) {
        CHECK_FALSE(h.cancel());
    }
}

TEST_CASE("with the real clock a sleep lasts at least its duration", "[timer][realtime]") {
    braid::event_loop loop;
    auto sleeper = [&]() -> braid::task<std::chrono::nanoseconds> {
        const auto start = loop.time();
        co_await braid::sleep_for(20ms);
        co_return loop.time() - start;
    };
    const auto slept = loop.run_until_complete(sleeper());
    CHECK(slept >= 20ms);
    CHECK(slept < 2s); // 200 ms is generous on a quiet machine; this never flakes
}

TEST_CASE("a loop waiting a second for a timer sleeps instead of spinning", "[timer][realtime]") {
    braid::event_loop loop;
    bool ran = false;
    loop.call_later(1s, [&] { ran = true; });
    const auto cpu_before = thread_cpu_time();
    const auto before = clock_type::now();
    loop.run();
    const auto cpu = thread_cpu_time() - cpu_before;
    CHECK(ran);
    CHECK(clock_type::now() - before >= 1s);
    CHECK(cpu < 50ms); // under 5 ms when the machine is quiet
}
