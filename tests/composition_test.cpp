// SPDX-License-Identifier: MIT
// when_all, when_any, wait_for and task_group: results, failures, the first
// failure cancelling the rest, children never outliving the wait, and the
// awaiting task's cancellation reaching every child. Deterministic: a manual
// clock.

#include <braid/braid.hpp>

#include "support/catch.hpp"
#include "support/counted.hpp"
#include "support/errors.hpp"

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using braid_test::contains;
using braid_test::log_errors;

namespace {

// Records how each task ended, by name, in order.
struct journal {
    std::vector<std::string> lines;
    void add(std::string s) { lines.push_back(std::move(s)); }
};

braid::task<int> after(std::chrono::seconds d, int value, journal* log = nullptr,
                       std::string name = {}) {
    try {
        co_await braid::sleep_for(d);
    } catch (const braid::cancelled&) {
        if (log != nullptr) {
            log->add(name + " cancelled");
        }
        throw;
    }
    if (log != nullptr) {
        log->add(name + " done");
    }
    co_return value;
}

braid::task<int> fail_after(std::chrono::seconds d, std::string what) {
    co_await braid::sleep_for(d);
    throw std::runtime_error(what);
}

braid::task<> void_after(std::chrono::seconds d) {
    co_await braid::sleep_for(d);
}

std::chrono::nanoseconds now(const braid::manual_clock& c) {
    return c.now().time_since_epoch();
}

} // namespace

TEST_CASE("when_all gives every result, in order, once all have finished", "[when_all]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto body = [&]() -> braid::task<> {
        auto [a, b, c] = co_await braid::when_all(after(3s, 1), after(1s, 2), void_after(2s));
        CHECK(a == 1);
        CHECK(b == 2);
        CHECK(std::is_same_v<decltype(c), std::monostate>);
        CHECK(now(clock) == 3s); // concurrently: the longest, not the sum
        std::vector<braid::task<int>> many;
        for (int i = 0; i < 10; ++i) {
            many.push_back(after(std::chrono::seconds(10 - i), i));
        }
        std::vector<int> all = co_await braid::when_all(std::move(many));
        CHECK(all == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        CHECK(now(clock) == 13s);
        std::vector<braid::task<>> voids;
        voids.push_back(void_after(1s));
        voids.push_back(void_after(2s));
        co_await braid::when_all(std::move(voids));
        CHECK(now(clock) == 15s);
        std::vector<int> none = co_await braid::when_all(std::vector<braid::task<int>>{});
        CHECK(none.empty());
    };
    loop.run_until_complete(body());
}

TEST_CASE("when_all, when_any and wait_for count tasks that finished before them at once, and "
          "take their failures as read",
          "[when_all]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> errors;
    log_errors(loop, errors);
    auto value = [](int v) -> braid::task<int> { co_return v; };
    auto body = [&]() -> braid::task<> {
        std::vector<braid::task<int>> done;
        done.push_back(value(1));
        done.push_back(value(2));
        done.push_back(fail_after(0s, "broken"));
        done.push_back(value(3));
        done.push_back(value(4));
        done.push_back(fail_after(0s, "rethrown by when_all"));
        done.push_back(fail_after(0s, "rethrown by wait_for"));
        for (braid::task<int>& t : done) {
            loop.spawn(t);
        }
        co_await braid::sleep_for(1s); // all have finished
        for (braid::task<int>& t : done) {
            REQUIRE(t.done());
        }
        const std::uint64_t rounds = loop.rounds();
        const auto [x, y] = co_await braid::when_all(std::move(done[0]), std::move(done[1]));
        CHECK(x == 1);
        CHECK(y == 2);
        std::vector<braid::task<int>> racers;
        racers.push_back(std::move(done[2]));
        racers.push_back(std::move(done[3]));
        const auto [index, v] = co_await braid::when_any(std::move(racers));
        CHECK(index == 1); // a finished failure does not win
        CHECK(v == 3);
        CHECK(loop.rounds() == rounds); // nothing had to wait: no step was taken
        // One finished, one running: when_all waits for the running one only.
        const auto [z, w] = co_await braid::when_all(std::move(done[4]), after(2s, 5));
        CHECK(z == 4);
        CHECK(w == 5);
        CHECK(now(clock) == 3s);
        // A failure that reaches the caller through the join does not reach
        // the loop's handler too, nor does a loser's.
        CHECK_THROWS_WITH(co_await braid::when_all(std::move(done[5])), "rethrown by when_all");
        CHECK_THROWS_WITH(co_await braid::wait_for(std::move(done[6]), 1s), "rethrown by wait_for");
    };
    loop.run_until_complete(body());
    loop.run();
    CHECK(errors.empty());
}

