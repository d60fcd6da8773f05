// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::thread_pool_task: a move-only `void() noexcept` callable with
// room for a few pointers inline, so that the small callables a thread_pool
// runs (a lambda holding a pointer and an index, a shared_ptr) cost no heap
// allocation. Larger callables, or ones whose move may throw, go to the heap.
// Owned by whoever holds it; not thread-safe (a queue moves it between threads
// under its own lock).

#include <cstddef>
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
        if constexpr (fits_inline<callable>) {
            ::new (static_cast<void*>(storage_)) callable(std::forward<F>(f));
            ops_ = &inline_ops<callable>;
        } else {
            *reinterpret_cast<callable**>(storage_) = new callable(std::forward<F>(f));
            ops_ = &heap_ops<callable>;
        }
    }

    thread_pool_task(thread_pool_task&& other) noexcept : ops_(other.ops_) {
        if (ops_ != nullptr) {
            ops_->move(other.storage_, storage_);
            other.ops_ = nullptr;
        }
    }

    thread_pool_task& operator=(thread_pool_task&& other) noexcept {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                other.ops_->move(other.storage_, storage_);
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
            ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    struct operations {
        void (*call)(void*) noexcept;
        void (*move)(void* from, void* to) noexcept; // leaves `from` destroyed
        void (*destroy)(void*) noexcept;
    };

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

    template <class C>
    static constexpr operations heap_ops{
        [](void* p) noexcept { (**static_cast<C**>(p))(); },
        [](void* from, void* to) noexcept { *static_cast<C**>(to) = *static_cast<C**>(from); },
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

    void push(thread_pool_task&& task) {
        if (size_ == slots_.size())
            grow();
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
    void grow() {
        std::vector<thread_pool_task> bigger(slots_.empty() ? 16 : 2 * slots_.size());
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
