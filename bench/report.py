#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs braid's benchmarks and writes docs/benchmarks.md from their JSON.

    python3 bench/report.py run    # build trees -> build/bench-results/<preset>/*.json
    python3 bench/report.py run loop_threads_bench  # only the programs named
    python3 bench/report.py render # build/bench-results -> docs/benchmarks.md

`run` needs the gcc-release and clang-release presets built (`cmake --build
--preset gcc-release` and clang-release). It runs every benchmark binary of
each with 5 repetitions in random order (medians are reported), pinned to
one CPU with taskset when the benchmark is single-threaded (and then in 3
processes, whose repetitions are pooled), and saves Google Benchmark's JSON,
with the machine's load and the commit beside it.

`render` fills bench/benchmarks.md.in: each `<!-- table NAME -->` line
becomes the table of that name, defined below in TABLES, whose rows pair a
braid figure with its baseline from the same run and state the ratio. No
figure in docs/benchmarks.md is typed by hand: re-run both commands.
"""

import json
import os
import statistics
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BRAID_BENCH_RESULTS", ROOT / "build" / "bench-results"))
# BRAID_BENCH_QUICK=1: a few milliseconds per benchmark, to try this script
# (its figures mean nothing).
QUICK = ["--benchmark_min_time=0.001", "--echo_seconds=0.05"]
PRESETS = ["gcc-release", "clang-release"]

# Benchmarks that use one thread: pinned to one CPU, so the other core's
# noise does not move them. The threaded ones get both cores.
SINGLE_THREADED = {"event_loop_bench", "timer_bench", "composition_bench"}
# ...and run in this many processes, their repetitions pooled before the
# median is taken. Within one process a benchmark can be consistently fast
# or slow, by where its frames and queues landed in memory: when_all of 2
# (clang++) took 134.6 ns in all 5 repetitions of one process and 115-122 ns
# in each of ten processes after it.
PROCESSES = 3
# Every repetition is kept in the JSON (the console shows only aggregates), so
# spreads can be computed; tables report medians.
ARGS = ["--benchmark_repetitions=5", "--benchmark_display_aggregates_only=true",
        "--benchmark_enable_random_interleaving=true"]
# Benchmarks whose defaults do not suit: their own arguments, replacing ARGS.
OWN_ARGS = {
    # Ten runs, so the run-to-run spread (max / min) means something.
    "stream_executor_bench": ["--benchmark_repetitions=10", "--benchmark_min_time=0.3",
                              "--benchmark_display_aggregates_only=true",
                              "--benchmark_enable_random_interleaving=true"],
    # Ten runs: the wake-up latencies' p99 (the 100th-slowest of 10,000
    # wake-ups per run) moves a lot from run to run on a VM.
    "loop_threads_bench": ["--benchmark_repetitions=10",
                           "--benchmark_display_aggregates_only=true",
                           "--benchmark_enable_random_interleaving=true"],
    "echo_bench": ["--echo_seconds=1", "--benchmark_repetitions=5",
                   "--benchmark_display_aggregates_only=true",
                   "--benchmark_enable_random_interleaving=true"],
}
# Benchmarks with a report of their own elsewhere (policy_bench: the table
# in docs/policies.md, made by bench/policy_table.py).
SKIP = {"policy_bench"}
# Only the build of this preset runs these (they measure processes and the
# kernel more than the compiler).
ONE_PRESET = {"echo_bench": "gcc-release", "stream_executor_bench": "gcc-release",
              "thread_pool_bench": "gcc-release"}


def run(only=()):
    """Runs every benchmark program, or only those named (their results
    replace the earlier ones; the others' stay)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    for preset in PRESETS:
        bench_dir = ROOT / "build" / preset / "bench"
        out_dir = RESULTS / preset
        out_dir.mkdir(parents=True, exist_ok=True)
        for exe in sorted(bench_dir.glob("*_bench")):
            if exe.name in SKIP or ONE_PRESET.get(exe.name, preset) != preset:
                continue
            if only and exe.name not in only:
                continue
            args = OWN_ARGS.get(exe.name, ARGS)
            if os.environ.get("BRAID_BENCH_QUICK"):
                args = [a for a in args if not a.startswith(("--benchmark_min_time",
                                                              "--echo_seconds"))]
                args += [a for a in QUICK if exe.name == "echo_bench" or "echo" not in a]
            out = out_dir / (exe.name + ".json")
            single = exe.name in SINGLE_THREADED
            parts = [out.with_suffix(f".{k}.json") for k in range(PROCESSES)] if single else [out]
            load = os.getloadavg()[0]
            print(f"{preset}: {exe.name} (load {load:.1f})", file=sys.stderr, flush=True)
            started = time.time()
            for part in parts:
                cmd = [str(exe)] + args + ["--benchmark_format=json",
                                            f"--benchmark_out={part}",
                                            "--benchmark_out_format=json"]
                if single and shutil_which("taskset"):
                    cmd = ["taskset", "-c", "1"] + cmd
                subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, cwd=bench_dir)
            if single:
                pool_processes(parts, out)
            meta = {"commit": commit, "load_before": load, "load_after": os.getloadavg()[0],
                    "seconds": round(time.time() - started, 1),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            (out_dir / (exe.name + ".meta.json")).write_text(json.dumps(meta))


def pool_processes(parts, out):
    """Writes to `out` the runs of every process's JSON in `parts`, with, for
    each benchmark, a median entry over all of them; removes the parts."""
    datas = [json.loads(p.read_text()) for p in parts]
    runs = {}
    for data in datas:
        for b in data["benchmarks"]:
            if b.get("run_type") == "iteration":
                runs.setdefault(b["run_name"], []).append(b)
    skip = {"repetitions", "repetition_index", "threads", "family_index",
            "per_family_instance_index"}
    benchmarks = []
    for name, entries in runs.items():
        median = {**entries[0], "name": name + "_median", "run_type": "aggregate",
                  "aggregate_name": "median", "repetitions": len(entries)}
        for key, first in entries[0].items():
            if isinstance(first, (int, float)) and not isinstance(first, bool) and key not in skip:
                median[key] = statistics.median(e[key] for e in entries)
        benchmarks += entries + [median]
    out.write_text(json.dumps({"context": datas[0]["context"], "benchmarks": benchmarks},
                              indent=1))
    for p in parts:
        p.unlink()


def shutil_which(name):
    from shutil import which
    return which(name) is not None


# The wake-up benchmark's placements: the loops' CPU, as its argument says.
WAKEUP_PLACES = (("0", "the poster's CPU"), ("1", "another CPU"))


# BM_wakeup's iterations per run; each wakes every loop 200 times.
WAKEUP_ITERATIONS = 50


def wakeup(cpu, who):
    """The name of BM_wakeup's figures for the loops on `cpu`, as `who`."""
    return f"BM_wakeup/loop_cpu:{cpu}/iterations:{WAKEUP_ITERATIONS}/real_time#{who}"

# --- Reading results ---------------------------------------------------------

def load(preset, bench):
    """({run_name: median entry}, meta), the median entries carrying every
    repetition's entry under "_runs"."""
    path = RESULTS / preset / f"{bench}.json"
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:  # a run still writing it, or cut short
        print(f"{path}: not complete JSON, left out", file=sys.stderr)
        return None, None
    meta_path = RESULTS / preset / f"{bench}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    medians, runs = {}, {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"]] = b
        elif b.get("run_type") == "iteration":
            runs.setdefault(b["run_name"], []).append(b)
    for name, entry in medians.items():
        entry["_runs"] = runs.get(name, [])
    # A benchmark run once has no aggregates: its single run stands for them.
    for name, entries in runs.items():
        if name not in medians and len(entries) == 1:
            medians[name] = {**entries[0], "_runs": entries}
    # A benchmark that measures several contenders in turn names its
    # counters WHO__METRIC: each contender reads as a benchmark of its own,
    # "RUN_NAME#WHO", with the counter METRIC.
    for name, entry in list(medians.items()):
        for who in {k.split("__")[0] for k in entry if "__" in k}:
            def part(e):
                return {k.split("__", 1)[1]: v for k, v in e.items()
                        if k.startswith(who + "__")}
            medians[f"{name}#{who}"] = {**part(entry),
                                       "_runs": [part(r) for r in entry["_runs"]]}
    return medians, {**meta, "context": data.get("context", {})}


