// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::stream_channel<T>: where one map's results wait for the
// consumer, and how the consumer takes them in order.
//
// Results live in rings of slots indexed by sequence number (seq & mask). A
// ring never moves: when the producer needs more room than the current ring
// has, it links a ring twice as large (at most the buffer size, rounded up to
// a power of two) that holds every later sequence number. Old rings are kept
// until the map's state is freed, so a worker or consumer holding a ring
// pointer never sees it freed; their total is below twice the largest ring.
//
// A slot's state word says what its storage holds and whether the consumer
// sleeps on it; writers use one atomic exchange, so a wake-up is never lost
// and costs nothing when nobody sleeps.

#include <braid/detail/stream/stream_state.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <utility>

namespace braid::detail {

inline constexpr std::uint32_t slot_input =
    1; // a claimed input was skipped (map stopped) and is still there
inline constexpr std::uint32_t slot_value = 2;   // value holds f's result
inline constexpr std::uint32_t slot_error = 4;   // error holds f's exception
inline constexpr std::uint32_t slot_waiting = 8; // the consumer sleeps on this slot

template <class T>
struct stream_slot {
    stream_slot() noexcept {}
    ~stream_slot() {}
    std::atomic<std::uint32_t> state{0};
    union {
        T value;
        std::exception_ptr error;
    };
};

template <class T>
struct stream_ring {
    stream_ring(std::uint64_t first_seq, std::uint64_t capacity)
        : start(first_seq), mask(capacity - 1), slots(new stream_slot<T>[capacity]) {}

    std::uint64_t capacity() const noexcept { return mask + 1; }
    stream_slot<T>& slot(std::uint64_t seq) noexcept { return slots[seq & mask]; }

    // The ring holding `seq`, searching forward from `ring`. Needs `seq` to be
    // published (the producer links a ring before it publishes into it).
    static stream_ring* find(stream_ring* ring, std::uint64_t seq) noexcept {
        // acquire: pairs with the producer's release of `next`.
        for (stream_ring* n = ring->next.load(std::memory_order_acquire);
             n != nullptr && seq >= n->start; n = ring->next.load(std::memory_order_acquire)) {
            ring = n;
        }
        return ring;
    }

    const std::uint64_t start; // first sequence number stored here
    const std::uint64_t mask;  // capacity - 1; capacity is a power of two
    std::atomic<stream_ring*> next{nullptr};
    std::unique_ptr<stream_slot<T>[]> slots;
};

template <class T>
class stream_channel : public stream_state {
public:
    using stream_state::stream_state;

    // The consumer takes result `seq` into `out`; false at the end of the
    // input. Rethrows f's or the input's exception at its position (and stops
    // the map); throws executor_shut_down where a shutdown cut the stream.
    bool fetch(std::uint64_t seq, std::optional<T>& out);

    // fetch without waiting, for a consumer that must not block.
    enum class poll_result : unsigned char { value, end, pending };
    poll_result poll(std::uint64_t seq, std::optional<T>& out);
    // After poll said pending: leaves w to be woken once result `seq` may be
    // there (stream_state::consumer_arm); false when it is there already.
    bool arm(std::uint64_t seq, stream_waker* w);

protected:
    // Moves the finished result of `slot` (state: its state word) into out,
    // or rethrows its error and stops the map.
    void take(stream_slot<T>& slot, std::uint32_t state, std::uint64_t seq, std::optional<T>& out);

