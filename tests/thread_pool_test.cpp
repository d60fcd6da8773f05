// SPDX-License-Identifier: MIT
// braid::thread_pool: fixed workers, noexcept post, batched post_all, submit
// with futures, idle workers that go to sleep, shutdown that runs queued work
// and joins.

#include <braid/thread_pool.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <sys/resource.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace braid_test;

namespace {

struct may_throw {
    void operator()() {}
};
struct never_throws {
    void operator()() noexcept {}
};
template <class F>
concept postable = requires(braid::thread_pool& pool, F f) { pool.post(f); };
template <class R>
concept postable_all = requires(braid::thread_pool& pool, R r) { pool.post_all(r); };

// A noexcept task whose copies can be made to fail: copy number `fail_at`
// (counting from 1) throws.
struct copy_fails {
    std::atomic<int>* ran;
    std::shared_ptr<int> copies;
    int fail_at;
    copy_fails(std::atomic<int>* r, std::shared_ptr<int> c, int at)
        : ran(r), copies(std::move(c)), fail_at(at) {}
    copy_fails(const copy_fails& other)
        : ran(other.ran), copies(other.copies), fail_at(other.fail_at) {
        if (++*copies == fail_at)
            throw std::runtime_error("copy failed");
    }
    copy_fails(copy_fails&&) noexcept = default;
    void operator()() noexcept { ran->fetch_add(1); }
};

// CPU time this process has used so far (every thread).
std::chrono::microseconds process_cpu_time() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto us = [](timeval t) {
        return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
    };
    return us(usage.ru_utime) + us(usage.ru_stime);
}

} // namespace

static_assert(postable<never_throws>);
static_assert(!postable<may_throw>, "post() takes only noexcept work; submit() is for the rest");
static_assert(postable_all<std::vector<never_throws>>);
static_assert(!postable_all<std::vector<may_throw>>, "post_all() takes only noexcept work");

TEST_CASE("a pool runs work on thread_count threads at once", "[thread_pool]") {
    for (std::size_t n : {1u, 2u, 4u}) {
        braid::thread_pool pool(n);
        CHECK(pool.thread_count() == n);
        std::mutex mutex;
        std::set<std::thread::id> ids;
        std::atomic<std::size_t> arrived{0};
        std::atomic<bool> all_met{true};
        std::vector<std::future<void>> done;
        for (std::size_t i = 0; i < n; ++i) {
            done.push_back(pool.submit([&] {
                {
                    std::lock_guard lock(mutex);
                    ids.insert(std::this_thread::get_id());
                }
                arrived.fetch_add(1);
                // Every task waits for all: only n concurrent workers get here.
                if (!wait_until([&] { return arrived.load() == n; }))
                    all_met = false;
            }));
        }
        for (auto& d : done)
            d.get();
        CHECK(all_met.load());
        CHECK(ids.size() == n);
    }
}

TEST_CASE("the default pool has hardware_concurrency threads, at least one", "[thread_pool]") {
    braid::thread_pool pool;
    CHECK(pool.thread_count() == std::max<std::size_t>(1, std::thread::hardware_concurrency()));
    CHECK(braid::thread_pool::default_thread_count() >= 1);
}

TEST_CASE("a pool of zero threads is refused", "[thread_pool]") {
    CHECK_THROWS_AS(braid::thread_pool(0), std::invalid_argument);
    CHECK_THROWS_WITH(braid::thread_pool(0), Catch::Contains("braid::thread_pool::thread_pool"));
}

// (No semicolon in a test name: CTest would cut the name there, and the
// test it runs would match no Catch2 test.)
TEST_CASE("submit carries values and exceptions, and a throwing task does not end its worker",
          "[thread_pool]") {
    braid::thread_pool pool(1);
    const auto worker = pool.submit([] { return std::this_thread::get_id(); }).get();
    for (int i = 0; i < 50; ++i) {
        // Shared, so this thread keeps the exception alive while it reads the
        // message: libstdc++'s reference count of an exception is invisible
        // to ThreadSanitizer, which would take a last release on the worker
        // for a race with that read.
        std::shared_future<int> failed =
            pool.submit([i] {
                    if (i >= 0)
                        throw std::runtime_error("task " + std::to_string(i));
                    return i;
                })
                .share();
        CHECK_THROWS_WITH(failed.get(), "task " + std::to_string(i));
    }
    CHECK(pool.submit([](int a, int b) { return a + b; }, 2, 3).get() == 5);
    CHECK(pool.submit([] { return std::this_thread::get_id(); }).get() == worker);
}

TEST_CASE("tasks run in the order they were queued on one worker", "[thread_pool]") {
    braid::thread_pool pool(1);
    std::vector<int> order; // touched only by the single worker, read after it is joined
    for (int i = 0; i < 100; ++i)
        pool.post([&order, i]() noexcept { order.push_back(i); });
    pool.shutdown();
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i)
        CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("large and move-only callables are accepted", "[thread_pool]") {
    braid::thread_pool pool(2);
    std::array<long, 32> big{};
    big.fill(3);
    auto owned = std::make_unique<int>(4);
    auto sum = pool.submit([big] {
        long s = 0;
        for (long v : big)
            s += v;
        return s;
    });
    auto moved = pool.submit([p = std::move(owned)] { return *p; });
    CHECK(sum.get() == 96);
    CHECK(moved.get() == 4);
}

