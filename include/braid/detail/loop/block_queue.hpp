// SPDX-License-Identifier: MIT
#pragma once

// detail::block_queue: the event loop's ready queue, a double-ended FIFO of
// trivially copyable items (one word in the loop) in fixed 4 KiB blocks.
// Growing adds a block and copies nothing, so the queue costs 8 bytes per
// item at its high-water mark plus the unused parts of the blocks at its two
// ends and one spare block, instead of the up to 16 bytes per item of a ring
// that doubles. Single-threaded: the owner serialises every call.
//
// A ring of block pointers, the map, holds the blocks in order (it doubles
// when full: a word per block). head_ points at the first item and tail_ at
// the slot the next push_back fills; both always point into a block (filling
// a block's last slot moves tail_ to the next block at once, emptying it moves
// head_ on), so head_ == tail_ means empty even across blocks. A push or a pop
// is a compare, a store or load and a pointer step; going to another block is
// the out-of-line slow path.
//
// Memory. No block is allocated before the first push, so a loop that never
// runs a task costs nothing. A block that a pop empties is kept as a spare for
// the next block change and a second one is freed, so a queue that moves along
// its blocks or pushes and pops across a block's edge allocates nothing per
// step. A loop with a few tasks so has two blocks once its queue has gone past
// the end of the first: 8 KiB for what a ring sized to its items would hold in
// a few hundred bytes. A smaller first block would help such loops only, which
// already pay a 4 KiB block for their table of spawned tasks (root_table.hpp),
// and would make blocks differ. Keeping a queue of a few items in one block,
// by moving them to its middle when an end reached its edge, saved the second
// block but made a yield with one task 7 % slower with g++ 12 (by an amount
// that changed with where the stack was), so it is not done.
//
// Reservations. reserve_more(n) allocates the spares that the next n pushes
// could take, however they are split between the ends, and the map keeps a
// slot for every block and spare, so taking a spare allocates nothing. Room
// once reserved is not given back: pops take no block, and a pop that empties
// a block raises what the pushes still to come could take by one block at most
// (the front's room falls to none); that block is kept unless the spares
// already cover the largest reservation so far with no room at the front. So a
// promise holds whatever pops come between (a task waiting on a socket is
// woken without allocating when the socket is closed long after the wait
// began).

#include <braid/detail/hot_inline.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace braid::detail {

template <class T, std::size_t BlockItems = 4096 / sizeof(T)>
class block_queue {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "block_queue holds plain values: items are copied bitwise and never destroyed");
    static_assert(BlockItems >= 8, "block_queue: blocks of fewer than 8 items are not tested (and "
                                   "an item of more than 512 bytes makes 4 KiB blocks too small)");

public:
    static constexpr std::size_t block_items = BlockItems;

    block_queue() noexcept = default;
    block_queue(const block_queue&) = delete;
    block_queue& operator=(const block_queue&) = delete;
    ~block_queue();

    [[nodiscard]] bool empty() const noexcept { return head_ == tail_; }
    // Without a branch, so that it is inlined where a policy is asked
    // (scheduler::ask_policy, inlined into every yield): a call there made
    // g++ 12 save three more registers on every resume of a task.
    [[nodiscard]] std::size_t size() const noexcept {
        return (tail_block_ - head_block_) * block_items +
               static_cast<std::size_t>(tail_ - tail_begin_) -
               static_cast<std::size_t>(head_ - head_begin_);
    }

    BRAID_DETAIL_HOT_INLINE void push_back(T item) {
        if (tail_ == tail_last_) [[unlikely]] {
            push_back_slow(item); // also the first push: both are null then
            return;
        }
        *tail_++ = item;
    }

    BRAID_DETAIL_HOT_INLINE void push_front(T item) {
        if (head_ == head_begin_) [[unlikely]] {
            push_front_slow(item);
            return;
        }
        *--head_ = item;
    }

    // Precondition: !empty().
    BRAID_DETAIL_HOT_INLINE T pop_front() noexcept {
        const T item = *head_;
        if (++head_ == head_end_) [[unlikely]] {
            leave_head_block();
        }
        return item;
    }

    // Makes room for n more items, so that the next n pushes, at either end
    // and whatever pops come between them, cannot throw.
    void reserve_more(std::size_t n);

    // Whether the first or the last item is `item` (for traces: a task just
    // put back by the policy).
    [[nodiscard]] bool holds_at_an_end(T item) const noexcept {
        if (head_ == tail_) {
            return false;
        }
        // tail_ at a block's first slot: the last item ends the block before.
        const T& last =
            tail_ != tail_begin_ ? tail_[-1] : map_[slot(tail_block_ - 1)][block_items - 1];
        return head_->bits == item.bits || last.bits == item.bits;
    }

