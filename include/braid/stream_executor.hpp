// SPDX-License-Identifier: MIT
#pragma once

// braid::stream_executor: a thread_pool whose map() is lazy, ordered, bounded
// and never blocks on its input (the C++ counterpart of Python's
// StreamThreadPoolExecutor).
//
//   braid::stream_executor ex;                      // hardware_concurrency workers
//   for (int sq : ex.map(square, std::views::iota(0)) | std::views::take(10)) ...
//
// map(f, input, buffer_size = 10000) returns at once a stream_results<T>, a
// move-only input range of f's results in input order. A producer thread of
// the executor (never a pool worker) takes inputs, at most buffer_size ahead
// of what the consumer has taken; pool workers call f; the consumer reads.
// Inputs that are contiguous ranges (std::vector, std::array, std::span, ...)
// or iota views, alone or zipped, are read by the workers instead: each copies
// the elements it claims, by position, within the same bound, and the
// producer thread only keeps the input alive. Reading such an input neither
// blocks nor depends on order, and the producer's turn per item was most of
// the cost of a cheap f.
//
// Ownership and lifetimes:
//   - f is decay-copied into the map and called as a const object from
//     several workers at once.
//   - an rvalue input is moved into the map and owned by its producer, which
//     may still be inside it after the results are dropped: whatever it refers
//     to (the vector under `v | std::views::filter(p)`) must outlive the
//     executor's shutdown.
//   - an lvalue input is referenced: keep it alive, and leave it alone, as
//     long as the results object exists. Dropping the results waits until the
//     producer has let go of it, so it may be destroyed right after.
//   - dropping the results stops the producer, drops queued unstarted items
//     and waits for this map's running f calls (a worker's copy of an input
//     read by position is part of its call); it never waits for an owned
//     input's producer, nor for a braid stream_results used as input.
//   - shutdown() and the destructor stop every map, wait for every producer
//     and worker, and join them. Results left unread after that end with
//     executor_shut_down where the stream was cut.
//
// Threads: submit(), map(), thread_count() from any thread; one consumer per
// stream_results; shutdown() and the destructor not from the executor's own
// threads (they would wait for themselves).

#include <braid/detail/stream/stream_async.hpp>
#include <braid/detail/stream/stream_map.hpp>
#include <braid/detail/stream/stream_producers.hpp>
#include <braid/errors.hpp>
#include <braid/task.hpp>
#include <braid/thread_pool.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace braid {

// How far a map may read ahead of its consumer: a count of items, or
// braid::unbounded. Implicit from an integer so `ex.map(f, in, 100)` works.
class stream_buffer {
public:
    template <std::integral I>
        requires(!std::same_as<I, bool>)
    constexpr stream_buffer(I size) noexcept // NOLINT(google-explicit-constructor)
        : size_(size < 0 ? 0 : static_cast<std::uint64_t>(size)), negative_(size < 0) {}

    static constexpr stream_buffer unbounded() noexcept { return stream_buffer(tag{}); }

    constexpr bool is_unbounded() const noexcept {
        return size_ == detail::stream_state::unbounded;
    }
    // The count; meaningless when is_unbounded().
    constexpr std::uint64_t size() const noexcept { return size_; }

private:
    struct tag {};
    constexpr explicit stream_buffer(tag) noexcept : size_(detail::stream_state::unbounded) {}
    friend class stream_executor;

    std::uint64_t size_;
    bool negative_ = false;
};

// Read ahead without limit, as Python's Executor.map does (without blocking).
inline constexpr stream_buffer unbounded = stream_buffer::unbounded();

inline constexpr std::size_t default_buffer_size = 10000;

// The results of one map, in input order. A move-only input range and not a
// view: `results | std::views::take(10)` references it, `ex.map(...) |
// std::views::take(10)` owns it. Reading (operator== with end(), operator*)
// may block until the next result is ready; ++ only lets the current result
// go, so `take(n)` never waits for result n+1. An exception from f or the
// input is rethrown when the reader reaches its position, and the range ends
// there. One reader at a time; any thread.
template <class T>
class stream_results {
public:
    using value_type = T;

    class iterator {
    public:
        using iterator_concept = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using reference = T&&;

        iterator() noexcept = default;

        // The current result, to move from or read. Precondition: not at end.
        T&& operator*() const { return owner_->current(); }
        iterator& operator++() {
            owner_->advance();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

    private:
        bool at_end() const { return owner_->at_end(); }
        friend class stream_results;
        explicit iterator(stream_results* owner) noexcept : owner_(owner) {}
        stream_results* owner_ = nullptr;
    };

    // An empty range.
    stream_results() noexcept = default;

