// SPDX-License-Identifier: MIT
#pragma once

// detail::ring_queue: a double-ended FIFO of trivially copyable items in one
// power-of-two ring. It allocates only when it grows (doubling) and never
// shrinks, so a loop that keeps a steady number of items ready does no
// allocation per step. Single-threaded: the owner serialises every call.

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace braid::detail {

template <class T>
class ring_queue {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "ring_queue holds plain values: items are copied bitwise and never destroyed");

public:
    ring_queue() = default;
    ring_queue(ring_queue&& other) noexcept
        : items_(std::move(other.items_)), mask_(std::exchange(other.mask_, 0)),
          head_(std::exchange(other.head_, 0)), size_(std::exchange(other.size_, 0)) {}
    ring_queue& operator=(ring_queue&& other) noexcept {
        items_ = std::move(other.items_);
        mask_ = std::exchange(other.mask_, 0);
        head_ = std::exchange(other.head_, 0);
        size_ = std::exchange(other.size_, 0);
        return *this;
    }

    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    void push_back(const T& item) {
        if (size_ == capacity()) [[unlikely]] {
            grow();
        }
        items_[(head_ + size_) & mask_] = item;
        ++size_;
    }

    void push_front(const T& item) {
        if (size_ == capacity()) [[unlikely]] {
            grow();
        }
        head_ = (head_ - 1) & mask_;
        items_[head_] = item;
        ++size_;
    }

    // Precondition: !empty().
    T pop_front() noexcept {
        T item = items_[head_];
        head_ = (head_ + 1) & mask_;
        --size_;
        return item;
    }

    // The i-th item from the front, for inspection (0 <= i < size()).
    [[nodiscard]] const T& operator[](std::size_t i) const noexcept {
        return items_[(head_ + i) & mask_];
    }

    void clear() noexcept {
        head_ = 0;
        size_ = 0;
    }

private:
    [[nodiscard]] std::size_t capacity() const noexcept { return items_ ? mask_ + 1 : 0; }

    void grow() {
        const std::size_t old_capacity = capacity();
        const std::size_t new_capacity = old_capacity == 0 ? 64 : old_capacity * 2;
        auto bigger = std::make_unique_for_overwrite<T[]>(new_capacity);
        for (std::size_t i = 0; i < size_; ++i) {
            bigger[i] = items_[(head_ + i) & mask_];
        }
        items_ = std::move(bigger);
        mask_ = new_capacity - 1;
        head_ = 0;
    }

    std::unique_ptr<T[]> items_;
    std::size_t mask_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

} // namespace braid::detail