TEST_CASE("a child's own done callbacks run, in the order they were added, before and after "
          "the group or when_all learns of its ending",
          "[when_all][task_group]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> seen;
    auto body = [&]() -> braid::task<> {
        braid::task_group group{loop};
        braid::task<int> kept = after(1s, 7);
        kept.add_done_callback([&](braid::task<int>& t) {
            seen.push_back("before spawn: " + std::to_string(t.result()) + ", " +
                           std::to_string(group.running()) + " running");
        });
        group.spawn(kept);
        kept.add_done_callback([&](braid::task<int>& t) {
            seen.push_back("after spawn: " + std::to_string(t.result()) + ", " +
                           std::to_string(group.running()) + " running");
        });
        group.spawn(after(2s, 1));
        co_await group.wait();

        braid::task<int> first = after(1s, 3);
        first.add_done_callback([&](braid::task<int>& t) {
            seen.push_back("when_all child: " + std::to_string(t.result()));
        });
        auto [a, b] = co_await braid::when_all(std::move(first), after(2s, 4));
        CHECK(a == 3);
        CHECK(b == 4);
    };
    loop.run_until_complete(body());
    CHECK(seen == std::vector<std::string>{"before spawn: 7, 2 running",
                                           "after spawn: 7, 1 running", "when_all child: 3"});
}

TEST_CASE("a watched child that gets a callback, a name or its stop token afterwards still tells "
          "what watches it, first",
          "[when_all][task_group]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> seen;
    auto asks_for_its_stop_token = [&]() -> braid::task<int> {
        std::stop_token token = co_await braid::get_stop_token();
        co_await braid::sleep_for(1s);
        co_return token.stop_requested() ? -1 : 9;
    };
    auto body = [&]() -> braid::task<> {
        braid::task_group group{loop};
        braid::task<int> plain = after(1s, 5);
        group.spawn(plain); // its first callback: the group's
        plain.set_name("plain");
        plain.add_done_callback([&](braid::task<int>& t) {
            seen.push_back(std::string(t.name()) + ": " + std::to_string(t.result()) + ", " +
                           std::to_string(group.running()) + " running");
        });
        group.spawn(after(2s, 1));
        co_await group.wait();
        auto [a, b] = co_await braid::when_all(asks_for_its_stop_token(), after(2s, 4));
        CHECK(a == 9);
        CHECK(b == 4);
    };
    loop.run_until_complete(body());
    CHECK(seen == std::vector<std::string>{"plain: 5, 1 running"});
}

TEST_CASE("destroying a loop while when_all waits frees the when_all and every child, with their "
          "callbacks, without running them",
          "[when_all][lifetime]") {
    braid_test::counted::reset();
    braid::manual_clock clock;
    int callbacks_run = 0;
    auto child = [](braid_test::counted, int v) -> braid::task<int> {
        co_await braid::sleep_for(1h);
        co_return v;
    };
    auto all = [&]() -> braid::task<std::vector<int>> {
        std::vector<braid::task<int>> tasks;
        for (int i = 0; i < 6; ++i) {
            tasks.push_back(child(braid_test::counted{}, i));
            if (i % 2 == 0) {
                tasks.back().add_done_callback([&](braid::task<int>&) { ++callbacks_run; });
            }
        }
        braid::task<std::vector<int>> waiting = braid::when_all(std::move(tasks));
        co_return co_await std::move(waiting);
    };
    auto started = []() -> braid::task<> { co_return; };
    SECTION("only the loop owns the when_all") {
        {
            braid::event_loop loop{braid::interleaved, clock};
            loop.spawn(all());
            loop.spawn(
                braid::when_all(child(braid_test::counted{}, 1), child(braid_test::counted{}, 2)));
            loop.run_until_complete(started());
        }
        CHECK(braid_test::counted::alive == 0);
    }
    SECTION("the caller keeps the when_all past the loop") {
        std::optional<braid::task<std::vector<int>>> kept;
        std::optional<braid::task<std::tuple<int, int>>> pair;
        {
            braid::event_loop loop{braid::interleaved, clock};
            kept.emplace(all());
            pair.emplace(
                braid::when_all(child(braid_test::counted{}, 1), child(braid_test::counted{}, 2)));
            loop.spawn(*kept);
            loop.spawn(*pair);
            loop.run_until_complete(started());
        }
        // The loop let go of everything; the when_alls (and so their children) are left to
        // their objects.
        CHECK(braid_test::counted::alive == 8);
        kept.reset();
        pair.reset();
        CHECK(braid_test::counted::alive == 0);
    }
    CHECK(callbacks_run == 0);
}

