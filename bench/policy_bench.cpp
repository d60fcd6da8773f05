// SPDX-License-Identifier: MIT
//
// The scheduling policies compared on the workloads where they differ: which
// one finishes tasks sooner, which one gets more work done, and which one
// answers an interactive task sooner. Every built-in policy runs every
// workload:
//
//   factorials      the tutorial's factorial(12), (8), (4): 10, 6 and 2 steps
//   long_first      one task of 10,000 steps, then 1,000 tasks of 10 steps
//   short_first     the same, the long task last
//   equal/N         N tasks of 100 steps (N = 10, 1,000, 100,000)
//   pareto          10,000 tasks of heavy-tailed length (Pareto, alpha 1.5,
//                   at least 10 steps, a fixed seed)
//   cache           64 tasks of 64 steps, each step touching every cache line
//                   of the task's own 256 KiB (16 MiB in all: more than the
//                   L2 caches, so a switch of task costs cache misses)
//   interactive     the cache workload, then an interactive task of 5 small
//                   steps, spawned last (it arrives while the batch is
//                   queued); each of its steps is a reply, whose wait is its
//                   response time
//
// Counters, per policy and workload:
//
//   wall_us              time to run the whole workload (also the Time column)
//   cpu_us               processor time the loop's thread used meanwhile (less
//                        the cost of reading that clock): on a busy machine,
//                        where wall_us counts time others took, the steadier
//                        figure
//   steps_per_s          task steps run per second of wall time
//   done_rounds_*        when each task finished, in rounds of the loop
//   done_us_*            when each task finished, in microseconds from the start
//                        (* = mean, median, p99, max over the tasks)
//   reply_rounds_*,      interactive only: how long each reply of the
//   reply_us_*           interactive task waited (* = mean, max): from the
//                        start for its first step, from its previous yield for
//                        the others
//   interactive_done_*   interactive only: when the interactive task finished
//
// Keeping the benchmark's own bookkeeping out of the figures:
//
//   - Each iteration runs the workload twice. The first run is the timed one
//     (wall_us, cpu_us, steps_per_s, done_rounds_*): its only bookkeeping is one store
//     of loop.rounds() when a task finishes (and one per step of the
//     interactive task), into memory allocated beforehand; no clock is read
//     inside it. The second run, not timed, reads the clock once when each
//     task finishes (about 25 ns on Linux, included in later tasks' times)
//     and gives done_us_* and reply_us_*.
//   - Creating and spawning the tasks (frame allocation, the ready queue's
//     growth) and allocating working sets happen before the clock starts, and
//     the statistics are computed after it stops (manual timing).
//   - Rounds do not depend on timing except under time_slice, whose rounds
//     are those of the timed run.
//
// The baselines are the two original policies, interleaved and sequential,
// in the same binary; the loop's own cost per step, against a bare loop and
// asio, is measured by event_loop_bench. Results and the machine are in
// docs/policies.md.

#include <braid/event_loop.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace {

using bench_clock = std::chrono::steady_clock;

double microseconds(bench_clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
}

// Processor time used by the calling thread, in seconds.
double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
#else
    return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; // the whole process
#endif
}

// What reading that clock adds to an interval (a system call on Linux, about
// half a microsecond in a VM): the median of back-to-back readings, taken
// once and subtracted from every cpu_us.
double thread_cpu_clock_cost() {
    static const double cost = [] {
        std::vector<double> gaps(201);
        for (double& gap : gaps) {
            const double first = thread_cpu_seconds();
            gap = thread_cpu_seconds() - first;
        }
        std::nth_element(gaps.begin(), gaps.begin() + 100, gaps.end());
        return gaps[100];
    }();
    return cost;
}

// --- bookkeeping -----------------------------------------------------------------

// What the tasks of one run record. Sized before the run starts.
struct recorder {
    const braid::event_loop* loop = nullptr;
    bool with_clock = false; // the untimed run: also read the clock
    bench_clock::time_point start{};
    std::vector<std::uint64_t> done_round;
    std::vector<double> done_us;
    // The interactive task: when each step began and when it yielded.
    std::vector<std::uint64_t> step_round, yield_round;
    std::vector<double> step_us, yield_us;

