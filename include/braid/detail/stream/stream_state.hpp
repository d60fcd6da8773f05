// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::stream_state: the part of one map's shared state that does
// not depend on any type: the counters that enforce the buffer bound, the
// waits and wake-ups between the producer, the workers and the consumer, and
// stopping. stream_channel<T> (results) and stream_map_state (inputs, f)
// build on it.
//
// Who touches what:
//   producer thread  writes pub_ (how many inputs are published), waits on
//                    cons_ for room, ends the stream, reads the input ranges;
//   pool workers     ("drainers") claim published inputs through claimed_,
//                    call f, and write results into slots;
//   consumer         (the stream_results owner) reads slots in order, bumps
//                    cons_, and stops everything when it drops the results;
//   executor         stops every live map at shutdown.
// The state is shared (std::shared_ptr) by the results object, the producer
// job and every queued or running drainer; the last one frees it.

#include <braid/detail/stream/stream_wait.hpp>
#include <braid/errors.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace braid::detail {

// Thrown out of a stream_results read on a producer thread whose own map has
// been stopped, so the producer stops waiting for its (braid) input at once.
struct stream_interrupted {};

// A consumer on an event loop (stream_results::async_next) does not block: it
// leaves one of these, and whoever would have woken a blocked consumer calls
// wake once instead (on its own thread; wake must not block).
struct stream_waker {
    void (*wake)(stream_waker*) noexcept = nullptr;
};

// Why the producer stopped producing.
enum class stream_end : unsigned char { none, exhausted, input_error, stopped };

inline constexpr std::size_t stream_cache_line = 64;

class stream_state : public std::enable_shared_from_this<stream_state> {
public:
    static constexpr std::uint64_t unbounded = std::numeric_limits<std::uint64_t>::max();

    stream_state(std::uint64_t buffer, std::size_t max_drainers, bool input_is_referenced)
        : buffer_(buffer), max_drainers_(max_drainers), input_is_referenced_(input_is_referenced),
          placement_(max_drainers) {}

    stream_state(const stream_state&) = delete;
    stream_state& operator=(const stream_state&) = delete;
    virtual ~stream_state() = default;

    // No input at or after this position is needed any more: the producer
    // takes none, workers start none. Idempotent; any thread.
    void request_stop() noexcept;

    // The results object goes away: request_stop(), then wait until no call
    // of f for this map is running and, for a referenced (lvalue) input,
    // until the producer has let go of it. Never waits for an owned input.
    void drop() noexcept;

    // The producer thread that is running, if any, on the calling thread.
    static stream_state*& current_producer() noexcept {
        static thread_local stream_state* producer = nullptr;
        return producer;
    }

protected:
    // pub_: published count << 2 | ended | consumer waiting.
    static constexpr std::uint64_t pub_consumer_waiting = 1;
    static constexpr std::uint64_t pub_ended = 2;
    static constexpr std::uint64_t pub_unit = 4;
    // cons_: consumed count << 1 | producer waiting.
    static constexpr std::uint64_t cons_producer_waiting = 1;
    static constexpr std::uint64_t cons_unit = 2;
    // life_: (producer + drainers alive) << 1 | stop requested.
    static constexpr std::uint64_t life_stop = 1;
    static constexpr std::uint64_t life_unit = 2;

    static std::uint64_t published(std::uint64_t pub) noexcept { return pub >> 2; }

    bool stopped() const noexcept {
        // relaxed: a hint to leave a wait early; the wait re-checks under mutex_.
        return limit_.load(std::memory_order_relaxed) == 0;
    }
    bool stopped_now() const noexcept {
        // seq_cst: see request_stop().
        return limit_.load(std::memory_order_seq_cst) == 0;
    }

    // --- Producer side ---------------------------------------------------------
    // Waits until input `seq` may be taken (seq - consumed < buffer). Returns
    // false when it is no longer needed (stopped, or past an error).
    bool wait_for_room(std::uint64_t seq, std::uint64_t& consumed);
    // Waits until the consumer has taken `count` results; false when the map
    // was stopped first.
    bool wait_consumed(std::uint64_t count);
    // Waits until no call of f for this map runs, nor will start (the map is
    // stopped).
    void wait_f_calls_done() noexcept;
    // Publishes the next `count` inputs.
    void publish(std::uint64_t count = 1) noexcept;
    void end_production(stream_end reason, std::exception_ptr error) noexcept;
    void release_input() noexcept;
    // A producer or drainer is done with the map.
    void leave() noexcept;