TEST_CASE("shutdown runs the queued work, joins, and then refuses work", "[thread_pool]") {
    const std::size_t before = baseline_threads();
    std::atomic<int> ran{0};
    {
        braid::thread_pool pool(2);
        for (int i = 0; i < 1000; ++i)
            pool.post([&]() noexcept { ran.fetch_add(1); });
        pool.shutdown();
        CHECK(ran.load() == 1000);
        pool.shutdown(); // idempotent
        CHECK_THROWS_AS(pool.post([]() noexcept {}), braid::executor_shut_down);
        CHECK_THROWS_WITH(pool.post([]() noexcept {}), Catch::Contains("braid::thread_pool::post"));
        CHECK_THROWS_WITH((void)pool.submit([] { return 1; }),
                          Catch::Contains("braid::thread_pool::submit"));
    }
    CHECK(threads_settle_to(before));
}

TEST_CASE("the destructor runs queued work and joins", "[thread_pool]") {
    std::atomic<int> ran{0};
    {
        braid::thread_pool pool(3);
        for (int i = 0; i < 300; ++i) {
            pool.post([&]() noexcept {
                std::this_thread::sleep_for(std::chrono::microseconds(10));
                ran.fetch_add(1);
            });
        }
    }
    CHECK(ran.load() == 300);
}

TEST_CASE("shutdown from one of the pool's workers is refused", "[thread_pool]") {
    braid::thread_pool pool(1);
    auto refused = pool.submit([&] { pool.shutdown(); });
    CHECK_THROWS_AS(refused.get(), braid::usage_error);
    CHECK(pool.submit([&] { return pool.is_worker_thread(); }).get());
    CHECK_FALSE(pool.is_worker_thread());
}

TEST_CASE("each worker has its own index, and other threads get thread_count()", "[thread_pool]") {
    braid::thread_pool pool(3);
    braid::thread_pool other(1);
    CHECK(pool.worker_index() == 3);
    // Three tasks that each wait until all three run, so each holds a worker.
    std::atomic<int> arrived{0};
    std::vector<std::future<std::size_t>> indices;
    for (int i = 0; i < 3; ++i) {
        indices.push_back(pool.submit([&] {
            arrived.fetch_add(1);
            wait_until([&] { return arrived.load() == 3; });
            return pool.worker_index();
        }));
    }
    std::set<std::size_t> seen;
    for (auto& index : indices)
        seen.insert(index.get());
    CHECK(seen == std::set<std::size_t>{0, 1, 2});
    CHECK(other.submit([&] { return pool.worker_index(); }).get() == 3);
    CHECK(other.submit([&] { return other.worker_index(); }).get() == 0);
}

TEST_CASE("many threads submit to one pool at once", "[thread_pool]") {
    braid::thread_pool pool(2);
    std::atomic<long> sum{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < 4; ++t) {
        submitters.emplace_back([&] {
            std::vector<std::future<int>> results;
            for (int i = 0; i < 500; ++i)
                results.push_back(pool.submit([i] { return i; }));
            long local = 0;
            for (auto& r : results)
                local += r.get();
            sum.fetch_add(local);
        });
    }
    for (auto& t : submitters)
        t.join();
    CHECK(sum.load() == 4L * 499 * 500 / 2);
}

// --- post_all ------------------------------------------------------------------

namespace {

// A task that adds its value to a sum; its shared_ptr shows whether it was
// copied (both hold it) or moved (the source is left empty).
struct add_value {
    std::atomic<int>* sum;
    std::shared_ptr<int> value;
    void operator()() noexcept { sum->fetch_add(*value); }
};

} // namespace

TEST_CASE("post_all runs every task of a range, in order on one worker", "[thread_pool]") {
    braid::thread_pool pool(1);
    std::vector<int> order; // touched only by the single worker, read after it is joined
    const auto numbered = [&order](int i) {
        return [&order, i]() noexcept { order.push_back(i); };
    };
    std::vector<decltype(numbered(0))> first;
    for (int i = 0; i < 50; ++i)
        first.push_back(numbered(i));
    pool.post_all(first);                                                       // a container
    pool.post_all(std::views::iota(50, 100) | std::views::transform(numbered)); // a view
    pool.post_all(std::vector<decltype(numbered(0))>{});                        // nothing
    pool.shutdown();
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i)
        CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("post_all copies from an lvalue range and moves from an rvalue container",
          "[thread_pool]") {
    braid::thread_pool pool(2);
    std::atomic<int> sum{0};
    std::vector<add_value> tasks;
    for (int i = 1; i <= 10; ++i)
        tasks.push_back({&sum, std::make_shared<int>(i)});

    pool.post_all(tasks);
    for (const add_value& t : tasks)
        CHECK(t.value != nullptr);
    pool.post_all(std::move(tasks));
    for (const add_value& t : tasks) // NOLINT(bugprone-use-after-move): checks the move
        CHECK(t.value == nullptr);
    pool.shutdown();
    CHECK(sum.load() == 2 * 55);
}