TEST_CASE("when_all: the first failure cancels the others, which are awaited, then it is "
          "rethrown",
          "[when_all][errors]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    auto body = [&]() -> braid::task<> {
        try {
            co_await braid::when_all(after(10s, 1, &log, "slow"), fail_after(2s, "first"),
                                     fail_after(3s, "second"), after(1s, 4, &log, "fast"));
            FAIL("when_all should have thrown");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "first");
        }
        CHECK(now(clock) == 2s); // nobody waited for the slow one to finish sleeping
    };
    loop.run_until_complete(body());
    CHECK(log.lines == std::vector<std::string>{"fast done", "slow cancelled"});
    CHECK(loop.rounds() > 0);
}

TEST_CASE("when_all: a child ending cancelled counts as a failure", "[when_all][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::task<int> victim = after(10s, 1);
    braid::task<int>* v = &victim;
    loop.call_later(1s, [&] { v->cancel(); }); // v points into when_all's frame below
    auto body = [&]() -> braid::task<> {
        std::vector<braid::task<int>> tasks;
        tasks.push_back(std::move(victim));
        tasks.push_back(after(5s, 2));
        v = &tasks[0]; // the buffer moves into when_all with the vector
        co_await braid::when_all(std::move(tasks));
    };
    REQUIRE_THROWS_AS(loop.run_until_complete(body()), braid::cancelled);
}

TEST_CASE("when_any gives the first to succeed, and the others are cancelled and awaited",
          "[when_any]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    auto body = [&]() -> braid::task<> {
        std::vector<braid::task<int>> racers;
        racers.push_back(after(3s, 30, &log, "a"));
        racers.push_back(fail_after(1s, "broken"));
        racers.push_back(after(2s, 20, &log, "b"));
        racers.push_back(after(4s, 40, &log, "c"));
        auto [index, value] = co_await braid::when_any(std::move(racers));
        CHECK(index == 2);
        CHECK(value == 20);
        CHECK(now(clock) == 2s);
        std::vector<braid::task<>> voids;
        voids.push_back(void_after(5s));
        voids.push_back(void_after(1s));
        const std::size_t first = co_await braid::when_any(std::move(voids));
        CHECK(first == 1);
        auto [i, v] = co_await braid::when_any(after(2s, 1), void_after(1s));
        CHECK(i == 1);
        CHECK(v.index() == 1);
    };
    loop.run_until_complete(body());
    CHECK(log.lines == std::vector<std::string>{"b done", "a cancelled", "c cancelled"});
}

TEST_CASE("when_any rethrows the last failure when all fail, and refuses an empty vector",
          "[when_any][errors]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto all_fail = [&]() -> braid::task<> {
        std::vector<braid::task<int>> racers;
        racers.push_back(fail_after(3s, "last"));
        racers.push_back(fail_after(1s, "first"));
        co_await braid::when_any(std::move(racers));
    };
    REQUIRE_THROWS_WITH(loop.run_until_complete(all_fail()), "last");
    auto all_fail_variadic = [&]() -> braid::task<> {
        co_await braid::when_any(fail_after(1s, "first"), fail_after(2s, "last"));
    };
    REQUIRE_THROWS_WITH(loop.run_until_complete(all_fail_variadic()), "last");
    REQUIRE_THROWS_AS(loop.run_until_complete(braid::when_any(std::vector<braid::task<int>>{})),
                      braid::usage_error);
}

TEST_CASE("wait_for gives the result when the task is in time", "[wait_for]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    CHECK(loop.run_until_complete(braid::wait_for(after(1s, 5), 2s)) == 5);
    CHECK(now(clock) == 1s);
    REQUIRE_THROWS_WITH(loop.run_until_complete(braid::wait_for(fail_after(1s, "late"), 2s)),
                        "late");
    // The timer is gone: the loop has nothing left to wait for.
    loop.run();
    CHECK(now(clock) == 2s);
}