    // Consumer only, written per item: on a line of their own.
    alignas(stream_cache_line) stream_ring<T>* consumer_ring_ = nullptr; // set by the derived state
    std::uint64_t published_seen_ = 0; // published count when last read
};

template <class T>
bool stream_channel<T>::fetch(std::uint64_t seq, std::optional<T>& out) {
    static constexpr const char* where = "braid::stream_results::iterator";
    // The published count only grows: read pub_ (which the producer writes
    // per item) only when the last count seen does not cover `seq`.
    if (seq >= published_seen_) {
        // acquire: pairs with publish(); the ring links are visible.
        published_seen_ = published(pub_.load(std::memory_order_acquire));
        if (seq >= published_seen_) {
            published_seen_ = published(wait_published(seq));
            if (seq >= published_seen_) {
                if (end_reason_ == stream_end::exhausted)
                    return false;
                throw_at_end(where);
            }
        }
    }
    consumer_ring_ = stream_ring<T>::find(consumer_ring_, seq);
    stream_slot<T>& slot = consumer_ring_->slot(seq);
    constexpr std::uint32_t done = slot_value | slot_error;
    // acquire: pairs with the worker's exchange; the result is visible.
    std::uint32_t state = slot.state.load(std::memory_order_acquire);
    if ((state & done) == 0) {
        stream_backoff backoff(&this->placement_);
        // acquire (here and in the sleep below): as above.
        while ((state & done) == 0 && backoff.pause())
            state = slot.state.load(std::memory_order_acquire);
        if ((state & done) == 0) {
            consumer_sleep(
                [&] { return ((state = slot.state.load(std::memory_order_acquire)) & done) != 0; },
                [&] {
                    // acq_rel: the worker's exchange after this one sees the flag.
                    slot.state.fetch_or(slot_waiting, std::memory_order_acq_rel);
                });
            if ((state & done) == 0)
                throw_shut_down(where); // abandoned
        }
    }
    take(slot, state, seq, out);
    return true;
}

template <class T>
void stream_channel<T>::take(stream_slot<T>& slot, std::uint32_t state, std::uint64_t seq,
                             std::optional<T>& out) {
    if ((state & slot_value) != 0) {
        out.emplace(std::move(slot.value));
        slot.value.~T();
        // relaxed: the slot is handed back to the producer by note_consumed().
        slot.state.store(0, std::memory_order_relaxed);
        note_consumed(seq + 1);
        return;
    }
    std::exception_ptr error = std::move(slot.error);
    slot.error.~exception_ptr();
    // relaxed: as above.
    slot.state.store(0, std::memory_order_relaxed);
    note_consumed(seq + 1);
    request_stop(); // nothing after an error is ever read
    std::rethrow_exception(std::move(error));
}

template <class T>
typename stream_channel<T>::poll_result stream_channel<T>::poll(std::uint64_t seq,
                                                                std::optional<T>& out) {
    static constexpr const char* where = "braid::stream_results::async_next";
    if (seq >= published_seen_) {
        // acquire: pairs with publish() / end_production().
        const std::uint64_t pub = pub_.load(std::memory_order_acquire);
        published_seen_ = published(pub);
        if ((pub & pub_consumer_waiting) != 0 && seq < published_seen_) {
            // An arm() of ours was answered: stop the producer's notifications.
            // relaxed: clears our own flag; a stale one costs one spurious notify.
            pub_.fetch_and(~pub_consumer_waiting, std::memory_order_relaxed);
        }
        if (seq >= published_seen_) {
            if ((pub & pub_ended) == 0) {
                return poll_result::pending;
            }
            if (end_reason_ == stream_end::exhausted) {
                return poll_result::end;
            }
            throw_at_end(where);
        }
    }
    consumer_ring_ = stream_ring<T>::find(consumer_ring_, seq);
    stream_slot<T>& slot = consumer_ring_->slot(seq);
    // acquire: pairs with the worker's exchange; the result is visible.
    const std::uint32_t state = slot.state.load(std::memory_order_acquire);
    if ((state & (slot_value | slot_error)) == 0) {
        if (abandoned()) {
            throw_shut_down(where);
        }
        return poll_result::pending;
    }
    take(slot, state, seq, out);
    return poll_result::value;
}

template <class T>
bool stream_channel<T>::arm(std::uint64_t seq, stream_waker* w) {
    if (seq >= published_seen_) {
        // Waiting for the producer to publish input `seq` (or to end).
        return consumer_arm(
            w,
            [&] {
                // acquire: as in poll().
                const std::uint64_t pub = pub_.load(std::memory_order_acquire);
                return published(pub) > seq || (pub & pub_ended) != 0;
            },
            [&] {
                // acq_rel: the producer's RMW after this one sees the flag.
                pub_.fetch_or(pub_consumer_waiting, std::memory_order_acq_rel);
            });
    }
    // Waiting for a worker to finish result `seq`.
    stream_slot<T>& slot = consumer_ring_->slot(seq);
    constexpr std::uint32_t done = slot_value | slot_error;
    return consumer_arm(
        w, [&] { return (slot.state.load(std::memory_order_acquire) & done) != 0; },
        [&] {
            // acq_rel: the worker's exchange after this one sees the flag.
            slot.state.fetch_or(slot_waiting, std::memory_order_acq_rel);
        });
}

} // namespace braid::detail