    void prepare(const braid::event_loop& l, bool clock, std::size_t tasks,
                 std::size_t interactive_steps) {
        loop = &l;
        with_clock = clock;
        done_round.assign(tasks, 0);
        done_us.assign(tasks, 0.0);
        step_round.assign(interactive_steps, 0);
        yield_round.assign(interactive_steps, 0);
        step_us.assign(interactive_steps, 0.0);
        yield_us.assign(interactive_steps, 0.0);
    }
    double now_us() const { return microseconds(bench_clock::now() - start); }

    void finished(std::size_t task) {
        done_round[task] = loop->rounds();
        if (with_clock) {
            done_us[task] = now_us();
        }
    }
    void step_began(std::size_t step) {
        step_round[step] = loop->rounds();
        if (with_clock) {
            step_us[step] = now_us();
        }
    }
    void step_yields(std::size_t step) {
        yield_round[step] = loop->rounds();
        if (with_clock) {
            yield_us[step] = now_us();
        }
    }
};

// Mean, median, 99th percentile and maximum of a set of values.
struct summary {
    double mean = 0, median = 0, p99 = 0, max = 0;

    template <class T>
    static summary of(std::vector<T> values) {
        summary s;
        if (values.empty()) {
            return s;
        }
        const auto at = [&](double q) {
            const auto k =
                static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())) - 1);
            std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k),
                             values.end());
            return static_cast<double>(values[k]);
        };
        s.mean =
            std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
        s.median = at(0.5);
        s.p99 = at(0.99);
        s.max = static_cast<double>(*std::max_element(values.begin(), values.end()));
        return s;
    }
    void add(const summary& o) {
        mean += o.mean;
        median += o.median;
        p99 += o.p99;
        max += o.max;
    }
};

// --- the tasks -------------------------------------------------------------------

// The tutorial's factorial: one multiplication per step.
braid::task<> factorial(recorder* rec, std::size_t index, int n) {
    std::uint64_t product = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(n - 1);
    for (int k = n - 2; k > 1; --k) {
        co_await braid::yield();
        product *= static_cast<std::uint64_t>(k);
    }
    benchmark::DoNotOptimize(product);
    rec->finished(index);
}

// A task of `steps` small steps (a multiply-add each).
braid::task<> small_steps(recorder* rec, std::size_t index, std::uint32_t steps) {
    std::uint64_t x = index;
    for (std::uint32_t s = 1; s < steps; ++s) {
        x = x * 6364136223846793005U + 1442695040888963407U;
        benchmark::DoNotOptimize(x);
        co_await braid::yield();
    }
    rec->finished(index);
}

// A step of a cache-heavy task: a read-modify-write of every 64-byte line of
// its working set.
void touch(std::span<std::uint64_t> data) {
    constexpr std::size_t words_per_line = 64 / sizeof(std::uint64_t);
    for (std::size_t i = 0; i < data.size(); i += words_per_line) {
        data[i] += i;
    }
    benchmark::ClobberMemory();
}

braid::task<> cache_steps(recorder* rec, std::size_t index, std::uint32_t steps,
                          std::span<std::uint64_t> data) {
    for (std::uint32_t s = 1; s < steps; ++s) {
        touch(data);
        co_await braid::yield();
    }
    touch(data);
    rec->finished(index);
}

// The interactive task: a few small steps, each one a reply.
braid::task<> interactive(recorder* rec, std::size_t index, std::uint32_t steps) {
    std::uint64_t x = index;
    for (std::uint32_t s = 0; s < steps; ++s) {
        rec->step_began(s);
        x = x * 6364136223846793005U + 1442695040888963407U;
        benchmark::DoNotOptimize(x);
        if (s + 1 < steps) {
            rec->step_yields(s);
            co_await braid::yield();
        }
    }
    rec->finished(index);
}

// --- the workloads ---------------------------------------------------------------

// A workload: how many tasks and steps, and how to spawn them on a loop.
struct workload {
    std::size_t tasks = 0;
    std::uint64_t steps = 0;
    std::uint32_t interactive_steps = 0; // 0: no interactive task
    std::function<void(braid::event_loop&, recorder&)> spawn;
};