    // --- Consumer side ---------------------------------------------------------
    // Waits until input `seq` is published or the producer ended before it.
    std::uint64_t wait_published(std::uint64_t seq);
    // Blocks the consumer until ready() holds or the map was abandoned;
    // arm() re-announces the consumer as waiting before each check. Throws
    // stream_interrupted when the calling producer thread's own map stops.
    template <class Ready, class Arm>
    void consumer_sleep(Ready ready, Arm arm);
    // The stream ended at the consumer's position for another reason than
    // the end of its input: rethrows the input's exception, or reports the
    // shutdown that stopped it. Stops the map either way.
    [[noreturn]] void throw_at_end(const char* where);
    [[noreturn]] void throw_shut_down(const char* where);
    void note_consumed(std::uint64_t count) noexcept;
    bool abandoned() const noexcept {
        // acquire: pairs with abandon(); every slot result written before it is visible.
        return abandoned_.load(std::memory_order_acquire);
    }

    template <class Needed>
    bool await_consumed(std::uint64_t count, Needed needed);

    // Leaves w to be woken when the consumer's wait may be over: takes it
    // under mutex_ after arm() re-announced the consumer as waiting; returns
    // false (w not left) when ready() already holds after arming, or the map
    // was abandoned.
    template <class Ready, class Arm>
    bool consumer_arm(stream_waker* w, Ready ready, Arm arm) {
        std::lock_guard lock(mutex_);
        arm();
        if (ready() || abandoned()) {
            return false;
        }
        async_waker_ = w;
        return true;
    }

public:
    // Takes back a waker left by consumer_arm that has not been woken; false
    // when it has been (its wake call is made or under way).
    bool disarm(stream_waker* w) noexcept {
        std::lock_guard lock(mutex_);
        if (async_waker_ != w) {
            return false;
        }
        async_waker_ = nullptr;
        return true;
    }

protected:
    // --- Worker side -----------------------------------------------------------
    void notify_consumer() noexcept {
        stream_waker* w = nullptr;
        {
            std::lock_guard lock(mutex_);
            w = std::exchange(async_waker_, nullptr);
        }
        if (w != nullptr) {
            w->wake(w);
        }
        consumer_cv_.notify_all();
    }
    void f_calls_done() noexcept;

    // Each line below has one writer in the steady state, so that a write
    // invalidates no other thread's copy of what it reads per item: the
    // producer writes pub_, the consumer cons_, the workers claimed_ and
    // in_f_; the rest is read-mostly. (consumed_seen_ once shared cons_'s
    // line: the producer then missed the cache on every item the consumer
    // took.)
    alignas(stream_cache_line) std::atomic<std::uint64_t> pub_{0};
    alignas(stream_cache_line) std::atomic<std::uint64_t> cons_{0};
    std::atomic<std::uint64_t> wake_at_{0}; // consumed count the sleeping producer waits for
    alignas(stream_cache_line) std::uint64_t consumed_seen_ = 0; // producer only: cons_ >> 1
    alignas(stream_cache_line) std::atomic<std::uint64_t> claimed_{0};
    alignas(stream_cache_line) std::atomic<std::uint32_t> in_f_{0}; // drainers with work in hand
    alignas(stream_cache_line) std::atomic<std::uint64_t> limit_{unbounded};
    std::atomic<std::uint64_t> life_{life_unit}; // the producer is counted from the start
    std::atomic<bool> abandoned_{false};
    const std::uint64_t buffer_;
    const std::size_t max_drainers_;
    // Called after each result the consumer takes, once set (before the
    // first publish): a map whose workers read their inputs themselves
    // recruits drainers for the room just made.
    void (*on_room_)(stream_state&) noexcept = nullptr;
    const bool input_is_referenced_;
    // Where the drainers run, for the producer's and consumer's waits.
    stream_placement placement_;

    // Written by the producer before it sets pub_ended; read after.
    stream_end end_reason_ = stream_end::none;
    std::exception_ptr input_error_;

    alignas(stream_cache_line) std::mutex mutex_;
    std::condition_variable consumer_cv_;
    std::condition_variable producer_cv_;
    std::condition_variable idle_cv_; // drop() waits here
    bool input_released_ = false;     // guarded by mutex_
    stream_state* interrupt_target_ =
        nullptr; // guarded by mutex_: the braid input our producer waits in
    stream_waker* async_waker_ = nullptr; // guarded by mutex_: an async consumer's

    // Nothing will write a result any more although the consumer may still
    // wait for one (the executor stopped the map): wake it to report that.
    void abandon() noexcept;
};

