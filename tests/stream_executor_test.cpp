// SPDX-License-Identifier: MIT
// braid::stream_executor: the eight behaviours of its map (non-blocking,
// exactly bounded, parallel, ordered, lazy to the end, errors, pipelines,
// thread safety), its results range, shutdown and bad input. Randomized
// stress is in stream_executor_stress_test.cpp.

#include <braid/stream_executor.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/stream_inputs.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace braid_test;
using braid::stream_executor;

namespace {

constexpr auto identity = [](std::uint64_t x) { return x; };

struct f_failure : std::runtime_error {
    explicit f_failure(std::uint64_t at)
        : std::runtime_error("f failed at " + std::to_string(at)), index(at) {}
    std::uint64_t index;
};

} // namespace

// --- The results range ---------------------------------------------------------

using int_results = braid::stream_results<int>;
static_assert(std::ranges::input_range<int_results>);
static_assert(!std::ranges::view<int_results>);
static_assert(!std::ranges::forward_range<int_results>);
static_assert(std::movable<int_results> && !std::copyable<int_results>);
static_assert(std::ranges::viewable_range<int_results&>);
static_assert(std::ranges::viewable_range<int_results>);
static_assert(std::same_as<std::ranges::range_reference_t<int_results>, int&&>);

TEST_CASE("results work with range-for and with take on an lvalue and on an rvalue",
          "[stream_executor]") {
    stream_executor ex{2};
    const auto square = [](int x) { return x * x; };
    const std::vector<int> expected{0, 1, 4, 9, 16, 25, 36, 49, 64, 81};

    std::vector<int> from_rvalue;
    for (int v : ex.map(square, std::views::iota(0)) | std::views::take(10))
        from_rvalue.push_back(v);
    CHECK(from_rvalue == expected);

    auto results = ex.map(square, std::views::iota(0));
    std::vector<int> from_lvalue;
    for (int v : results | std::views::take(5))
        from_lvalue.push_back(v);
    for (int v : results | std::views::take(5))
        from_lvalue.push_back(v); // continues where it stopped
    CHECK(from_lvalue == expected);

    std::vector<int> all;
    for (auto&& v : ex.map(square, std::vector<int>{1, 2, 3}))
        all.push_back(v);
    CHECK(all == std::vector<int>{1, 4, 9});
}

TEST_CASE("reading past the end of the results is a usage_error", "[stream_executor]") {
    stream_executor ex{1};
    auto results = ex.map(identity, std::vector<std::uint64_t>{7}, 1);
    auto it = results.begin();
    CHECK(*it == 7u);
    ++it;
    REQUIRE(it == results.end());
    CHECK_THROWS_AS(*it, braid::usage_error);
    CHECK_THROWS_WITH(*it, Catch::Contains("dereferenced at the end"));
}

TEST_CASE("take(n) never waits for result n+1", "[stream_executor]") {
    gate never;
    // Items from 3 on never come while this test reads: reading a fourth
    // result would hang (and the watchdog would say so).
    take_log log(10);
    stream_executor ex{2};
    watchdog dog("take(n) never waits for result n+1");
    std::vector<std::uint64_t> got;
    {
        for (auto v : ex.map(identity, taking_input(log, {.hold = &never, .hold_from = 3})) |
                          std::views::take(3)) {
            got.push_back(v);
        }
        CHECK(got == std::vector<std::uint64_t>{0, 1, 2});
        never.open(); // so shutdown can join the producer
    }
}

