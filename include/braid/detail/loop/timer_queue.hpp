// SPDX-License-Identifier: MIT
#pragma once

// detail::timer_node and detail::timer_queue: the loop's pending timers
// (call_later/call_at callbacks and sleeping tasks), earliest deadline first,
// equal deadlines in the order they were scheduled.
//
// Ownership. A timer_node is shared by count: the loop holds one reference
// while the timer is pending (in the queue) or due (in the ready queue), each
// braid::timer_handle one, a sleeping task's awaiter one. Its callback (and
// the arguments bound to it) is destroyed as soon as it has run or been
// cancelled; its memory when the last reference goes.
//
// The queue is a 4-ary min-heap of 16-byte (deadline, node) entries, laid out
// so that the four children of an entry share one 64-byte cache line: a pop
// from a million timers reads about ten lines, and comparing two entries
// reads a node only when their deadlines are equal. Cancelling is lazy: the
// node is marked and its entry stays until it reaches the top, or until a
// compaction (when cancelled entries outnumber live ones) drops it; a cancel
// is O(1) and the heap never holds more than about twice the live timers.
//
// Single-threaded: the loop's thread only (timer handles included).

#include <braid/detail/frame_pool.hpp>
#include <braid/detail/loop/nodes.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#if defined(__GNUC__) || defined(__clang__)
// The heap's inner step is small and hot; keep it out of a call.
#define BRAID_DETAIL_TIMER_INLINE [[gnu::always_inline]] inline
#else
#define BRAID_DETAIL_TIMER_INLINE inline
#endif
// Work-around for g++ 12's false -Wuse-after-free on reference counts (see
// timer_node::free_node); harmless elsewhere: freeing is the rare path.
#if defined(__GNUC__) && !defined(__clang__)
#define BRAID_DETAIL_REFCOUNT_FREE [[gnu::noinline]]
#else
#define BRAID_DETAIL_REFCOUNT_FREE
#endif

namespace braid::detail {

using loop_clock = std::chrono::steady_clock;

enum class timer_state : std::uint8_t {
    pending,   // in the queue
    due,       // in the ready queue, not run yet
    done,      // ran (or is running), or woke its task
    cancelled, // cancelled, or its loop is gone
};

enum class timer_op : std::uint8_t { run, destroy_payload, free };

struct timer_node : call_node {
    loop_clock::rep deadline = 0;   // ticks of loop_clock; also in the heap entry
    std::uint64_t seq = 0;          // scheduling order, for equal deadlines
    scheduler* loop = nullptr;      // set while pending or due
    std::coroutine_handle<> waiter; // a sleeping task; null for a callback
    // Runs the callback (then destroys it), destroys it unrun, or frees the
    // node; null for a sleep, whose node is a plain timer_node.
    void (*op)(timer_node*, timer_op) = nullptr;
    std::uint32_t refs = 1;
    // Where push put the node's entry; the entry may have moved since (the
    // queue checks before trusting it).
    std::uint32_t slot_hint = 0;
    timer_state state = timer_state::pending;
    bool has_payload = false;

    static void* operator new(std::size_t size) { return allocate_frame(size); }
    static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }

    void add_ref() noexcept { ++refs; }
    void release() noexcept {
        if (--refs == 0) {
            free_node();
        }
    }
    // Out of line: when two releases of one node are inlined into one
    // function, g++ 12 cannot see that the count keeps the first from
    // freeing it and warns of a use after free (-Wuse-after-free, a false
    // positive: gcc.gnu.org/PR104069, PR106776).
    BRAID_DETAIL_REFCOUNT_FREE void free_node() noexcept {
        drop_payload();
        if (op != nullptr) {
            op(this, timer_op::free);
        } else {
            delete this;
        }
    }
    // Destroys the callback, once, without running it.
    void drop_payload() noexcept {
        if (has_payload) {
            has_payload = false;
            op(this, timer_op::destroy_payload);
        }
    }
};

