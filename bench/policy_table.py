#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns policy_bench's JSON output into the Markdown tables of docs/policies.md.

    bench/policy_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \\
        --benchmark_out=policies.json --benchmark_out_format=json
    python3 bench/policy_table.py policies.json

Takes the medians when the run has repetitions, else the single runs.
"""

import json
import sys
from collections import OrderedDict


def number(value, digits=3):
    """A figure with `digits` significant digits and thousands separators."""
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.{digits}g}"
    magnitude = len(str(int(abs(value))))
    decimals = max(0, digits - magnitude)
    return f"{value:,.{decimals}f}"


def rate(value):
    """Steps per second with an SI prefix."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{number(value / factor)} {prefix}"
    return number(value)


def main(path):
    with open(path) as f:
        report = json.load(f)
    # In registration order, also when the run interleaved repetitions.
    runs = sorted(report["benchmarks"], key=lambda r: r.get("family_index", 0))
    has_medians = any(r.get("aggregate_name") == "median" for r in runs)
    rows = OrderedDict()  # workload -> [(policy, counters)]
    for r in runs:
        if has_medians and r.get("aggregate_name") != "median":
            continue
        name = r.get("run_name", r["name"]).removesuffix("/manual_time")
        workload, policy = name.removeprefix("BM_policy_").rsplit("/", 1)
        rows.setdefault(workload, []).append((policy, r))

    for workload, entries in rows.items():
        interactive = "reply_us_max" in entries[0][1]
        print(f"**{workload}**\n")
        if interactive:
            print("| policy | wall (µs) | CPU (µs) | steps/s | reply wait, mean / max (rounds) "
                  "| reply wait, mean / max (µs) | interactive task done (µs) "
                  "| all tasks done, mean (µs) |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for policy, c in entries:
                print(f"| `{policy}` | {number(c['wall_us'])} | {number(c['cpu_us'])} "
                      f"| {rate(c['steps_per_s'])} "
                      f"| {number(c['reply_rounds_mean'])} / {number(c['reply_rounds_max'])} "
                      f"| {number(c['reply_us_mean'])} / {number(c['reply_us_max'])} "
                      f"| {number(c['interactive_done_us'])} | {number(c['done_us_mean'])} |")
        else:
            print("| policy | wall (µs) | CPU (µs) | steps/s | done, mean / median / p99 / max (rounds) "
                  "| done, mean / median / p99 / max (µs) |")
            print("|---|---:|---:|---:|---:|---:|")
            for policy, c in entries:
                done_rounds = " / ".join(number(c[f"done_rounds_{s}"])
                                         for s in ("mean", "median", "p99", "max"))
                done_us = " / ".join(number(c[f"done_us_{s}"])
                                     for s in ("mean", "median", "p99", "max"))
                print(f"| `{policy}` | {number(c['wall_us'])} | {number(c['cpu_us'])} "
                      f"| {rate(c['steps_per_s'])} "
                      f"| {done_rounds} | {done_us} |")
        print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: policy_table.py <policy_bench JSON output>")
    main(sys.argv[1])