TEST_CASE("a moved results object goes on where the old one stopped", "[stream_executor]") {
    stream_executor ex{2};
    auto a = ex.map(identity, std::views::iota(std::uint64_t{0}, std::uint64_t{6}), 2);
    auto it = a.begin();
    CHECK(*it == 0u);
    ++it;
    braid::stream_results<std::uint64_t> b = std::move(a);
    CHECK(a.begin() == a.end()); // NOLINT(bugprone-use-after-move): moved-from is empty
    std::vector<std::uint64_t> rest;
    for (auto v : b)
        rest.push_back(v);
    CHECK(rest == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    braid::stream_results<std::uint64_t> empty;
    CHECK(empty.begin() == empty.end());
}

// --- 1. Non-blocking ---------------------------------------------------------------

TEST_CASE("map returns without reading the input, which a producer thread reads",
          "[stream_executor]") {
    take_log log(10);
    gate door;
    std::mutex mutex;
    std::set<std::thread::id> f_threads;
    auto record = [&](std::uint64_t x) {
        std::lock_guard lock(mutex);
        f_threads.insert(std::this_thread::get_id());
        return x;
    };
    stream_executor ex{2};
    // Taking the very first item blocks until the door opens: if map read
    // any input itself, it would not return (and the watchdog would fire).
    watchdog dog("map returns without reading the input");
    auto results = ex.map(record, taking_input(log, {.hold = &door, .hold_from = 0}), 10);
    CHECK(log.taken.load() == 0);
    door.open();
    const auto got = read_counted(results, 20, log);
    CHECK(got.size() == 20);
    const std::thread::id reader = log.reader.load();
    CHECK(reader != std::this_thread::get_id());
    std::lock_guard lock(mutex);
    CHECK(f_threads.count(reader) == 0); // the producer is not a pool worker
}

TEST_CASE("map over an infinite input returns at once", "[stream_executor]") {
    stream_executor ex{2};
    auto evens = ex.map([](long x) { return 2 * x; }, std::views::iota(0L), braid::unbounded);
    auto it = evens.begin();
    CHECK(*it == 0);
    ++it;
    CHECK(*it == 2);
}

// --- 2. Bounded --------------------------------------------------------------------

TEST_CASE("inputs taken minus results consumed never exceeds buffer_size, and reaches it",
          "[stream_executor]") {
    for (std::size_t threads : {1u, 2u, 4u}) {
        for (std::uint64_t buffer : {1u, 2u, 3u, 8u, 64u}) {
            INFO("threads " << threads << ", buffer " << buffer);
            take_log log(buffer); // outlives the executor, whose producer may still touch it
            stream_executor ex{threads};
            auto results = ex.map(identity, taking_input(log, {}), buffer);
            auto it = results.begin();
            bool reached = true;
            for (std::uint64_t k = 0; k < 12; ++k) {
                log.requested.store(k + 1);
                REQUIRE(it != results.end());
                REQUIRE(*it == k);
                ++it;
                // Paused: the producer fills the buffer exactly, then waits.
                reached = reached && wait_until([&] { return log.taken.load() == k + 1 + buffer; });
                if (k % 4 == 0)
                    std::this_thread::sleep_for(2ms); // time to overshoot, if it would
            }
            CHECK(reached);
            CHECK_FALSE(log.over.load());
            CHECK(log.largest_gap.load() == buffer);
        }
    }
}

TEST_CASE("the bound holds when the input does its work in operator*", "[stream_executor]") {
    stream_executor ex{2};
    std::atomic<std::uint64_t> made{0};
    std::atomic<std::uint64_t> requested{0};
    std::atomic<bool> over{false};
    constexpr std::uint64_t buffer = 5;
    auto input = std::views::iota(std::uint64_t{0}) | std::views::transform([&](std::uint64_t i) {
                     const std::uint64_t count = made.fetch_add(1) + 1;
                     if (count > requested.load() + buffer)
                         over = true;
                     return i;
                 });
    auto results = ex.map(identity, input, buffer);
    auto it = results.begin();
    for (std::uint64_t k = 0; k < 10; ++k) {
        requested.store(k + 1);
        REQUIRE(*it == k);
        ++it;
        CHECK(wait_until([&] { return made.load() == k + 1 + buffer; }));
    }
    CHECK_FALSE(over.load());
}

TEST_CASE("unbounded reads the whole input ahead of the consumer", "[stream_executor]") {
    take_log log(braid_test::no_index / 2);
    stream_executor ex{2};
    auto results = ex.map(identity, taking_input(log, {.size = 5000}), braid::unbounded);
    CHECK(wait_until([&] { return log.taken.load() == 5000; }));
    std::uint64_t sum = 0;
    for (auto v : results)
        sum += v;
    CHECK(sum == 4999u * 5000u / 2);
}

// --- Inputs read by position -------------------------------------------------------

namespace {

// An input element that notes each copy made of it: a map reads a contiguous
// input by position, copying each element once, on the worker that claims it.
struct noted_element {
    struct notes {
        explicit notes(std::uint64_t buffer) : log(buffer) {}
        take_log log;
        std::atomic<std::uint64_t> copies{0};
        std::uint64_t throw_at = no_index; // copying this element throws
        gate* hold = nullptr;              // copying element hold_at waits for it
        std::uint64_t hold_at = no_index;
        std::atomic<bool> held_copy_done{false};
        std::mutex mutex;
        std::set<std::thread::id> copied_on;
    };

    noted_element(notes& n, std::uint64_t i) : notes_(&n), index(i) {}
    noted_element(const noted_element& other) : notes_(other.notes_), index(other.index) {
        if (index == notes_->hold_at)
            (void)notes_->hold->wait();
        if (index == notes_->throw_at)
            throw input_failure(index);
        notes_->log.record_take(notes_->copies.fetch_add(1) + 1);
        if (index == notes_->hold_at)
            notes_->held_copy_done = true;
        std::lock_guard lock(notes_->mutex);
        notes_->copied_on.insert(std::this_thread::get_id());
    }
    noted_element(noted_element&&) noexcept = default;
    noted_element& operator=(const noted_element&) = delete;
    noted_element& operator=(noted_element&&) = delete;

    notes* notes_;
    std::uint64_t index;
};

std::vector<noted_element> noted_elements(noted_element::notes& n, std::uint64_t count) {
    std::vector<noted_element> v;
    v.reserve(count);
    for (std::uint64_t i = 0; i < count; ++i)
        v.emplace_back(n, i);
    return v;
}

constexpr auto index_of = [](const noted_element& e) { return e.index; };

} // namespace

TEST_CASE("a contiguous input is read on the workers by position, within the bound, and "
          "reaches it",
          "[stream_executor]") {
    for (std::size_t threads : {1u, 2u, 4u}) {
        for (std::uint64_t buffer : {1u, 3u, 8u, 64u}) {
            INFO("threads " << threads << ", buffer " << buffer);
            noted_element::notes notes(buffer);
            const std::vector<noted_element> input = noted_elements(notes, 200);
            std::mutex mutex;
            std::set<std::thread::id> f_threads;
            stream_executor ex{threads};
            auto results = ex.map(
                [&](const noted_element& e) {
                    std::lock_guard lock(mutex);
                    f_threads.insert(std::this_thread::get_id());
                    return e.index;
                },
                input, buffer);
            auto it = results.begin();
            bool reached = true;
            for (std::uint64_t k = 0; k < 12; ++k) {
                notes.log.requested.store(k + 1);
                REQUIRE(it != results.end());
                REQUIRE(*it == k);
                ++it;
                // Paused: the workers read up to the bound exactly, then wait.
                reached =
                    reached && wait_until([&] { return notes.copies.load() == k + 1 + buffer; });
                if (k % 4 == 0)
                    std::this_thread::sleep_for(2ms); // time to overshoot, if it would
            }
            CHECK(reached);
            CHECK_FALSE(notes.log.over.load());
            CHECK(notes.log.largest_gap.load() == buffer);
            std::uint64_t expected = 12;
            for (; it != results.end(); ++it)
                CHECK(*it == expected++);
            CHECK(expected == 200);
            CHECK(notes.copies.load() == 200); // each element copied once
            std::lock_guard lock(mutex);
            for (const std::thread::id& id : notes.copied_on)
                CHECK(f_threads.count(id) == 1); // on a worker, never the reader or producer
        }
    }
}

TEST_CASE("an iota view is read by position too, lvalue or rvalue, alone or zipped",
          "[stream_executor]") {
    stream_executor ex{2};
    const auto squares = [](long x) { return x * x; };
    std::vector<long> got;
    for (long v : ex.map(squares, std::views::iota(0L, 1000L), 7))
        got.push_back(v);
    REQUIRE(got.size() == 1000);
    for (long i = 0; i < 1000; ++i)
        CHECK(got[static_cast<std::size_t>(i)] == i * i);

    const auto numbers = std::views::iota(3, 9);
    const std::vector<int> tens{10, 20, 30, 40};
    std::vector<int> sums;
    for (int v : ex.map([](int a, int b) { return a + b; }, numbers, tens, 2))
        sums.push_back(v);
    CHECK(sums == std::vector<int>{13, 24, 35, 46});
}

TEST_CASE("an exception copying an element read by position is rethrown at its position",
          "[stream_executor]") {
    noted_element::notes notes(4);
    notes.throw_at = 5;
    stream_executor ex{2};
    auto results = ex.map(index_of, noted_elements(notes, 50), 4);
    auto it = results.begin();
    for (std::uint64_t k = 0; k < 5; ++k) {
        REQUIRE(*it == k);
        ++it;
    }
    CHECK_THROWS_AS(it == results.end(), input_failure);
    CHECK(it == results.end()); // the range ends there
}

TEST_CASE("dropping a map read by position waits for the copy in progress, then its owned input "
          "goes",
          "[stream_executor]") {
    noted_element::notes notes(4);
    gate door;
    notes.hold = &door;
    notes.hold_at = 2;
    stream_executor ex{2};
    watchdog dog("dropping a map read by position");
    {
        auto results = ex.map(index_of, noted_elements(notes, 50), 4);
        auto it = results.begin();
        CHECK(*it == 0u);
        ++it;
        CHECK(*it == 1u);
        // A worker is now copying element 2, which waits for the door.
        REQUIRE(wait_until([&] { return notes.copies.load() >= 2; }));
        std::thread opener([&] {
            std::this_thread::sleep_for(50ms);
            door.open();
        });
        struct join_on_exit {
            std::thread& t;
            ~join_on_exit() { t.join(); }
        } join{opener};
        // Dropping waits for that copy (as for a running f), not for more.
    }
    CHECK(notes.held_copy_done.load());
    // The input, a temporary vector the map owns, is destroyed by its
    // producer thread once no worker reads it; AddressSanitizer checks that
    // no copy reads it afterwards.
}

TEST_CASE("an input whose window would be too large for reading by position is read by the "
          "producer",
          "[stream_executor]") {
    // A window (the smaller of the input's size and the buffer) of more than
    // 65,536 items: the producer reads it, in order, and the results are the
    // same.
    noted_element::notes notes(braid_test::no_index / 2);
    stream_executor ex{2};
    std::mutex mutex;
    std::set<std::thread::id> f_threads;
    auto results = ex.map(
        [&](const noted_element& e) {
            std::lock_guard lock(mutex);
            f_threads.insert(std::this_thread::get_id());
            return e.index;
        },
        noted_elements(notes, 70'000), braid::unbounded);
    std::uint64_t expected = 0;
    std::uint64_t wrong = 0;
    for (std::uint64_t v : results)
        wrong += v == expected++ ? 0 : 1;
    CHECK(wrong == 0);
    CHECK(expected == 70'000);
    std::lock_guard lock(mutex);
    REQUIRE(notes.copied_on.size() == 1);
    CHECK(f_threads.count(*notes.copied_on.begin()) == 0); // the producer thread
}

// --- 3. Parallel -------------------------------------------------------------------

TEST_CASE("up to thread_count calls of f run at once, and never more", "[stream_executor]") {
    for (std::size_t threads : {1u, 2u, 4u}) {
        INFO("threads " << threads);
        stream_executor ex{threads};
        std::atomic<std::size_t> running{0};
        std::atomic<std::size_t> most{0};
        std::atomic<bool> all_met{true};
        auto f = [&](std::uint64_t x) {
            const std::size_t now = running.fetch_add(1) + 1;
            std::size_t seen = most.load();
            while (now > seen && !most.compare_exchange_weak(seen, now)) {
            }
            // The first calls wait until `threads` of them run together.
            if (x < threads && !wait_until([&] { return most.load() >= threads; }))
                all_met = false;
            running.fetch_sub(1);
            return x;
        };
        std::uint64_t sum = 0;
        for (auto v : ex.map(f, std::views::iota(std::uint64_t{0}, std::uint64_t{50}), 16))
            sum += v;
        CHECK(sum == 49u * 50u / 2);
        CHECK(all_met.load());
        CHECK(most.load() == threads);
    }
}

// --- 4. Ordered --------------------------------------------------------------------

TEST_CASE("results come out in input order whatever order they finish in", "[stream_executor]") {
    stream_executor ex{4};
    // Item 0 finishes last among the first four: it waits for items 1..3.
    std::atomic<int> finished{0};
    auto f = [&](std::uint64_t x) {
        if (x == 0)
            (void)wait_until([&] { return finished.load() >= 3; });
        if (x % 7 == 3)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        finished.fetch_add(1);
        return x;
    };
    std::vector<std::uint64_t> got;
    for (auto v : ex.map(f, std::views::iota(std::uint64_t{0}, std::uint64_t{300}), 32))
        got.push_back(v);
    std::vector<std::uint64_t> expected(300);
    std::iota(expected.begin(), expected.end(), std::uint64_t{0});
    CHECK(got == expected);
}

// --- 5. Lazy to the end ------------------------------------------------------------

TEST_CASE("dropping the results stops the producer and drops work not yet started",
          "[stream_executor]") {
    constexpr std::uint64_t buffer = 20;
    std::atomic<std::uint64_t> calls{0};
    take_log log(buffer);
    std::uint64_t calls_at_drop = 0;
    {
        stream_executor ex{2};
        {
            auto results = ex.map(
                [&](std::uint64_t x) {
                    calls.fetch_add(1);
                    std::this_thread::sleep_for(std::chrono::microseconds(300));
                    return x;
                },
                taking_input(log, {}), buffer);
            CHECK(read_counted(results, 5, log).size() == 5);
        }
        // The drop waited for running calls of f; none starts after it.
        calls_at_drop = calls.load();
    } // the executor joins its producer and workers
    CHECK(calls.load() == calls_at_drop);
    CHECK(log.taken.load() <= 5 + buffer);
    CHECK(calls.load() <= log.taken.load());
    CHECK_FALSE(log.over.load());
}

TEST_CASE("dropping the results never blocks on an owned input", "[stream_executor]") {
    take_log log(4);
    gate door;
    stream_executor ex{2};
    watchdog dog("dropping the results never blocks on an owned input");
    {
        auto results = ex.map(identity, taking_input(log, {.hold = &door, .hold_from = 3}), 4);
        CHECK(read_counted(results, 3, log).size() == 3);
        // The producer is now stuck taking item 3; dropping must not wait.
    }
    CHECK(log.taken.load() == 3);
    door.open(); // lets the executor's destructor join the producer
}

TEST_CASE("an lvalue input may be destroyed right after its results are dropped",
          "[stream_executor]") {
    stream_executor ex{2};
    for (int round = 0; round < 20; ++round) {
        take_log log(3);
        std::atomic<int> inside{0};
        auto input = std::make_unique<taking_input>(
            log,
            input_options{.delay = std::chrono::microseconds(round % 3 * 100), .inside = &inside});
        {
            auto results = ex.map(identity, *input, 3);
            CHECK(read_counted(results, static_cast<std::size_t>(round % 4), log).size() ==
                  static_cast<std::size_t>(round % 4));
        }
        CHECK(inside.load() == 0); // the producer has let go of it
        input.reset();             // AddressSanitizer would see a later use
    }
}

TEST_CASE("dropping a stage does not wait for an lvalue braid input it reads",
          "[stream_executor]") {
    stream_executor ex{2};
    gate door;
    watchdog dog("dropping a stage does not wait for an lvalue braid input");
    auto upstream = ex.map(
        [&](std::uint64_t x) {
            if (x >= 2)
                (void)door.wait();
            return x;
        },
        std::views::iota(std::uint64_t{0}), 1);
    {
        auto downstream = ex.map(identity, upstream, 1);
        auto it = downstream.begin();
        CHECK(*it == 0u);
        ++it;
        CHECK(*it == 1u);
        // downstream's producer now waits inside `upstream` for item 2, which
        // waits for the door: dropping downstream must interrupt that wait.
    }
    door.open();
    // upstream is still usable and goes on where downstream stopped: at the
    // last item downstream took (1, if it had not yet asked for item 2).
    auto it = upstream.begin();
    REQUIRE(it != upstream.end());
    CHECK(*it >= 1u);
}

TEST_CASE("items left in a dropped map are destroyed exactly once", "[stream_executor]") {
    atomic_counted::live().store(0);
    {
        stream_executor ex{2};
        for (int round = 0; round < 10; ++round) {
            auto results =
                ex.map([](const atomic_counted& c) { return atomic_counted(c.value * 2); },
                       std::views::iota(0) |
                           std::views::transform([](int i) { return atomic_counted(i); }),
                       16);
            int k = 0;
            for (const atomic_counted& c : results | std::views::take(round))
                CHECK(c.value == 2 * k++);
        }
        // Read by position: every position is published at once, far more
        // than the buffer's window, and only the claimed ones hold results.
        for (int round = 0; round < 10; ++round) {
            auto results = ex.map([](int i) { return atomic_counted(i * 2); },
                                  std::views::iota(0, 1'000'000), 4);
            int k = 0;
            for (const atomic_counted& c : results | std::views::take(round))
                CHECK(c.value == 2 * k++);
            // Let the workers fill the window before the drop.
            std::this_thread::sleep_for(std::chrono::milliseconds(round % 3));
        }
    }
    CHECK(atomic_counted::live().load() == 0);
}

TEST_CASE("the executor's destructor joins every thread it made", "[stream_executor]") {
    const std::size_t before = baseline_threads();
    {
        stream_executor ex{3};
        std::vector<braid::stream_results<std::uint64_t>> live;
        for (int i = 0; i < 5; ++i)
            live.push_back(ex.map(identity, std::views::iota(std::uint64_t{0}), 4));
        for (auto& r : live)
            CHECK(*r.begin() == 0u);
        auto done = ex.submit([] { return 1; });
        CHECK(done.get() == 1);
        live.clear();
    }
    CHECK(threads_settle_to(before));
}

// --- 6. Errors ---------------------------------------------------------------------

TEST_CASE("an exception from f is rethrown at its position and ends the range",
          "[stream_executor]") {
    stream_executor ex{3};
    auto results = ex.map(
        [](std::uint64_t x) {
            if (x == 7)
                throw f_failure(x);
            return x;
        },
        std::views::iota(std::uint64_t{0}), 4);
    std::vector<std::uint64_t> got;
    auto it = results.begin();
    try {
        for (; it != results.end(); ++it)
            got.push_back(*it);
        FAIL("no exception");
    } catch (const f_failure& e) {
        CHECK(e.index == 7u);
    }
    CHECK(got == std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6});
    CHECK(it == results.end());
}

TEST_CASE("an exception from the input is rethrown at its position", "[stream_executor]") {
    for (int where = 0; where < 3; ++where) {
        INFO("where " << where);
        take_log log(3);
        stream_executor ex{2}; // after log: its producer may touch log until shutdown
        input_options options{.size = 100};
        if (where == 0)
            options.throw_on_take = 0; // begin()
        if (where == 1)
            options.throw_on_take = 5; // ++
        if (where == 2)
            options.throw_on_read = 5; // operator*
        const std::uint64_t at = where == 0 ? 0 : 5;
        auto results = ex.map(identity, taking_input(log, options), 3);
        std::vector<std::uint64_t> got;
        try {
            for (auto v : results)
                got.push_back(v);
            FAIL("no exception");
        } catch (const input_failure& e) {
            CHECK(e.index == at);
        }
        CHECK(got.size() == at);
        CHECK(results.begin() == results.end());
    }
}

TEST_CASE("an exception from f before the end of a finite input is not lost", "[stream_executor]") {
    stream_executor ex{2};
    const std::vector<int> input{1, 2, 3};
    auto results = ex.map(
        [](int x) {
            if (x == 3)
                throw std::domain_error("three");
            return x;
        },
        input);
    std::vector<int> got;
    CHECK_THROWS_AS(
        [&] {
            for (int v : results)
                got.push_back(v);
        }(),
        std::domain_error);
    CHECK(got == std::vector<int>{1, 2});
}

// --- 7. Pipelines --------------------------------------------------------------------

TEST_CASE("a pipeline deeper than the pool, with buffer 1, on one executor completes",
          "[stream_executor]") {
    watchdog dog("pipeline deeper than the pool");
    for (std::size_t threads : {1u, 2u}) {
        stream_executor ex{threads};
        auto inc = [](long x) { return x + 1; };
        auto stages = ex.map(
            inc, ex.map(inc, ex.map(inc, ex.map(inc, std::views::iota(0L, 300L), 1), 1), 1), 1);
        long sum = 0;
        long count = 0;
        for (long v : stages) {
            sum += v;
            ++count;
        }
        CHECK(count == 300);
        CHECK(sum == 299L * 300L / 2 + 4 * 300L);
    }
}

TEST_CASE("each stage of a buffer-1 pipeline reads exactly one item ahead", "[stream_executor]") {
    take_log source(1), middle(1), last(1);
    std::atomic<int> calls[3]{};
    auto stage = [&](int i) {
        return [&, i](std::uint64_t x) {
            calls[i].fetch_add(1);
            return x;
        };
    };
    stream_executor ex{2}; // after what its maps touch: producers may outlive their results
    auto s1 = ex.map(stage(0), taking_input(source, {}), 1);
    auto s2 = ex.map(stage(1), tapped(std::move(s1), middle, &source), 1);
    auto s3 = ex.map(stage(2), tapped(std::move(s2), last, &middle), 1);
    CHECK(read_counted(s3, 2, last).size() == 2);
    // With the consumer paused after two results, each stage fills up to its
    // bound: 2 + 1 taken by the last stage, 3 + 1 by the middle, 4 + 1 source.
    CHECK(wait_until(
        [&] { return calls[2].load() == 3 && calls[1].load() == 4 && calls[0].load() == 5; }));
    std::this_thread::sleep_for(5ms);
    CHECK(calls[2].load() == 3);
    CHECK(calls[1].load() == 4);
    CHECK(calls[0].load() == 5);
    CHECK_FALSE(source.over.load());
    CHECK_FALSE(middle.over.load());
    CHECK_FALSE(last.over.load());
}

TEST_CASE("an error deep in a pipeline reaches the reader at its position", "[stream_executor]") {
    stream_executor ex{1};
    auto first = ex.map(
        [](long x) {
            if (x == 42)
                throw f_failure(static_cast<std::uint64_t>(x));
            return x;
        },
        std::views::iota(0L), 2);
    auto second = ex.map([](long x) { return x * 10; }, std::move(first), 2);
    long expected = 0;
    try {
        for (long v : second) {
            CHECK(v == expected * 10);
            ++expected;
        }
        FAIL("no exception");
    } catch (const f_failure& e) {
        CHECK(e.index == 42u);
    }
    CHECK(expected == 42);
}

// --- 8. Thread safety -------------------------------------------------------------

TEST_CASE("many results objects and submitters share one executor", "[stream_executor]") {
    stream_executor ex{3};
    std::atomic<int> wrong{0};
    std::vector<std::thread> users;
    for (int u = 0; u < 4; ++u) {
        users.emplace_back([&, u] {
            for (int round = 0; round < 6; ++round) {
                const long n = 200 + 50 * u;
                long sum = 0;
                for (long v :
                     ex.map([](long x) { return x * 3; }, std::views::iota(0L, n), 1 + round * 5))
                    sum += v;
                if (sum != 3 * n * (n - 1) / 2)
                    wrong.fetch_add(1);
            }
        });
    }
    for (int s = 0; s < 2; ++s) {
        users.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                if (ex.submit([i] { return i * 2; }).get() != i * 2)
                    wrong.fetch_add(1);
            }
        });
    }
    for (auto& t : users)
        t.join();
    CHECK(wrong.load() == 0);
}