    stream_results(stream_results&& other) noexcept
        : channel_(std::move(other.channel_)), current_(std::move(other.current_)),
          next_(other.next_), ended_(other.ended_), moved_from_(other.moved_from_) {
        other.current_.reset();
        other.ended_ = true;
        other.moved_from_ = true;
    }

    stream_results& operator=(stream_results&& other) noexcept {
        if (this != &other) {
            stream_results dropped(std::move(*this));
            channel_ = std::move(other.channel_);
            current_ = std::move(other.current_);
            other.current_.reset();
            next_ = other.next_;
            ended_ = std::exchange(other.ended_, true);
            moved_from_ = std::exchange(other.moved_from_, true);
        }
        return *this;
    }

    stream_results(const stream_results&) = delete;
    stream_results& operator=(const stream_results&) = delete;

    // Drops the results: see the header comment.
    ~stream_results() {
        current_.reset();
        if (channel_)
            channel_->drop();
    }

    iterator begin() noexcept { return iterator(this); }
    std::default_sentinel_t end() const noexcept { return {}; }

    // Inside a task on an event loop: co_await results.async_next() gives the
    // next result in input order, std::nullopt at the end, or rethrows f's or
    // the input's exception at its position; after an end or an error the
    // stream is over (std::nullopt from then on), as with the iterator.
    // While the result is not ready, the task is suspended and the loop runs
    // other work (or sleeps): its thread never blocks. One task at a time may
    // await a results object (a second gets usage_error, as does a moved-from
    // object), and the object must outlive the co_await and not be moved
    // meanwhile. Mixing it with the iterator, one after the other, is fine.
    [[nodiscard]] task<std::optional<T>> async_next();

private:
    friend class stream_executor;

    explicit stream_results(std::shared_ptr<detail::stream_channel<T>> channel) noexcept
        : channel_(std::move(channel)), ended_(false) {}

    // Makes result next_ current, unless there is one; false at the end.
    bool load() {
        if (current_)
            return true;
        if (ended_)
            return false;
        try {
            if (channel_->fetch(next_, current_)) {
                ++next_;
                return true;
            }
        } catch (const detail::stream_interrupted&) {
            throw; // not an end: the producer reading us stops, we stay readable
        } catch (...) {
            ended_ = true;
            throw;
        }
        ended_ = true;
        return false;
    }

    bool at_end() { return !load(); }

    T&& current() {
        if (!load()) {
            throw usage_error("braid::stream_results::iterator::operator*: dereferenced at the end "
                              "of the results");
        }
        return std::move(*current_);
    }

    void advance() {
        if (!current_)
            load(); // skipping an unread result reads it first
        current_.reset();
    }

    std::shared_ptr<detail::stream_channel<T>> channel_;
    std::optional<T> current_;
    std::uint64_t next_ = 0;
    bool ended_ = true;
    bool moved_from_ = false;
    bool async_busy_ = false; // a task is inside async_next
};

template <class T>
task<std::optional<T>> stream_results<T>::async_next() {
    if (moved_from_) {
        throw usage_error("braid::stream_results::async_next: the results object was moved "
                          "from; await the object it was moved to");
    }
    if (async_busy_) {
        throw usage_error("braid::stream_results::async_next: another task is awaiting these "
                          "results; one reader at a time");
    }
    struct busy {
        bool& flag;
        explicit busy(bool& f) noexcept : flag(f) { flag = true; }
        busy(const busy&) = delete;
        busy& operator=(const busy&) = delete;
        ~busy() { flag = false; }
    } reading(async_busy_);
    using poll_result = typename detail::stream_channel<T>::poll_result;
    for (;;) {
        if (current_) {
            std::optional<T> result(std::move(*current_));
            current_.reset();
            co_return result;
        }
        if (ended_) {
            co_return std::nullopt;
        }
        poll_result polled = poll_result::pending;
        try {
            polled = channel_->poll(next_, current_);
        } catch (...) {
            ended_ = true;
            throw;
        }
        if (polled == poll_result::value) {
            ++next_;
            continue;
        }
        if (polled == poll_result::end) {
            ended_ = true;
            co_return std::nullopt;
        }
        detail::stream_next_awaiter<T> waiting(*channel_, next_);
        co_await waiting;
    }
}

namespace detail {

template <class A>
concept stream_buffer_argument =
    std::same_as<std::remove_cvref_t<A>, stream_buffer> ||
    (std::integral<std::remove_cvref_t<A>> && !std::same_as<std::remove_cvref_t<A>, bool>);

// What a producer holds of one input: a reference to an lvalue, the object
// itself for an rvalue.
template <class R>
using stream_held_t =
    std::conditional_t<std::is_lvalue_reference_v<R>,
                       std::ranges::ref_view<std::remove_reference_t<R>>, std::remove_cvref_t<R>>;

template <class R>
concept stream_input_argument =
    std::ranges::input_range<stream_held_t<R>> && std::constructible_from<stream_held_t<R>, R>;

template <class... Args, std::size_t... I>
consteval bool stream_inputs_then_buffer(std::index_sequence<I...>) {
    using all = std::tuple<Args...>;
    constexpr std::size_t last = sizeof...(Args) - 1;
    if constexpr (stream_buffer_argument<std::tuple_element_t<last, all>>) {
        return sizeof...(Args) >= 2 &&
               (... && (I == last || stream_input_argument<std::tuple_element_t<I, all>>));
    } else {
        return (... && stream_input_argument<std::tuple_element_t<I, all>>);
    }
}

// map's arguments: one or more input ranges, then optionally a buffer size.
template <class... Args>
concept stream_map_arguments =
    sizeof...(Args) >= 1 && stream_inputs_then_buffer<Args...>(std::index_sequence_for<Args...>{});

} // namespace detail

class stream_executor {
public:
    // thread_pool::default_thread_count() workers.
    stream_executor() : stream_executor(thread_pool::default_thread_count()) {}

