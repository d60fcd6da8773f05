// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::stream_map_state<T, F, In>: one map's whole state: the
// channel of results, the ring of inputs beside it, f, and the two loops that
// move items through them:
//
//   produce()  on the map's own producer thread (never a pool worker): waits
//              for room, takes one input, stores it, publishes it, and makes
//              sure enough drainers are queued on the pool. For inputs whose
//              items can be read by position from several threads at once
//              (stream_indexable: contiguous ranges and iota views), it
//              publishes every position at once instead and only keeps the
//              inputs alive; the drainers read each input as they claim it,
//              within the buffer bound, and the consumer recruits drainers
//              for the room it makes;
//   drain()    on pool workers: claims a chunk of published inputs (sized so a
//              chunk takes about 100 microseconds of f), calls f on each, stores
//              results, and stays a moment for more before leaving its worker;
//              one that shares its CPU with another while a CPU is free
//              moves itself there (stream_wait.hpp).
//              Between chunks a drainer touches only what it must share: the
//              claim counter and the published count; its cost estimate and
//              its place in in_f_ stay its own while it has work.
//
// Items are never queued one by one: the pool sees one task per drainer, and
// a drainer takes as many items per claim as their cost allows.

#include <braid/detail/stream/stream_channel.hpp>
#include <braid/thread_pool.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <functional>
#include <iterator>
#include <memory>
#include <ranges>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace braid::detail {

template <class R>
inline constexpr bool stream_is_iota = false;
template <class W, class B>
inline constexpr bool stream_is_iota<std::ranges::iota_view<W, B>> = true;
template <class V>
inline constexpr bool stream_is_iota<std::ranges::ref_view<V>> =
    stream_is_iota<std::remove_cv_t<V>>;

// An input whose items the drainers may read by position, on several threads
// at once, instead of one producer reading it in order: reading an element
// of a contiguous range or computing one of an iota view has no effect on
// the range and no order.
template <class R>
concept stream_indexable = std::ranges::random_access_range<R> && std::ranges::sized_range<R> &&
                           (std::ranges::contiguous_range<R> || stream_is_iota<R>);

template <class In>
union stream_input {
    stream_input() noexcept {}
    ~stream_input() {}
    In value;
};

template <class T, class In>
struct stream_io_ring : stream_ring<T> {
    stream_io_ring(std::uint64_t first_seq, std::uint64_t capacity)
        : stream_ring<T>(first_seq, capacity), inputs(new stream_input<In>[capacity]) {}
    In& input(std::uint64_t seq) noexcept { return inputs[seq & this->mask].value; }
    std::unique_ptr<stream_input<In>[]> inputs;
};

// T: f's result; F: f; In: one input value, or a tuple of them for a zip.
template <class T, class F, class In, bool Zipped>
class stream_map_state final : public stream_channel<T> {
    using ring = stream_io_ring<T, In>;
    using base = stream_channel<T>;

public:
    template <class G>
    stream_map_state(thread_pool& pool, G&& f, std::uint64_t buffer, bool input_is_referenced)
        : base(buffer, pool.thread_count(), input_is_referenced), f_(std::forward<G>(f)),
          pool_(pool) {
        rings_.reserve(64);
        rings_.push_back(std::make_unique<ring>(0, std::min<std::uint64_t>(largest_ring(), 64)));
        first_ring_ = producer_ring_ = rings_.back().get();
        this->consumer_ring_ = first_ring_;
    }

    ~stream_map_state() override;

