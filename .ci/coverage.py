#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Which lines of braid's headers no test reaches.

    python3 .ci/coverage.py [build-dir]       (default: build/coverage)

Builds the tests with clang++-16's source-based coverage (-O0), runs every
CTest test but the stress ones, one profile per test binary, and prints,
for each header under include/braid, the lines no test ran, then the share
of lines run. Needs Debian's clang-16 and llvm-16.

One profile per binary, not one merged profile for all: a header's inline
functions are compiled into many binaries, and merging their counters across
binaries drops the ones whose code differs (llvm-cov warns of "mismatched
data"), so that lines a test runs can look unreached. The union is taken
per line afterwards. Tests that run a program through a CMake script (the
examples' transcripts) are not counted.
"""

import itertools
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "coverage").resolve()
HEADERS = ROOT / "include" / "braid"
PROFDATA = "llvm-profdata-16"
COV = "llvm-cov-16"


def run(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def build():
    flags = "-fprofile-instr-generate -fcoverage-mapping"
    run("cmake", "-S", str(ROOT), "-B", str(BUILD), "-G", "Ninja",
        "-DCMAKE_CXX_COMPILER=clang++-16", "-DCMAKE_BUILD_TYPE=Debug",
        f"-DCMAKE_CXX_FLAGS={flags}", "-DCMAKE_EXE_LINKER_FLAGS=-fprofile-instr-generate",
        "-DBRAID_BUILD_BENCHMARKS=OFF", "-DBRAID_STRESS_TESTS=OFF", stdout=subprocess.DEVNULL)
    run("cmake", "--build", str(BUILD))


def run_tests(profiles):
    listing = subprocess.run(["ctest", "--show-only=json-v1", "-LE", "stress"], cwd=BUILD,
                             check=True, capture_output=True, text=True).stdout
    failed = []
    for test in json.loads(listing)["tests"]:
        command = test.get("command")
        if not command:
            continue
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        env = dict(os.environ)
        env.update(kv.split("=", 1) for kv in props.get("ENVIRONMENT", []))
        env["LLVM_PROFILE_FILE"] = str(profiles / f"{pathlib.Path(command[0]).name}-%p.profraw")
        result = subprocess.run(command, cwd=props.get("WORKING_DIRECTORY", BUILD), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=props.get("TIMEOUT", 600))
        if result.returncode != 0:
            failed.append(test["name"])
    return failed


def covered_lines(profiles):
    by_binary = defaultdict(list)
    for raw in profiles.glob("*.profraw"):
        by_binary[raw.name.rsplit("-", 1)[0]].append(raw)
    binaries = {p.name: p for p in BUILD.rglob("*") if p.is_file() and os.access(p, os.X_OK)}
    counts = defaultdict(dict)  # header -> line -> count
    for name, raws in sorted(by_binary.items()):
        binary = binaries.get(name)
        if binary is None:
            continue  # a CMake script's child, say
        merged = profiles / f"{name}.profdata"
        run(PROFDATA, "merge", "-sparse", "-o", str(merged), *map(str, raws))
        lcov = subprocess.run([COV, "export", str(binary), f"-instr-profile={merged}",
                               "-format=lcov", str(HEADERS)],
                              check=True, capture_output=True, text=True).stdout
        source = None
        for line in lcov.splitlines():
            if line.startswith("SF:"):
                source = line[3:]
            elif line.startswith("DA:"):
                number, count = map(int, line[3:].split(",")[:2])
                lines = counts[source]
                lines[number] = max(lines.get(number, 0), count)
    return counts


def ranges(numbers):
    out = []
    for _, group in itertools.groupby(enumerate(numbers), lambda t: t[1] - t[0]):
        group = [n for _, n in group]
        out.append(f"{group[0]}-{group[-1]}" if len(group) > 1 else str(group[0]))
    return " ".join(out)


def main():
    missing = [tool for tool in ("clang++-16", PROFDATA, COV) if shutil.which(tool) is None]
    if missing:
        print(f"coverage.py: needs {', '.join(missing)}: apt-get install -y clang-16 llvm-16",
              file=sys.stderr)
        return 2
    build()
    profiles = BUILD / "coverage-profiles"
    profiles.mkdir(exist_ok=True)
    for old in profiles.iterdir():
        old.unlink()
    failed = run_tests(profiles)
    counts = covered_lines(profiles)
    total = reached = 0
    for source in sorted(counts):
        lines = counts[source]
        total += len(lines)
        reached += sum(1 for c in lines.values() if c > 0)
        missed = sorted(n for n, c in lines.items() if c == 0)
        if missed:
            print(f"{os.path.relpath(source, HEADERS)}: {len(missed)} lines: {ranges(missed)}")
    print(f"lines run by the tests: {reached} of {total} ({100.0 * reached / max(total, 1):.1f}%)")
    for name in failed:
        print(f"failed: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