workload of_lengths(std::vector<std::uint32_t> lengths) {
    workload w;
    w.tasks = lengths.size();
    w.steps = std::accumulate(lengths.begin(), lengths.end(), std::uint64_t{0});
    w.spawn = [lengths = std::move(lengths)](braid::event_loop& loop, recorder& rec) {
        for (std::size_t i = 0; i < lengths.size(); ++i) {
            loop.spawn(small_steps(&rec, i, lengths[i]));
        }
    };
    return w;
}

workload factorials() {
    workload w;
    w.tasks = 3;
    w.steps = 10 + 6 + 2;
    w.spawn = [](braid::event_loop& loop, recorder& rec) {
        loop.spawn(factorial(&rec, 0, 12));
        loop.spawn(factorial(&rec, 1, 8));
        loop.spawn(factorial(&rec, 2, 4));
    };
    return w;
}

constexpr std::uint32_t long_steps = 10'000;
constexpr std::size_t short_tasks = 1'000;
constexpr std::uint32_t short_steps = 10;

workload long_first() {
    std::vector<std::uint32_t> lengths(short_tasks + 1, short_steps);
    lengths.front() = long_steps;
    return of_lengths(std::move(lengths));
}

workload short_first() {
    std::vector<std::uint32_t> lengths(short_tasks + 1, short_steps);
    lengths.back() = long_steps;
    return of_lengths(std::move(lengths));
}

workload equal(std::size_t tasks) {
    return of_lengths(std::vector<std::uint32_t>(tasks, 100));
}

// Pareto lengths by inversion, from mt19937_64's exactly specified output (the
// standard's distributions differ between libraries): the same tasks
// everywhere.
workload pareto() {
    constexpr std::size_t tasks = 10'000;
    constexpr double alpha = 1.5;
    constexpr double least = 10;
    std::mt19937_64 rng(20261122);
    std::vector<std::uint32_t> lengths(tasks);
    for (auto& length : lengths) {
        const double u = static_cast<double>((rng() >> 11) + 1) * 0x1p-53; // (0, 1]
        length =
            static_cast<std::uint32_t>(std::min(1e9, std::ceil(least / std::pow(u, 1 / alpha))));
    }
    return of_lengths(std::move(lengths));
}

constexpr std::size_t cache_tasks = 64;
constexpr std::uint32_t cache_task_steps = 64;
constexpr std::size_t working_set_words = 256 * 1024 / sizeof(std::uint64_t);
constexpr std::uint32_t interactive_steps = 5;

// The working sets live as long as the benchmark, allocated and touched once.
std::shared_ptr<std::vector<std::uint64_t>> working_sets() {
    return std::make_shared<std::vector<std::uint64_t>>(cache_tasks * working_set_words, 1);
}

workload cache(bool with_interactive) {
    workload w;
    w.tasks = cache_tasks + (with_interactive ? 1 : 0);
    w.steps = std::uint64_t{cache_tasks} * cache_task_steps;
    if (with_interactive) {
        w.steps += interactive_steps;
        w.interactive_steps = interactive_steps;
    }
    w.spawn = [sets = working_sets(), with_interactive](braid::event_loop& loop, recorder& rec) {
        for (std::size_t i = 0; i < cache_tasks; ++i) {
            const std::span<std::uint64_t> data(sets->data() + i * working_set_words,
                                                working_set_words);
            loop.spawn(cache_steps(&rec, i, cache_task_steps, data));
        }
        if (with_interactive) {
            loop.spawn(interactive(&rec, cache_tasks, interactive_steps));
        }
    };
    return w;
}

// --- the benchmark ---------------------------------------------------------------