    // The producer thread's whole job; `self` is this state, for drainers.
    template <class... Ranges>
    void produce(const std::shared_ptr<stream_map_state>& self,
                 std::tuple<Ranges...>& inputs) noexcept;

private:
    // What a drainer does per chunk besides f (the claim, two clock reads,
    // the CPU lookup, the cost estimate) took about 0.13 us, measured with
    // 2 workers on 2 cores. A chunk should make that small against f: with
    // a 20 us target, items of 10 us came in chunks of one (20 / 10.2
    // rounds down), so every item paid it, about 1 % of the map's
    // throughput (docs/benchmarks.md). The fair share in claim() still
    // keeps chunks small when little is available.
    static constexpr std::uint64_t chunk_target_ns = 100'000;
    static constexpr std::uint64_t max_chunk = 64;
    // While max_chunk items take less than this, results come faster than
    // a sleeping thread wakes (see stream_placement::set_waits_long).
    static constexpr std::uint64_t short_waits_ns = 20'000;
    // Inputs are read by position only while the rings for the buffer's
    // window stay this small (in slots): beyond it, the producer's rings,
    // which grow only as the reader falls behind, take less memory.
    static constexpr std::uint64_t max_window_by_position = std::uint64_t{1} << 16;

    std::uint64_t largest_ring() const noexcept {
        constexpr std::uint64_t huge = std::uint64_t{1} << 40;
        return this->buffer_ >= huge ? huge : std::bit_ceil(this->buffer_);
    }

    template <class... Ranges, std::size_t... I>
    void produce_all(const std::shared_ptr<stream_map_state>& self, std::tuple<Ranges...>& inputs,
                     stream_end& reason, std::index_sequence<I...>);
    // Like a zip: as many items as the shortest input has.
    template <class... Ranges, std::size_t... I>
    static std::uint64_t shortest_size(std::tuple<Ranges...>& inputs, std::index_sequence<I...>) {
        return std::min({static_cast<std::uint64_t>(std::ranges::size(std::get<I>(inputs)))...});
    }
    template <class... Ranges, std::size_t... I>
    void serve_by_position(const std::shared_ptr<stream_map_state>& self,
                           std::tuple<Ranges...>& inputs, bool& ended, std::index_sequence<I...>);
    // The first position the buffer bound does not allow a drainer to read
    // yet, when drainers read the inputs by position.
    std::uint64_t room_end(std::memory_order order) const noexcept {
        const std::uint64_t consumed = this->cons_.load(order) >> 1;
        return this->buffer_ > stream_state::unbounded - consumed ? stream_state::unbounded
                                                                  : consumed + this->buffer_;
    }
    ring* ring_for(std::uint64_t seq, std::uint64_t consumed);
    void wake_drainers(const std::shared_ptr<stream_map_state>& self);
    bool wants_drainer() const noexcept;
    static void recruit_for_room(stream_state& state) noexcept;

    // What one drainer keeps from chunk to chunk.
    struct drainer {
        ring* cache;               // the ring of its last item
        std::uint64_t item_ns;     // its estimate of one f call
        std::uint64_t shared_ns;   // the estimate it last stored in item_ns_
        std::size_t worker;        // its pool worker's index
        bool counted_in_f = false; // it holds one unit of in_f_
        // When it last slept in move_if_crowded().
        std::chrono::steady_clock::time_point moved_at{};
    };

    bool add_drainer() noexcept;
    void recruit() noexcept;
    void drain() noexcept;
    std::uint64_t claim(std::uint64_t& first, std::uint64_t item_ns) noexcept;
    void run_chunk(std::uint64_t first, std::uint64_t count, drainer& me) noexcept;
    void move_if_crowded(drainer& me) noexcept;
    void leave_worker(const drainer& me) noexcept { this->placement_.left(me.worker); }
    bool has_unclaimed() const noexcept;
    bool linger() const noexcept;
    void lower_limit(std::uint64_t limit) noexcept;