// --- Zipped inputs ---------------------------------------------------------------

TEST_CASE("map over several inputs zips them and stops at the shortest", "[stream_executor]") {
    stream_executor ex{2};
    const std::vector<int> a{1, 2, 3, 4};
    std::vector<int> got;
    for (int v : ex.map([](int x, long y, int z) { return x * 100 + static_cast<int>(y) * 10 + z; },
                        a, std::views::iota(5L), std::vector<int>{7, 8, 9}))
        got.push_back(v);
    CHECK(got == std::vector<int>{157, 268, 379});

    got.clear();
    for (int v : ex.map([](int x, int y) { return x + y; }, a, a, 1))
        got.push_back(v);
    CHECK(got == std::vector<int>{2, 4, 6, 8});

    got.clear();
    for (int v :
         ex.map([](int x, int y) { return x * y; }, a, std::views::iota(0), braid::unbounded))
        got.push_back(v);
    CHECK(got == std::vector<int>{0, 2, 6, 12});
}

TEST_CASE("map over an empty input, or zipped with one, gives no result and never calls f",
          "[stream_executor]") {
    stream_executor ex{2};
    std::atomic<int> calls{0};
    const auto count = [&](int x) {
        calls.fetch_add(1);
        return x;
    };
    auto none = ex.map(count, std::vector<int>{});
    CHECK(none.begin() == none.end());
    auto zipped = ex.map([&](int x, long y) { return count(x) + static_cast<int>(y); },
                         std::views::iota(0), std::vector<long>{});
    CHECK(zipped.begin() == zipped.end());
    auto chained = ex.map(count, ex.map(count, std::vector<int>{}, 1), 1);
    CHECK(chained.begin() == chained.end());
    CHECK(calls.load() == 0);
}

