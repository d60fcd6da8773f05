// SPDX-License-Identifier: MIT
#pragma once

// detail::io_state and detail::io_wait: a descriptor an event loop watches,
// and a task waiting on one.
//
// io_state is per descriptor. A socket (braid::tcp_stream, tcp_listener)
// allocates one when it is made and keeps it until it is closed: it is
// registered with a loop's wait point once, on its first wait, and stays
// registered (edge-triggered, both directions) until the socket closes, so
// no operation costs an epoll_ctl. A descriptor braid was only asked to watch
// (braid::readable/writable) gets a state from the loop, registered while a
// task waits on it and no longer: braid never keeps a registration, nor
// closes a descriptor, it does not own.
//
// `ready` remembers what the last events said: a read or write is tried
// first while its bit is set, and clears the bit when the OS says it would
// block (or, for a stream, when a read comes back short: the data was all
// taken). An event sets the bit again. So an operation on a ready socket is
// one system call, and a task waits only after the OS said it must.
//
// io_wait is one waiting operation, kept in its awaiter in the waiting task's
// frame (no allocation). At most one task waits to read and one to write on
// a state. When an event says the descriptor is ready, the loop calls the
// operation's perform() right away: it makes the system call, and either
// finishes (the task is woken with the result, through scheduler::wake) or
// finds the descriptor not ready after all and waits for the next event.
//
//   task frame ─ awaiter { io_wait } ◄──reader/writer── io_state ──loop──► scheduler
//                              └──────────state───────────►┘
//
// Single-threaded: a state and its waits are used on their loop's thread.

#include <braid/detail/loop/wait_point.hpp>
#include <braid/detail/task_core.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <system_error>

namespace braid::detail {

class scheduler;
struct io_wait;

// A kind of waiting operation.
struct io_operation {
    // Names it in messages: "braid::tcp_stream::read_some".
    const char* name;
    // Called when the descriptor looks ready: tries the operation. Returns
    // true when it is over (its result or error is stored), false when the
    // OS said it would block (it cleared its readiness bit, and waits for the
    // next event). Null: readiness itself is what the task waits for.
    bool (*perform)(io_wait&) noexcept;
};

struct io_state {
    io_state() noexcept = default;
    io_state(const io_state&) = delete;
    io_state& operator=(const io_state&) = delete;

    int fd = -1;
    // ready_read / ready_write: the descriptor may be ready, try the call.
    std::uint8_t ready = ready_read | ready_write;
    // Watched for a braid::readable/writable only: registered while waited on.
    bool watch_only = false;
    scheduler* loop = nullptr; // the loop whose wait point watches fd, if any
    io_wait* reader = nullptr;
    io_wait* writer = nullptr;
    // Appends the descriptor's name for messages ("127.0.0.1:8080", "fd 5").
    void (*describe)(const io_state&, std::string&) = &io_state::describe_descriptor;

    static void describe_descriptor(const io_state& s, std::string& out) {
        out += "fd ";
        out += std::to_string(s.fd);
    }
};

// A suspension (task_core.hpp): cancelling the waiting task cancels the wait.
struct io_wait : suspension {
    io_wait() noexcept { init_suspension(); }
    explicit io_wait(const io_operation* operation) noexcept : op(operation) { init_suspension(); }
    io_wait(const io_wait&) = delete;
    io_wait& operator=(const io_wait&) = delete;

    const io_operation* op = nullptr;
    std::coroutine_handle<> waiter;
    io_state* state = nullptr;    // non-null while the task waits
    std::exception_ptr error;     // the operation's failure, for the awaiter to throw
    promise_base* task = nullptr; // the task that waits (or waited)

    // First thing in every I/O awaiter's await_resume: the task no longer
    // waits, and a task cancelled meanwhile gets braid::cancelled here
    // (rather than the operation_canceled the cancelled wait stored).
    void resume_point() const {
        if (task != nullptr) {
            task->resumed();
            task->check_cancel();
        }
    }

    // Stores std::system_error(code) with a message naming the operation and
    // the descriptor: "braid::tcp_stream::read_some 127.0.0.1:8080: ...".
    // `s` is the state the operation is about (it must be alive).
    void fail(int code, const io_state& s) noexcept {
        try {
            std::string what = op->name;
            what += ' ';
            s.describe(s, what);
            error = std::make_exception_ptr(
                std::system_error(code, std::system_category(), std::move(what)));
        } catch (...) {
            error = std::current_exception(); // out of memory for the message
        }
    }

    // Stops waiting and makes the task ready again, to find
    // std::system_error(operation_canceled) at its co_await. Nothing happens
    // when the task does not wait. (Closing a socket does this to its
    // waiters.) Defined in scheduler_io.hpp.
    void cancel() noexcept;
    // Stops waiting without waking the task: its frame is being destroyed.
    void forget() noexcept;

private:
    void init_suspension() noexcept {
        suspension::cancel = [](suspension* s) noexcept { static_cast<io_wait*>(s)->cancel(); };
        kind = wait_kind::io;
    }
};

} // namespace braid::detail