    // Read by the workers per item or chunk; past the consumer's line.
    alignas(stream_cache_line) const F f_;
    thread_pool& pool_;
    // Set by serve_by_position before it publishes: the drainers read each
    // input with read_input_(input_its_, position). input_its_ points to the
    // inputs' begin iterators, in the producer's frame, which stays until no
    // drainer can read through them.
    std::atomic<bool> by_position_{false};
    In (*read_input_)(const void* its, std::uint64_t seq) = nullptr;
    const void* input_its_ = nullptr;
    std::vector<std::unique_ptr<ring>> rings_; // the producer's, then the destructor's
    ring* first_ring_ = nullptr;
    ring* producer_ring_ = nullptr; // producer only
    // Recent cost of one f call, for the chunk sizes of drainers to come;
    // starts as "slow" so the first items are spread over all workers. A
    // drainer stores its own estimate here only when it moved by a quarter.
    alignas(stream_cache_line) std::atomic<std::uint64_t> item_ns_{chunk_target_ns};
};

// --- Producer ------------------------------------------------------------------

template <class T, class F, class In, bool Zipped>
template <class... Ranges>
void stream_map_state<T, F, In, Zipped>::produce(const std::shared_ptr<stream_map_state>& self,
                                                 std::tuple<Ranges...>& inputs) noexcept {
    stream_state::current_producer() = this;
    stream_end reason = stream_end::stopped;
    std::exception_ptr error;
    bool ended = false; // serve_by_position ends production as it begins
    try {
        constexpr auto all = std::index_sequence_for<Ranges...>{};
        if constexpr ((... && stream_indexable<Ranges>)) {
            if (std::min(shortest_size(inputs, all), this->buffer_) <= max_window_by_position)
                serve_by_position(self, inputs, ended, all);
            else
                produce_all(self, inputs, reason, all);
        } else {
            produce_all(self, inputs, reason, all);
        }
    } catch (const stream_interrupted&) {
        reason = stream_end::stopped;
    } catch (...) {
        reason = stream_end::input_error;
        error = std::current_exception();
    }
    stream_state::current_producer() = nullptr;
    if (!ended)
        this->end_production(reason, std::move(error));
    this->release_input();
    this->leave();
}

template <class T, class F, class In, bool Zipped>
template <class... Ranges, std::size_t... I>
void stream_map_state<T, F, In, Zipped>::produce_all(const std::shared_ptr<stream_map_state>& self,
                                                     std::tuple<Ranges...>& inputs,
                                                     stream_end& reason,
                                                     std::index_sequence<I...>) {
    if (this->stopped())
        return;
    // Braced lists evaluate left to right: ranges are started in order.
    std::tuple<std::ranges::iterator_t<Ranges>...> its{std::ranges::begin(std::get<I>(inputs))...};
    std::tuple<std::ranges::sentinel_t<Ranges>...> ends{std::ranges::end(std::get<I>(inputs))...};
    for (std::uint64_t seq = 0;; ++seq) {
        std::uint64_t consumed = 0;
        if (seq == 0) {
            if ((... || (std::get<I>(its) == std::get<I>(ends)))) {
                reason = stream_end::exhausted;
                return;
            }
        } else {
            // Room first, then advance: an input whose ++ does the work (a
            // generator) is not asked for an item the bound does not allow.
            if (!this->wait_for_room(seq, consumed))
                return;
            // Like a zip: stop at the first range that ends.
            if ((... || (++std::get<I>(its) == std::get<I>(ends)))) {
                reason = stream_end::exhausted;
                return;
            }
        }
        ring* r = ring_for(seq, consumed);
        if constexpr (Zipped) {
            ::new (static_cast<void*>(&r->input(seq))) In(*std::get<I>(its)...);
        } else {
            ::new (static_cast<void*>(&r->input(seq))) In(*std::get<0>(its));
        }
        this->publish();
        wake_drainers(self);
    }
}