TEST_CASE("wait_for cancels a task that is too slow and throws timeout_error", "[wait_for]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    REQUIRE_THROWS_AS(loop.run_until_complete(braid::wait_for(after(10s, 1, &log, "slow"), 2s)),
                      braid::timeout_error);
    CHECK(log.lines == std::vector<std::string>{"slow cancelled"});
    CHECK(now(clock) == 2s);
}

TEST_CASE("wait_for on a task that catches the cancellation gives what the task ends with",
          "[wait_for][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto stubborn = [&]() -> braid::task<int> {
        try {
            co_await braid::sleep_for(10s);
        } catch (const braid::cancelled&) {
        }
        co_await braid::sleep_for(3s); // takes a while to clean up
        co_return -1;
    };
    CHECK(loop.run_until_complete(braid::wait_for(stubborn(), 2s)) == -1);
    CHECK(now(clock) == 5s); // it waited for the clean-up
    auto rethrows = [&]() -> braid::task<int> {
        try {
            co_await braid::sleep_for(10s);
        } catch (const braid::cancelled&) {
            throw std::logic_error("clean-up failed");
        }
        co_return 0;
    };
    REQUIRE_THROWS_WITH(loop.run_until_complete(braid::wait_for(rethrows(), 1s)),
                        "clean-up failed");
}

TEST_CASE("cancelling the task that awaits when_all, when_any or wait_for cancels every child, "
          "waits for them, then delivers braid::cancelled",
          "[cancel][when_all][when_any][wait_for]") {
    for (int which = 0; which < 3; ++which) {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        journal log;
        auto swallowing = [&](std::string name) -> braid::task<int> {
            try {
                co_await braid::sleep_for(1h);
            } catch (const braid::cancelled&) {
                log.add(name + " cleaning");
            }
            co_await braid::sleep_for(2s);
            log.add(name + " clean");
            co_return 0; // swallowed: the waiter is cancelled all the same
        };
        auto waiter = [&]() -> braid::task<int> {
            if (which == 0) {
                auto [a, b] = co_await braid::when_all(swallowing("a"), swallowing("b"));
                co_return a + b;
            }
            if (which == 1) {
                std::vector<braid::task<int>> v;
                v.push_back(swallowing("a"));
                v.push_back(swallowing("b"));
                co_return (co_await braid::when_any(std::move(v))).second;
            }
            co_return co_await braid::wait_for(swallowing("a"), 2h);
        };
        braid::task<int> w = waiter();
        loop.spawn(w);
        loop.call_later(1s, [&] { CHECK(w.cancel()); });
        loop.run();
        CHECK(w.cancelled());
        CHECK(now(clock) == 3s); // waited for the clean-ups
        if (which == 2) {
            CHECK(log.lines == std::vector<std::string>{"a cleaning", "a clean"});
        } else if (which == 1) {
            // a finishes its clean-up first and wins, which cancels b again, in
            // its own clean-up: when_any cancels whatever has not won.
            CHECK(log.lines == std::vector<std::string>{"a cleaning", "b cleaning", "a clean"});
        } else {
            CHECK(log.lines ==
                  std::vector<std::string>{"a cleaning", "b cleaning", "a clean", "b clean"});
        }
    }
}

TEST_CASE("a task_group waits for every child, and the first failure cancels the rest and is "
          "rethrown by wait",
          "[task_group]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    auto body = [&]() -> braid::task<> {
        braid::task_group group{loop};
        braid::task<int> kept = after(1s, 7, &log, "kept");
        CHECK(&group.spawn(kept) == &kept);
        group.spawn(after(2s, 1, &log, "forgotten"));
        CHECK(group.running() == 2);
        co_await group.wait();
        CHECK(kept.result() == 7);
        CHECK(group.running() == 0);
        group.spawn(after(10s, 1, &log, "slow"));
        group.spawn(fail_after(3s, "broken"));
        try {
            co_await group.wait();
            FAIL("wait should have thrown");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "broken");
        }
        CHECK(now(clock) == 5s);
        // Reusable once the failure was reported.
        group.spawn(after(1s, 1, &log, "again"));
        co_await group.wait();
    };
    loop.run_until_complete(body());
    CHECK(log.lines ==
          std::vector<std::string>{"kept done", "forgotten done", "slow cancelled", "again done"});
}

