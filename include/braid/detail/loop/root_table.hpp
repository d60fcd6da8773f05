// SPDX-License-Identifier: MIT
#pragma once

// detail::root_table: the spawned, unfinished tasks a loop owns (and finished
// ones whose error nobody has read yet, promise_base::unread_bit), each in a
// slot whose index the task keeps (promise_base::root_index_), so that
// finishing a task touches its own slot only, not other tasks' frames.
// Single-threaded: the loop's thread only.
//
// Slots live in fixed blocks of block_slots, never moved: growing adds a
// block, so the table costs 8 bytes per task at its high-water mark plus at
// most one block, instead of the up to 16 bytes per task of a vector that
// doubles (13 at 10,000 tasks), and growing copies nothing. A free slot holds
// the index of the next free one, shifted, with the lowest bit set (a task's
// address has it clear); free slots form a list, reused first.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace braid::detail {

class promise_base;

class root_table {
public:
    root_table() = default;
    root_table(const root_table&) = delete;
    root_table& operator=(const root_table&) = delete;

    // A slot for a task being spawned (its entry is set with set()).
    std::uint32_t take() {
        if (free_head_ != no_slot) {
            const std::uint32_t index = free_head_;
            free_head_ = static_cast<std::uint32_t>(slot(index) >> 1);
            --free_count_;
            return index;
        }
        if (used_ == capacity()) {
            add_block();
        }
        slot(used_) = free_link(no_slot);
        return used_++;
    }

    void set(std::uint32_t index, promise_base* p) noexcept {
        slot(index) = reinterpret_cast<std::uintptr_t>(p);
    }

    // Returns a slot to the free list: nothing to allocate, so it cannot fail.
    void release(std::uint32_t index) noexcept {
        slot(index) = free_link(free_head_);
        free_head_ = index;
        ++free_count_;
    }

    // Makes room for n more slots, so that the next n take() cannot throw.
    void reserve(std::size_t n) {
        if (n <= free_count_) {
            return;
        }
        const std::size_t needed = used_ + (n - free_count_);
        blocks_.reserve((needed + block_slots - 1) / block_slots);
        while (capacity() < needed) {
            add_block();
        }
    }

    // Slots handed out so far (taken or freed): at(i) for i below it.
    [[nodiscard]] std::size_t used() const noexcept { return used_; }
    // The task in slot i, or nullptr for a free slot.
    [[nodiscard]] promise_base* at(std::size_t i) const noexcept {
        const std::uintptr_t entry = blocks_[i / block_slots][i % block_slots];
        return (entry & 1) != 0 ? nullptr : reinterpret_cast<promise_base*>(entry);
    }

private:
    // 4 KiB blocks: small next to a loop with many tasks, and a loop with
    // few tasks never has more than one.
    static constexpr std::size_t block_slots = 512;
    static constexpr std::uint32_t no_slot = 0xffff'ffff;

    static constexpr std::uintptr_t free_link(std::uint32_t next) noexcept {
        return (static_cast<std::uintptr_t>(next) << 1) | 1;
    }

    [[nodiscard]] std::size_t capacity() const noexcept { return blocks_.size() * block_slots; }
    std::uintptr_t& slot(std::uint32_t index) noexcept {
        return blocks_[index / block_slots][index % block_slots];
    }

    // If push_back throws, the new block is freed with its temporary owner.
    void add_block() {
        blocks_.push_back(std::make_unique_for_overwrite<std::uintptr_t[]>(block_slots));
    }

    std::vector<std::unique_ptr<std::uintptr_t[]>> blocks_;
    std::uint32_t used_ = 0;
    std::uint32_t free_head_ = no_slot; // the first free slot
    std::uint32_t free_count_ = 0;
};

} // namespace braid::detail
