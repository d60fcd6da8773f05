// SPDX-License-Identifier: MIT
#pragma once

// detail::remote_queue: how other threads reach an event loop. Thread-safe
// calls, finished run_in work and a stream's wake-ups are pushed here from any
// thread; the loop takes them all at once, in the order they were pushed (so
// the calls of one thread keep their order).
//
// The items live in a vector guarded by a mutex, which the loop swaps with an
// empty one of its own: a push is a short critical section and a move into
// contiguous memory, the loop takes a whole batch with one lock, and in a
// steady state nothing is allocated (a linked list of nodes, tried first,
// cost a heap allocation per call and a cache miss per node on the loop's
// side). Small callables are stored inline in the item.
//
// The loop's side of the wake-up: before it blocks, the loop marks itself
// sleeping under the mutex (only when nothing is queued), and says on what:
// on its wait point (epoll), which an eventfd wakes, when it watches
// descriptors; on a futex word otherwise, which is cheaper to wake (about
// half a microsecond less latency on the machine braid is measured on). The
// push that finds it sleeping clears the mark and wakes it so. A busy loop
// costs pushers no system call, and a sleeping one exactly one.
//
// Shared by count between the loop and every thread that may still push (a
// pool job of run_in, a stream's waker), so a push after the loop is
// destroyed fails cleanly instead of touching freed memory; the eventfd lives
// as long as this object.

#include <braid/detail/loop/remote_wait.hpp>
#include <braid/detail/loop/wait_timeout.hpp>
#include <braid/detail/ring_fifo.hpp>
#include <braid/detail/small_callable.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace braid::detail {

// One thing handed to the loop: either a thread-safe call (run later, from
// the ready queue, as its own step) or the wake-up of a task waiting on
// another thread's work (delivered as soon as the loop collects it).
// Move-only; a callable that does not fit inline, or whose move may throw,
// goes to the heap.
class remote_item {
public:
    static constexpr std::size_t inline_size = 6 * sizeof(void*);

    remote_item() noexcept = default;

    // A thread-safe call: c() runs on the loop's thread and may throw.
    template <class Call>
    static remote_item call(Call&& c) {
        return remote_item(std::forward<Call>(c));
    }

    // The wake-up of a remote wait: delivered at collection (see remote_wait).
    static remote_item wake(remote_wait* w) noexcept { return remote_item(wake_call{w}); }

    remote_item(remote_item&&) noexcept = default;
    remote_item& operator=(remote_item&& other) noexcept {
        if (this != &other) {
            reset();
            callable_ = std::move(other.callable_);
        }
        return *this;
    }
    remote_item(const remote_item&) = delete;
    remote_item& operator=(const remote_item&) = delete;
    ~remote_item() { reset(); }

    [[nodiscard]] bool is_wake() const noexcept { return callable_.holds<wake_call>(); }
    // Empties a wake-up item, handing over its reference.
    [[nodiscard]] remote_wait* take_wait() noexcept {
        remote_wait* w = callable_.get<wake_call>().wait;
        callable_.reset(); // trivial: the reference is not dropped
        return w;
    }

    // Runs a call, once; the item is empty afterwards (also when it throws).
    void run() { callable_.call_once(); }

    // Lets go of what the item holds without running it (a wake-up drops
    // its reference).
    void reset() noexcept {
        if (is_wake()) {
            take_wait()->release();
        } else {
            callable_.reset();
        }
    }

private:
    // A wake-up is never called: the loop takes its wait out at collection.
    struct wake_call {
        remote_wait* wait;
        void operator()() const noexcept {}
    };
    using callable = small_callable<inline_size, false>;

    template <class Call>
    explicit remote_item(Call&& c) : callable_(std::forward<Call>(c)) {}

    callable callable_;
};

// The thread-safe calls the loop has collected and not yet run. Loop thread
// only.
using remote_fifo = ring_fifo<remote_item>;

class remote_queue {
public:
    enum class push_result : unsigned char {
        closed, // the loop is gone; the item was not taken
        first,  // queued into an empty queue while the loop is awake
        queued, // queued behind others
        woke,   // queued, and the sleeping loop was woken
    };

    remote_queue() = default;
    remote_queue(const remote_queue&) = delete;
    remote_queue& operator=(const remote_queue&) = delete;

