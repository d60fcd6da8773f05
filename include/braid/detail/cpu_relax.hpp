// SPDX-License-Identifier: MIT
#pragma once

// detail::cpu_relax: the processor's spin-wait hint, for loops that poll a
// value another thread will write (it saves power and lets a hyper-threaded
// sibling run).

namespace braid::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

} // namespace braid::detail
