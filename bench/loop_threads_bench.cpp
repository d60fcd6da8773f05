// SPDX-License-Identifier: MIT
//
// The event loop and other threads, against a minimal design and asio in one
// binary:
//
//   threadsafe_post  callbacks posted by one other thread to a running loop,
//                    per callback (throughput)
//   wakeup           latency from a post by another thread to the callback
//                    running on a loop that was asleep: median and p99 (the
//                    three loops take turns in one run; on the poster's CPU
//                    and on another)
//   run_in           a loop -> pool -> loop round trip with trivial work,
//                    and the CPU time (both threads) it costs
//   idle_cpu         CPU a loop uses while it waits 100 ms for a timer, just
//                    after finishing work from a pool
//
// The minimal design is written here: a mutex-guarded vector that the loop
// swaps out, waking it through an eventfd only when the vector goes from
// empty to non-empty. The peer is asio (Debian's libasio-dev): io_context
// with post(), and co_await post(pool) then post(io) for the round trip.

#include <braid/event_loop.hpp>
#include <braid/run_in.hpp>
#include <braid/thread_pool.hpp>

#include "bench_main.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#if BRAID_BENCH_HAVE_ASIO
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1 // see event_loop_bench.cpp
#endif
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#endif

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int posts_per_run = 100'000;
constexpr int wakeups_per_run = 200;
constexpr int round_trips_per_run = 10'000;

// CPU time of the whole process (every thread).
std::chrono::nanoseconds process_cpu() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