    void add_ref() noexcept {
        // relaxed: a new reference is made from an existing one.
        refs_.fetch_add(1, std::memory_order_relaxed);
    }
    void release() noexcept {
        // acq_rel: the last owner sees every other owner's use before freeing.
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete this;
        }
    }

    // Any thread: a thread-safe call. On `closed` the item is left with the
    // caller. Throws std::bad_alloc (nothing queued) when the queue cannot
    // grow.
    push_result push(remote_item& item) {
        std::unique_lock lock(mutex_);
        if (closed_) {
            return push_result::closed;
        }
        // Room for the wake-ups promised by reserve_wake stays free.
        if (items_.size() + reserved_ + 1 > items_.capacity()) {
            items_.reserve(2 * (items_.size() + reserved_ + 1));
        }
        return push_locked(item, lock);
    }

    // Any thread: a wake-up reserved by reserve_wake; never allocates.
    push_result push_wake(remote_item& item) noexcept {
        std::unique_lock lock(mutex_);
        if (closed_) {
            return push_result::closed;
        }
        --reserved_;
        return push_locked(item, lock);
    }

    // The loop's thread, before a remote wait starts: keeps room for its
    // wake-up, so that the thread finishing the work never needs memory to
    // report it. Throws std::bad_alloc (nothing reserved).
    void reserve_wake() {
        std::lock_guard lock(mutex_);
        if (items_.size() + reserved_ + 1 > items_.capacity()) {
            items_.reserve(2 * (items_.size() + reserved_ + 1));
        }
        ++reserved_;
    }
    // A reserved wake-up that will never be pushed (the wait ended another way).
    void cancel_wake() noexcept {
        std::lock_guard lock(mutex_);
        --reserved_;
    }

    // Any thread: wakes the loop if it sleeps (for stop()). The caller's
    // flag, written before, is seen by the loop: either the loop checks it
    // after marking itself sleeping (begin_sleep happens before this lock),
    // or this lock comes first and the loop's later check sees the flag.
    void wake() noexcept {
        sleep_kind was = sleep_kind::awake;
        {
            std::lock_guard lock(mutex_);
            was = std::exchange(sleeping_, sleep_kind::awake);
        }
        wake_loop(was);
    }

    // --- The loop's thread ----------------------------------------------------

    [[nodiscard]] bool nonempty() const noexcept {
        // relaxed: a hint; take() locks.
        return nonempty_.load(std::memory_order_relaxed);
    }

    // Swaps what is queued into `out` (which must be empty), oldest first.
    // Throws std::bad_alloc (nothing taken) when `out` lacks the room that
    // reserved wake-ups need once it is the queue.
    void take(std::vector<remote_item>& out) {
        std::lock_guard lock(mutex_);
        if (out.capacity() < reserved_ + 1) {
            out.reserve(2 * (reserved_ + 1));
        }
        items_.swap(out);
        // relaxed: under the lock; see push().
        nonempty_.store(false, std::memory_order_relaxed);
    }

    // Where the loop sleeps: on its wait point (woken through wake_fd()) or
    // on futex_wait().
    enum class sleep_kind : unsigned char { awake, wait_point, futex };

    // The loop is about to block on `where`: marks it sleeping unless
    // something is queued (false). For wait_point, wake_fd() must be open.
    [[nodiscard]] bool begin_sleep(sleep_kind where) noexcept {
        std::lock_guard lock(mutex_);
        if (!items_.empty()) {
            return false;
        }
        if (where == sleep_kind::futex) {
            // relaxed: the pusher that wakes the loop reads sleeping_ under
            // the mutex after this, and stores 1 after that.
            futex_.store(0, std::memory_order_relaxed);
        }
        sleeping_ = where;
        return true;
    }

    // After begin_sleep(futex): blocks until a push wakes the loop, the
    // timeout (nullopt: none) passes, or a signal interrupts; any of them
    // just returns.
    void futex_wait(const std::optional<std::chrono::nanoseconds>& timeout) noexcept {
        timespec spec{};
        timespec* const limit = to_timespec(timeout, spec);
        // Returns at once when the word is no longer 0 (the wake came first).
        (void)::syscall(SYS_futex, futex_address(), FUTEX_WAIT_PRIVATE, 0, limit, nullptr, 0);
    }

    // After the wait: no longer sleeping (a pusher may have cleared it).
    void end_sleep() noexcept {
        std::lock_guard lock(mutex_);
        sleeping_ = sleep_kind::awake;
    }

    // The loop is going away: from now on pushes fail. Hands over what was
    // queued.
    void close(std::vector<remote_item>& out) noexcept {
        std::lock_guard lock(mutex_);
        closed_ = true;
        items_.swap(out);
    }

    // The eventfd that wakes the loop, opened on first use (the loop's
    // thread, before it first sleeps; pushers only use it after seeing the
    // loop asleep, under the mutex).
    int wake_fd() {
        if (wake_fd_ < 0) {
            const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (fd < 0) {
                throw std::system_error(errno, std::system_category(),
                                        "braid::event_loop: eventfd");
            }
            std::lock_guard lock(mutex_);
            wake_fd_ = fd;
        }
        return wake_fd_;
    }