def value(entry, metric):
    """A figure of a benchmark's median: 'ns' per item, or a counter."""
    if entry is None:
        return None
    if metric == "ns":
        ips = entry.get("items_per_second")
        return 1e9 / ips if ips else None
    if metric == "ips":
        return entry.get("items_per_second")
    if metric.startswith("spread:"):
        # max / min of a figure over the repetitions
        xs = [value(r, metric[len("spread:"):]) for r in entry.get("_runs", [])]
        xs = [x for x in xs if x]
        return max(xs) / min(xs) if len(xs) > 1 else None
    if metric.startswith(("total:", "max:")):
        # the sum or the largest of a figure over the repetitions
        how, name = metric.split(":", 1)
        xs = [value(r, name) for r in entry.get("_runs", [])]
        xs = [x for x in xs if x is not None]
        return (sum(xs) if how == "total" else max(xs)) if xs else None
    return entry.get(metric)


def fmt(x, metric):
    if x is None:
        return "–"
    if metric == "ips":
        return f"{x / 1e6:.2f} M/s"
    if metric.startswith("spread:") or metric == "of_ideal":
        return f"{x:.3f}"
    if metric.startswith("total:"):
        return f"{x:,.0f}"
    if metric.startswith("max:"):
        return f"{x:.2f}"
    if metric in ("ns",) and x < 10:
        return f"{x:.2f}"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}"


