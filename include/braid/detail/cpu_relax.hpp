// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::cpu_relax: the CPU's hint that the calling thread is
// polling a memory location. It makes the poll cheaper for a hyperthread
// sibling and for the memory system; it does not give the core to another
// thread (std::this_thread::yield() does that).

namespace braid::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

} // namespace braid::detail
