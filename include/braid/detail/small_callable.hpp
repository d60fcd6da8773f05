// SPDX-License-Identifier: MIT
#pragma once

// detail::small_callable<InlineSize, Noexcept>: a move-only `void()` callable
// with InlineSize bytes of room inline, so that the small callables handed
// between threads (a lambda holding a pointer and an index, a shared_ptr, a
// bound call) cost no heap allocation. Larger callables, or ones whose move
// may throw, go to the heap. A thread_pool's tasks (whose calls must not
// throw) and the items other threads push to an event loop are both one.
//
// A trivially copyable callable (a lambda capturing pointers and numbers) is
// moved by copying its bytes and needs no destruction: of the three indirect
// calls per trip through a queue (move in, move out, destroy) none is left.
// A heap callable's pointer moves the same way.
//
// Owned by whoever holds it; not thread-safe (a queue moves it between
// threads under its own lock).

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace braid::detail {

template <std::size_t InlineSize, bool Noexcept>
class small_callable {
public:
    static constexpr std::size_t inline_size = InlineSize;

    template <class F>
    static constexpr bool accepts =
        Noexcept ? std::is_nothrow_invocable_v<F&> : std::is_invocable_v<F&>;

    small_callable() noexcept = default;

    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, small_callable> && accepts<std::decay_t<F>>)
    explicit small_callable(F&& f) {
        using C = std::decay_t<F>;
        if constexpr (fits_inline<C>) {
            ::new (static_cast<void*>(storage_)) C(std::forward<F>(f));
            ops_ = &inline_ops<C>;
        } else {
            ::new (static_cast<void*>(storage_)) C*(new C(std::forward<F>(f)));
            ops_ = &heap_ops<C>;
        }
    }

    small_callable(small_callable&& other) noexcept : ops_(other.ops_) {
        if (ops_ != nullptr) {
            relocate(*ops_, other.storage_, storage_);
            other.ops_ = nullptr;
        }
    }

    small_callable& operator=(small_callable&& other) noexcept {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                relocate(*other.ops_, other.storage_, storage_);
                ops_ = std::exchange(other.ops_, nullptr);
            }
        }
        return *this;
    }

    small_callable(const small_callable&) = delete;
    small_callable& operator=(const small_callable&) = delete;

    ~small_callable() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    // Precondition: holds a callable.
    void operator()() noexcept(Noexcept) { ops_->call(storage_); }

    // Calls it and empties it, also when the call throws. Precondition:
    // holds a callable.
    void call_once() noexcept(Noexcept) {
        const operations* ops = std::exchange(ops_, nullptr);
        struct destroyer {
            const operations* ops;
            unsigned char* storage;
            ~destroyer() {
                if (ops->destroy != nullptr) {
                    ops->destroy(storage);
                }
            }
        } done{ops, storage_};
        ops->call(storage_);
    }

    void reset() noexcept {
        if (ops_ != nullptr) {
            if (ops_->destroy != nullptr) {
                ops_->destroy(storage_);
            }
            ops_ = nullptr;
        }
    }

    // Whether it holds a C stored inline, and that C.
    template <class C>
    [[nodiscard]] bool holds() const noexcept {
        if constexpr (fits_inline<C>) {
            return ops_ == &inline_ops<C>;
        } else {
            return false;
        }
    }
    // Precondition: holds<C>().
    template <class C>
    [[nodiscard]] C& get() noexcept {
        return *std::launder(reinterpret_cast<C*>(storage_));
    }

private:
    using call_fn = void (*)(void*) noexcept(Noexcept);
    struct operations {
        call_fn call;
        void (*move)(void* from, void* to) noexcept; // leaves `from` destroyed; null: copy bytes
        void (*destroy)(void*) noexcept;             // null: nothing to do
    };

    static void relocate(const operations& ops, void* from, void* to) noexcept {
        if (ops.move != nullptr) {
            ops.move(from, to);
        } else {
            std::memcpy(to, from, inline_size);
        }
    }

    template <class C>
    static constexpr bool fits_inline =
        sizeof(C) <= inline_size && alignof(C) <= alignof(std::max_align_t) &&
        std::is_nothrow_move_constructible_v<C>;

    // A trivially copyable C may be copied byte for byte into another storage
    // and used there ([basic.types.general]); its destructor is trivial.
    template <class C>
    static constexpr bool trivial = std::is_trivially_copyable_v<C>;

    template <class C>
    static constexpr operations inline_ops{
        [](void* p) noexcept(Noexcept) { (*std::launder(static_cast<C*>(p)))(); },
        trivial<C> ? nullptr
                   : +[](void* from, void* to) noexcept {
                         C* source = std::launder(static_cast<C*>(from));
                         ::new (to) C(std::move(*source));
                         source->~C();
                     },
        trivial<C> ? nullptr
                   : +[](void* p) noexcept { std::launder(static_cast<C*>(p))->~C(); },
    };

    template <class C>
    static constexpr operations heap_ops{
        [](void* p) noexcept(Noexcept) { (**static_cast<C**>(p))(); },
        nullptr, // the pointer moves with the bytes
        [](void* p) noexcept { delete *static_cast<C**>(p); },
    };

    const operations* ops_ = nullptr;
    alignas(std::max_align_t) unsigned char storage_[inline_size];
};

} // namespace braid::detail