# --- The tables --------------------------------------------------------------
# Each row: (label, benchmark binary, braid's benchmark, baseline's benchmark,
# metric). The ratio is braid / baseline: below 1, braid is cheaper.

def yield_rows():
    rows = []
    for n in ("1", "1000", "100000"):
        rows.append((f"yield, {int(n):,} task{'s' if n != '1' else ''}", "event_loop_bench",
                     f"BM_event_loop_yield<braid::interleaved_t>/{n}",
                     f"BM_baseline_deque_loop_yield/{n}", "ns"))
    return rows


TABLES = {
    "event_loop": {
        "columns": ("braid", "baseline", "braid / baseline"),
        "note": "nanoseconds per operation (bytes for memory)",
        "rows": yield_rows() + [
            ("await a child that finishes at once", "event_loop_bench", "BM_task_await",
             "BM_baseline_min_task_await<malloc_frames>", "ns"),
            ("await, against a minimal task with a free list", "event_loop_bench",
             "BM_task_await", "BM_baseline_min_task_await<free_list_frames>", "ns"),
            ("await, against a minimal task that passes exceptions on", "event_loop_bench",
             "BM_task_await", "BM_baseline_min_task_await<malloc_frames, rethrow_error>", "ns"),
            ("await, against that task with a free list", "event_loop_bench",
             "BM_task_await", "BM_baseline_min_task_await<free_list_frames, rethrow_error>",
             "ns"),
            ("call_soon and run", "event_loop_bench", "BM_event_loop_call_soon",
             "BM_baseline_function_queue", "ns"),
            ("memory per waiting task (bytes)", "event_loop_bench",
             "BM_event_loop_memory_per_task/10000/iterations:3",
             "BM_baseline_deque_loop_memory_per_task/10000/iterations:3", "bytes_per_task"),
        ],
    },
    "event_loop_asio": {
        "columns": ("braid", "asio", "braid / asio"),
        "note": "nanoseconds per operation (bytes for memory)",
        "rows": [
            (f"yield, {int(n):,} task{'s' if n != '1' else ''}", "event_loop_bench",
             f"BM_event_loop_yield<braid::interleaved_t>/{n}", f"BM_asio_post_yield/{n}", "ns")
            for n in ("1", "1000", "100000")
        ] + [
            ("await", "event_loop_bench", "BM_task_await", "BM_asio_awaitable_await", "ns"),
            ("call_soon and run", "event_loop_bench", "BM_event_loop_call_soon",
             "BM_asio_post_callback", "ns"),
            ("memory per waiting task (bytes)", "event_loop_bench",
             "BM_event_loop_memory_per_task/10000/iterations:3",
             "BM_asio_memory_per_task/10000/iterations:3", "bytes_per_task"),
        ],
    },
    "timers": {
        "columns": ("braid", "asio", "minimal heap", "braid / asio", "braid / minimal"),
        "note": "nanoseconds of CPU per timer",
        "rows3": [
            (f"{what}, {int(n):,} pending", "timer_bench", f"BM_timer_schedule_{kind}_braid/{n}",
             f"BM_timer_schedule_{kind}_asio/{n}", f"BM_timer_schedule_{kind}_minimal_heap/{n}",
             "ns")
            for kind, what in (("fire", "schedule and fire"), ("cancel", "schedule and cancel"))
            for n in ("1000", "100000", "1000000")
        ],
    },
    "threads": {
        "columns": ("braid", "asio", "braid / asio"),
        "note": "nanoseconds per call (µs for latencies)",
        "rows": [
            ("call_soon_threadsafe from one other thread, per call", "loop_threads_bench",
             "BM_threadsafe_post_braid/real_time", "BM_threadsafe_post_asio/real_time", "ns"),
            *[(f"waking an idle loop on {where}: {m[:-3]} (µs)", "loop_threads_bench",
               wakeup(cpu, "braid"),
               wakeup(cpu, "asio"), m)
              for cpu, where in WAKEUP_PLACES for m in ("median_us", "p99_us")],
            ("run_in round trip, wall time", "loop_threads_bench",
             "BM_run_in_round_trip_braid/real_time", "BM_run_in_round_trip_asio/real_time", "ns"),
            ("run_in round trip, CPU of both threads", "loop_threads_bench",
             "BM_run_in_round_trip_braid/real_time", "BM_run_in_round_trip_asio/real_time",
             "cpu_ns_per_trip"),
        ],
    },
    "threads_minimal": {
        "columns": ("braid", "minimal", "braid / minimal"),
        "note": "the same, against a minimal mutex-and-eventfd loop written in the benchmark",
        "rows": [
            ("call_soon_threadsafe from one other thread, per call", "loop_threads_bench",
             "BM_threadsafe_post_braid/real_time", "BM_threadsafe_post_minimal/real_time", "ns"),
            *[(f"waking an idle loop on {where}: {m[:-3]} (µs)", "loop_threads_bench",
               wakeup(cpu, "braid"),
               wakeup(cpu, "minimal"), m)
              for cpu, where in WAKEUP_PLACES for m in ("median_us", "p99_us")],
        ],
    },
    "idle": {
        "columns": ("braid",),
        "note": "microseconds of the loop thread's CPU while it waits 100 ms for a timer, "
                "right after work came back from a pool (it spins up to 50 µs first)",
        "single": [
            ("loop CPU per 100 ms idle (µs)", "loop_threads_bench",
             "BM_idle_cpu_after_run_in_braid/iterations:5/real_time",
             "loop_cpu_us_per_100ms_idle"),
        ],
    },
    "composition": {
        "columns": ("when_all", "spawn + callbacks", "when_all / floor"),
        "note": "nanoseconds per task: when_all of N tasks that finish at their first step, "
                "against spawning them and collecting results by hand with done callbacks",
        "rows": [
            (f"N = {int(n):,}", "composition_bench", f"BM_when_all/{n}",
             f"BM_baseline_spawn_and_callbacks/{n}", "ns")
            for n in ("2", "100", "10000")
        ],
    },
    "stream": {
        "presets": ["gcc-release"],
        "note": "of ideal (throughput / (2 workers / work per item)), items per second "
                "with no work; in brackets: the row's figure / TBB's with 2 threads",
        "matrix": {
            "bench": "stream_executor_bench",
            "rows": [("braid `stream_executor::map`", "BM_stream_executor_map"),
                     ("braid, buffer 1,000 instead of 100",
                      "BM_stream_executor_map_buffer_1000"),
                     ("TBB `parallel_pipeline`, 2 threads", "BM_tbb_parallel_pipeline"),
                     ("TBB `parallel_pipeline`, 4 threads",
                      "BM_tbb_parallel_pipeline_4_threads"),
                     ("mutex + condvar pool, ordered ring", "BM_mutex_pool_ordered_ring"),
                     ("`std::async` per item", "BM_std_async_per_item"),
                     ("sequential loop", "BM_sequential_loop")],
            "base": "BM_tbb_parallel_pipeline",
            "columns": [("0 µs (items/s)", "/work_ns:0/real_time", "ips"),
                        ("1 µs", "/work_ns:1000/real_time", "of_ideal"),
                        ("10 µs", "/work_ns:10000/real_time", "of_ideal"),
                        ("100 µs", "/work_ns:100000/real_time", "of_ideal")],
        },
    },
    "stream_tail": {
        "presets": ["gcc-release"],
        "note": "maps of 400 items of 100 µs, 500 in all (10 runs of 50), each timed alone; "
                "ideal: two workers doing nothing but `f`",
        "matrix": {
            "bench": "stream_executor_bench",
            "rows": [("braid, buffer 100", "BM_stream_executor_map_tail/buffer:100"),
                     ("braid, buffer 1,000", "BM_stream_executor_map_tail/buffer:1000")],
            "columns": [("maps taking ≥ 1.2× ideal", "/iterations:1/real_time",
                         "total:slow_maps"),
                        ("slowest map / ideal", "/iterations:1/real_time", "max:slowest")],
        },
    },
    "stream_cpu_work": {
        "presets": ["gcc-release"],
        "note": "of ideal with `f` a fixed computation instead of a spin to a deadline; "
                "in brackets: the row's figure / TBB's with 2 threads",
        "matrix": {
            "bench": "stream_executor_bench",
            "rows": [("braid `stream_executor::map`", "BM_stream_executor_map_cpu_work"),
                     ("TBB `parallel_pipeline`, 2 threads", "BM_tbb_parallel_pipeline_cpu_work"),
                     ("sequential loop", "BM_sequential_loop_cpu_work")],
            "base": "BM_tbb_parallel_pipeline_cpu_work",
            "columns": [("1 µs", "/work_ns:1000/real_time", "of_ideal"),
                        ("10 µs", "/work_ns:10000/real_time", "of_ideal")],
        },
    },
    "stream_spread": {
        "presets": ["gcc-release"],
        "note": "run-to-run spread of `of_ideal`: the largest of the 10 runs / the "
                "smallest; the machine's two-thread speedup (2.0: two busy threads get "
                "twice the work of one) as measured before the runs",
        "matrix": {
            "bench": "stream_executor_bench",
            "rows": [("braid `stream_executor::map`", "BM_stream_executor_map"),
                     ("braid, buffer 1,000 instead of 100",
                      "BM_stream_executor_map_buffer_1000"),
                     ("TBB `parallel_pipeline`, 2 threads", "BM_tbb_parallel_pipeline")],
            "columns": [("1 µs", "/work_ns:1000/real_time", "spread:of_ideal"),
                        ("10 µs", "/work_ns:10000/real_time", "spread:of_ideal"),
                        ("100 µs", "/work_ns:100000/real_time", "spread:of_ideal")],
        },
        "single": [("two-thread speedup of the machine", "stream_executor_bench",
                    "BM_machine_two_thread_speedup/iterations:1/real_time", "speedup")],
    },
    "thread_pool": {
        "presets": ["gcc-release"],
        "columns": ("braid", "minimal pool", "asio", "braid / minimal", "braid / asio"),
        "note": "nanoseconds per task with 2 workers, fed by one thread (CPU "
                "microseconds for the idle second)",
        "rows3": [
            (f"`post` of {int(n):,} task{'s' if n != '1' else ''} one by one, then wait",
             "thread_pool_bench",
             f"BM_thread_pool_post/tasks:{n}/real_time",
             f"BM_minimal_pool_post/tasks:{n}/real_time",
             f"BM_asio_thread_pool_post/tasks:{n}/real_time", "ns")
            for n in ("1", "100", "10000")
        ] + [
            ("round trip: post one task, wait until it ran", "thread_pool_bench",
             "BM_thread_pool_round_trip/real_time", "BM_minimal_pool_round_trip/real_time",
             "BM_asio_thread_pool_round_trip/real_time", "ns"),
            ("CPU used in an idle second after a burst (µs)", "thread_pool_bench",
             "BM_thread_pool_idle/iterations:1/real_time",
             "BM_minimal_pool_idle/iterations:1/real_time",
             "BM_asio_thread_pool_idle/iterations:1/real_time", "cpu_us"),
        ],
    },
    "thread_pool_batch": {
        "presets": ["gcc-release"],
        "columns": ("braid `post_all`", "minimal pool, one lock per batch",
                    "braid / minimal"),
        "note": "nanoseconds per task, the tasks handed over in one call",
        "rows": [
            (f"{int(n):,} tasks per call", "thread_pool_bench",
             f"BM_thread_pool_post_all/tasks:{n}/real_time",
             f"BM_minimal_pool_post_all/tasks:{n}/real_time", "ns")
            for n in ("100", "10000")
        ],
    },
}

