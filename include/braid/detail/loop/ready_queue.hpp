// SPDX-License-Identifier: MIT
#pragma once

// detail::ready_queue: the event loop's ready queue, a double-ended FIFO
// threaded through its items. An item is one word (a task's frame, or a
// callback node with the lowest bit set) and has a word of its own, its link,
// that Links::link finds: while the item is queued, the link holds the next
// item's word with queued_tag set (queued_tag alone for the last item). So
// queueing allocates nothing and cannot fail, and the queue costs no memory
// per item beyond the link, which a task already has: the word of its
// promise that holds what it waits for while it is suspended (a queued task
// waits for nothing; promise_base::wait_word_). An item is in the queue at
// most once at a time.
//
// A push or a pop is a few loads and stores, no branch but "was the queue
// empty". Single-threaded: the owner serialises every call.

#include <braid/detail/hot_inline.hpp>

#include <cstddef>
#include <cstdint>

namespace braid::detail {

// Set in a queued item's link (never in a pointer: items are aligned to at
// least 8 bytes), so that the owner of the link can tell "queued" from "a
// pointer of its own" (promise_base::waiting_on).
inline constexpr std::uintptr_t queued_tag = 2;

// Links: static std::uintptr_t& link(std::uintptr_t item) noexcept.
template <class Links>
class ready_queue {
public:
    ready_queue() noexcept = default;
    // tail_ may point at head_: the queue stays where it was made.
    ready_queue(const ready_queue&) = delete;
    ready_queue& operator=(const ready_queue&) = delete;

    [[nodiscard]] bool empty() const noexcept { return head_ == queued_tag; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    BRAID_DETAIL_HOT_INLINE void push_back(std::uintptr_t item) noexcept {
        std::uintptr_t& link = Links::link(item);
        link = queued_tag;
        *tail_ = item | queued_tag;
        tail_ = &link;
        ++size_;
    }

    BRAID_DETAIL_HOT_INLINE void push_front(std::uintptr_t item) noexcept {
        std::uintptr_t& link = Links::link(item);
        link = head_;
        if (head_ == queued_tag) {
            tail_ = &link;
        }
        head_ = item | queued_tag;
        ++size_;
    }

    // Precondition: !empty(). The item's link keeps queued_tag: its owner
    // overwrites it when it next uses the word.
    BRAID_DETAIL_HOT_INLINE std::uintptr_t pop_front() noexcept {
        const std::uintptr_t item = head_ & ~queued_tag;
        head_ = Links::link(item);
        if (head_ == queued_tag) {
            tail_ = &head_;
        }
        --size_;
        return item;
    }

    // Whether the first or the last item is `item` (for traces: a task just
    // put back by the policy).
    [[nodiscard]] bool holds_at_an_end(std::uintptr_t item) const noexcept {
        return !empty() && ((head_ & ~queued_tag) == item || tail_ == &Links::link(item));
    }

private:
    std::uintptr_t head_ = queued_tag; // the first item, tagged; queued_tag: none
    std::uintptr_t* tail_ = &head_;    // the last item's link, or head_
    std::size_t size_ = 0;
};

} // namespace braid::detail
