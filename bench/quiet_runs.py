#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs Google Benchmark programs on a shared machine and keeps only the runs
during which no other process used the CPUs.

Each run is one invocation of a benchmark program with one --benchmark_filter
and one repetition. Before a run the script waits until the machine has been
idle for a moment; after it, it compares the CPU time all processes used
(/proc/stat) with the CPU time the run itself used (its rusage). A run during
which other processes used more than --max-others of the CPUs is thrown away
and tried again. So is a run before or after which two busy processes did
not get about twice the work of one (--min-speedup): on a virtual machine the
host may take a core away without the guest seeing it in /proc/stat. Filters
are taken round-robin, so slow drifts of the machine touch every benchmark
alike.

    bench/quiet_runs.py build/gcc-release/bench/stream_executor_bench \\
        --filter 'BM_stream_executor_map/work_ns:10000/' \\
        --filter 'BM_tbb_parallel_pipeline/work_ns:10000/' --runs 10

prints, for each benchmark and counter, the median, the minimum, the maximum
and the spread (maximum / minimum) over the kept runs. --json FILE also
writes every kept run. Linux only (it reads /proc/stat).
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


def cpu_seconds():
    """(busy, total) CPU seconds of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / CLOCK_TICKS, sum(fields) / CLOCK_TICKS


def wait_for_idle(settle, busy_limit, give_up_at):
    """Waits until the machine was busy less than busy_limit over `settle` s."""
    busy0, total0 = cpu_seconds()
    while time.time() < give_up_at:
        time.sleep(settle)
        busy1, total1 = cpu_seconds()
        if busy1 - busy0 < busy_limit * (total1 - total0):
            return True
        busy0, total0 = busy1, total1
    return False


def count_for(seconds, results=None):
    """Busy-counts for `seconds`; the count goes to `results` when given."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        for _ in range(100):
            pass
        n += 1
    if results is not None:
        results.put(n)
    return n


def two_process_speedup(seconds=0.1):
    """How much two busy processes get done against one, now (2.0 on two
    free cores)."""
    alone = count_for(seconds)
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=count_for, args=(seconds, results))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (results.get() + results.get()) / alone


def run_once(binary, bench_filter, min_time, extra):
    """One run: (benchmarks from its JSON, share of the CPUs others used)."""
    busy0, total0 = cpu_seconds()
    child = subprocess.Popen(
        [binary, f"--benchmark_filter={bench_filter}",
         f"--benchmark_min_time={min_time}", "--benchmark_format=json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    busy1, total1 = cpu_seconds()
    if child.returncode != 0:
        sys.exit(f"quiet_runs: {binary} failed with status {child.returncode}")
    own = usage.ru_utime + usage.ru_stime
    others = max(0.0, (busy1 - busy0) - own) / max(total1 - total0, 1e-9)
    return json.loads(output)["benchmarks"], others


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--filter", action="append", required=True,
                        help="a --benchmark_filter for one run (repeatable)")
    parser.add_argument("--runs", type=int, default=10, help="kept runs per filter")
    parser.add_argument("--min-time", default="0.2", help="--benchmark_min_time of a run")
    parser.add_argument("--max-others", type=float, default=0.03,
                        help="largest share of the CPUs other processes may use")
    parser.add_argument("--min-speedup", type=float, default=1.85,
                        help="least two-process speedup before and after a run "
                             "(0 to skip the check)")
    parser.add_argument("--time-limit", type=float, default=3600, help="seconds")
    parser.add_argument("--json", help="write every kept run here")
    parser.add_argument("extra", nargs="*", help="more arguments for the program")
    args = parser.parse_args()

    give_up_at = time.time() + args.time_limit
    kept = {f: [] for f in args.filter}
    thrown = {f: 0 for f in args.filter}
    while time.time() < give_up_at and any(len(k) < args.runs for k in kept.values()):
        for bench_filter in args.filter:
            if len(kept[bench_filter]) >= args.runs:
                continue
            if not wait_for_idle(0.3, args.max_others, give_up_at):
                break
            min_speedup = args.min_speedup if CPUS >= 2 else 0
            if min_speedup and two_process_speedup() < min_speedup:
                thrown[bench_filter] += 1
                continue
            benchmarks, others = run_once(args.binary, bench_filter, args.min_time,
                                          args.extra)
            if others <= args.max_others and (
                    not min_speedup or two_process_speedup() >= min_speedup):
                kept[bench_filter].append({"others": others, "benchmarks": benchmarks})
            else:
                thrown[bench_filter] += 1

    for bench_filter in args.filter:
        runs = kept[bench_filter]
        print(f"{bench_filter}: {len(runs)} runs kept, {thrown[bench_filter]} thrown away")
        values = {}
        for run in runs:
            for b in run["benchmarks"]:
                for key in ("of_ideal", "speedup", "items_per_second", "cpu_us", "real_time"):
                    if key in b:
                        values.setdefault((b["name"], key), []).append(b[key])
        for (name, key), xs in sorted(values.items()):
            spread = max(xs) / min(xs) if min(xs) > 0 else float("inf")
            print(f"  {name} {key}: median {statistics.median(xs):.6g}, "
                  f"min {min(xs):.6g}, max {max(xs):.6g}, spread {spread:.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"binary": args.binary, "kept": kept, "thrown": thrown}, out, indent=1)


if __name__ == "__main__":
    main()
