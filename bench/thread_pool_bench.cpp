// SPDX-License-Identifier: MIT
//
// braid::thread_pool with 2 workers, fed by one thread, against baselines in
// the same binary:
//
//   post        N small tasks posted one at a time, then waiting until all
//               have run: time per task
//   post_all    the same N tasks handed over in one call
//   round trip  one task posted, the poster polling until it has run (with
//               the pause hint, yielding its core every 16 polls), again and
//               again: the latency of reaching a worker
//   idle        CPU time the pool uses while nobody gives it work (1 s)
//
// Baselines: a minimal pool written here (one mutex, one condition variable,
// a std::deque of std::function; a batch is queued under one lock and wakes
// every worker), and asio's thread_pool (Debian's libasio-dev) when it is
// installed. Each task increments a shared counter; the task that brings it
// to N wakes the poster (std::atomic::wait), the same for every pool.

#include <braid/thread_pool.hpp>

#include <benchmark/benchmark.h>

#if BRAID_BENCH_HAVE_ASIO
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#endif

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <ranges>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t workers = 2;

// The least a pool can be.
class minimal_pool {
public:
    explicit minimal_pool(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            threads_.emplace_back([this] {
                std::unique_lock lock(mutex_);
                for (;;) {
                    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                    if (queue_.empty())
                        return;
                    std::function<void()> task = std::move(queue_.front());
                    queue_.pop_front();
                    lock.unlock();
                    task();
                    lock.lock();
                }
            });
        }
    }
    minimal_pool(const minimal_pool&) = delete;
    minimal_pool& operator=(const minimal_pool&) = delete;
    ~minimal_pool() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        for (std::thread& t : threads_)
            t.join();
    }

    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(task));
        }
        cv_.notify_one();
    }

    // The batched floor: every task queued under one lock, one notify_all.
    template <class Range>
    void post_all(Range&& tasks) {
        {
            std::lock_guard lock(mutex_);
            for (auto&& task : tasks)
                queue_.emplace_back(task);
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

// The tasks: each counts itself; the N-th wakes the poster.
struct completion {
    std::atomic<std::int64_t> done{0};
    std::int64_t target = 0;

    void arm(std::int64_t n) {
        done.store(0, std::memory_order_relaxed);
        target = n;
    }
    void task_ran() noexcept {
        // release: the poster's acquire sees everything the tasks did.
        if (done.fetch_add(1, std::memory_order_release) + 1 == target)
            done.notify_one();
    }
    void wait() {
        // acquire: pairs with task_ran().
        for (std::int64_t seen; (seen = done.load(std::memory_order_acquire)) < target;)
            done.wait(seen, std::memory_order_acquire);
    }
};

template <class Post>
void run_posts(benchmark::State& state, Post post) {
    const std::int64_t n = state.range(0);
    completion c;
    for (auto _ : state) {
        c.arm(n);
        for (std::int64_t i = 0; i < n; ++i)
            post([&c]() noexcept { c.task_ran(); });
        c.wait();
    }
    state.SetItemsProcessed(state.iterations() * n);
}

// --- post: one task per call ---------------------------------------------------

void BM_thread_pool_post(benchmark::State& state) {
    braid::thread_pool pool(workers);
    run_posts(state, [&](auto task) { pool.post(task); });
}

void BM_minimal_pool_post(benchmark::State& state) {
    minimal_pool pool(workers);
    run_posts(state, [&](auto task) { pool.post(task); });
}

#if BRAID_BENCH_HAVE_ASIO
void BM_asio_thread_pool_post(benchmark::State& state) {
    asio::thread_pool pool(workers);
    run_posts(state, [&](auto task) { asio::post(pool, task); });
    pool.join();
}
#endif

// --- post_all: N tasks per call ------------------------------------------------

template <class Pool>
void run_batches(benchmark::State& state, Pool& pool) {
    const std::int64_t n = state.range(0);
    completion c;
    const auto tasks =
        std::views::iota(std::int64_t{0}, n) |
        std::views::transform([&c](std::int64_t) { return [&c]() noexcept { c.task_ran(); }; });
    for (auto _ : state) {
        c.arm(n);
        pool.post_all(tasks);
        c.wait();
    }
    state.SetItemsProcessed(state.iterations() * n);
}

void BM_thread_pool_post_all(benchmark::State& state) {
    braid::thread_pool pool(workers);
    run_batches(state, pool);
}

void BM_minimal_pool_post_all(benchmark::State& state) {
    minimal_pool pool(workers);
    run_batches(state, pool);
}

// --- round trip: post one task, poll until it has run ----------------------------

template <class Post>
void run_round_trips(benchmark::State& state, Post post) {
    std::atomic<std::uint64_t> ran{0};
    std::uint64_t expected = 0;
    for (auto _ : state) {
        ++expected;
        // release: the poster's acquire below sees the task's effects.
        post([&ran]() noexcept { ran.fetch_add(1, std::memory_order_release); });
        // acquire: pairs with the task's increment. Polls with the pause
        // hint and lets other threads have the core now and then, as an
        // event loop waiting for the pool would.
        for (int polls = 1; ran.load(std::memory_order_acquire) != expected; ++polls) {
            braid::detail::cpu_relax();
            if (polls % 16 == 0)
                std::this_thread::yield();
        }
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_thread_pool_round_trip(benchmark::State& state) {
    braid::thread_pool pool(workers);
    run_round_trips(state, [&](auto task) { pool.post(task); });
}

void BM_minimal_pool_round_trip(benchmark::State& state) {
    minimal_pool pool(workers);
    run_round_trips(state, [&](auto task) { pool.post(task); });
}

#if BRAID_BENCH_HAVE_ASIO
void BM_asio_thread_pool_round_trip(benchmark::State& state) {
    asio::thread_pool pool(workers);
    run_round_trips(state, [&](auto task) { asio::post(pool, task); });
    pool.join();
}
#endif

// --- idle: CPU used by a pool nobody feeds ------------------------------------

double process_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto seconds = [](timeval t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The pool has just run a burst of tasks; then the calling thread sleeps for
// 1 s. Counter cpu_us: CPU microseconds the whole process used in that second
// (the pool's workers, plus a little for this thread and the harness).
template <class Post>
void run_idle(benchmark::State& state, Post post) {
    double cpu_us = 0;
    for (auto _ : state) {
        completion c;
        c.arm(1000);
        for (int i = 0; i < 1000; ++i)
            post([&c]() noexcept { c.task_ran(); });
        c.wait();
        const double before = process_cpu_seconds();
        std::this_thread::sleep_for(std::chrono::seconds(1));
        cpu_us = (process_cpu_seconds() - before) * 1e6;
    }
    state.counters["cpu_us"] = cpu_us;
}

void BM_thread_pool_idle(benchmark::State& state) {
    braid::thread_pool pool(workers);
    run_idle(state, [&](auto task) { pool.post(task); });
}

void BM_minimal_pool_idle(benchmark::State& state) {
    minimal_pool pool(workers);
    run_idle(state, [&](auto task) { pool.post(task); });
}

#if BRAID_BENCH_HAVE_ASIO
void BM_asio_thread_pool_idle(benchmark::State& state) {
    asio::thread_pool pool(workers);
    run_idle(state, [&](auto task) { asio::post(pool, task); });
    pool.join();
}
#endif

void task_counts(benchmark::internal::Benchmark* b) {
    b->Arg(1)->Arg(100)->Arg(10'000)->ArgName("tasks")->UseRealTime();
}

} // namespace

BENCHMARK(BM_thread_pool_post)->Apply(task_counts);
BENCHMARK(BM_minimal_pool_post)->Apply(task_counts);
#if BRAID_BENCH_HAVE_ASIO
BENCHMARK(BM_asio_thread_pool_post)->Apply(task_counts);
#endif
BENCHMARK(BM_thread_pool_post_all)->Apply(task_counts);
BENCHMARK(BM_minimal_pool_post_all)->Apply(task_counts);
BENCHMARK(BM_thread_pool_round_trip)->UseRealTime();
BENCHMARK(BM_minimal_pool_round_trip)->UseRealTime();
#if BRAID_BENCH_HAVE_ASIO
BENCHMARK(BM_asio_thread_pool_round_trip)->UseRealTime();
#endif
BENCHMARK(BM_thread_pool_idle)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_minimal_pool_idle)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
#if BRAID_BENCH_HAVE_ASIO
BENCHMARK(BM_asio_thread_pool_idle)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
#endif

BENCHMARK_MAIN();