TEST_CASE("move-only values flow through map and pipelines", "[stream_executor]") {
    stream_executor ex{2};
    auto boxes = ex.map([](int x) { return std::make_unique<int>(x); }, std::views::iota(0, 50), 3);
    auto unboxed = ex.map([](std::unique_ptr<int> p) { return *p + 1; }, std::move(boxes), 3);
    int expected = 1;
    for (int v : unboxed)
        CHECK(v == expected++);
    CHECK(expected == 51);
}

// --- Shutdown and bad input ----------------------------------------------------------

TEST_CASE("shutdown cuts live maps: their reader gets what was computed, then executor_shut_down",
          "[stream_executor]") {
    watchdog dog("shutdown cuts live maps");
    stream_executor ex{2};
    auto results = ex.map(identity, std::views::iota(std::uint64_t{0}), 8);
    auto it = results.begin();
    CHECK(*it == 0u);
    ++it;
    ex.shutdown();
    std::uint64_t expected = 1;
    try {
        for (; it != results.end(); ++it)
            CHECK(*it == expected++);
        FAIL("an infinite input cannot end");
    } catch (const braid::executor_shut_down& e) {
        CHECK(std::string(e.what()).find("braid::stream_results") == 0);
    }
    CHECK(expected <= 1 + 8);
}