template <class Policy>
void run_workload(benchmark::State& state, const Policy& policy, const workload& w) {
    recorder timed, clocked;
    summary rounds, micros;
    double wall_seconds = 0, cpu_seconds = 0;
    double reply_rounds_mean = 0, reply_rounds_max = 0, reply_us_mean = 0, reply_us_max = 0;
    double interactive_rounds = 0, interactive_us = 0;
    for (auto _ : state) {
        {
            braid::event_loop loop{policy};
            timed.prepare(loop, false, w.tasks, w.interactive_steps);
            w.spawn(loop, timed);
            const double cpu_start = thread_cpu_seconds();
            const bench_clock::time_point start = bench_clock::now();
            loop.run();
            const std::chrono::duration<double> elapsed = bench_clock::now() - start;
            cpu_seconds += thread_cpu_seconds() - cpu_start - thread_cpu_clock_cost();
            state.SetIterationTime(elapsed.count());
            wall_seconds += elapsed.count();
        }
        {
            braid::event_loop loop{policy};
            clocked.prepare(loop, true, w.tasks, w.interactive_steps);
            w.spawn(loop, clocked);
            clocked.start = bench_clock::now();
            loop.run();
        }
        rounds.add(summary::of(timed.done_round));
        micros.add(summary::of(clocked.done_us));
        if (w.interactive_steps > 0) {
            // The wait before each step: from the start (round 0, time 0) for
            // the first, from the yield before it for the others.
            std::vector<double> waits_rounds, waits_us;
            for (std::size_t s = 0; s < w.interactive_steps; ++s) {
                const std::uint64_t from_round = s == 0 ? 0 : timed.yield_round[s - 1];
                const double from_us = s == 0 ? 0 : clocked.yield_us[s - 1];
                // Rounds run by others in between (the step's own round excluded).
                waits_rounds.push_back(static_cast<double>(timed.step_round[s] - from_round - 1));
                waits_us.push_back(clocked.step_us[s] - from_us);
            }
            const summary r = summary::of(waits_rounds);
            const summary u = summary::of(waits_us);
            reply_rounds_mean += r.mean;
            reply_rounds_max += r.max;
            reply_us_mean += u.mean;
            reply_us_max += u.max;
            interactive_rounds += static_cast<double>(timed.done_round.back());
            interactive_us += clocked.done_us.back();
        }
    }
    const auto n = static_cast<double>(state.iterations());
    auto& c = state.counters;
    c["wall_us"] = wall_seconds * 1e6 / n;
    c["cpu_us"] = cpu_seconds * 1e6 / n;
    c["steps_per_s"] = static_cast<double>(w.steps) * n / wall_seconds;
    c["done_rounds_mean"] = rounds.mean / n;
    c["done_rounds_median"] = rounds.median / n;
    c["done_rounds_p99"] = rounds.p99 / n;
    c["done_rounds_max"] = rounds.max / n;
    c["done_us_mean"] = micros.mean / n;
    c["done_us_median"] = micros.median / n;
    c["done_us_p99"] = micros.p99 / n;
    c["done_us_max"] = micros.max / n;
    if (w.interactive_steps > 0) {
        c["reply_rounds_mean"] = reply_rounds_mean / n;
        c["reply_rounds_max"] = reply_rounds_max / n;
        c["reply_us_mean"] = reply_us_mean / n;
        c["reply_us_max"] = reply_us_max / n;
        c["interactive_done_rounds"] = interactive_rounds / n;
        c["interactive_done_us"] = interactive_us / n;
    }
}

// A policy, named, that runs a workload.
struct named_policy {
    std::string name;
    std::function<void(benchmark::State&, const workload&)> run;
};

template <class Policy>
named_policy policy(std::string name, Policy p) {
    return {std::move(name),
            [p](benchmark::State& state, const workload& w) { run_workload(state, p, w); }};
}

// Registers every workload under every policy, workload by workload, so that
// the policies compared on one workload run close together in time (what the
// rest of the machine does drifts less between them).
void register_all(const std::vector<named_policy>& policies) {
    const std::pair<std::string, std::function<workload()>> workloads[] = {
        {"factorials", factorials},
        {"long_first", long_first},
        {"short_first", short_first},
        {"equal/10", [] { return equal(10); }},
        {"equal/1000", [] { return equal(1'000); }},
        {"equal/100000", [] { return equal(100'000); }},
        {"pareto", pareto},
        {"cache", [] { return cache(false); }},
        {"interactive", [] { return cache(true); }},
    };
    for (const auto& [name, make] : workloads) {
        for (const named_policy& p : policies) {
            const std::string full = "BM_policy_" + name + "/" + p.name;
            benchmark::RegisterBenchmark(
                full.c_str(),
                [run = p.run, make = make](benchmark::State& state) { run(state, make()); })
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    register_all({
        policy("interleaved", braid::interleaved),
        policy("sequential", braid::sequential),
        policy("step_slice_4", braid::step_slice{4}),
        policy("step_slice_16", braid::step_slice{16}),
        policy("time_slice_50us", braid::time_slice{50us}),
    });
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