// --- Implementation ----------------------------------------------------------

inline void stream_state::request_stop() noexcept {
    // seq_cst: orders against in_f_ in drop() and the drainers (a Dekker pair:
    // either the drainer sees the stop, or drop() sees the drainer).
    limit_.store(0, std::memory_order_seq_cst);
    // acq_rel: one total order with leave(); whoever brings the count to zero
    // with the stop bit set abandons the map, exactly once or harmlessly twice.
    const std::uint64_t before = life_.fetch_or(life_stop, std::memory_order_acq_rel);
    if ((before >> 1) == 0)
        abandon();
    {
        std::lock_guard lock(mutex_);
        // Our producer may be asleep inside a braid input: wake it there. Lock
        // order is always downstream before upstream, and the producer holds
        // only one of the two at a time, so this cannot deadlock.
        if (interrupt_target_ != nullptr) {
            {
                std::lock_guard upstream(interrupt_target_->mutex_);
            }
            interrupt_target_->consumer_cv_.notify_all();
        }
    }
    producer_cv_.notify_all();
}

inline void stream_state::drop() noexcept {
    request_stop();
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [&] {
        // seq_cst: the other half of the Dekker pair in request_stop().
        return in_f_.load(std::memory_order_seq_cst) == 0 &&
               (!input_is_referenced_ || input_released_);
    });
}

inline bool stream_state::wait_for_room(std::uint64_t seq, std::uint64_t& consumed) {
    // seq_cst: see request_stop().
    const auto needed = [&] { return seq < limit_.load(std::memory_order_seq_cst); };
    // The consumed count only grows: while the last one we saw leaves room,
    // cons_ (which the consumer writes per item) need not be read at all.
    if (buffer_ == unbounded || seq - consumed_seen_ < buffer_) {
        consumed = consumed_seen_;
        return needed();
    }
    const bool room = await_consumed(seq - buffer_ + 1, needed);
    consumed = consumed_seen_;
    return room;
}

inline bool stream_state::wait_consumed(std::uint64_t count) {
    return await_consumed(count, [&] { return !stopped_now(); });
}

template <class Needed>
bool stream_state::await_consumed(std::uint64_t count, Needed needed) {
    const auto enough = [&](std::uint64_t cons) {
        consumed_seen_ = cons >> 1;
        return consumed_seen_ >= count;
    };
    // acquire: the consumer's release of the slots it consumed happens before
    // we reuse them.
    if (enough(cons_.load(std::memory_order_acquire)))
        return needed();
    stream_backoff backoff(&placement_);
    while (backoff.pause()) {
        if (!needed())
            return false;
        // acquire: as above.
        if (enough(cons_.load(std::memory_order_acquire)))
            return true;
    }
    // relaxed: published to the consumer by the fetch_or below.
    wake_at_.store(count, std::memory_order_relaxed);
    std::unique_lock lock(mutex_);
    for (;;) {
        // acq_rel: releases wake_at_ to the consumer, acquires its slots.
        const std::uint64_t cons = cons_.fetch_or(cons_producer_waiting, std::memory_order_acq_rel);
        if (!needed())
            break;
        if (enough(cons))
            break;
        producer_cv_.wait(lock);
    }
    // relaxed: only clears our own flag; a stale flag costs one spurious notify.
    cons_.fetch_and(~cons_producer_waiting, std::memory_order_relaxed);
    lock.unlock();
    if (!needed())
        return false;
    // acquire: as above.
    return enough(cons_.load(std::memory_order_acquire));
}

inline void stream_state::wait_f_calls_done() noexcept {
    std::unique_lock lock(mutex_);
    // seq_cst: the other half of the Dekker pair in request_stop().
    idle_cv_.wait(lock, [&] { return in_f_.load(std::memory_order_seq_cst) == 0; });
}

inline void stream_state::publish(std::uint64_t count) noexcept {
    // acq_rel: releases the input just written to its slot (to workers, who
    // acquire pub_) and sees whether the consumer is asleep.
    const std::uint64_t before = pub_.fetch_add(count * pub_unit, std::memory_order_acq_rel);
    if ((before & pub_consumer_waiting) != 0)
        notify_consumer();
}

inline void stream_state::end_production(stream_end reason, std::exception_ptr error) noexcept {
    end_reason_ = reason;
    input_error_ = std::move(error);
    // acq_rel: releases end_reason_ and input_error_ to the consumer.
    const std::uint64_t before = pub_.fetch_or(pub_ended, std::memory_order_acq_rel);
    if ((before & pub_consumer_waiting) != 0)
        notify_consumer();
}