ECHO_SERVERS = [("**braid**", "BM_echo_braid"), ("asio, coroutines", "BM_echo_asio_coro"),
                ("asio, callbacks", "BM_echo_asio_callback"),
                ("minimal epoll server (the floor)", "BM_echo_epoll"),
                ("uvloop", "BM_echo_uvloop"), ("asyncio", "BM_echo_asyncio")]
ECHO_COLUMNS = [(f"C = {int(c):,}", f"/connections:{c}/iterations:1/manual_time")
                for c in ("1", "10", "100", "1000")]
for name, metric, note in (
        ("echo_cpu", "server_ns_per_rt",
         "the server's CPU nanoseconds per round trip; in brackets: / the floor's"),
        ("echo_rate", "rt_per_s", "round trips per second (the load generator shares the "
                                  "server's CPU); in brackets: / the floor's"),
        ("echo_p50", "p50_us", "median latency of a round trip, µs; in brackets: / the "
                               "floor's")):
    TABLES[name] = {
        "presets": ["gcc-release"], "note": note,
        "matrix": {"bench": "echo_bench", "rows": ECHO_SERVERS, "base": "BM_echo_epoll",
                   "columns": [(label, suffix, metric) for label, suffix in ECHO_COLUMNS]},
    }
TABLES["echo_memory"] = {
    "presets": ["gcc-release"],
    "note": "growth of the server's resident memory per idle connection, bytes",
    "matrix": {"bench": "echo_bench",
               "rows": [(label, prefix.replace("BM_echo_", "BM_echo_idle_memory_"))
                        for label, prefix in ECHO_SERVERS],
               "columns": [("bytes per connection", "/iterations:1",
                            "bytes_per_connection")]},
}


