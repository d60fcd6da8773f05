#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draws the timeline of a trace written by braid::chrome_tracer as a PNG.

    examples/factorial_interleaving --policy sequential --policy interleaved \\
        --policy step_slice:3 --trace factorial.json
    python3 bench/trace_timeline.py factorial.json docs/images/factorial_timeline.png

One panel per group of the trace (per run), one lane per task, a bar per step.
The x axis counts the loop's steps in the order they ran (--x steps, the
default: a callback is a step too; this is the loop's round count, except
that a task going on in the step of a child task that finished is drawn as a
step of its own), or the time from the group's first event (--x time).
Needs Debian's python3-matplotlib.
"""

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.patches import Patch  # noqa: E402


def load(path):
    """The trace's events; a file cut short (no closing bracket) is read too."""
    with open(path) as f:
        text = f.read().strip()
    if text.startswith("[") and not text.endswith("]"):
        text = text.rstrip(",") + "]"
    events = json.loads(text)
    return events["traceEvents"] if isinstance(events, dict) else events


def groups_of(events):
    """[(name, [track]), ...] in the order of the groups; a track is a dict
    with its name, its slices (ts, dur, args) and its instants (ts, name)."""
    names, tracks, order = {}, {}, {}
    for e in events:
        if e.get("ph") != "M":
            continue
        if e["name"] == "process_name":
            names[e["pid"]] = e["args"]["name"]
        elif e["name"] == "thread_name":
            track = tracks.setdefault((e["pid"], e["tid"]), {"slices": [], "instants": []})
            track["name"] = e["args"]["name"]
        elif e["name"] == "thread_sort_index":
            order[(e["pid"], e["tid"])] = e["args"]["sort_index"]
    for e in events:
        key = (e.get("pid"), e.get("tid"))
        if key not in tracks:
            continue
        if e.get("ph") == "X":
            tracks[key]["slices"].append(e)
        elif e.get("ph") == "i" and e["name"] != "spawn":
            tracks[key]["instants"].append(e)
    groups = []
    for pid in sorted({pid for pid, _ in tracks}):
        keys = sorted((k for k in tracks if k[0] == pid), key=lambda k: order.get(k, k[1]))
        lanes = [tracks[k] for k in keys if tracks[k]["slices"] or tracks[k]["instants"]]
        groups.append((names.get(pid, f"group {pid}"), lanes))
    return groups


def place(lanes, axis):
    """Gives every slice an x and a width, and every instant an x."""
    slices = sorted((s for lane in lanes for s in lane["slices"]), key=lambda s: s["ts"])
    start = min((s["ts"] for s in slices), default=0)
    if axis == "steps":
        for rank, s in enumerate(slices):
            s["x"], s["width"] = rank, 1
        starts = [s["ts"] for s in slices]
        for lane in lanes:
            for i in lane["instants"]:
                i["x"] = sum(1 for t in starts if t < i["ts"])
    else:
        for s in slices:
            s["x"], s["width"] = s["ts"] - start, s["dur"]
        for lane in lanes:
            for i in lane["instants"]:
                i["x"] = i["ts"] - start


def finished(lane):
    """The step that finished the task, if the trace has it."""
    ends = [s for s in lane["slices"] if "finished" in s.get("args", {})]
    return ends[-1] if ends else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace", help="a trace written by braid::chrome_tracer")
    parser.add_argument("png", help="the picture to write")
    parser.add_argument("--x", choices=("steps", "time"), default="steps",
                        help="steps in the order they ran (default), or microseconds")
    args = parser.parse_args()

    groups = groups_of(load(args.trace))
    if not groups:
        sys.exit(f"{args.trace}: no tracks")
    palette = plt.get_cmap("tab10").colors
    colours = {}  # task name -> colour, the same in every panel
    lanes_total = sum(len(lanes) for _, lanes in groups)
    fig, axes = plt.subplots(len(groups), 1, sharex=True, squeeze=False,
                             figsize=(8, 1.0 + 0.42 * lanes_total + 0.45 * len(groups)),
                             gridspec_kw={"height_ratios": [max(1, len(l)) for _, l in groups]})
    for ax, (name, lanes) in zip(axes[:, 0], groups):
        place(lanes, args.x)
        done = []
        for row, lane in enumerate(lanes):
            y = len(lanes) - 1 - row  # the first lane on top
            colour = "0.6" if lane["name"] == "loop" else colours.setdefault(
                lane["name"], palette[len(colours) % len(palette)])
            last = finished(lane)
            for s in lane["slices"]:
                # Outlined in rounds; not in time, where most steps are thin.
                ax.broken_barh([(s["x"], s["width"])], (y - 0.35, 0.7), facecolor=colour,
                               edgecolor="black" if args.x == "steps" else colour,
                               linewidth=0.5, hatch="////" if s is last else None)
            for i in lane["instants"]:
                ax.plot([i["x"]], [y], marker="v", color="black", markersize=5)
            if last is not None and args.x == "steps":
                done.append(last["x"] + 1)
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels([lane["name"] for lane in reversed(lanes)])
        ax.set_ylim(-0.6, len(lanes) - 0.4)
        title = name
        if done:
            mean = sum(done) / len(done)
            title += f": the tasks finish in rounds {', '.join(map(str, done))} (mean {mean:.1f})"
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_axisbelow(True)
    bottom = axes[-1, 0]
    if args.x == "steps":
        steps = max(s["x"] + 1 for _, lanes in groups for lane in lanes for s in lane["slices"])
        bottom.set_xlim(0, steps)
        bottom.set_xticks([x + 0.5 for x in range(steps)])
        bottom.set_xticklabels([str(x + 1) for x in range(steps)])
        bottom.set_xticks(range(steps + 1), minor=True)
        bottom.tick_params(axis="x", which="both", length=0)
        bottom.set_xlabel("round (a step of the loop)")
    else:
        bottom.set_xlabel("time from the run's first event (µs)")
    for ax in axes[:, 0]:
        ax.grid(axis="x", which="minor" if args.x == "steps" else "major", color="0.85",
                linewidth=0.5)
    legend = [Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=n)
              for n, c in colours.items()]
    legend.append(Patch(facecolor="white", edgecolor="black", linewidth=0.5, hatch="////",
                        label="the step that finishes the task"))
    fig.legend(handles=legend, loc="lower center", ncol=min(len(legend), 4), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07 + 0.02 * (len(legend) > 4), 1, 1))
    fig.savefig(args.png, dpi=90)


if __name__ == "__main__":
    main()
