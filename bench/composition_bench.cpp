// SPDX-License-Identifier: MIT
//
// braid::when_all of N tasks that finish at their first step, per task,
// against the floor: spawning the same tasks on the loop and collecting their
// results by hand with done callbacks (what when_all does, without its rules).
// N = 2, 100, 10,000.

#include <braid/event_loop.hpp>
#include <braid/when_all.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

braid::task<int> ready(int i) {
    co_return i;
}

void BM_when_all(benchmark::State& state) {
    const auto n = static_cast<int>(state.range(0));
    braid::event_loop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        std::vector<braid::task<int>> tasks;
        tasks.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
            tasks.push_back(ready(i));
        }
        std::vector<int> results = loop.run_until_complete(braid::when_all(std::move(tasks)));
        sum += results.back();
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations() * n);
}

void BM_baseline_spawn_and_callbacks(benchmark::State& state) {
    const auto n = static_cast<int>(state.range(0));
    braid::event_loop loop;
    std::int64_t sum = 0;
    for (auto _ : state) {
        std::vector<braid::task<int>> tasks;
        tasks.reserve(static_cast<std::size_t>(n));
        std::vector<int> results(static_cast<std::size_t>(n));
        std::size_t remaining = static_cast<std::size_t>(n);
        for (int i = 0; i < n; ++i) {
            tasks.push_back(ready(i));
            tasks.back().add_done_callback([&results, &remaining, i](braid::task<int>& t) {
                results[static_cast<std::size_t>(i)] = t.result();
                --remaining;
            });
            loop.spawn(tasks.back());
        }
        loop.run();
        sum += results.back() + static_cast<std::int64_t>(remaining);
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations() * n);
}

BENCHMARK(BM_when_all)->Arg(2)->Arg(100)->Arg(10000);
BENCHMARK(BM_baseline_spawn_and_callbacks)->Arg(2)->Arg(100)->Arg(10000);

} // namespace

BENCHMARK_MAIN();
