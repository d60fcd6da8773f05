// SPDX-License-Identifier: MIT
#pragma once

// BRAID_DETAIL_HOT_INLINE marks the functions of the loop's hot path (a step,
// a yield, a push onto the ready queue). clang 16 keeps some of them out of
// line at -O2 on their own, and g++ 12 has after unrelated changes -- a call
// per yield, which costs a third of a yield's time -- so they are forced
// inline (docs/compilers.md).
//
// BRAID_DETAIL_NOINLINE keeps a function out of line: a rare path that must
// not grow the hot code it is called from, or code that needs a call boundary
// (frame_pool.hpp says why).

#if defined(__GNUC__) || defined(__clang__)
#define BRAID_DETAIL_HOT_INLINE [[gnu::always_inline]] inline
#define BRAID_DETAIL_NOINLINE [[gnu::noinline]]
#else
#define BRAID_DETAIL_HOT_INLINE inline
#define BRAID_DETAIL_NOINLINE
#endif
