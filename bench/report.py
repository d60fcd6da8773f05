#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs braid's benchmarks and writes docs/benchmarks.md from their JSON.

    python3 bench/report.py run    # build trees -> build/bench-results/<preset>/*.json
    python3 bench/report.py render # build/bench-results -> docs/benchmarks.md

`run` needs the gcc-release and clang-release presets built (`cmake --build
--preset gcc-release` and clang-release). It runs every benchmark binary of
each with 5 repetitions in random order (medians are reported), pinned to
one CPU with taskset when the benchmark is single-threaded, and saves
Google Benchmark's JSON, with the machine's load and the commit beside it.

`render` fills bench/benchmarks.md.in: each `<!-- table NAME -->` line
becomes the table of that name, defined below in TABLES, whose rows pair a
braid figure with its baseline from the same run and state the ratio. No
figure in docs/benchmarks.md is typed by hand: re-run both commands.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "build" / "bench-results"
PRESETS = ["gcc-release", "clang-release"]

# Benchmarks that use one thread: pinned to one CPU, so the other core's
# noise does not move them. The threaded ones get both cores.
SINGLE_THREADED = {"event_loop_bench", "timer_bench", "composition_bench", "policy_bench"}
ARGS = ["--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
        "--benchmark_enable_random_interleaving=true"]


def run():
    RESULTS.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    for preset in PRESETS:
        bench_dir = ROOT / "build" / preset / "bench"
        out_dir = RESULTS / preset
        out_dir.mkdir(parents=True, exist_ok=True)
        for exe in sorted(bench_dir.glob("*_bench")):
            cmd = [str(exe)] + ARGS + ["--benchmark_format=json",
                                        f"--benchmark_out={out_dir / (exe.name + '.json')}",
                                        "--benchmark_out_format=json"]
            if exe.name in SINGLE_THREADED and shutil_which("taskset"):
                cmd = ["taskset", "-c", "1"] + cmd
            load = os.getloadavg()[0]
            print(f"{preset}: {exe.name} (load {load:.1f})", file=sys.stderr, flush=True)
            started = time.time()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, cwd=bench_dir)
            meta = {"commit": commit, "load_before": load, "load_after": os.getloadavg()[0],
                    "seconds": round(time.time() - started, 1),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            (out_dir / (exe.name + ".meta.json")).write_text(json.dumps(meta))


def shutil_which(name):
    from shutil import which
    return which(name) is not None


# --- Reading results ---------------------------------------------------------

def load(preset, bench):
    path = RESULTS / preset / f"{bench}.json"
    if not path.exists():
        return None, None
    data = json.loads(path.read_text())
    meta_path = RESULTS / preset / f"{bench}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    medians = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"]] = b
    return medians, {**meta, "context": data.get("context", {})}


def value(entry, metric):
    """A figure of a benchmark's median: 'ns' per item, or a counter."""
    if entry is None:
        return None
    if metric == "ns":
        ips = entry.get("items_per_second")
        return 1e9 / ips if ips else None
    if metric == "ms":
        return entry["real_time"] if entry.get("time_unit") == "ms" else None
    return entry.get(metric)


def fmt(x, metric):
    if x is None:
        return "–"
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
        rows.append((f"yield, {int(n):,} tasks", "event_loop_bench",
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
            (f"yield, {int(n):,} tasks", "event_loop_bench",
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
            ("waking an idle loop: median (µs)", "loop_threads_bench",
             "BM_wakeup_braid/iterations:5/real_time", "BM_wakeup_asio/iterations:5/real_time",
             "median_us"),
            ("waking an idle loop: p99 (µs)", "loop_threads_bench",
             "BM_wakeup_braid/iterations:5/real_time", "BM_wakeup_asio/iterations:5/real_time",
             "p99_us"),
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
            ("waking an idle loop: median (µs)", "loop_threads_bench",
             "BM_wakeup_braid/iterations:5/real_time", "BM_wakeup_minimal/iterations:5/real_time",
             "median_us"),
            ("waking an idle loop: p99 (µs)", "loop_threads_bench",
             "BM_wakeup_braid/iterations:5/real_time", "BM_wakeup_minimal/iterations:5/real_time",
             "p99_us"),
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
}


def render_table(name, preset_data):
    spec = TABLES[name]
    lines = []
    for preset in PRESETS:
        lines.append(f"*{preset}* — {spec['note']}:\n")
        cols = spec["columns"]
        lines.append("| figure | " + " | ".join(cols) + " |")
        lines.append("| --- |" + " --- |" * len(cols))
        data = preset_data[preset]
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
            lines.append(f"| {label} | {fmt(value(medians.get(braid), metric), metric)} |")
        lines.append("")
    return "\n".join(lines)


def machine_line(preset_data):
    metas = [m for p in PRESETS for (_, m) in preset_data[p].values() if m]
    if not metas:
        return "(no results)"
    ctx = metas[0].get("context", {})
    loads = [m.get("load_before", 0) for m in metas] + [m.get("load_after", 0) for m in metas]
    return (f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz "
            f"({platform.processor() or platform.machine()}), {metas[0].get('date', '?')}, "
            f"commit `{metas[0].get('commit', '?')}`, load average "
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
    (ROOT / "docs" / "benchmarks.md").write_text(out)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("run", "render"):
        sys.exit(__doc__)
    run() if sys.argv[1] == "run" else render()