TEST_CASE("in a task_group a child ending cancelled is not a failure", "[task_group][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto body = [&]() -> braid::task<int> {
        braid::task_group group{loop};
        braid::task<int> a = after(5s, 1);
        group.spawn(a);
        group.spawn(after(1s, 2));
        loop.call_later(1s, [&] { a.cancel(); });
        co_await group.wait(); // does not throw
        CHECK(a.cancelled());
        co_return 3;
    };
    CHECK(loop.run_until_complete(body()) == 3);
}

TEST_CASE("cancelling the task in task_group::wait cancels the children first", "[task_group]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    auto body = [&]() -> braid::task<> {
        braid::task_group group{loop};
        group.spawn(after(1h, 1, &log, "x"));
        group.spawn(after(1h, 2, &log, "y"));
        co_await group.wait();
    };
    braid::task<> b = body();
    loop.spawn(b);
    loop.call_later(1s, [&] { b.cancel(); });
    loop.run();
    CHECK(b.cancelled());
    CHECK(log.lines == std::vector<std::string>{"x cancelled", "y cancelled"});
}

TEST_CASE("destroying a task_group cancels its running children, which finish on the loop, and "
          "a late failure goes to the exception handler",
          "[task_group][lifetime]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    journal log;
    std::vector<std::string> errors;
    log_errors(loop, errors);
    auto fails_on_cancel = [&]() -> braid::task<> {
        try {
            co_await braid::sleep_for(1h);
        } catch (const braid::cancelled&) {
        }
        co_await braid::sleep_for(1s);
        throw std::runtime_error("failed while cleaning up");
    };
    {
        braid::task_group group{loop};
        group.spawn(after(1h, 1, &log, "child"));
        group.spawn(fails_on_cancel());
        auto started = []() -> braid::task<> { co_return; };
        loop.run_until_complete(started()); // the children have begun
    }
    loop.run();
    CHECK(log.lines == std::vector<std::string>{"child cancelled"});
    CHECK(errors == std::vector<std::string>{"failed while cleaning up"});
}

TEST_CASE("task_group misuse: spawning a started task, two waiters at once",
          "[task_group][misuse]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::task_group group{loop};
    braid::task<int> t = after(1s, 1);
    loop.spawn(t);
    REQUIRE_THROWS_WITH(group.spawn(t), contains("braid::task_group::spawn"));
    group.spawn(after(5s, 1));
    auto waiter = [&]() -> braid::task<> { co_await group.wait(); };
    braid::task<> first = waiter();
    loop.spawn(first);
    auto second = [&]() -> braid::task<> {
        co_await braid::yield();
        REQUIRE_THROWS_AS(co_await group.wait(), braid::usage_error);
    };
    loop.run_until_complete(second());
    loop.run();
    CHECK(first.done());
}

// Destroying a loop frees the children of a task_group it owns; the task
// holding the group, kept by the caller, is abandoned, and when its frame goes
// later ~task_group must not touch the freed children (nor the freed loop).
TEST_CASE("a task kept after its loop is destroyed frees its task_group, whose children the loop "
          "freed",
          "[task_group][lifetime]") {
    braid_test::counted::reset();
    braid::manual_clock clock;
    std::optional<braid::task<>> owner; // the caller keeps the task holding the group
    {
        braid::event_loop loop{braid::interleaved, clock};
        auto child = [](braid_test::counted) -> braid::task<> { co_await braid::sleep_for(1h); };
        auto body = [&]() -> braid::task<> {
            braid::task_group group{loop};
            group.spawn(child(braid_test::counted{})); // a child only the loop owns
            co_await braid::sleep_for(1h);
        };
        owner.emplace(body());
        loop.spawn(*owner);
        auto started = []() -> braid::task<> { co_return; };
        loop.run_until_complete(started()); // the owner and its child have begun
    }                                       // the loop frees the child; the owner is abandoned
    owner.reset();                          // ~task_group cancels the child it no longer has
    CHECK(braid_test::counted::alive == 0);
}

TEST_CASE("spawning in a task_group whose loop was destroyed is a usage_error",
          "[task_group][lifetime][misuse]") {
    std::optional<braid::task_group> group;
    {
        braid::event_loop loop;
        group.emplace(loop);
    }
    auto child = []() -> braid::task<> { co_return; };
    REQUIRE_THROWS_AS(group->spawn(child()), braid::usage_error);
    REQUIRE_THROWS_WITH(group->spawn(child()), contains("event_loop has been destroyed"));
}