    // `thread_count` workers; 0 throws std::invalid_argument.
    explicit stream_executor(std::size_t thread_count)
        : pool_(checked_thread_count(thread_count)),
          producers_(std::max<std::size_t>(2, thread_count)) {}

    stream_executor(const stream_executor&) = delete;
    stream_executor& operator=(const stream_executor&) = delete;

    // shutdown(); from one of the executor's own threads it ends the program
    // with a message instead (it would wait for itself).
    ~stream_executor();

    std::size_t thread_count() const noexcept { return pool_.thread_count(); }

    // f(args...) on a worker, as std::async would run it; the future carries
    // its result or exception. Throws executor_shut_down after shutdown().
    template <class F, class... Args>
        requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
    [[nodiscard]] std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>
    submit(F&& f, Args&&... args) {
        check_running("braid::stream_executor::submit");
        return pool_.submit(std::forward<F>(f), std::forward<Args>(args)...);
    }

    // Queues f to run on a worker, as thread_pool::post does: f must be
    // noexcept (use submit() to get a result or an exception back). Throws
    // executor_shut_down after shutdown().
    template <class F>
        requires std::is_nothrow_invocable_v<std::decay_t<F>&>
    void post(F&& f) {
        check_running("braid::stream_executor::post");
        pool_.post(std::forward<F>(f));
    }

    // map(f, input [, buffer]) or map(f, input1, input2, ... [, buffer]): the
    // results of f(x) (or f(x1, x2, ...) over the inputs zipped, stopping at
    // the shortest), lazily, in order, at most `buffer` inputs ahead of the
    // consumer. Reads no input before it returns. buffer is a positive count
    // (default 10000) or braid::unbounded; 0 or less throws
    // std::invalid_argument, and after shutdown() map throws
    // executor_shut_down.
    template <class F, class... Args>
        requires detail::stream_map_arguments<Args...>
    [[nodiscard]] auto map(F&& f, Args&&... args);

    // Stops every map (their consumers get what was computed, then
    // executor_shut_down), lets running f calls and every submitted task
    // finish, and joins all threads. Idempotent. Throws usage_error from one
    // of the executor's own threads.
    void shutdown();

private:
    static std::size_t checked_thread_count(std::size_t thread_count) {
        if (thread_count == 0) {
            throw std::invalid_argument(
                "braid::stream_executor::stream_executor: thread_count is 0; "
                "an executor needs at least one worker thread");
        }
        return thread_count;
    }

    void check_running(const char* where) {
        std::lock_guard lock(mutex_);
        if (shut_down_) {
            throw executor_shut_down(std::string(where) +
                                     ": the executor has been shut down and takes no more work");
        }
    }

    // Args: a std::tuple of references to map's arguments.
    template <class F, std::size_t... I, class Args>
    auto start_map(F&& f, stream_buffer buffer, std::index_sequence<I...>, Args args);

    bool is_own_thread() const noexcept {
        return pool_.is_worker_thread() || producers_.is_producer_thread();
    }

    thread_pool pool_;
    detail::stream_producers producers_;
    std::once_flag shutdown_once_; // the thread that shuts down runs shutdown's body
    std::mutex mutex_;
    bool shut_down_ = false; // guarded by mutex_
    std::vector<std::weak_ptr<detail::stream_state>>
        maps_;                  // guarded by mutex_: to stop at shutdown
    std::size_t prune_at_ = 64; // guarded by mutex_
};

} // namespace braid

#include <braid/detail/stream/stream_executor_impl.hpp>
