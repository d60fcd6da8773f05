// SPDX-License-Identifier: MIT
#pragma once

// braid_bench::run_benchmarks: the end of main() for a benchmark program with
// flags of its own. The program takes those out of argv first and passes
// the rest here: Google Benchmark's flags, which it reads, reporting any
// argument it does not know as an error (exit code 1).

#include <benchmark/benchmark.h>

#include <vector>

namespace braid_bench {

inline int run_benchmarks(std::vector<char*> args) {
    int count = static_cast<int>(args.size());
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

} // namespace braid_bench