inline void stream_state::release_input() noexcept {
    {
        std::lock_guard lock(mutex_);
        input_released_ = true;
    }
    idle_cv_.notify_all();
}

inline void stream_state::leave() noexcept {
    // acq_rel: see request_stop().
    const std::uint64_t before = life_.fetch_sub(life_unit, std::memory_order_acq_rel);
    if ((before >> 1) == 1 && (before & life_stop) != 0)
        abandon();
}

inline void stream_state::abandon() noexcept {
    stream_waker* w = nullptr;
    {
        std::lock_guard lock(mutex_);
        // release: every result written by the producer and workers, who
        // have all left, is visible to a consumer that sees this flag.
        abandoned_.store(true, std::memory_order_release);
        w = std::exchange(async_waker_, nullptr);
    }
    if (w != nullptr) {
        w->wake(w);
    }
    consumer_cv_.notify_all();
}

inline void stream_state::f_calls_done() noexcept {
    // seq_cst: see request_stop().
    if (in_f_.fetch_sub(1, std::memory_order_seq_cst) == 1 && stopped()) {
        {
            std::lock_guard lock(mutex_);
        }
        idle_cv_.notify_all();
    }
}

inline std::uint64_t stream_state::wait_published(std::uint64_t seq) {
    const auto ready = [&](std::uint64_t pub) {
        return published(pub) > seq || (pub & pub_ended) != 0;
    };
    // acquire: pairs with publish() / end_production().
    std::uint64_t pub = pub_.load(std::memory_order_acquire);
    stream_backoff backoff(&placement_);
    while (!ready(pub) && backoff.pause())
        pub = pub_.load(std::memory_order_acquire);
    if (ready(pub))
        return pub;
    // acquire: as above.
    consumer_sleep([&] { return ready(pub = pub_.load(std::memory_order_acquire)); },
                   [&] {
                       // acq_rel: the producer's RMW after this one sees the flag.
                       pub_.fetch_or(pub_consumer_waiting, std::memory_order_acq_rel);
                   });
    // relaxed: clears our own flag; a stale one costs one spurious notify.
    pub_.fetch_and(~pub_consumer_waiting, std::memory_order_relaxed);
    return pub;
}

template <class Ready, class Arm>
void stream_state::consumer_sleep(Ready ready, Arm arm) {
    stream_state* const downstream = current_producer();
    if (downstream != nullptr) {
        std::lock_guard lock(downstream->mutex_);
        downstream->interrupt_target_ = this;
    }
    bool interrupted = false;
    {
        std::unique_lock lock(mutex_);
        for (;;) {
            arm();
            if (ready() || abandoned())
                break;
            if (downstream != nullptr && downstream->stopped()) {
                interrupted = true;
                break;
            }
            consumer_cv_.wait(lock);
        }
    }
    if (downstream != nullptr) {
        std::lock_guard lock(downstream->mutex_);
        downstream->interrupt_target_ = nullptr;
    }
    if (interrupted)
        throw stream_interrupted{};
}

inline void stream_state::throw_at_end(const char* where) {
    request_stop();
    // Moved out, not copied: the last reference to an exception then dies on
    // the reader's thread, not on whichever thread frees this state.
    if (end_reason_ == stream_end::input_error)
        std::rethrow_exception(std::move(input_error_));
    throw_shut_down(where);
}

inline void stream_state::throw_shut_down(const char* where) {
    request_stop();
    throw executor_shut_down(std::string(where) +
                             ": the stream_executor was shut down before this result was "
                             "computed; read the results before shutting the executor down");
}

inline void stream_state::note_consumed(std::uint64_t count) noexcept {
    // seq_cst: releases the slot just emptied to the producer and sees its
    // flag; and, with on_room_'s look at the drainers, a Dekker pair against
    // a leaving drainer's fetch_sub + has_unclaimed() (one of the two sees
    // the room). On x86 the same instruction as acq_rel.
    const std::uint64_t before = cons_.fetch_add(cons_unit, std::memory_order_seq_cst);
    // relaxed: wake_at_ was published by the RMW that set the flag we saw.
    if ((before & cons_producer_waiting) != 0 &&
        count >= wake_at_.load(std::memory_order_relaxed)) {
        {
            std::lock_guard lock(mutex_);
        }
        producer_cv_.notify_all();
    }
    if (on_room_ != nullptr)
        on_room_(*this);
}

} // namespace braid::detail