// A timer running f(args...).
template <class F, class... Args>
struct timer_call final : timer_node {
    template <class... A>
    explicit timer_call(A&&... a) {
        ::new (static_cast<void*>(&call)) bound_call<F, Args...>(std::forward<A>(a)...);
        op = &timer_call::op_impl;
        has_payload = true;
    }
    timer_call(const timer_call&) = delete;
    timer_call& operator=(const timer_call&) = delete;
    ~timer_call() {} // the payload is destroyed by drop_payload, earlier

    static void op_impl(timer_node* node, timer_op what) {
        auto* self = static_cast<timer_call*>(node);
        switch (what) {
        case timer_op::run: {
            // The callback is destroyed after it ran, also when it throws.
            struct dropper {
                timer_node* n;
                ~dropper() { n->drop_payload(); }
            } drop{node};
            self->call();
            break;
        }
        case timer_op::destroy_payload:
            self->call.~bound_call<F, Args...>();
            break;
        case timer_op::free:
            delete self;
            break;
        }
    }

    union {
        bound_call<F, Args...> call;
    };
};

// Converts a deadline to heap ticks, and back.
inline loop_clock::rep timer_ticks(loop_clock::time_point t) noexcept {
    return t.time_since_epoch().count();
}

class timer_queue {
public:
    timer_queue() noexcept = default;
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;
    ~timer_queue() { ::operator delete(raw_, std::align_val_t{64}); }