template <class T, class F, class In, bool Zipped>
template <class... Ranges, std::size_t... I>
void stream_map_state<T, F, In, Zipped>::serve_by_position(
    const std::shared_ptr<stream_map_state>& self, std::tuple<Ranges...>& inputs, bool& ended,
    std::index_sequence<I...>) {
    if (this->stopped())
        return;
    using iterators = std::tuple<std::ranges::iterator_t<Ranges>...>;
    const std::uint64_t n = shortest_size(inputs, std::index_sequence<I...>{});
    const iterators its{std::ranges::begin(std::get<I>(inputs))...};
    // The rings for the window, as produce_all would lay them out for a
    // reader that has taken nothing: past the window the last one, at least
    // as large as the buffer, is reused, and the bound keeps a slot's result
    // from being overwritten before the reader has taken it.
    for (std::uint64_t seq = 0, window = std::min(n, this->buffer_); seq < window; ++seq)
        (void)ring_for(seq, 0);
    read_input_ = [](const void* at, std::uint64_t seq) -> In {
        const iterators& begins = *static_cast<const iterators*>(at);
        return In(
            std::get<I>(begins)[static_cast<std::ranges::range_difference_t<Ranges>>(seq)]...);
    };
    input_its_ = &its;
    this->on_room_ = &stream_map_state::recruit_for_room;
    // relaxed: published with everything above by the release in publish().
    by_position_.store(true, std::memory_order_relaxed);
    this->publish(n);
    this->end_production(stream_end::exhausted, nullptr);
    ended = true;
    if (n == 0)
        return;
    wake_drainers(self);
    // `its` stays until no drainer can read through it: every result taken,
    // or the map stopped and no call of f left.
    if (!this->wait_consumed(n))
        this->wait_f_calls_done();
}

