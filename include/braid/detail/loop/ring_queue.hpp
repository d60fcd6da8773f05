// SPDX-License-Identifier: MIT
#pragma once

// detail::ring_queue: a double-ended FIFO of trivially copyable items in one
// ring buffer. It allocates only when it grows (doubling) and never shrinks,
// so a loop that keeps a steady number of items ready does no allocation per
// step. Single-threaded: the owner serialises every call.
//
// head_ points at the first item and tail_ one past the last, both wrapping
// at end_. One slot always stays free, so head_ == tail_ means empty; a push
// that would fill it grows the ring first (so a failed allocation leaves the
// queue as it was). A push or a pop is a store or load and a pointer step.

#include <braid/detail/hot_inline.hpp>

#include <cstddef>
#include <new>
#include <type_traits>

namespace braid::detail {

template <class T>
class ring_queue {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "ring_queue holds plain values: items are copied bitwise and never destroyed");

public:
    ring_queue() : begin_(new T[initial_capacity]) {
        end_ = begin_ + initial_capacity;
        head_ = tail_ = begin_;
    }
    ring_queue(const ring_queue&) = delete;
    ring_queue& operator=(const ring_queue&) = delete;
    ~ring_queue() { delete[] begin_; }

    [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
    [[nodiscard]] std::size_t size() const noexcept {
        const std::ptrdiff_t n = tail_ - head_;
        return static_cast<std::size_t>(n >= 0 ? n : n + (end_ - begin_));
    }

    BRAID_DETAIL_HOT_INLINE void push_back(T item) {
        T* next = tail_ + 1 == end_ ? begin_ : tail_ + 1;
        if (next == head_) [[unlikely]] {
            grow(); // before the item goes in: if it throws, nothing changed
            next = tail_ + 1;
        }
        *tail_ = item;
        tail_ = next;
    }

    BRAID_DETAIL_HOT_INLINE void push_front(T item) {
        T* prev = head_ == begin_ ? end_ - 1 : head_ - 1;
        if (prev == tail_) [[unlikely]] {
            grow();
            prev = end_ - 1;
        }
        *prev = item;
        head_ = prev;
    }

    // Precondition: !empty().
    BRAID_DETAIL_HOT_INLINE T pop_front() noexcept {
        T item = *head_;
        if (++head_ == end_) {
            head_ = begin_;
        }
        return item;
    }

    // Makes room for n more items, so that the next n pushes cannot throw.
    void reserve_more(std::size_t n) {
        while (size() + n >= static_cast<std::size_t>(end_ - begin_)) {
            grow();
        }
    }

    // Whether the first or the last item is `item` (for traces: a task just
    // put back by the policy).
    [[nodiscard]] bool holds_at_an_end(T item) const noexcept {
        if (head_ == tail_) {
            return false;
        }
        const T* last = tail_ == begin_ ? end_ - 1 : tail_ - 1;
        return head_->bits == item.bits || last->bits == item.bits;
    }

private:
    static constexpr std::size_t initial_capacity = 64;

    // Doubles the ring, keeping the items in order from its start.
    void grow() {
        const std::size_t capacity = static_cast<std::size_t>(end_ - begin_);
        T* bigger = new T[capacity * 2];
        T* out = bigger;
        for (T* p = head_; p != tail_; p = p + 1 == end_ ? begin_ : p + 1) {
            *out++ = *p;
        }
        delete[] begin_;
        begin_ = bigger;
        end_ = bigger + capacity * 2;
        head_ = bigger;
        tail_ = out;
    }

    T* begin_;
    T* end_;
    T* head_;
    T* tail_;
};

} // namespace braid::detail