    // Timers that can still fire (pending and not cancelled).
    [[nodiscard]] std::size_t live() const noexcept { return size_ - cancelled_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    // Adds a node whose deadline and seq are set; the queue takes over the
    // node's loop reference. Throws std::bad_alloc (nothing changed).
    void push(timer_node* node) {
        if (size_ == capacity_) {
            grow();
        }
        node->slot_hint = static_cast<std::uint32_t>(sift_up(size_++, entry{node->deadline, node}));
    }

    // A pending node is being cancelled (its state already says so). When
    // its entry is still where push put it -- the common case of a timeout
    // cancelled soon after it was set -- it is removed at once, while node
    // and entry are in cache, and the queue's reference is handed back
    // (true). Otherwise the entry is dropped later (false): from the top, or
    // by a compaction once cancelled entries outnumber live ones.
    bool cancel(timer_node* node) noexcept {
        const std::size_t i = node->slot_hint;
        if (i < size_ && data_[i].node == node) {
            const entry last = data_[--size_];
            if (i < size_) {
                sift_down(sift_up(i, last), last);
            }
            return true;
        }
        ++cancelled_;
        if (cancelled_ > 64 && cancelled_ * 2 > size_) {
            compact();
        }
        return false;
    }

    // The earliest live deadline, dropping cancelled entries from the top.
    // Precondition: live() > 0.
    [[nodiscard]] loop_clock::rep earliest() noexcept {
        drop_cancelled_top();
        return data_[0].deadline;
    }

    // Takes the earliest live timer when its deadline is at or before `now`;
    // nullptr otherwise. The caller gets the queue's reference.
    [[nodiscard]] timer_node* pop_due(loop_clock::rep now) noexcept {
        drop_cancelled_top();
        if (size_ == 0 || data_[0].deadline > now) {
            return nullptr;
        }
        timer_node* node = data_[0].node;
        remove_top();
        return node;
    }

    // Empties the queue, handing each node to f (the loop, at its end). f may
    // schedule new timers (from a destructor it runs): they are handed to f
    // too, until none is left.
    template <class F>
    void clear(F f) noexcept {
        while (size_ > 0) {
            entry* const raw = std::exchange(raw_, nullptr);
            entry* const data = std::exchange(data_, nullptr);
            const std::size_t n = std::exchange(size_, 0);
            capacity_ = 0;
            cancelled_ = 0;
            for (std::size_t i = 0; i < n; ++i) {
                f(data[i].node);
            }
            ::operator delete(raw, std::align_val_t{64});
        }
    }

private:
    struct entry {
        loop_clock::rep deadline;
        timer_node* node;
    };
    static_assert(sizeof(entry) == 16, "four entries per cache line");

    static bool before(const entry& a, const entry& b) noexcept {
        return a.deadline < b.deadline || (a.deadline == b.deadline && a.node->seq < b.node->seq);
    }

    // Both return where e ended up.
    std::size_t sift_up(std::size_t i, entry e) noexcept {
        while (i > 0) {
            const std::size_t parent = (i - 1) / 4;
            if (!before(e, data_[parent])) {
                break;
            }
            data_[i] = data_[parent];
            i = parent;
        }
        data_[i] = e;
        return i;
    }

    std::size_t sift_down(std::size_t i, entry e) noexcept {
        for (std::size_t best = smallest_child(i); best != i && before(data_[best], e);
             best = smallest_child(i)) {
            data_[i] = data_[best];
            i = best;
        }
        data_[i] = e;
        return i;
    }

    // The smallest child of entry i; i itself when it has none.
    BRAID_DETAIL_TIMER_INLINE std::size_t smallest_child(std::size_t i) const noexcept {
        const std::size_t first = 4 * i + 1;
        if (first + 4 <= size_) {
            // Four children, one cache line: a tournament of three
            // comparisons the compiler can do without branches.
            const std::size_t a = before(data_[first + 1], data_[first]) ? first + 1 : first;
            const std::size_t b =
                before(data_[first + 3], data_[first + 2]) ? first + 3 : first + 2;
            return before(data_[b], data_[a]) ? b : a;
        }
        std::size_t best = i;
        for (std::size_t c = first; c < size_; ++c) {
            if (best == i || before(data_[c], data_[best])) {
                best = c;
            }
        }
        return best;
    }

    // Bottom-up: the hole left at the top sinks to a leaf along the smallest
    // children, and the last entry, which came from the bottom and most often
    // belongs there, rises from that leaf. A level then costs three
    // comparisons instead of four.
    void remove_top() noexcept {
        const entry last = data_[--size_];
        if (size_ == 0) {
            return;
        }
        std::size_t hole = 0;
        for (;;) {
            const std::size_t child = smallest_child(hole);
            if (child == hole) {
                break;
            }
            data_[hole] = data_[child];
            hole = child;
        }
        (void)sift_up(hole, last);
    }

    void drop_cancelled_top() noexcept {
        if (size_ > 0 && data_[0].node->state == timer_state::cancelled) [[unlikely]] {
            drop_cancelled_top_slow();
        }
    }

    void drop_cancelled_top_slow() noexcept {
        while (size_ > 0 && data_[0].node->state == timer_state::cancelled) {
            timer_node* node = data_[0].node;
            remove_top();
            --cancelled_;
            node->release();
        }
    }

    // Drops every cancelled entry and rebuilds the heap (Floyd: O(n)).
    void compact() noexcept {
        std::size_t kept = 0;
        for (std::size_t i = 0; i < size_; ++i) {
            if (data_[i].node->state == timer_state::cancelled) {
                data_[i].node->release();
            } else {
                data_[kept++] = data_[i];
            }
        }
        size_ = kept;
        cancelled_ = 0;
        if (size_ > 1) {
            for (std::size_t i = (size_ - 2) / 4 + 1; i-- > 0;) {
                (void)sift_down(i, data_[i]);
            }
        }
    }

    // Entry i lives at raw_[i + 3]: with raw_ 64-byte aligned, the children
    // of entry i (4i+1 .. 4i+4) start on a cache-line boundary.
    void grow() {
        const std::size_t capacity = capacity_ == 0 ? 61 : 2 * (capacity_ + 3) - 3;
        auto* raw = static_cast<entry*>(
            ::operator new((capacity + 3) * sizeof(entry), std::align_val_t{64}));
        if (size_ > 0) {
            std::memcpy(static_cast<void*>(raw + 3), data_, size_ * sizeof(entry));
        }
        ::operator delete(raw_, std::align_val_t{64});
        raw_ = raw;
        data_ = raw + 3;
        capacity_ = capacity;
    }

    entry* raw_ = nullptr;
    entry* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    std::size_t cancelled_ = 0; // cancelled nodes still among the entries
};

} // namespace braid::detail
