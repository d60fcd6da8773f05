// SPDX-License-Identifier: MIT
// An infinite input, as in the README of pkch's Python package
// stream_executors (github.com/pkch/stream_executors), whose
// StreamThreadPoolExecutor this mirrors: the first 10 squares of 0, 1, 2,
// ... with a slow square. stream_executor::map returns at once, computes in
// parallel, and reads only as far ahead as its buffer allows. An eager map
// (read the whole input, then compute) would never return here, so it is
// only explained, not run.

#include <braid/stream_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ranges>
#include <thread>
#include <vector>

int main() {
    using namespace std::chrono;
    constexpr std::size_t buffer = 8;
    std::atomic<int> squared{0};
    const auto square = [&](long x) {
        std::this_thread::sleep_for(20ms); // a slow computation
        squared.fetch_add(1);
        return x * x;
    };

    braid::stream_executor ex{4};
    const auto start = steady_clock::now();
    auto squares = ex.map(square, std::views::iota(0L), buffer); // never reads iota in this call
    const auto returned = steady_clock::now() - start;

    std::vector<long> first;
    for (long s : squares | std::views::take(10))
        first.push_back(s);
    const auto took = steady_clock::now() - start;
    const int computed = squared.load();

    std::printf("first 10 squares:");
    for (long s : first)
        std::printf(" %ld", s);
    std::printf("\n");
    std::printf("map returned after %.3f ms, before reading any input\n",
                duration<double, std::milli>(returned).count());
    std::printf("10 squares of 20 ms each took %.0f ms on 4 workers (one after another: 200 ms)\n",
                duration<double, std::milli>(took).count());
    std::printf("squares computed so far: %d (at most 10 taken + %zu buffered)\n", computed,
                buffer);
    std::printf(
        "an eager map over std::views::iota(0L) would read forever and never return: not run\n");

    const std::vector<long> expected{0, 1, 4, 9, 16, 25, 36, 49, 64, 81};
    const bool ok =
        first == expected && computed >= 10 && computed <= 10 + static_cast<int>(buffer);
    if (!ok)
        std::printf("UNEXPECTED: wrong squares or more computed than the buffer allows\n");
    return ok ? 0 : 1;
}
