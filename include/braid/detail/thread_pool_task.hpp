// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::thread_pool_task: a move-only `void() noexcept` callable with
// room for a few pointers inline, so that the small callables a thread_pool
// runs (a lambda holding a pointer and an index, a shared_ptr) cost no heap
// allocation. Larger callables, or ones whose move may throw, go to the heap.
// A trivially copyable callable (a lambda capturing pointers and numbers) is
// moved by copying its bytes and needs no destruction: of its three indirect
// calls per trip through a queue (move in, move out, destroy) none is left.
// Owned by whoever holds it; not thread-safe (a queue moves it between threads
// under its own lock).

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace braid::detail {

class thread_pool_task {
public:
    static constexpr std::size_t inline_size = 4 * sizeof(void*);

    thread_pool_task() noexcept = default;

    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, thread_pool_task> &&
                 std::is_nothrow_invocable_v<std::decay_t<F>&>)
    explicit thread_pool_task(F&& f) {
        using callable = std::decay_t<F>;
        if constexpr (fits_inline<callable> && std::is_trivially_copyable_v<callable>) {
            ::new (static_cast<void*>(storage_)) callable(std::forward<F>(f));
            ops_ = &trivial_ops<callable>;
        } else if constexpr (fits_inline<callable>) {
            ::new (static_cast<void*>(storage_)) callable(std::forward<F>(f));
            ops_ = &inline_ops<callable>;
        } else {
            *reinterpret_cast<callable**>(storage_) = new callable(std::forward<F>(f));
            ops_ = &heap_ops<callable>;
        }
    }

    thread_pool_task(thread_pool_task&& other) noexcept : ops_(other.ops_) {
        if (ops_ != nullptr) {
            relocate(*ops_, other.storage_, storage_);
            other.ops_ = nullptr;
        }
    }

    thread_pool_task& operator=(thread_pool_task&& other) noexcept {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                relocate(*other.ops_, other.storage_, storage_);
                ops_ = std::exchange(other.ops_, nullptr);
            }
        }
        return *this;
    }

    thread_pool_task(const thread_pool_task&) = delete;
    thread_pool_task& operator=(const thread_pool_task&) = delete;

    ~thread_pool_task() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    // Precondition: holds a callable.
    void operator()() noexcept { ops_->call(storage_); }

    void reset() noexcept {
        if (ops_ != nullptr) {
            if (ops_->destroy != nullptr)
                ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    struct operations {
        void (*call)(void*) noexcept;
        void (*move)(void* from, void* to) noexcept; // leaves `from` destroyed; null: copy bytes
        void (*destroy)(void*) noexcept;             // null: nothing to do
    };

    static void relocate(const operations& ops, void* from, void* to) noexcept {
        if (ops.move != nullptr)
            ops.move(from, to);
        else
            std::memcpy(to, from, inline_size);
    }

    template <class C>
    static constexpr bool fits_inline =
        sizeof(C) <= inline_size && alignof(C) <= alignof(std::max_align_t) &&
        std::is_nothrow_move_constructible_v<C>;

    template <class C>
    static constexpr operations inline_ops{
        [](void* p) noexcept { (*std::launder(static_cast<C*>(p)))(); },
        [](void* from, void* to) noexcept {
            C* source = std::launder(static_cast<C*>(from));
            ::new (to) C(std::move(*source));
            source->~C();
        },
        [](void* p) noexcept { std::launder(static_cast<C*>(p))->~C(); },
    };

    // A trivially copyable C may be copied byte for byte into another
    // storage and used there ([basic.types.general]); its destructor is
    // trivial.
    template <class C>
    static constexpr operations trivial_ops{
        [](void* p) noexcept { (*std::launder(static_cast<C*>(p)))(); },
        nullptr,
        nullptr,
    };

    template <class C>
    static constexpr operations heap_ops{
        [](void* p) noexcept { (**static_cast<C**>(p))(); },
        nullptr, // the pointer moves with the bytes
        [](void* p) noexcept { delete *static_cast<C**>(p); },
    };

    const operations* ops_ = nullptr;
    alignas(std::max_align_t) unsigned char storage_[inline_size];
};

} // namespace braid::detail

#include <vector>

namespace braid::detail {

// A FIFO of tasks in a ring that doubles when full and never shrinks, so a
// pool in steady state allocates nothing per task. Not thread-safe: the pool
// guards it with its mutex.
class thread_pool_queue {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    // Makes room for `count` more tasks, so that as many push() calls after
    // it cannot throw.
    void reserve_more(std::size_t count) {
        if (size_ + count > slots_.size())
            grow(size_ + count);
    }

    void push(thread_pool_task&& task) {
        if (size_ == slots_.size())
            grow(size_ + 1);
        slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(task);
        ++size_;
    }

    // Precondition: !empty().
    thread_pool_task pop() noexcept {
        thread_pool_task task = std::move(slots_[head_]);
        head_ = (head_ + 1) & (slots_.size() - 1);
        --size_;
        return task;
    }

private:
    void grow(std::size_t needed) {
        std::size_t capacity = slots_.empty() ? 16 : 2 * slots_.size();
        while (capacity < needed)
            capacity *= 2;
        std::vector<thread_pool_task> bigger(capacity);
        for (std::size_t i = 0; i < size_; ++i) {
            bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
        }
        slots_ = std::move(bigger);
        head_ = 0;
    }

    std::vector<thread_pool_task> slots_; // size is zero or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

} // namespace braid::detail