private:
    // Blocks in use, counting the partly filled ones at both ends.
    [[nodiscard]] std::size_t blocks() const noexcept {
        return head_begin_ == nullptr ? 0 : tail_block_ + 1 - head_block_;
    }
    [[nodiscard]] std::size_t slot(std::size_t block) const noexcept {
        return block & (map_slots_ - 1);
    }
    [[nodiscard]] std::size_t back_room() const noexcept {
        return static_cast<std::size_t>(tail_last_ - tail_);
    }
    [[nodiscard]] std::size_t front_room() const noexcept {
        return static_cast<std::size_t>(head_ - head_begin_);
    }

    // At most how many blocks n pushes can take when the back has room for
    // `back` and the front for `front` of them, however they are split.
    static std::size_t blocks_for(std::size_t n, std::size_t back, std::size_t front) noexcept;

    // The slow paths, out of line so that the hot path stays small.
    BRAID_DETAIL_NOINLINE void push_back_slow(T item);
    BRAID_DETAIL_NOINLINE void push_front_slow(T item);
    BRAID_DETAIL_NOINLINE void leave_head_block() noexcept;
    void add_first_block(bool at_back);
    T* take_block(bool at_back);
    void reserve_map(std::size_t count);

    // The hot path's: the head block's bounds and the tail block's last slot.
    T* head_ = nullptr;
    T* head_begin_ = nullptr;
    T* head_end_ = nullptr;
    T* tail_ = nullptr;
    T* tail_last_ = nullptr;
    T* tail_begin_ = nullptr; // size()'s
    // Block i of the queue is map_[slot(i)] for i in [head_block_,
    // tail_block_]; the counters wrap, the slots are taken modulo the map's
    // size (a power of two). The spares follow the tail block. Before the
    // first block both counters are 0 and every pointer is null, so that
    // size() is 0 with nothing to test.
    std::unique_ptr<T*[]> map_;
    std::size_t map_slots_ = 0;
    std::size_t head_block_ = 0;
    std::size_t tail_block_ = 0;
    std::size_t spares_ = 0;
    std::size_t promised_ = 0; // the largest reservation so far
};

template <class T, std::size_t BlockItems>
block_queue<T, BlockItems>::~block_queue() {
    for (std::size_t i = 0, n = blocks() + spares_; i < n; ++i) {
        delete[] map_[slot(head_block_ + i)];
    }
}

template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::reserve_more(std::size_t n) {
    if (n == 0) {
        return;
    }
    if (blocks() == 0) {
        add_first_block(true); // whose room the pushes then use
    }
    const std::size_t needed = blocks_for(n, back_room(), front_room());
    if (spares_ < needed) {
        reserve_map(blocks() + needed);
        while (spares_ < needed) {
            map_[slot(tail_block_ + 1 + spares_)] = new T[block_items];
            ++spares_;
        }
    }
    promised_ = std::max(promised_, n);
}

template <class T, std::size_t BlockItems>
std::size_t block_queue<T, BlockItems>::blocks_for(std::size_t n, std::size_t back,
                                                   std::size_t front) noexcept {
    // Pushes at one end past its room take a block per block_items of them.
    const auto past = [](std::size_t pushes, std::size_t room) -> std::size_t {
        return pushes > room ? (pushes - room - 1) / block_items + 1 : 0;
    };
    std::size_t most = std::max(past(n, back), past(n, front));
    if (n >= back + front + 2) { // enough for both ends to run past their room
        most = std::max(most, past(n, back + front) + 1);
    }
    return most;
}

