// SPDX-License-Identifier: MIT
// Throughput of stream_executor::map with 2 workers, buffer 100 (and 1,000),
// results in order, at 0 / 1 / 10 / 100 microseconds of busy work per item, against
// baselines in the same binary: oneTBB's parallel_pipeline (serial input,
// parallel f, serial in-order output, 100 tokens, an arena of 2 threads, and
// one of 4 = as many threads as braid runs), a plain
// mutex + condition-variable pool with an ordered result ring, std::async per
// item (100 in flight), and a sequential loop.
//
// Also: braid's map with a buffer of 1,000; how many of its maps take much
// longer than ideal (100 us per item); and braid, TBB (2 threads) and the
// sequential loop with f a fixed computation instead of a spin to a deadline.
//
// Counters: items_per_second, and of_ideal = throughput / (2 workers / work
// time), the fraction of what two perfectly used workers could do.

#include <braid/stream_executor.hpp>

#include <benchmark/benchmark.h>

#if BRAID_BENCH_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#endif

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <ranges>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t workers = 2;
constexpr std::size_t buffer = 100;

// Busy work of `ns` nanoseconds (not a sleep: it occupies its core).
std::int64_t work(std::int64_t x, std::int64_t ns) {
    if (ns > 0) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
        while (std::chrono::steady_clock::now() < end) {
        }
    }
    return x * 2 + 1;
}

// Dependent multiply-adds per nanosecond on an unhindered core, measured once
// (the fastest of five runs of about 4 ms).
double steps_per_ns() {
    static const double rate = [] {
        constexpr std::int64_t steps = 2'000'000;
        double best = 0;
        for (int run = 0; run < 5; ++run) {
            std::uint64_t v = 1;
            const auto start = std::chrono::steady_clock::now();
            for (std::int64_t i = 0; i < steps; ++i) {
                v = v * 6364136223846793005u + 1442695040888963407u;
                benchmark::DoNotOptimize(v);
            }
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count();
            best = std::max(best, static_cast<double>(steps) / static_cast<double>(ns));
        }
        return best;
    }();
    return rate;
}

// A fixed amount of computation taking about `ns` nanoseconds on a core of
// its own. Unlike work(), which spins until a deadline, a thread preempted in
// the middle of it has the same work left when it comes back: the time the
// other threads of a design take on the workers' cores is lost to f.
std::int64_t cpu_work(std::int64_t x, std::int64_t ns) {
    const auto steps = static_cast<std::int64_t>(static_cast<double>(ns) * steps_per_ns());
    std::uint64_t v = static_cast<std::uint64_t>(x);
    for (std::int64_t i = 0; i < steps; ++i) {
        v = v * 6364136223846793005u + 1442695040888963407u;
        benchmark::DoNotOptimize(v);
    }
    return x * 2 + 1;
}

// The work functions are template arguments, so that each benchmark calls
// its f directly.
using work_fn = std::int64_t (*)(std::int64_t, std::int64_t);

std::int64_t items_for(std::int64_t ns) {
    return ns == 0 ? 200'000 : std::max<std::int64_t>(400, 40'000'000 / ns);
}

void report(benchmark::State& state, std::int64_t items, std::int64_t ns) {
    state.SetItemsProcessed(state.iterations() * items);
    if (ns > 0) {
        // Seconds two ideal workers would need, per second of real time.
        state.counters["of_ideal"] =
            benchmark::Counter(static_cast<double>(state.iterations() * items) *
                                   static_cast<double>(ns) * 1e-9 / workers,
                               benchmark::Counter::kIsRate);
    }
}

template <work_fn Work = work>
void stream_executor_map(benchmark::State& state, std::size_t buffer_size) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns);
    braid::stream_executor ex{workers};
    const auto f = [ns](std::int64_t x) { return Work(x, ns); };
    for (auto _ : state) {
        std::int64_t sum = 0;
        for (std::int64_t y : ex.map(f, std::views::iota(std::int64_t{0}, items), buffer_size))
            sum += y;
        benchmark::DoNotOptimize(sum);
    }
    report(state, items, ns);
}

void BM_stream_executor_map(benchmark::State& state) {
    stream_executor_map(state, buffer);
}

// The same with ten times the buffer: with more threads than cores the
// reader gets a core about once per buffer of results, so this shows what
// those turns cost at buffer 100.
void BM_stream_executor_map_buffer_1000(benchmark::State& state) {
    stream_executor_map(state, 10 * buffer);
}