template <class T, class F, class In, bool Zipped>
auto stream_map_state<T, F, In, Zipped>::ring_for(std::uint64_t seq, std::uint64_t consumed)
    -> ring* {
    ring* r = producer_ring_;
    // The slot is free if this ring never held an earlier item there, or if
    // the consumer has taken that item (seq - capacity < consumed). `consumed`
    // may be old: look again before growing.
    if (seq - r->start < r->capacity() || seq - consumed < r->capacity())
        return r;
    // acquire: as in wait_for_room().
    consumed = this->cons_.load(std::memory_order_acquire) >> 1;
    if (seq - consumed < r->capacity())
        return r;
    // Here capacity < buffer (else the bound would have left room): grow.
    auto fresh = std::make_unique<ring>(seq, std::min(2 * r->capacity(), largest_ring()));
    ring* added = fresh.get();
    rings_.push_back(std::move(fresh));
    // release: readers find the ring through `next` after acquiring pub_.
    r->next.store(added, std::memory_order_release);
    producer_ring_ = added;
    return added;
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::wake_drainers(
    const std::shared_ptr<stream_map_state>& self) {
    if (!wants_drainer() || !add_drainer())
        return;
    try {
        pool_.post([self]() noexcept { self->drain(); });
    } catch (...) {
        this->leave();
        throw;
    }
}

template <class T, class F, class In, bool Zipped>
bool stream_map_state<T, F, In, Zipped>::wants_drainer() const noexcept {
    // seq_cst: with publish() (or, when drainers read by position, the
    // reader's note_consumed()), a Dekker pair against a leaving drainer's
    // fetch_sub + has_unclaimed(): either it sees the new work or we see it
    // gone.
    const std::uint64_t alive = this->life_.load(std::memory_order_seq_cst) >> 1;
    const std::uint64_t drainers = alive > 0 ? alive - 1 : 0; // the producer is counted too
    if (drainers >= this->max_drainers_)
        return false;
    // Another drainer only when every current one has work in hand (is
    // counted in in_f_); an idle one is about to claim the new work, and a
    // drainer that claims while more work waits recruits the next one
    // itself. relaxed: a heuristic; recruit() and drain()'s last look make up
    // for it.
    return drainers == 0 || this->in_f_.load(std::memory_order_relaxed) >= drainers;
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::recruit_for_room(stream_state& state) noexcept {
    // On the reader's thread, after each result it takes: the room it made
    // may have no drainer left to use it.
    auto& self = static_cast<stream_map_state&>(state);
    if (self.wants_drainer() && self.has_unclaimed())
        self.recruit();
}

template <class T, class F, class In, bool Zipped>
bool stream_map_state<T, F, In, Zipped>::add_drainer() noexcept {
    // life >> 1 counts the drainers, and the producer until it leaves, which
    // it does after ending production. Once it has ended it is no longer
    // counted here: at worst, while it is still leaving, one drainer fewer
    // is allowed for a moment, instead of one more than the pool has
    // workers for good. relaxed: the producer's end is only a count here.
    // A producer serving inputs by position stays until the end.
    const std::uint64_t producer =
        (this->pub_.load(std::memory_order_relaxed) & stream_state::pub_ended) != 0 &&
                !by_position_.load(std::memory_order_relaxed)
            ? 0
            : 1;
    // seq_cst: see wake_drainers().
    std::uint64_t life = this->life_.load(std::memory_order_seq_cst);
    do {
        const std::uint64_t alive = life >> 1;
        const std::uint64_t drainers = alive > producer ? alive - producer : 0;
        if ((life & stream_state::life_stop) != 0 || drainers >= this->max_drainers_)
            return false;
        // seq_cst: as the load above.
    } while (!this->life_.compare_exchange_weak(life, life + stream_state::life_unit,
                                                std::memory_order_seq_cst));
    return true;
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::recruit() noexcept {
    if (!add_drainer())
        return;
    try {
        // The caller is a drainer, so a shared_ptr owner keeps us alive; the
        // new drainer needs its own.
        auto self = std::static_pointer_cast<stream_map_state>(this->shared_from_this());
        pool_.post([self = std::move(self)]() noexcept { self->drain(); });
    } catch (...) {
        this->leave(); // the pool is shutting down: the drainers we have finish the work
    }
}

// --- Drainers --------------------------------------------------------------------

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::drain() noexcept {
    // relaxed: a cost estimate.
    const std::uint64_t shared_ns = item_ns_.load(std::memory_order_relaxed);
    drainer me{first_ring_, shared_ns, shared_ns, pool_.worker_index()};
    for (;;) {
        std::uint64_t first = 0;
        if (const std::uint64_t count = claim(first, me.item_ns); count > 0) {
            if (has_unclaimed())
                recruit();
            run_chunk(first, count, me);
            move_if_crowded(me);
            continue;
        }
        if (me.counted_in_f) {
            me.counted_in_f = false;
            this->f_calls_done();
        }
        if (linger())
            continue;
        // Leave, then look once more: the producer may have published after
        // our last look while it still counted us, and so queued no drainer.
        // seq_cst: see wake_drainers().
        std::uint64_t life =
            this->life_.fetch_sub(stream_state::life_unit, std::memory_order_seq_cst);
        if ((life >> 1) == 1 && (life & stream_state::life_stop) != 0) {
            leave_worker(me);
            this->abandon();
            return;
        }
        if (!has_unclaimed() || !add_drainer()) {
            leave_worker(me);
            return;
        }
    }
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::move_if_crowded(drainer& me) noexcept {
    // See stream_placement::should_move. At most once every 2 ms, so that
    // a move that does not help (the kernel may move a thread back) costs
    // this drainer little. Where the thread cannot move itself, a short
    // sleep lets the kernel wake it on an idle CPU.
    if (!this->placement_.should_move(me.worker))
        return;
    const auto now = std::chrono::steady_clock::now();
    if (now - me.moved_at < std::chrono::milliseconds(2))
        return;
    me.moved_at = now;
    if (!this->placement_.move_away(me.worker))
        std::this_thread::sleep_for(std::chrono::microseconds(50));
}

template <class T, class F, class In, bool Zipped>
std::uint64_t stream_map_state<T, F, In, Zipped>::claim(std::uint64_t& first,
                                                        std::uint64_t item_ns) noexcept {
    // relaxed: claimed_ only divides work; inputs are acquired through pub_.
    std::uint64_t claimed = this->claimed_.load(std::memory_order_relaxed);
    for (;;) {
        // acquire: pairs with publish(); seq_cst on limit_: see request_stop().
        std::uint64_t available_end =
            std::min(stream_state::published(this->pub_.load(std::memory_order_acquire)),
                     this->limit_.load(std::memory_order_seq_cst));
        // relaxed: set before the publish acquired above. acquire (in
        // room_end): the reader has moved out the results whose slots the
        // claimed items will take.
        if (by_position_.load(std::memory_order_relaxed))
            available_end = std::min(available_end, room_end(std::memory_order_acquire));
        if (claimed >= available_end)
            return 0;
        const std::uint64_t available = available_end - claimed;
        const std::uint64_t by_cost = std::clamp<std::uint64_t>(
            chunk_target_ns / std::max<std::uint64_t>(item_ns, 1), 1, max_chunk);
        const std::uint64_t fair_share =
            std::max<std::uint64_t>(1, available / this->max_drainers_);
        const std::uint64_t count = std::min({available, by_cost, fair_share});
        // relaxed: as the load above.
        if (this->claimed_.compare_exchange_weak(claimed, claimed + count,
                                                 std::memory_order_relaxed)) {
            first = claimed;
            return count;
        }
    }
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::run_chunk(std::uint64_t first, std::uint64_t count,
                                                   drainer& me) noexcept {
    if (!me.counted_in_f) {
        // seq_cst: see request_stop(); drop() waits until no drainer is
        // counted. The count is kept over consecutive chunks: every f call
        // below still follows a seq_cst look at limit_, which is what the
        // Dekker pair with drop() needs.
        this->in_f_.fetch_add(1, std::memory_order_seq_cst);
        me.counted_in_f = true;
    }
    this->placement_.running(me.worker);
    ring*& cache = me.cache;
    // relaxed: set before the publish that claim() acquired.
    const bool by_position = by_position_.load(std::memory_order_relaxed);
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t ran = 0;
    for (std::uint64_t seq = first; seq < first + count; ++seq) {
        // seq_cst: see request_stop(). Inputs past the limit stay unstarted
        // in their slots; the destructor frees them.
        if (seq >= this->limit_.load(std::memory_order_seq_cst)) {
            // Mark the skipped inputs for the destructor. relaxed: it runs
            // after every thread has left.
            for (; seq < first + count; ++seq) {
                cache = static_cast<ring*>(stream_ring<T>::find(cache, seq));
                cache->slot(seq).state.fetch_or(slot_input, std::memory_order_relaxed);
            }
            break;
        }
        cache = static_cast<ring*>(stream_ring<T>::find(cache, seq));
        stream_slot<T>& slot = cache->slot(seq);
        stream_input<In> read; // the input read by position, on this thread
        In* input = nullptr;
        std::uint32_t outcome = slot_value;
        try {
            // An exception copying the input is reported at its position,
            // as f's would be.
            input = by_position ? ::new (static_cast<void*>(&read.value))
                                      In(read_input_(input_its_, seq))
                                : &cache->input(seq);
            if constexpr (Zipped) {
                ::new (static_cast<void*>(&slot.value)) T(std::apply(
                    [this](auto&... args) -> T { return std::invoke(f_, std::move(args)...); },
                    *input));
            } else {
                ::new (static_cast<void*>(&slot.value)) T(std::invoke(f_, std::move(*input)));
            }
        } catch (...) {
            ::new (static_cast<void*>(&slot.error)) std::exception_ptr(std::current_exception());
            outcome = slot_error;
            lower_limit(seq + 1); // nothing after an error is ever read
        }
        if (input != nullptr)
            std::destroy_at(input);
        ++ran;
        // acq_rel: releases the result to the consumer; sees its waiting flag.
        if ((slot.state.exchange(outcome, std::memory_order_acq_rel) & slot_waiting) != 0) {
            this->notify_consumer();
        }
    }
    if (ran > 0) {
        const auto ns =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::steady_clock::now() - started)
                                           .count());
        me.item_ns = (me.item_ns + ns / ran) / 2;
        this->placement_.set_waits_long(me.item_ns * max_chunk >= short_waits_ns);
        const std::uint64_t drift =
            me.item_ns > me.shared_ns ? me.item_ns - me.shared_ns : me.shared_ns - me.item_ns;
        if (drift > me.shared_ns / 4) {
            // relaxed: a cost estimate; a lost update only delays adapting.
            item_ns_.store(me.item_ns, std::memory_order_relaxed);
            me.shared_ns = me.item_ns;
        }
    }
}

template <class T, class F, class In, bool Zipped>
bool stream_map_state<T, F, In, Zipped>::has_unclaimed() const noexcept {
    // seq_cst: see wake_drainers().
    std::uint64_t end =
        std::min(stream_state::published(this->pub_.load(std::memory_order_seq_cst)),
                 this->limit_.load(std::memory_order_seq_cst));
    // relaxed: see claim(). seq_cst: see wants_drainer().
    if (by_position_.load(std::memory_order_relaxed))
        end = std::min(end, room_end(std::memory_order_seq_cst));
    // relaxed: see claim().
    return this->claimed_.load(std::memory_order_relaxed) < end;
}

template <class T, class F, class In, bool Zipped>
bool stream_map_state<T, F, In, Zipped>::linger() const noexcept {
    // A drainer that leaves costs a pool post and a thread wake-up when the
    // next item comes; if items come fast, waiting a moment is cheaper. It
    // leaves at once when other work waits for its worker.
    stream_backoff backoff;
    while (backoff.pause()) {
        if (has_unclaimed())
            return true;
        if (pool_.queued_count() > 0 || this->stopped())
            return false;
    }
    return false;
}

template <class T, class F, class In, bool Zipped>
void stream_map_state<T, F, In, Zipped>::lower_limit(std::uint64_t limit) noexcept {
    // seq_cst: see request_stop().
    std::uint64_t current = this->limit_.load(std::memory_order_seq_cst);
    while (limit < current &&
           !this->limit_.compare_exchange_weak(current, limit, std::memory_order_seq_cst)) {
    }
}

template <class T, class F, class In, bool Zipped>
stream_map_state<T, F, In, Zipped>::~stream_map_state() {
    // Every thread has left (the last shared_ptr owner is here), so plain
    // reads see everything. Free what is still in [consumed, stored): the
    // published items, or, when the drainers read by position (every
    // position is published; inputs are never stored in the rings), the
    // claimed ones, which the bound keeps within one pass over the rings.
    // relaxed: as said.
    const std::uint64_t consumed = this->cons_.load(std::memory_order_relaxed) >> 1;
    const std::uint64_t claimed = this->claimed_.load(std::memory_order_relaxed);
    const bool by_position = by_position_.load(std::memory_order_relaxed);
    const std::uint64_t stored =
        by_position ? claimed : stream_state::published(this->pub_.load(std::memory_order_relaxed));
    for (std::size_t i = 0; i < rings_.size(); ++i) {
        ring& r = *rings_[i];
        const std::uint64_t end = i + 1 < rings_.size() ? rings_[i + 1]->start : stored;
        for (std::uint64_t seq = std::max(r.start, consumed); seq < std::min(end, stored); ++seq) {
            stream_slot<T>& slot = r.slot(seq);
            const std::uint32_t state =
                slot.state.load(std::memory_order_relaxed); // relaxed: as said
            if (!by_position && (seq >= claimed || (state & slot_input) != 0))
                std::destroy_at(&r.input(seq));
            if ((state & slot_value) != 0)
                std::destroy_at(&slot.value);
            if ((state & slot_error) != 0)
                std::destroy_at(&slot.error);
        }
    }
}

} // namespace braid::detail