# --- Goals -------------------------------------------------------------------
# (goal, preset, benchmark binary, braid's benchmark, baseline's or None,
#  metric, "<=" or ">=", limit): the figure is braid / baseline (or braid's
# own figure without a baseline), met when it compares to the limit as said.
# "no worse" is "<=" for contenders measured in turn within each run (the
# wake-up latencies), with a tie when the ratio is above the limit but the
# runs cannot tell them apart (see paired_wins).

def _goals():
    g = []
    for preset in PRESETS:
        cc = "g++" if preset.startswith("gcc") else "clang++"
        g.append((f"memory per waiting task ≤ 1.25× the minimal task's ({cc})", preset,
                  "event_loop_bench", "BM_event_loop_memory_per_task/10000/iterations:3",
                  "BM_baseline_deque_loop_memory_per_task/10000/iterations:3",
                  "bytes_per_task", "<=", 1.25))
        for n in ("1", "1000", "100000"):
            g.append((f"yield ≤ 1.3× the bare deque loop, {int(n):,} task"
                      f"{'s' if n != '1' else ''} ({cc})", preset,
                      "event_loop_bench", f"BM_event_loop_yield<braid::interleaved_t>/{n}",
                      f"BM_baseline_deque_loop_yield/{n}", "ns", "<=", 1.3))
        # Against the minimal task that passes its exceptions on, as braid's
        # does: clang elides the frames of the one that ends the program
        # instead, and of no task that passes them on, in this loop
        # (docs/compilers.md, "clang elides a child task's frame only if it is
        # destroyed on every path").
        g.append((f"await ≤ 2× a minimal task that passes exceptions on ({cc})", preset,
                  "event_loop_bench", "BM_task_await",
                  "BM_baseline_min_task_await<malloc_frames, rethrow_error>", "ns", "<=", 2.0))
        for n in ("1000", "100000", "1000000"):
            for kind in ("fire", "cancel"):
                g.append((f"timer schedule-and-{kind}, {int(n):,} pending: ≥ 2× faster "
                          f"than asio ({cc})", preset, "timer_bench",
                          f"BM_timer_schedule_{kind}_braid/{n}",
                          f"BM_timer_schedule_{kind}_asio/{n}", "ns", "<=", 0.5))
        g.append((f"`call_soon_threadsafe` ≥ 3× asio's throughput ({cc})", preset,
                  "loop_threads_bench", "BM_threadsafe_post_braid/real_time",
                  "BM_threadsafe_post_asio/real_time", "ns", "<=", 1 / 3))
        for cpu, where in WAKEUP_PLACES:
            for m in ("median_us", "p99_us"):
                g.append((f"idle wake-up on {where}, {m[:-3]}, no worse than asio's ({cc})",
                          preset, "loop_threads_bench",
                          wakeup(cpu, "braid"),
                          wakeup(cpu, "asio"), m, "no worse", 1.0))
        g.append((f"`run_in` round trip ≥ 10× faster than asio's ({cc})", preset,
                  "loop_threads_bench", "BM_run_in_round_trip_braid/real_time",
                  "BM_run_in_round_trip_asio/real_time", "ns", "<=", 0.1))
        for n in ("2", "100", "10000"):
            g.append((f"`when_all` of {int(n):,} ≤ 1.2× spawning and callbacks ({cc})", preset,
                      "composition_bench", f"BM_when_all/{n}",
                      f"BM_baseline_spawn_and_callbacks/{n}", "ns", "<=", 1.2))
    g += [
        ("`stream_executor::map` at 10 µs: ≥ 0.95 of ideal", "gcc-release",
         "stream_executor_bench", "BM_stream_executor_map/work_ns:10000/real_time", None,
         "of_ideal", ">=", 0.95),
        ("`stream_executor::map` at 10 µs: ≥ 1.0× TBB's `parallel_pipeline`", "gcc-release",
         "stream_executor_bench", "BM_stream_executor_map/work_ns:10000/real_time",
         "BM_tbb_parallel_pipeline/work_ns:10000/real_time", "of_ideal", ">=", 1.0),
        ("`stream_executor::map` at 1 µs: ≥ 0.85 of ideal", "gcc-release",
         "stream_executor_bench", "BM_stream_executor_map/work_ns:1000/real_time", None,
         "of_ideal", ">=", 0.85),
        ("`stream_executor::map` at 1 µs: spread over 10 runs < 1.15", "gcc-release",
         "stream_executor_bench", "BM_stream_executor_map/work_ns:1000/real_time", None,
         "spread:of_ideal", "<=", 1.15),
    ] + [
        (f"`thread_pool::post` one by one, {int(n):,} task{'s' if n != '1' else ''}: ≤ 1.0× "
         "the minimal pool", "gcc-release", "thread_pool_bench",
         f"BM_thread_pool_post/tasks:{n}/real_time", f"BM_minimal_pool_post/tasks:{n}/real_time",
         "ns", "<=", 1.0) for n in ("1", "100", "10000")
    ] + [
        ("`thread_pool::post_all` of 10,000: ≤ 1.1× the minimal pool's batch", "gcc-release",
         "thread_pool_bench", "BM_thread_pool_post_all/tasks:10000/real_time",
         "BM_minimal_pool_post_all/tasks:10000/real_time", "ns", "<=", 1.1),
    ]
    for c, limit in (("1", 0.95), ("10", 0.95), ("100", 0.95), ("1000", 0.9)):
        suffix = f"/connections:{c}/iterations:1/manual_time"
        g.append((f"echo, C = {int(c):,}: server CPU per round trip ≤ {1 / limit:.2f}× "
                  "the minimal epoll server's", "gcc-release", "echo_bench",
                  "BM_echo_braid" + suffix, "BM_echo_epoll" + suffix, "server_ns_per_rt", "<=",
                  round(1 / limit, 2)))
        for peer, what in (("asio_coro", "coroutines"), ("asio_callback", "callbacks")):
            g.append((f"echo, C = {int(c):,}: server CPU per round trip ≤ asio's "
                      f"({what})", "gcc-release", "echo_bench", "BM_echo_braid" + suffix,
                      f"BM_echo_{peer}" + suffix, "server_ns_per_rt", "<=", 1.0))
    g.append(("echo: ≤ 1 KB of memory per idle connection", "gcc-release", "echo_bench",
              "BM_echo_idle_memory_braid/iterations:1", None, "bytes_per_connection", "<=",
              1024))
    return g