std::chrono::nanoseconds thread_cpu() {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// --- Baseline: a mutex-guarded vector and an eventfd ----------------------------

class minimal_loop {
public:
    minimal_loop() : wake_(::eventfd(0, EFD_CLOEXEC)) {}
    minimal_loop(const minimal_loop&) = delete;
    minimal_loop& operator=(const minimal_loop&) = delete;
    ~minimal_loop() { ::close(wake_); }

    void post(std::function<void()> f) {
        bool was_empty = false;
        {
            std::lock_guard lock(mutex_);
            was_empty = queue_.empty();
            queue_.push_back(std::move(f));
        }
        if (was_empty) {
            (void)::eventfd_write(wake_, 1);
        }
    }
    void stop() {
        post([this] { stopped_ = true; });
    }
    void run() {
        std::vector<std::function<void()>> batch;
        stopped_ = false;
        while (!stopped_) {
            {
                std::lock_guard lock(mutex_);
                batch.swap(queue_);
            }
            if (batch.empty()) {
                eventfd_t value = 0;
                (void)::eventfd_read(wake_, &value); // blocks until a post
                continue;
            }
            for (auto& f : batch) {
                f();
            }
            batch.clear();
        }
    }

private:
    int wake_;
    std::mutex mutex_;
    std::vector<std::function<void()>> queue_;
    bool stopped_ = false;
};

// --- Thread-safe posting: throughput ---------------------------------------------

void BM_threadsafe_post_braid(benchmark::State& state) {
    braid::event_loop loop;
    std::uint64_t ran = 0;
    for (auto _ : state) {
        std::thread poster([&] {
            for (int i = 0; i < posts_per_run; ++i) {
                loop.call_soon_threadsafe([&ran] { ++ran; });
            }
            loop.call_soon_threadsafe([&loop] { loop.stop(); });
        });
        loop.run_forever();
        poster.join();
    }
    benchmark::DoNotOptimize(ran);
    state.SetItemsProcessed(state.iterations() * posts_per_run);
}

void BM_threadsafe_post_minimal(benchmark::State& state) {
    minimal_loop loop;
    std::uint64_t ran = 0;
    for (auto _ : state) {
        std::thread poster([&] {
            for (int i = 0; i < posts_per_run; ++i) {
                loop.post([&ran] { ++ran; });
            }
            loop.stop();
        });
        loop.run();
        poster.join();
    }
    benchmark::DoNotOptimize(ran);
    state.SetItemsProcessed(state.iterations() * posts_per_run);
}

// --- Idle wake-up latency -----------------------------------------------------

// Each loop runs on its own thread and sleeps between posts (200 us apart,
// well past any spinning); each post records when it was made, the callback
// when it ran. The loops take turns within one run (braid, the minimal
// loop, asio; then the minimal loop, asio, braid; ...), and where their
// threads run is fixed: the posting thread on CPU 0, every loop on CPU
// state.range(0) -- 0, the poster's (the cost of the wake-up itself: system
// calls and a context switch), or 1, another (what a loop on a core of its
// own sees, here dominated by the hypervisor waking an idle vCPU). Left to
// the scheduler, the loops' threads land wherever, and the p99 of one and
// the same loop moved between about 6 and 45 us from run to run with where
// its thread happened to be. A run is 50 iterations of 200 rounds: 10,000
// wake-ups per loop, so that a p99 rests on the 100 slowest. The program's
// own flag --wakeup_iterations=N (before Google Benchmark's) changes the 50,
// for a short smoke run.
using poster = std::function<void(std::function<void()>)>;

// Pins the calling thread to `cpu`, when the machine has it.
void pin_to(int cpu) {
    if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void measure_wakeups(benchmark::State& state,
                     const std::vector<std::pair<const char*, poster>>& loops) {
    // The benchmarks after this one run on this thread too: its CPUs are
    // given back at the end.
    cpu_set_t before;
    CPU_ZERO(&before);
    const bool restore = pthread_getaffinity_np(pthread_self(), sizeof before, &before) == 0;
    pin_to(0);
    std::vector<std::vector<double>> us(loops.size());
    for (auto _ : state) {
        for (int i = 0; i < wakeups_per_run; ++i) {
            for (std::size_t j = 0; j < loops.size(); ++j) {
                // Each round starts with the next loop, so none always
                // follows the same one.
                const std::size_t k = (j + static_cast<std::size_t>(i)) % loops.size();
                std::this_thread::sleep_for(200us);
                std::atomic<bool> done{false};
                clock_type::time_point ran_at;
                const auto posted_at = clock_type::now();
                loops[k].second([&] {
                    ran_at = clock_type::now();
                    done.store(true, std::memory_order_release);
                });
                while (!done.load(std::memory_order_acquire)) {
                    std::this_thread::yield();
                }
                us[k].push_back(
                    std::chrono::duration<double, std::micro>(ran_at - posted_at).count());
            }
        }
    }
    for (std::size_t k = 0; k < loops.size(); ++k) {
        std::sort(us[k].begin(), us[k].end());
        const std::string who = loops[k].first;
        state.counters[who + "__median_us"] = us[k][us[k].size() / 2];
        state.counters[who + "__p99_us"] = us[k][us[k].size() * 99 / 100];
    }
    state.SetItemsProcessed(state.iterations() * wakeups_per_run *
                            static_cast<std::int64_t>(loops.size()));
    if (restore) {
        (void)pthread_setaffinity_np(pthread_self(), sizeof before, &before);
    }
}

void BM_wakeup(benchmark::State& state) {
    const int loop_cpu = static_cast<int>(state.range(0));
    braid::event_loop loop;
    std::thread braid_runner([&] {
        pin_to(loop_cpu);
        loop.run_forever();
    });
    minimal_loop minimal;
    std::thread minimal_runner([&] {
        pin_to(loop_cpu);
        minimal.run();
    });
    std::vector<std::pair<const char*, poster>> loops{
        {"braid", [&](std::function<void()> f) { loop.call_soon_threadsafe(std::move(f)); }},
        {"minimal", [&](std::function<void()> f) { minimal.post(std::move(f)); }},
    };
#if BRAID_BENCH_HAVE_ASIO
    asio::io_context io(1);
    auto guard = asio::make_work_guard(io);
    std::thread asio_runner([&] {
        pin_to(loop_cpu);
        io.run();
    });
    loops.emplace_back("asio", [&](std::function<void()> f) { asio::post(io, std::move(f)); });
#endif
    measure_wakeups(state, loops);
#if BRAID_BENCH_HAVE_ASIO
    guard.reset();
    io.stop();
    asio_runner.join();
#endif
    minimal.stop();
    minimal_runner.join();
    loop.stop();
    braid_runner.join();
}

// --- run_in round trip ------------------------------------------------------------

void BM_run_in_round_trip_braid(benchmark::State& state) {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    std::chrono::nanoseconds cpu{};
    for (auto _ : state) {
        auto trips = [&]() -> braid::task<int> {
            int sum = 0;
            for (int i = 0; i < round_trips_per_run; ++i) {
                sum += co_await braid::run_in(pool, [i] { return i & 1; });
            }
            co_return sum;
        };
        const auto before = process_cpu();
        benchmark::DoNotOptimize(loop.run_until_complete(trips()));
        cpu += process_cpu() - before;
    }
    const auto trips = static_cast<double>(state.iterations() * round_trips_per_run);
    state.counters["cpu_ns_per_trip"] = static_cast<double>(cpu.count()) / trips;
    state.SetItemsProcessed(state.iterations() * round_trips_per_run);
}

// --- Idle CPU ---------------------------------------------------------------------

void BM_idle_cpu_after_run_in_braid(benchmark::State& state) {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    std::chrono::nanoseconds cpu{};
    for (auto _ : state) {
        auto work_then_wait = [&]() -> braid::task<std::chrono::nanoseconds> {
            co_await braid::run_in(pool, [] {});
            const auto before = thread_cpu();
            co_await braid::sleep_for(100ms);
            co_return thread_cpu() - before;
        };
        cpu += loop.run_until_complete(work_then_wait());
    }
    state.counters["loop_cpu_us_per_100ms_idle"] =
        static_cast<double>(cpu.count()) / 1000.0 / static_cast<double>(state.iterations());
}

#if BRAID_BENCH_HAVE_ASIO

void BM_threadsafe_post_asio(benchmark::State& state) {
    asio::io_context io(1);
    std::uint64_t ran = 0;
    for (auto _ : state) {
        io.restart();
        auto guard = asio::make_work_guard(io);
        std::thread poster([&] {
            for (int i = 0; i < posts_per_run; ++i) {
                asio::post(io, [&ran] { ++ran; });
            }
            asio::post(io, [&io] { io.stop(); });
        });
        io.run();
        poster.join();
    }
    benchmark::DoNotOptimize(ran);
    state.SetItemsProcessed(state.iterations() * posts_per_run);
}

asio::awaitable<int> asio_round_trips(asio::thread_pool& pool, asio::io_context& io) {
    int sum = 0;
    for (int i = 0; i < round_trips_per_run; ++i) {
        co_await asio::post(pool.get_executor(), asio::use_awaitable); // to a worker
        sum += i & 1;                                                  // the work
        co_await asio::post(io.get_executor(), asio::use_awaitable);   // back to the loop
    }
    co_return sum;
}

void BM_run_in_round_trip_asio(benchmark::State& state) {
    asio::thread_pool pool(1);
    asio::io_context io(1);
    std::chrono::nanoseconds cpu{};
    for (auto _ : state) {
        io.restart();
        int sum = 0;
        const auto before = process_cpu();
        asio::co_spawn(io, asio_round_trips(pool, io), [&](std::exception_ptr, int s) { sum = s; });
        io.run();
        cpu += process_cpu() - before;
        benchmark::DoNotOptimize(sum);
    }
    const auto trips = static_cast<double>(state.iterations() * round_trips_per_run);
    state.counters["cpu_ns_per_trip"] = static_cast<double>(cpu.count()) / trips;
    state.SetItemsProcessed(state.iterations() * round_trips_per_run);
}

BENCHMARK(BM_threadsafe_post_asio)->UseRealTime();
BENCHMARK(BM_run_in_round_trip_asio)->UseRealTime();

#endif

BENCHMARK(BM_threadsafe_post_braid)->UseRealTime();
BENCHMARK(BM_threadsafe_post_minimal)->UseRealTime();
BENCHMARK(BM_run_in_round_trip_braid)->UseRealTime();
BENCHMARK(BM_idle_cpu_after_run_in_braid)->UseRealTime()->Iterations(5);

} // namespace

int main(int argc, char** argv) {
    benchmark::IterationCount wakeup_iterations = 50;
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg.starts_with("--wakeup_iterations=")) {
            wakeup_iterations = std::stoll(std::string(arg.substr(20)));
        } else {
            rest.push_back(argv[i]);
        }
    }
    benchmark::RegisterBenchmark("BM_wakeup", BM_wakeup)
        ->ArgName("loop_cpu")
        ->Arg(0)
        ->Arg(1)
        ->UseRealTime()
        ->Iterations(wakeup_iterations);
    return braid_bench::run_benchmarks(std::move(rest));
}
