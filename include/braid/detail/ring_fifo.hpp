// SPDX-License-Identifier: MIT
#pragma once

// detail::ring_fifo<T>: a FIFO of move-only items (a pool's tasks, the
// thread-safe calls a loop has collected) in a ring that doubles when full and
// never shrinks, so that a queue in a steady state allocates nothing per item.
// Not thread-safe: its owner guards it (a pool with its mutex; a loop by
// using it on its own thread only). The ready queue, whose items link
// themselves, is detail::ready_queue.

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace braid::detail {

template <class T>
    requires std::is_nothrow_move_assignable_v<T> && std::is_default_constructible_v<T>
class ring_fifo {
public:
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    // Makes room for n more items, so that as many push() calls after it
    // cannot throw.
    void reserve_more(std::size_t n) {
        if (size_ + n > slots_.size()) {
            grow(size_ + n);
        }
    }

    // Throws std::bad_alloc, with nothing changed, only when it must grow.
    void push(T&& item) {
        if (size_ == slots_.size()) {
            grow(size_ + 1);
        }
        slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(item);
        ++size_;
    }

    // Precondition: !empty().
    T pop() noexcept {
        T item = std::move(slots_[head_]);
        head_ = (head_ + 1) & (slots_.size() - 1);
        --size_;
        return item;
    }

private:
    void grow(std::size_t needed) {
        std::size_t capacity = slots_.empty() ? 16 : 2 * slots_.size();
        while (capacity < needed) {
            capacity *= 2;
        }
        std::vector<T> bigger(capacity);
        for (std::size_t i = 0; i < size_; ++i) {
            bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
        }
        slots_ = std::move(bigger);
        head_ = 0;
    }

    std::vector<T> slots_; // size is zero or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

} // namespace braid::detail
