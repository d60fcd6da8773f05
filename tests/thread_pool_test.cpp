// SPDX-License-Identifier: MIT
// braid::thread_pool: fixed workers, noexcept post, submit with futures,
// shutdown that runs queued work and joins.

#include <braid/thread_pool.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
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

} // namespace

static_assert(postable<never_throws>);
static_assert(!postable<may_throw>, "post() takes only noexcept work; submit() is for the rest");

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
