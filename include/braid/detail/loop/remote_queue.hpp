// SPDX-License-Identifier: MIT
#pragma once

// detail::remote_queue: how other threads reach an event loop. Thread-safe
// calls, finished run_in work and a stream's wake-ups are pushed here from any
// thread; the loop takes them all at once, in the order they were pushed (so
// the calls of one thread keep their order).
//
// head_ is a lock-free stack: a push is one compare-exchange, and the loop's
// take is one exchange that empties it; the loop then reverses the list.
// Nodes only ever leave all at once, so there is no ABA problem. The two low
// bits of head_ carry the loop's side:
//   sleeping  the loop is blocked in its wait point, or about to block: the
//             push that clears the bit wakes it through the eventfd. Only
//             one pusher sees the bit, so a busy loop costs pushers no
//             system call and a sleeping one costs exactly one.
//   closed    the loop is gone: pushes fail and the pusher keeps its node.
//
// Shared by count between the loop and every thread that may still push (a
// pool job of run_in, a stream's waker), so a push after the loop is
// destroyed fails cleanly instead of touching freed memory; the eventfd lives
// as long as this object.

#include <braid/detail/loop/nodes.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace braid::detail {

class remote_queue {
public:
    enum class push_result : unsigned char {
        closed, // the loop is gone; the caller still owns the node
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

    // Any thread.
    push_result push(remote_node* node) noexcept {
        // relaxed: the compare-exchange below re-reads it.
        std::uintptr_t old = head_.load(std::memory_order_relaxed);
        do {
            if ((old & closed) != 0) {
                return push_result::closed;
            }
            node->next = reinterpret_cast<remote_node*>(old & ~flags);
            // acq_rel: releases the node's contents to the loop's take; acquires
            // wake_fd_, which the loop wrote before setting `sleeping`.
        } while (!head_.compare_exchange_weak(old, reinterpret_cast<std::uintptr_t>(node),
                                              std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
        if ((old & sleeping) != 0) {
            signal();
            return push_result::woke;
        }
        return (old & ~flags) == 0 ? push_result::first : push_result::queued;
    }

    // Any thread: wakes the loop if it sleeps (for stop()).
    void wake() noexcept {
        // seq_cst (with the RMWs below): pairs with the caller's seq_cst flag
        // store and the loop's begin_sleep, so that either the loop sees the
        // flag before blocking or this sees `sleeping`.
        std::uintptr_t old = head_.load(std::memory_order_seq_cst);
        while ((old & sleeping) != 0) {
            if (head_.compare_exchange_weak(old, old & ~sleeping, std::memory_order_seq_cst)) {
                signal();
                return;
            }
        }
    }

    // --- The loop's thread ----------------------------------------------------

    [[nodiscard]] bool nonempty() const noexcept {
        // relaxed: a hint; take() acquires what it returns.
        return (head_.load(std::memory_order_relaxed) & ~flags) != 0;
    }

    // Empties the queue; returns the nodes oldest first (a list through
    // next). Also clears `sleeping`.
    [[nodiscard]] remote_node* take() noexcept {
        // acquire: pairs with push's release; the nodes' contents are visible.
        const std::uintptr_t old = head_.exchange(0, std::memory_order_acquire);
        return reverse(reinterpret_cast<remote_node*>(old & ~flags));
    }

    // Announces that the loop is about to block; false (and nothing changed)
    // when something is queued already. wake_fd() must be open.
    [[nodiscard]] bool begin_sleep() noexcept {
        std::uintptr_t expected = 0;
        // seq_cst: see wake().
        return head_.compare_exchange_strong(expected, sleeping, std::memory_order_seq_cst);
    }

    // After the wait: clears `sleeping` if no pusher did.
    void end_sleep() noexcept {
        std::uintptr_t expected = sleeping;
        // relaxed: only our own bit; a node pushed meanwhile is taken by take().
        head_.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
    }

    // The loop is going away: from now on pushes fail. Returns what was
    // queued, oldest first.
    [[nodiscard]] remote_node* close() noexcept {
        // acquire: as take().
        const std::uintptr_t old = head_.exchange(closed, std::memory_order_acquire);
        return reverse(reinterpret_cast<remote_node*>(old & ~flags));
    }

    // The eventfd that wakes the loop, opened on first use.
    int wake_fd() {
        if (wake_fd_ < 0) {
            const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (fd < 0) {
                throw std::system_error(errno, std::system_category(),
                                        "braid::event_loop: eventfd");
            }
            wake_fd_ = fd;
        }
        return wake_fd_;
    }

    // After the eventfd was seen readable: resets it.
    void drain_wake_fd() noexcept {
        eventfd_t value = 0;
        (void)::eventfd_read(wake_fd_, &value);
    }

private:
    static constexpr std::uintptr_t sleeping = 1;
    static constexpr std::uintptr_t closed = 2;
    static constexpr std::uintptr_t flags = 3;
    static_assert(alignof(remote_node) >= 4, "two low bits of a node's address are free");

    ~remote_queue() {
        if (wake_fd_ >= 0) {
            ::close(wake_fd_);
        }
    }

    void signal() noexcept {
        // Cannot fail in a way we could act on: the counter cannot overflow
        // (the loop drains it) and the descriptor lives as long as we do.
        (void)::eventfd_write(wake_fd_, 1);
    }

    static remote_node* reverse(remote_node* n) noexcept {
        remote_node* out = nullptr;
        while (n != nullptr) {
            remote_node* next = n->next;
            n->next = out;
            out = n;
            n = next;
        }
        return out;
    }

    std::atomic<std::uintptr_t> head_{0};
    std::atomic<std::uint32_t> refs_{1}; // the loop's
    int wake_fd_ = -1;                   // written by the loop before it first sleeps
};

} // namespace braid::detail