private:
    push_result push_locked(remote_item& item, std::unique_lock<std::mutex>& lock) noexcept {
        push_result result = push_result::queued;
        const bool was_empty = items_.empty();
        items_.push_back(std::move(item)); // capacity is there: cannot throw
        if (was_empty) {
            // relaxed: a hint for the loop's nonempty(); take() locks.
            nonempty_.store(true, std::memory_order_relaxed);
            result = push_result::first;
        }
        const sleep_kind was = std::exchange(sleeping_, sleep_kind::awake);
        lock.unlock();
        if (was != sleep_kind::awake) {
            wake_loop(was);
            result = push_result::woke;
        }
        return result;
    }

    ~remote_queue() {
        if (wake_fd_ >= 0) {
            ::close(wake_fd_);
        }
    }

    // The loop watches the eventfd edge-triggered and never reads it: each
    // write is an event. Its counter would only overflow after 2^64 - 2
    // wake-ups; should a write ever fail so (EAGAIN), reading resets it and
    // the write is made again. The descriptor lives as long as we do.
    //
    // A loop asleep on the futex word is woken by setting the word and
    // waking its one waiter. The word lives as long as this object, which
    // the pusher holds a reference to, so the loop may be gone by then.
    void wake_loop(sleep_kind where) noexcept {
        if (where == sleep_kind::futex) {
            // release: pairs with nothing the loop reads through the word (it
            // takes the items under the mutex); the store only has to come
            // before the wake.
            futex_.store(1, std::memory_order_release);
            (void)::syscall(SYS_futex, futex_address(), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
        } else if (where == sleep_kind::wait_point) {
            if (::eventfd_write(wake_fd_, 1) != 0 && errno == EAGAIN) {
                eventfd_t value = 0;
                (void)::eventfd_read(wake_fd_, &value);
                (void)::eventfd_write(wake_fd_, 1);
            }
        }
    }

    std::uint32_t* futex_address() noexcept {
        static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                      std::atomic<std::uint32_t>::is_always_lock_free);
        return reinterpret_cast<std::uint32_t*>(&futex_);
    }

    std::mutex mutex_;
    std::vector<remote_item> items_;          // guarded by mutex_
    std::size_t reserved_ = 0;                // guarded by mutex_: wake-ups promised room
    sleep_kind sleeping_ = sleep_kind::awake; // guarded by mutex_
    std::atomic<std::uint32_t> futex_{0};     // 0 while the loop may sleep on it
    bool closed_ = false;                     // guarded by mutex_
    std::atomic<bool> nonempty_{false};
    std::atomic<std::uint32_t> refs_{1}; // the loop's
    int wake_fd_ = -1;
};

inline void remote_wait::complete() noexcept {
    remote_queue* const q = queue;
    remote_item item = remote_item::wake(this);
    if (q->push_wake(item) == remote_queue::push_result::closed) {
        (void)item.take_wait();
        release(); // the loop is gone: nobody will take our reference
    }
    q->release();
}

inline void remote_wait::withdraw() noexcept {
    remote_queue* const q = std::exchange(queue, nullptr);
    q->cancel_wake();
    q->release();
}

} // namespace braid::detail