GOALS = _goals()


def paired_wins(braid, base, metric):
    """For contenders measured in turn within each run: (runs in which
    braid's figure was at most the baseline's, runs)."""
    pairs = [(value(a, metric), value(b, metric))
             for a, b in zip(braid.get("_runs", []), base.get("_runs", []))]
    pairs = [(a, b) for a, b in pairs if a is not None and b]
    return sum(a <= b for a, b in pairs), len(pairs)


def shown_worse(wins, runs, alpha=0.05):
    """Whether the runs show braid worse than its baseline (a one-sided sign
    test): were each run as likely to favour either, braid would come out at
    or below the baseline in `wins` runs or fewer with probability at most
    alpha. With 10 runs: shown worse when it won at most 1."""
    from math import comb
    return sum(comb(runs, k) for k in range(wins + 1)) / 2 ** runs <= alpha


def render_goals(preset_data):
    lines = ["| goal | needed | measured | met |", "| --- | --- | --- | --- |"]
    for text, preset, bench, braid, base, metric, op, limit in GOALS:
        medians = preset_data.get(preset, {}).get(bench, ({}, {}))[0] or {}
        a = value(medians.get(braid), metric)
        b = value(medians.get(base), metric) if base else 1.0
        if a is None or not b:
            lines.append(f"| {text} | | not measured | – |")
            continue
        x = a / b
        shown = f"{x:.2f}×" if base else fmt(x, metric)
        tie = False
        if op == "no worse":
            wins, runs = paired_wins(medians[braid], medians[base], metric)
            shown += f" (braid ≤ asio in {wins} of {runs} runs)"
            op = "<="
            tie = x > limit and runs > 0 and not shown_worse(wins, runs)
        met = x <= limit if op == "<=" else x >= limit
        shown_limit = f"{limit:,.0f}" if limit >= 100 else f"{limit:.2f}"
        needed = f"{'≤' if op == '<=' else '≥'} {shown_limit}{'×' if base else ''}"
        verdict = "tie" if tie else "yes" if met else "**no**"
        lines.append(f"| {text} | {needed} | {shown} | {verdict} |")
    return "\n".join(lines) + "\n"


