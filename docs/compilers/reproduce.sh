#!/usr/bin/env bash
# Compiles and runs each program of this directory with the compilers and
# flags docs/compilers.md discusses, and prints what happened. Each program
# exits with 0 when the compiler got it right. Compilers that are not
# installed are skipped.
#
#   bash docs/compilers/reproduce.sh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# run <program> <compiler and flags...>
run() {
  local program=$1
  shift
  local compiler=$1
  if ! command -v "$compiler" >/dev/null 2>&1; then
    printf '  %-45s not installed\n' "$*"
    return
  fi
  if ! "$@" -std=c++20 -pthread "$here/$program.cpp" -o "$out/$program" 2>"$out/errors"; then
    printf '  %-45s does not compile: %s\n' "$*" "$(grep -m1 'error' "$out/errors" | sed 's/.*error: //')"
    return
  fi
  local result
  result=$( (ulimit -s 8192; "$out/$program") 2>&1)
  local status=$?
  local what
  case $status in
    0) what="right" ;;
    139) what="crashed (SIGSEGV: stack overflow)" ;;
    *) what="WRONG (exit $status)" ;;
  esac
  if grep -q 'stack-overflow' <<<"$result"; then what="crashed (AddressSanitizer: stack-overflow)"; fi
  printf '  %-45s %s; %s\n' "$*" "$what" "$(grep -v '^==\|^ *#\|^$' <<<"$result" | head -1)"
}

echo "ranges_take: libstdc++'s <ranges> adaptors"
for c in clang++-14 clang++-16 g++-12; do run ranges_take $c; done

echo "symmetric_transfer: a million awaits through symmetric transfer"
for o in -O0 -O1 -O2; do run symmetric_transfer g++-12 $o; done
run symmetric_transfer g++-12 -O2 -fsanitize=address
for o in -O0 -O2; do run symmetric_transfer clang++-16 $o; done
run symmetric_transfer clang++-16 -O0 -fsanitize=address
run symmetric_transfer clang++-16 -O2 -fsanitize=address

echo "thread_local_in_loop: a thread_local read after moving to another thread"
for o in -O0 -O2; do run thread_local_in_loop g++-12 $o; done
for o in -O0 -O1 -O2; do run thread_local_in_loop clang++-16 $o; done
run thread_local_in_loop clang++-14 -O2

echo "temporary_in_co_await: a lambda with a capture inside a co_await expression"
for o in -O0 -O2; do run temporary_in_co_await g++-12 $o; done
run temporary_in_co_await clang++-16 -O0

echo "hot_path_inlining: instructions per yield with BRAID_DETAIL_HOT_INLINE as shipped and as plain inline"
if ! command -v valgrind >/dev/null 2>&1; then
  echo "  valgrind not installed"
  exit 0
fi
include=$here/../../include
cp -r "$include" "$out/plain"
hot_inline=$out/plain/braid/detail/hot_inline.hpp
forced='#define BRAID_DETAIL_HOT_INLINE \[\[gnu::always_inline\]\] inline'
if ! grep -q "$forced" "$hot_inline"; then
  echo "  hot_inline.hpp no longer defines BRAID_DETAIL_HOT_INLINE as this script expects"
  exit 1
fi
sed -i "s/$forced/#define BRAID_DETAIL_HOT_INLINE inline/" "$hot_inline"
for compiler in clang++-16 g++-12; do
  command -v $compiler >/dev/null 2>&1 || { echo "  $compiler not installed"; continue; }
  for variant in always_inline plain; do
    dir=$include
    [ $variant = plain ] && dir=$out/plain
    $compiler -std=c++20 -O2 -DNDEBUG -I "$dir" "$here/hot_path_inlining.cpp" -o "$out/hot"
    outlined=$(nm -C "$out/hot" | grep -oE ' [tTW] braid::detail::scheduler::(step|resume|yield)\(' | sed 's/.*:://; s/($//' | tr '\n' ' ')
    instructions=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$out/hot" 2>&1 >/dev/null |
      grep -o 'Collected : [0-9]*' | awk '{print $3}')
    printf '  %-12s %-14s %5.1f instructions per yield; out of line: %s\n' "$compiler -O2" "$variant" \
      "$(awk -v n="$instructions" 'BEGIN {print n / 2000000}')" "${outlined:-none}"
  done
done