TEST_CASE("post_all takes move-only tasks from an rvalue container", "[thread_pool]") {
    braid::thread_pool pool(2);
    std::atomic<int> sum{0};
    auto task = [&sum](int i) {
        return [&sum, p = std::make_unique<int>(i)]() noexcept { sum.fetch_add(*p); };
    };
    std::vector<decltype(task(0))> tasks;
    for (int i = 1; i <= 10; ++i)
        tasks.push_back(task(i));
    pool.post_all(std::move(tasks));
    pool.shutdown();
    CHECK(sum.load() == 55);
}

TEST_CASE("post_all queues nothing when copying a task fails", "[thread_pool]") {
    braid::thread_pool pool(2);
    std::atomic<int> ran{0};
    auto copies = std::make_shared<int>(0);
    std::vector<copy_fails> tasks;
    for (int i = 0; i < 5; ++i)
        tasks.emplace_back(&ran, copies, 3); // the third copy throws
    CHECK_THROWS_WITH(pool.post_all(tasks), "copy failed");
    pool.shutdown();
    CHECK(ran.load() == 0);
}

TEST_CASE("post_all after shutdown is refused and queues nothing", "[thread_pool]") {
    braid::thread_pool pool(1);
    pool.shutdown();
    std::atomic<int> sum{0};
    std::vector<add_value> tasks{{&sum, std::make_shared<int>(1)}};
    CHECK_THROWS_AS(pool.post_all(tasks), braid::executor_shut_down);
    CHECK_THROWS_WITH(pool.post_all(tasks), Catch::Contains("braid::thread_pool::post_all"));
    CHECK(sum.load() == 0);
}

TEST_CASE("post_all reads its range outside the pool's lock: the range may post", "[thread_pool]") {
    watchdog guard("post_all with a range that posts");
    braid::thread_pool pool(2);
    std::atomic<int> ran{0};
    const auto count = [&ran]() noexcept { ran.fetch_add(1); };
    // Making each task posts another one first.
    pool.post_all(std::views::iota(0, 10) | std::views::transform([&](int) {
                      pool.post(count);
                      return count;
                  }));
    pool.shutdown();
    CHECK(ran.load() == 20);
}

TEST_CASE("a batch wakes as many workers as it has tasks", "[thread_pool]") {
    constexpr std::size_t n = 4;
    braid::thread_pool pool(n);
    // Let every worker fall asleep first.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::atomic<std::size_t> arrived{0};
    std::atomic<bool> all_met{true};
    std::atomic<std::size_t> finished{0};
    const auto meet = [&]() noexcept {
        arrived.fetch_add(1);
        // Every task waits for all: only n workers awake at once get here.
        if (!wait_until([&] { return arrived.load() == n; }))
            all_met = false;
        finished.fetch_add(1);
    };
    pool.post_all(std::views::iota(std::size_t{0}, n) |
                  std::views::transform([&](std::size_t) { return meet; }));
    CHECK(wait_until([&] { return finished.load() == n; }));
    CHECK(all_met.load());
}

// --- idle workers ----------------------------------------------------------------

TEST_CASE("an idle pool sleeps: its workers use no CPU while nobody gives them work",
          "[thread_pool]") {
    braid::thread_pool pool(2);
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i)
        pool.post([&]() noexcept { ran.fetch_add(1); });
    CHECK(wait_until([&] { return ran.load() == 100; }));
    const auto before = process_cpu_time();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto used = process_cpu_time() - before;
    // Two workers polling all along would use about 1 s; a pool that goes to
    // sleep within about 50 microseconds uses well under a millisecond.
    CHECK(used < std::chrono::milliseconds(100));
}

TEST_CASE("work posted at any moment of a worker's polling or sleep is run", "[thread_pool]") {
    // Each post waits until the one before has run, then a random pause puts
    // it before, during or after the polling period of the idle worker (tens
    // of microseconds): a wake-up lost between a worker that stops polling
    // and a post leaves the task queued, and the wait for it fails.
    for (std::size_t threads : {1u, 2u, 3u}) {
        braid::thread_pool pool(threads);
        std::mt19937 random(static_cast<unsigned>(threads));
        std::uniform_int_distribution<int> pause_us(0, 120);
        std::atomic<int> ran{0};
        const auto count = [&ran]() noexcept { ran.fetch_add(1); };
        int expected = 0;
        bool all_ran = true;
        for (int i = 0; i < 300 && all_ran; ++i) {
            if (i % 3 == 0) {
                pool.post_all(std::views::iota(0, 3) |
                              std::views::transform([&](int) { return count; }));
                expected += 3;
            } else {
                pool.post(count);
                expected += 1;
            }
            const auto deadline = std::chrono::steady_clock::now() + hang_guard;
            while (ran.load() != expected && all_ran) {
                std::this_thread::yield();
                all_ran = std::chrono::steady_clock::now() < deadline;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(pause_us(random)));
        }
        CHECK(all_ran);
        CHECK(ran.load() == expected);
    }
}