def render_matrix(spec, medians):
    cols = spec["columns"]
    lines = ["| | " + " | ".join(c[0] for c in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, prefix in spec["rows"]:
        cells = []
        for _, suffix, metric in cols:
            x = value(medians.get(prefix + suffix), metric)
            cell = fmt(x, metric)
            if x is not None and spec.get("base") and prefix != spec["base"]:
                b = value(medians.get(spec["base"] + suffix), metric)
                if b:
                    cell += f" ({x / b:.2f})"
            cells.append(cell)
        if any(c != "–" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_table(name, preset_data):
    spec = TABLES[name]
    lines = []
    for preset in spec.get("presets", PRESETS):
        lines.append(f"*{preset}* — {spec['note']}:\n")
        data = preset_data[preset]
        if "matrix" in spec:
            m = spec["matrix"]
            lines += render_matrix(m, data.get(m["bench"], ({}, {}))[0] or {})
            lines.append("")
        if "columns" in spec:
            cols = spec["columns"]
            lines.append("| figure | " + " | ".join(cols) + " |")
            lines.append("| --- |" + " --- |" * len(cols))
        for row in spec.get("rows", []):
            label, bench, braid, base, metric = row
            medians = data.get(bench, ({}, {}))[0] or {}
            a = value(medians.get(braid), metric)
            b = value(medians.get(base), metric)
            ratio = f"{a / b:.2f}" if a and b else "–"
            lines.append(f"| {label} | {fmt(a, metric)} | {fmt(b, metric)} | {ratio} |")
        for row in spec.get("rows3", []):
            label, bench, braid, base1, base2, metric = row
            medians = data.get(bench, ({}, {}))[0] or {}
            a = value(medians.get(braid), metric)
            b1 = value(medians.get(base1), metric)
            b2 = value(medians.get(base2), metric)
            r1 = f"{a / b1:.2f}" if a and b1 else "–"
            r2 = f"{a / b2:.2f}" if a and b2 else "–"
            lines.append(f"| {label} | {fmt(a, metric)} | {fmt(b1, metric)} | "
                         f"{fmt(b2, metric)} | {r1} | {r2} |")
        for row in spec.get("single", []):
            label, bench, braid, metric = row
            medians = data.get(bench, ({}, {}))[0] or {}
            x = fmt(value(medians.get(braid), metric), metric)
            lines.append(f"| {label} | {x} |" if "columns" in spec else f"{label}: {x}.")
        lines.append("")
    return "\n".join(lines)


def machine_line(preset_data):
    metas = [m for p in PRESETS for (_, m) in preset_data[p].values() if m]
    if not metas:
        return "(no results)"
    ctx = metas[0].get("context", {})
    loads = [m.get("load_before", 0) for m in metas] + [m.get("load_after", 0) for m in metas]
    # Programs re-run later (`run NAME`) are named with their own commit.
    by_commit = {}
    for p in PRESETS:
        for bench, (_, m) in preset_data[p].items():
            if m:
                by_commit.setdefault(m.get("commit", "?"), {"dates": set(), "benches": set()})
                by_commit[m.get("commit", "?")]["dates"].add(m.get("date", "?"))
                by_commit[m.get("commit", "?")]["benches"].add(bench)
    order = sorted(by_commit, key=lambda c: min(by_commit[c]["dates"]))
    parts = [f"{min(by_commit[order[0]]['dates'])}, commit `{order[0]}`"]
    for c in order[1:]:
        parts.append(f"{', '.join(sorted(by_commit[c]['benches']))} re-run at commit `{c}`, "
                     f"{min(by_commit[c]['dates'])}")
    return (f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz "
            f"({platform.processor() or platform.machine()}), {'; '.join(parts)}; load average "
            f"{min(loads):.1f}–{max(loads):.1f} during the runs")


def render():
    preset_data = {}
    for preset in PRESETS:
        preset_data[preset] = {}
        for path in sorted((RESULTS / preset).glob("*_bench.json")):
            bench = path.stem
            preset_data[preset][bench] = load(preset, bench)
    template = (ROOT / "bench" / "benchmarks.md.in").read_text()
    out = template.replace("<!-- machine -->", machine_line(preset_data))

    def table(m):
        return render_table(m.group(1), preset_data)

    out = re.sub(r"<!-- table (\w+) -->", table, out)
    out = out.replace("<!-- goals -->", render_goals(preset_data))
    (ROOT / "docs" / "benchmarks.md").write_text(out)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "render") or (
            sys.argv[1] == "render" and len(sys.argv) > 2):
        sys.exit(__doc__)
    run(sys.argv[2:]) if sys.argv[1] == "run" else render()