// No block yet, or tail_ at the tail block's last slot: the item goes there
// and tail_ to the next block.
template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::push_back_slow(T item) {
    if (blocks() == 0) {
        add_first_block(true);
        *tail_++ = item;
        return;
    }
    T* const block = take_block(true); // first: if it throws, nothing changed
    *tail_ = item;
    ++tail_block_;
    tail_ = tail_begin_ = block;
    tail_last_ = block + (block_items - 1);
}

// No block yet, or head_ at the head block's first slot: the item goes into
// the last slot of a new head block.
template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::push_front_slow(T item) {
    if (blocks() == 0) {
        add_first_block(false);
        *--head_ = item;
        return;
    }
    T* const block = take_block(false);
    --head_block_;
    head_begin_ = block;
    head_end_ = block + block_items;
    head_ = block + (block_items - 1);
    *head_ = item;
}

// The head block is empty (and not the tail block): on to the next one.
template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::leave_head_block() noexcept {
    T* const emptied = head_begin_;
    ++head_block_;
    T* const block = map_[slot(head_block_)];
    head_ = head_begin_ = block;
    head_end_ = block + block_items;
    // See "Reservations" at the top: the front's room is none now.
    if (spares_ < std::max<std::size_t>(1, blocks_for(promised_, back_room(), 0))) {
        map_[slot(tail_block_ + 1 + spares_)] = emptied; // the slot is free: see reserve_map
        ++spares_;
    } else {
        delete[] emptied;
    }
}

// The first block. Its whole room goes to the end pushed first: the loop's
// first pushes are push_back, and starting in the middle would leave half of
// the block unused in a queue that grows past it.
template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::add_first_block(bool at_back) {
    reserve_map(1);
    T* const block = new T[block_items];
    map_[slot(head_block_)] = block; // head_block_ == tail_block_
    head_begin_ = tail_begin_ = block;
    head_end_ = block + block_items;
    tail_last_ = block + (block_items - 1);
    head_ = tail_ = at_back ? block : tail_last_;
}

// A block for the map slot after the tail block or before the head block: a
// spare if there is one, else a new one. Changes nothing if it throws; the
// caller moves tail_block_ or head_block_ onto it.
template <class T, std::size_t BlockItems>
T* block_queue<T, BlockItems>::take_block(bool at_back) {
    if (spares_ == 0) {
        reserve_map(blocks() + 1);
        T* const block = new T[block_items];
        map_[slot(at_back ? tail_block_ + 1 : head_block_ - 1)] = block;
        return block;
    }
    // The spares follow the tail block: the last one moves to the slot (it
    // is the slot itself when the spares fill the map's free slots).
    const std::size_t to = slot(at_back ? tail_block_ + 1 : head_block_ - 1);
    std::swap(map_[to], map_[slot(tail_block_ + spares_)]);
    --spares_;
    return map_[to];
}

// Makes the map hold `count` blocks (in use, spare and to come), so that
// every block and spare has a slot and placing one never allocates.
template <class T, std::size_t BlockItems>
void block_queue<T, BlockItems>::reserve_map(std::size_t count) {
    if (count <= map_slots_) {
        return;
    }
    std::size_t slots = map_slots_ == 0 ? 8 : map_slots_ * 2;
    while (slots < count) {
        slots *= 2;
    }
    auto bigger = std::make_unique<T*[]>(slots);
    const std::size_t in_use = blocks();
    for (std::size_t i = 0; i < in_use + spares_; ++i) {
        bigger[i] = map_[slot(head_block_ + i)];
    }
    map_ = std::move(bigger);
    map_slots_ = slots;
    tail_block_ -= head_block_;
    head_block_ = 0;
}

} // namespace braid::detail
