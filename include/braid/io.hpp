// SPDX-License-Identifier: MIT
#pragma once

// co_await braid::readable(fd) and co_await braid::writable(fd): inside a
// task, wait until a file descriptor is ready to read from (or write to)
// while the event loop runs other work.
//
//   int fds[2];
//   ::pipe2(fds, O_NONBLOCK | O_CLOEXEC);
//   co_await braid::readable(fds[0]);          // the loop runs others meanwhile
//   ssize_t n = ::read(fds[0], buffer, sizeof buffer);
//
// The descriptor stays the caller's: braid watches it while the task waits
// (registering it with the loop's epoll instance, and removing it when the
// wait ends) and never closes it. Closing it while a task waits on it is a
// bug in the calling code (the wait may then never end). Readiness is a
// hint, as for poll(2): a read after it may still find nothing (another
// reader took it), so use non-blocking descriptors.
//
// A negative or closed descriptor is std::system_error (EBADF) at the
// co_await; one epoll cannot watch, such as a regular file, is
// std::system_error (EPERM). One task at a time may wait to read, and one to
// write, on a descriptor: a second gets usage_error. The descriptor of a
// braid socket of the same loop (tcp_stream::native_handle()) is watched by
// the socket itself: use its operations (usage_error here).
//
// A waiting task takes no rounds; when the descriptor is ready it joins the
// back of the ready queue. It counts as outstanding work: run() keeps
// running (the thread sleeps) while it waits, for ever if nothing makes the
// descriptor ready. Destroying the loop frees the waiting task's frame.
//
// Only a braid::task can wait (the awaiter needs the task's loop).

#include <braid/detail/loop/io_state.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/task_core.hpp>

#include <cerrno>
#include <coroutine>
#include <exception>

namespace braid {

class [[nodiscard]] io_ready_awaiter {
public:
    io_ready_awaiter(const io_ready_awaiter&) = delete;
    io_ready_awaiter& operator=(const io_ready_awaiter&) = delete;
    // Destroyed while waiting (its task's frame is being destroyed): the
    // descriptor is no longer watched for it.
    ~io_ready_awaiter() { wait_.forget(); }

    [[nodiscard]] bool await_ready() const noexcept { return false; }

    // Not noexcept: std::bad_alloc (making room to watch the descriptor) and
    // usage_error surface at the co_await.
    template <detail::braid_promise P>
    bool await_suspend(std::coroutine_handle<P> self) {
        detail::scheduler& loop = *self.promise().owner();
        if (fd_ < 0) {
            detail::io_state none;
            none.fd = fd_;
            wait_.fail(EBADF, none);
            return false;
        }
        detail::io_state& state = loop.io_watch_state(fd_, *wait_.op);
        try {
            loop.io_wait_for(state, wait_, direction_, self, self.promise());
        } catch (const std::system_error&) {
            // The OS would not watch it (EBADF, EPERM, ...): the task goes on
            // with that error.
            wait_.error = std::current_exception();
            if (state.reader == nullptr && state.writer == nullptr) {
                loop.io_release_watch(state);
            }
            return false;
        } catch (...) {
            if (state.reader == nullptr && state.writer == nullptr) {
                loop.io_release_watch(state);
            }
            throw;
        }
        return true;
    }

    void await_resume() const {
        wait_.resume_point();
        if (wait_.error) {
            std::rethrow_exception(wait_.error);
        }
    }

private:
    friend io_ready_awaiter readable(int fd) noexcept;
    friend io_ready_awaiter writable(int fd) noexcept;

    static constexpr detail::io_operation readable_op{"braid::readable", nullptr};
    static constexpr detail::io_operation writable_op{"braid::writable", nullptr};

    io_ready_awaiter(int fd, std::uint8_t direction) noexcept
        : wait_(direction == detail::ready_read ? &readable_op : &writable_op), fd_(fd),
          direction_(direction) {}

    detail::io_wait wait_;
    int fd_;
    std::uint8_t direction_;
};

// Waits until fd is ready to read from: data, end of file, a hang-up, an
// error, or (for a listening socket) a connection to accept.
[[nodiscard]] inline io_ready_awaiter readable(int fd) noexcept {
    return io_ready_awaiter(fd, detail::ready_read);
}

// Waits until fd is ready to write to (or has an error or hang-up to report).
[[nodiscard]] inline io_ready_awaiter writable(int fd) noexcept {
    return io_ready_awaiter(fd, detail::ready_write);
}

} // namespace braid
