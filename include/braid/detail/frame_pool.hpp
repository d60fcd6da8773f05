// SPDX-License-Identifier: MIT
#pragma once

// detail::allocate_frame / deallocate_frame: where coroutine frames and the
// small nodes of the event loop come from. Each thread keeps a few free blocks
// of each size class (multiples of 64 bytes up to 1 KiB) so that a task that
// is created and finished in a loop reuses the same memory instead of calling
// malloc twice per await. A block may be freed on another thread than the one
// that allocated it: it simply joins that thread's lists. The lists are freed
// when their thread exits.
//
// Under AddressSanitizer, ThreadSanitizer or MemorySanitizer the pool is off,
// so that every frame is a separate allocation the sanitizer can see (use
// after free, leaks). Define BRAID_FRAME_POOL to 0 to turn it off elsewhere.

#include <cstddef>
#include <cstdint>
#include <new>

#ifndef BRAID_FRAME_POOL
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BRAID_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                     \
    __has_feature(memory_sanitizer)
#define BRAID_FRAME_POOL 0
#endif
#endif
#endif
#ifndef BRAID_FRAME_POOL
#define BRAID_FRAME_POOL 1
#endif

// The pool's entry points are kept out of line. Clang may compute the address
// of a thread_local once per coroutine and keep it in the frame across a
// suspension, after which the coroutine can be running on another thread
// (llvm/llvm-project#47179, #63022). A call boundary makes every access fresh.
#if defined(__GNUC__) || defined(__clang__)
#define BRAID_DETAIL_NOINLINE [[gnu::noinline]]
#else
#define BRAID_DETAIL_NOINLINE
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

inline constexpr std::size_t frame_pool_granule = 64;
inline constexpr std::size_t frame_pool_classes = 16; // pooled blocks: up to 1 KiB
inline constexpr std::size_t frame_pool_depth = 128;  // free blocks kept per class per thread

// Trivially destructible, so it is usable until the very end of its thread,
// even from the destructors of other thread_locals.
struct frame_pool_lists {
    void* head[frame_pool_classes];
    std::uint32_t count[frame_pool_classes];
    bool reaper_armed;
    bool closed;
};

inline thread_local constinit frame_pool_lists tls_frame_pool{};

inline void free_frame_pool_lists(frame_pool_lists& lists) noexcept {
    lists.closed = true;
    for (std::size_t c = 0; c < frame_pool_classes; ++c) {
        while (void* block = lists.head[c]) {
            lists.head[c] = *static_cast<void**>(block);
            free_block(block, (c + 1) * frame_pool_granule);
        }
        lists.count[c] = 0;
    }
}

// Frees the calling thread's cached blocks when the thread exits. Armed the
// first time the thread caches a block.
struct frame_pool_reaper {
    frame_pool_reaper() noexcept {}
    frame_pool_reaper(const frame_pool_reaper&) = delete;
    frame_pool_reaper& operator=(const frame_pool_reaper&) = delete;
    ~frame_pool_reaper() { free_frame_pool_lists(tls_frame_pool); }
    void arm() noexcept {}
};

inline thread_local frame_pool_reaper tls_frame_pool_reaper;

BRAID_DETAIL_NOINLINE inline void* allocate_frame(std::size_t size) {
    if (size <= frame_pool_classes * frame_pool_granule) {
        const std::size_t c = (size - 1) / frame_pool_granule;
        frame_pool_lists& lists = tls_frame_pool;
        if (void* block = lists.head[c]) {
            lists.head[c] = *static_cast<void**>(block);
            --lists.count[c];
            return block;
        }
        return ::operator new((c + 1) * frame_pool_granule);
    }
    return ::operator new(size);
}

BRAID_DETAIL_NOINLINE inline void deallocate_frame(void* block, std::size_t size) noexcept {
    if (size <= frame_pool_classes * frame_pool_granule) {
        const std::size_t c = (size - 1) / frame_pool_granule;
        frame_pool_lists& lists = tls_frame_pool;
        if (lists.count[c] < frame_pool_depth && !lists.closed) {
            if (!lists.reaper_armed) {
                lists.reaper_armed = true;
                tls_frame_pool_reaper.arm();
            }
            *static_cast<void**>(block) = lists.head[c];
            lists.head[c] = block;
            ++lists.count[c];
            return;
        }
        free_block(block, (c + 1) * frame_pool_granule);
        return;
    }
    free_block(block, size);
}

#else

inline void* allocate_frame(std::size_t size) { return ::operator new(size); }
inline void deallocate_frame(void* block, std::size_t size) noexcept {
    free_block(block, size);
}

#endif

} // namespace braid::detail
