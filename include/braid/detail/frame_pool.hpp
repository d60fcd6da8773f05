// SPDX-License-Identifier: MIT
#pragma once

// detail::allocate_frame / deallocate_frame: where coroutine frames and the
// small nodes of the event loop come from. Each thread keeps a few free blocks
// of each size class (multiples of 16 bytes up to 1 KiB) so that a task that
// is created and finished in a loop reuses the same memory instead of calling
// malloc twice per await. A block may be freed on another thread than the one
// that allocated it: it simply joins that thread's lists. The lists are freed
// when their thread exits.
//
// Under AddressSanitizer, ThreadSanitizer or MemorySanitizer the pool is off,
// so that every frame is a separate allocation the sanitizer can see (use
// after free, leaks). Define BRAID_FRAME_POOL to 0 to turn it off elsewhere.

#include <braid/detail/hot_inline.hpp>

#include <cstddef>
#include <cstdint>
#include <new>

#ifndef BRAID_FRAME_POOL
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BRAID_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define BRAID_FRAME_POOL 0
#endif
#endif
#endif
#ifndef BRAID_FRAME_POOL
#define BRAID_FRAME_POOL 1
#endif

// Under clang the pool's entry points are kept out of line. Clang may compute
// the address of a thread_local once per coroutine and keep it in the frame
// across a suspension, after which the coroutine can be running on another
// thread (llvm/llvm-project#47179, #63022). A call boundary makes every access
// fresh. g++ lowers coroutines into separate ramp and actor functions before
// optimising, so the allocation (in the ramp) and the deallocation (in the
// destroy path) never share a computed address.
#if defined(__clang__)
#define BRAID_DETAIL_FRAME_POOL_INLINE BRAID_DETAIL_NOINLINE inline
#else
#define BRAID_DETAIL_FRAME_POOL_INLINE inline
#endif

namespace braid::detail {

// Sized delete when the compiler offers it (clang before 17 does not by default).
inline void free_block(void* block, [[maybe_unused]] std::size_t size) noexcept {
#if defined(__cpp_sized_deallocation)
    ::operator delete(block, size);
#else
    ::operator delete(block);
#endif
}

#if BRAID_FRAME_POOL

// Size classes of 16c + 24 bytes (24, 40, 56, ..., 1032). glibc's malloc puts
// an 8-byte header before each block and rounds blocks to 16 bytes, so a block
// of 16c + 8 bytes fills its chunk exactly; blocks of 16c left 8 bytes unused
// (a 120-byte frame took a 144-byte chunk, now 128).
inline constexpr std::size_t frame_pool_classes = 64;
inline constexpr std::size_t frame_pool_block(std::size_t c) noexcept {
    return 16 * c + 24;
}
inline constexpr std::size_t frame_pool_largest = frame_pool_block(frame_pool_classes - 1);
inline constexpr std::size_t frame_pool_class(std::size_t size) noexcept {
    return (size > 8 ? size - 9 : 0) / 16;
}
// Free blocks kept per class per thread: 32 KiB worth, and at least 32, so a
// burst of hundreds of small frames or callbacks is served from the lists. A
// program's frames use a handful of classes; the bound for all 64 is 2 MiB.
inline constexpr std::uint32_t frame_pool_depth(std::size_t c) noexcept {
    const std::size_t blocks = 32 * 1024 / frame_pool_block(c);
    return static_cast<std::uint32_t>(blocks < 32 ? 32 : blocks);
}

// Trivially destructible, so it is usable until the very end of its thread,
// even from the destructors of other thread_locals.
struct frame_pool_lists {
    void* head[frame_pool_classes];
    // Blocks each list may still take; 0 once the thread is exiting.
    std::uint32_t room[frame_pool_classes];
    bool armed; // room has been set and the reaper registered
};

inline thread_local constinit frame_pool_lists tls_frame_pool{};

inline void free_frame_pool_lists(frame_pool_lists& lists) noexcept {
    for (std::size_t c = 0; c < frame_pool_classes; ++c) {
        lists.room[c] = 0; // from now on, blocks go back to the system
        while (void* block = lists.head[c]) {
            lists.head[c] = *static_cast<void**>(block);
            free_block(block, frame_pool_block(c));
        }
    }
}

// Frees the calling thread's cached blocks when the thread exits.
struct frame_pool_reaper {
    frame_pool_reaper() noexcept {}
    frame_pool_reaper(const frame_pool_reaper&) = delete;
    frame_pool_reaper& operator=(const frame_pool_reaper&) = delete;
    ~frame_pool_reaper() { free_frame_pool_lists(tls_frame_pool); }
    void arm() noexcept {}
};

inline thread_local frame_pool_reaper tls_frame_pool_reaper;

// The first allocation of a thread from the system opens its lists.
inline void arm_frame_pool(frame_pool_lists& lists) noexcept {
    lists.armed = true;
    tls_frame_pool_reaper.arm();
    for (std::size_t c = 0; c < frame_pool_classes; ++c) {
        lists.room[c] = frame_pool_depth(c);
    }
}

BRAID_DETAIL_FRAME_POOL_INLINE void* allocate_frame(std::size_t size) {
    if (size <= frame_pool_largest) {
        const std::size_t c = frame_pool_class(size);
        frame_pool_lists& lists = tls_frame_pool;
        if (void* block = lists.head[c]) {
            lists.head[c] = *static_cast<void**>(block);
            ++lists.room[c];
            return block;
        }
        if (!lists.armed) {
            arm_frame_pool(lists);
        }
        return ::operator new(frame_pool_block(c));
    }
    return ::operator new(size);
}

BRAID_DETAIL_FRAME_POOL_INLINE void deallocate_frame(void* block, std::size_t size) noexcept {
    if (size <= frame_pool_largest) {
        const std::size_t c = frame_pool_class(size);
        frame_pool_lists& lists = tls_frame_pool;
        if (lists.room[c] != 0) {
            *static_cast<void**>(block) = lists.head[c];
            lists.head[c] = block;
            --lists.room[c];
            return;
        }
        free_block(block, frame_pool_block(c));
        return;
    }
    free_block(block, size);
}

#else

inline void* allocate_frame(std::size_t size) {
    return ::operator new(size);
}
inline void deallocate_frame(void* block, std::size_t size) noexcept {
    free_block(block, size);
}

#endif

} // namespace braid::detail