TEST_CASE("shutdown still cuts maps that outlived hundreds of finished ones", "[stream_executor]") {
    watchdog dog("shutdown after hundreds of maps");
    stream_executor ex{2};
    const std::vector<std::uint64_t> small{1, 2, 3};
    const auto run_finished_maps = [&](int count) {
        for (int i = 0; i < count; ++i) {
            std::uint64_t sum = 0;
            for (std::uint64_t v : ex.map(identity, small, 2))
                sum += v;
            CHECK(sum == 6u);
        }
    };
    run_finished_maps(150); // the executor forgets finished maps as it goes
    std::vector<braid::stream_results<std::uint64_t>> live;
    for (int i = 0; i < 3; ++i) {
        live.push_back(ex.map(identity, std::views::iota(std::uint64_t{0}), 4));
        CHECK(*live.back().begin() == 0u);
    }
    run_finished_maps(150); // ... but never the ones still running
    ex.shutdown();
    for (auto& results : live) {
        CHECK_THROWS_AS(
            [&] {
                for (auto it = results.begin(); it != results.end(); ++it) {
                }
            }(),
            braid::executor_shut_down);
    }
}

TEST_CASE("a pipeline outliving its executor reports the shutdown instead of hanging",
          "[stream_executor]") {
    watchdog dog("a pipeline outliving its executor");
    std::optional<braid::stream_results<long>> results;
    {
        stream_executor ex{1};
        auto inc = [](long x) { return x + 1; };
        results.emplace(ex.map(inc, ex.map(inc, ex.map(inc, std::views::iota(0L), 1), 1), 1));
        CHECK(*results->begin() == 3);
    }
    long expected = 3; // the result read above is still the current one
    CHECK_THROWS_AS(
        [&] {
            for (long v : *results)
                CHECK(v == expected++);
        }(),
        braid::executor_shut_down);
}