// How often a map takes much longer than ideal: 50 maps of 400 items of
// 100 us per run, each timed alone. Counters: slow_maps, how many took 1.2
// times the ideal time or more (two workers doing nothing but f), and
// slowest, the slowest one's time over ideal.
void BM_stream_executor_map_tail(benchmark::State& state) {
    constexpr std::int64_t ns = 100'000;
    constexpr int maps = 50;
    const auto buffer_size = static_cast<std::size_t>(state.range(0));
    const std::int64_t items = items_for(ns);
    const double ideal_seconds = static_cast<double>(items * ns) * 1e-9 / workers;
    braid::stream_executor ex{workers};
    const auto f = [](std::int64_t x) { return work(x, ns); };
    int slow_maps = 0;
    double slowest = 0;
    for (auto _ : state) {
        for (int m = 0; m < maps; ++m) {
            const auto start = std::chrono::steady_clock::now();
            std::int64_t sum = 0;
            for (std::int64_t y : ex.map(f, std::views::iota(std::int64_t{0}, items), buffer_size))
                sum += y;
            benchmark::DoNotOptimize(sum);
            const double over_ideal =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                ideal_seconds;
            slow_maps += over_ideal >= 1.2 ? 1 : 0;
            slowest = std::max(slowest, over_ideal);
        }
    }
    state.counters["slow_maps"] = slow_maps;
    state.counters["slowest"] = slowest;
}

// With f a fixed amount of computation instead of a spin to a deadline.
void BM_stream_executor_map_cpu_work(benchmark::State& state) {
    stream_executor_map<cpu_work>(state, buffer);
}

#if BRAID_BENCH_HAVE_TBB
// `threads` is the arena's size; the calling thread takes one of its slots,
// and the serial input and output stages run on the same threads as f.
template <work_fn Work = work>
void tbb_pipeline(benchmark::State& state, int threads) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns);
    tbb::task_arena arena(threads);
    for (auto _ : state) {
        std::int64_t sum = 0;
        arena.execute([&] {
            std::int64_t next = 0;
            tbb::parallel_pipeline(
                buffer,
                tbb::make_filter<void, std::int64_t>(tbb::filter_mode::serial_in_order,
                                                     [&](tbb::flow_control& fc) -> std::int64_t {
                                                         if (next == items) {
                                                             fc.stop();
                                                             return 0;
                                                         }
                                                         return next++;
                                                     }) &
                    tbb::make_filter<std::int64_t, std::int64_t>(
                        tbb::filter_mode::parallel, [ns](std::int64_t x) { return Work(x, ns); }) &
                    tbb::make_filter<std::int64_t, void>(tbb::filter_mode::serial_in_order,
                                                         [&](std::int64_t y) { sum += y; }));
        });
        benchmark::DoNotOptimize(sum);
    }
    report(state, items, ns);
}

// Two threads in all, one per core: the input and output stages run on the
// same two threads as f.
void BM_tbb_parallel_pipeline(benchmark::State& state) {
    tbb_pipeline(state, static_cast<int>(workers));
}

void BM_tbb_parallel_pipeline_cpu_work(benchmark::State& state) {
    tbb_pipeline<cpu_work>(state, static_cast<int>(workers));
}

// Four threads: as many as braid runs (2 workers, its producer, the reader).
// (TBB's worker pool defaults to hardware_concurrency - 1 threads, so the
// arena only gets them with a global_control raising that limit.)
void BM_tbb_parallel_pipeline_4_threads(benchmark::State& state) {
    tbb::global_control allow(tbb::global_control::max_allowed_parallelism, 4);
    tbb_pipeline(state, 4);
}
#endif

// The plain design: a mutex-guarded queue of std::function, a condition
// variable, and results written to a ring the consumer reads in order.
class mutex_pool {
public:
    explicit mutex_pool(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            threads_.emplace_back([this] {
                std::unique_lock lock(mutex_);
                for (;;) {
                    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                    if (queue_.empty())
                        return;
                    auto task = std::move(queue_.front());
                    queue_.pop_front();
                    lock.unlock();
                    task();
                    lock.lock();
                }
            });
        }
    }
    ~mutex_pool() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_)
            t.join();
    }
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(task));
        }
        cv_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

void BM_mutex_pool_ordered_ring(benchmark::State& state) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns);
    mutex_pool pool(workers);
    std::vector<std::int64_t> ring(buffer);
    std::vector<char> ready(buffer, 0);
    std::mutex mutex;
    std::condition_variable done;
    for (auto _ : state) {
        std::int64_t sum = 0;
        std::int64_t submitted = 0;
        for (std::int64_t consumed = 0; consumed < items; ++consumed) {
            for (; submitted < items && submitted < consumed + static_cast<std::int64_t>(buffer);
                 ++submitted) {
                pool.post([&, i = submitted] {
                    const std::int64_t y = work(i, ns);
                    {
                        std::lock_guard lock(mutex);
                        ring[static_cast<std::size_t>(i) % buffer] = y;
                        ready[static_cast<std::size_t>(i) % buffer] = 1;
                    }
                    done.notify_all();
                });
            }
            std::unique_lock lock(mutex);
            const std::size_t slot = static_cast<std::size_t>(consumed) % buffer;
            done.wait(lock, [&] { return ready[slot] != 0; });
            sum += ring[slot];
            ready[slot] = 0;
        }
        benchmark::DoNotOptimize(sum);
    }
    report(state, items, ns);
}

