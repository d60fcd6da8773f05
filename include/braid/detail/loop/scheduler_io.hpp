// SPDX-License-Identifier: MIT
#pragma once

// The scheduler's file descriptors: registering them with the wait point,
// tasks waiting on them, and the wait point's events. Included at the end of
// scheduler.hpp.
//
// A task that waits on a descriptor counts as outstanding work (run() waits
// for it, as for a timer) and turns on the `world` attention bit, so the loop
// looks for ready descriptors, without blocking, once per pass while tasks
// are ready, and blocks in the wait point when none is. Each event goes
// straight to the waiting operation: its perform() makes the system call and,
// when that is done, the task joins the back of the ready queue through
// wake(), which allocates nothing, so that an event, once taken from the OS,
// is never lost to a failed allocation.

#include <braid/detail/loop/io_state.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/errors.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <system_error>

namespace braid::detail {

inline void scheduler::io_wait_for(io_state& s, io_wait& w, std::uint8_t direction,
                                   std::coroutine_handle<> h, promise_base& task) {
    io_wait*& slot = direction == ready_read ? s.reader : s.writer;
    if (slot != nullptr) {
        std::string what = w.op->name;
        what += ": another task is already waiting to ";
        what += direction == ready_read ? "read from " : "write to ";
        s.describe(s, what);
        what += " (one task at a time may wait to read, and one to write)";
        throw usage_error(what);
    }
    if (s.loop != this) {
        if (s.loop != nullptr) {
            if (s.reader != nullptr || s.writer != nullptr) {
                std::string what = w.op->name;
                what += ": ";
                s.describe(s, what);
                what += " is waited on by a task of another event loop";
                throw usage_error(what);
            }
            s.loop->io_detach(s); // it moves to this loop
        }
        if (static_cast<std::size_t>(s.fd) < io_table_.size() && io_table_[s.fd] != nullptr) {
            std::string what = w.op->name;
            what += ": ";
            s.describe(s, what);
            what += " is already watched by this event loop through another object (was a "
                    "descriptor closed while a task waited on it?)";
            throw usage_error(what);
        }
        if (!wait_.is_open()) {
            wait_.open(remote_->wake_fd());
        }
        if (static_cast<std::size_t>(s.fd) >= io_table_.size()) {
            io_table_.resize(static_cast<std::size_t>(s.fd) + 1, nullptr);
        }
        if (const int error = wait_.watch(s.fd, &s); error != 0) {
            w.fail(error, s);
            std::rethrow_exception(std::exchange(w.error, nullptr));
        }
        io_table_[s.fd] = &s;
        s.loop = this;
    }
    slot = &w;
    w.state = &s;
    w.waiter = h;
    w.task = &task;
    ++io_waiting_;
    update_world();
    task.suspend_on(&w); // last: cancelling the task reaches the wait
}

inline void scheduler::io_end_wait(io_wait& w, bool wake_task) noexcept {
    io_state& s = *w.state;
    if (s.reader == &w) {
        s.reader = nullptr;
    } else {
        s.writer = nullptr;
    }
    w.state = nullptr;
    --io_waiting_;
    if (s.watch_only && s.reader == nullptr && s.writer == nullptr) {
        io_release_watch(s);
    }
    if (wake_task) {
        wake(w.waiter); // cannot fail: queueing allocates nothing
    }
}

inline io_state& scheduler::io_watch_state(int fd, const io_operation& op) {
    if (static_cast<std::size_t>(fd) < io_table_.size()) {
        if (io_state* s = io_table_[fd]; s != nullptr) {
            if (!s->watch_only) {
                throw usage_error(std::string(op.name) + ": descriptor " + std::to_string(fd) +
                                  " belongs to a braid socket of this event loop; use the "
                                  "socket's own operations");
            }
            return *s;
        }
    }
    io_state* s = nullptr;
    if (!io_spare_.empty()) {
        s = io_spare_.back();
        io_spare_.pop_back();
    } else {
        io_spare_.reserve(io_watch_states_ + 1); // room to give it back later
        s = new io_state();
        s->watch_only = true;
        ++io_watch_states_;
    }
    s->fd = fd;
    s->ready = 0; // a watch waits for an event: registering reports what is ready now
    return *s;
}

inline void scheduler::io_release_watch(io_state& s) noexcept {
    if (s.loop == this) {
        io_detach(s);
    }
    s.fd = -1;
    io_spare_.push_back(&s); // cannot throw: room is kept for every watch state
}

inline void scheduler::io_detach(io_state& s) noexcept {
    wait_.unwatch(s.fd);
    io_table_[s.fd] = nullptr;
    s.loop = nullptr;
}

inline void scheduler::poll_io() {
    wait_.wait(std::chrono::nanoseconds::zero(),
               [this](void* data, std::uint8_t readiness) { io_event(data, readiness); });
}

inline void scheduler::io_event(void* data, std::uint8_t readiness) noexcept {
    if (data == nullptr) {
        return; // the wake-up eventfd: what woke the loop is in the remote queue
    }
    io_state& s = *static_cast<io_state*>(data);
    s.ready |= readiness;
    // Both are read first: finishing one may give back a watch state.
    io_wait* const reader = (readiness & ready_read) != 0 ? s.reader : nullptr;
    io_wait* const writer = (readiness & ready_write) != 0 ? s.writer : nullptr;
    if (reader != nullptr && (reader->op->perform == nullptr || reader->op->perform(*reader))) {
        io_end_wait(*reader, true);
    }
    if (writer != nullptr && (writer->op->perform == nullptr || writer->op->perform(*writer))) {
        io_end_wait(*writer, true);
    }
}

inline void scheduler::io_abandon_all() noexcept {
    // The waiting tasks' frames are destroyed next, or later by task objects
    // that outlive the loop: their awaiters must find themselves not waiting.
    // Sockets keep their states and only close their descriptors from now on
    // (the epoll instance goes with the loop, and their registrations with it).
    for (io_state*& entry : io_table_) {
        io_state* const s = std::exchange(entry, nullptr);
        if (s == nullptr) {
            continue;
        }
        for (io_wait* w : {s->reader, s->writer}) {
            if (w != nullptr) {
                w->state = nullptr;
            }
        }
        s->reader = s->writer = nullptr;
        s->loop = nullptr;
        if (s->watch_only) {
            s->fd = -1;
            io_spare_.push_back(s); // room kept, as in io_release_watch
        }
    }
    io_waiting_ = 0;
    for (io_state* s : io_spare_) {
        delete s;
    }
    io_spare_.clear();
    io_watch_states_ = 0;
}

// --- io_wait ------------------------------------------------------------------

inline void io_wait::cancel() noexcept {
    if (state == nullptr) {
        return;
    }
    fail(ECANCELED, *state);
    state->loop->io_end_wait(*this, true);
}

inline void io_wait::forget() noexcept {
    if (state != nullptr) {
        state->loop->io_end_wait(*this, false);
    }
}

} // namespace braid::detail