TEST_CASE("a finite map finished before shutdown still reads to its end", "[stream_executor]") {
    stream_executor ex{2};
    auto results = ex.map(identity, std::vector<std::uint64_t>{1, 2, 3}, 8);
    CHECK(*results.begin() == 1u);
    std::this_thread::sleep_for(
        10ms); // the rest is likely computed by now; either outcome is checked
    ex.shutdown();
    std::vector<std::uint64_t> rest;
    try {
        for (auto it = results.begin(); it != results.end(); ++it)
            rest.push_back(*it);
    } catch (const braid::executor_shut_down&) {
    }
    for (std::size_t i = 0; i < rest.size(); ++i)
        CHECK(rest[i] == i + 1); // result 1 was read, not passed
}

TEST_CASE("bad arguments and use after shutdown are answered with clear exceptions",
          "[stream_executor]") {
    CHECK_THROWS_WITH(stream_executor(0),
                      Catch::Contains("braid::stream_executor::stream_executor"));
    CHECK_THROWS_AS(stream_executor(0), std::invalid_argument);
    stream_executor ex{1};
    const std::vector<int> v{1, 2};
    const auto same = [](int x) { return x; };
    CHECK_THROWS_AS((void)ex.map(same, v, 0), std::invalid_argument);
    CHECK_THROWS_WITH((void)ex.map(same, v, 0),
                      Catch::Contains("braid::stream_executor::map: buffer_size"));
    CHECK_THROWS_AS((void)ex.map(same, v, -3), std::invalid_argument);
    CHECK_THROWS_AS((void)ex.map([](int x, int y) { return x + y; }, v, v, 0),
                    std::invalid_argument);
    ex.shutdown();
    ex.shutdown(); // idempotent
    CHECK_THROWS_AS((void)ex.map(same, v), braid::executor_shut_down);
    CHECK_THROWS_WITH((void)ex.map(same, v), Catch::Contains("braid::stream_executor::map"));
    CHECK_THROWS_AS((void)ex.submit([] { return 1; }), braid::executor_shut_down);
    CHECK_THROWS_WITH((void)ex.submit([] { return 1; }),
                      Catch::Contains("braid::stream_executor::submit"));
}

TEST_CASE("shutdown from inside the executor is refused", "[stream_executor]") {
    stream_executor ex{1};
    auto refused = ex.submit([&] { ex.shutdown(); });
    CHECK_THROWS_AS(refused.get(), braid::usage_error);
    auto from_producer =
        ex.map([](int x) { return x; }, std::views::iota(0, 1) | std::views::transform([&](int x) {
                                            try {
                                                ex.shutdown();
                                            } catch (const braid::usage_error&) {
                                                return -1;
                                            }
                                            return x;
                                        }));
    CHECK(*from_producer.begin() == -1);
}

TEST_CASE("submit returns f's value or exception through a future", "[stream_executor]") {
    stream_executor ex{2};
    auto value = ex.submit([](int a, int b) { return a * b; }, 6, 7);
    auto error = ex.submit([] { throw std::out_of_range("nope"); });
    CHECK(value.get() == 42);
    CHECK_THROWS_AS(error.get(), std::out_of_range);
}