void BM_std_async_per_item(benchmark::State& state) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns) / 10; // a thread per item: keep it short
    for (auto _ : state) {
        std::int64_t sum = 0;
        std::deque<std::future<std::int64_t>> in_flight;
        for (std::int64_t i = 0; i < items; ++i) {
            if (in_flight.size() == buffer) {
                sum += in_flight.front().get();
                in_flight.pop_front();
            }
            in_flight.push_back(std::async(std::launch::async, work, i, ns));
        }
        for (auto& f : in_flight)
            sum += f.get();
        benchmark::DoNotOptimize(sum);
    }
    report(state, items, ns);
}

void BM_sequential_loop(benchmark::State& state) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns);
    for (auto _ : state) {
        std::int64_t sum = 0;
        // With no work, a loop the compiler can vectorise whatever it
        // decides for work() elsewhere.
        if (ns == 0) {
            for (std::int64_t i = 0; i < items; ++i)
                sum += work(i, 0);
        } else {
            for (std::int64_t i = 0; i < items; ++i)
                sum += work(i, ns);
        }
        benchmark::DoNotOptimize(sum);
    }
    report(state, items, ns);
}

// The calibration's check: one thread, so 0.5 of ideal if cpu_work(x, ns)
// takes ns.
void BM_sequential_loop_cpu_work(benchmark::State& state) {
    const std::int64_t ns = state.range(0);
    const std::int64_t items = items_for(ns);
    std::int64_t sum = 0;
    for (auto _ : state) {
        for (std::int64_t i = 0; i < items; ++i)
            sum += cpu_work(i, ns);
    }
    benchmark::DoNotOptimize(sum);
    report(state, items, ns);
}

// Not a benchmark of braid: how much two busy threads get done compared with
// one, right now. On a shared VM this moves (the host may give the guest's
// two vCPUs the time of one), and every of_ideal above is capped by it:
// with a speedup of 1.0, the best any 2-worker design can reach is 0.5.
void BM_machine_two_thread_speedup(benchmark::State& state) {
    const auto spin_count = [](std::chrono::milliseconds how_long) {
        const auto end = std::chrono::steady_clock::now() + how_long;
        std::int64_t n = 0;
        while (std::chrono::steady_clock::now() < end) {
            for (int i = 0; i < 100; ++i)
                benchmark::DoNotOptimize(i);
            ++n;
        }
        return n;
    };
    double speedup = 0;
    for (auto _ : state) {
        const std::int64_t alone = spin_count(std::chrono::milliseconds(100));
        std::int64_t other = 0;
        std::thread second([&] { other = spin_count(std::chrono::milliseconds(100)); });
        const std::int64_t first = spin_count(std::chrono::milliseconds(100));
        second.join();
        speedup = static_cast<double>(first + other) / static_cast<double>(alone);
    }
    state.counters["speedup"] = speedup;
}

void buffer_1000_sizes(benchmark::internal::Benchmark* b) {
    b->Arg(1'000)->Arg(10'000)->Arg(100'000)->ArgName("work_ns")->UseRealTime()->Unit(
        benchmark::kMillisecond);
}

void cpu_work_sizes(benchmark::internal::Benchmark* b) {
    b->Arg(1'000)->Arg(10'000)->ArgName("work_ns")->UseRealTime()->Unit(benchmark::kMillisecond);
}

void work_sizes(benchmark::internal::Benchmark* b) {
    b->Arg(0)->Arg(1'000)->Arg(10'000)->Arg(100'000)->ArgName("work_ns")->UseRealTime()->Unit(
        benchmark::kMillisecond);
}

} // namespace

BENCHMARK(BM_machine_two_thread_speedup)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_stream_executor_map)->Apply(work_sizes);
BENCHMARK(BM_stream_executor_map_buffer_1000)->Apply(buffer_1000_sizes);
#if BRAID_BENCH_HAVE_TBB
BENCHMARK(BM_tbb_parallel_pipeline)->Apply(work_sizes);
BENCHMARK(BM_tbb_parallel_pipeline_4_threads)->Apply(work_sizes);
#endif
BENCHMARK(BM_mutex_pool_ordered_ring)->Apply(work_sizes);
BENCHMARK(BM_std_async_per_item)->Apply(work_sizes);
BENCHMARK(BM_sequential_loop)->Apply(work_sizes);
BENCHMARK(BM_stream_executor_map_tail)
    ->Arg(100)
    ->Arg(1'000)
    ->ArgName("buffer")
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_stream_executor_map_cpu_work)->Apply(cpu_work_sizes);
#if BRAID_BENCH_HAVE_TBB
BENCHMARK(BM_tbb_parallel_pipeline_cpu_work)->Apply(cpu_work_sizes);
#endif
BENCHMARK(BM_sequential_loop_cpu_work)->Apply(cpu_work_sizes);

BENCHMARK_MAIN();
