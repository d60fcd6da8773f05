// SPDX-License-Identifier: MIT
#pragma once

// The inside of braid's sockets: detail::socket_state (an io_state with the
// address messages name), opening and closing one, and the awaiters of a
// stream's reads and writes. Public API: <braid/net.hpp>.
//
// A read or write tries its system call at once (in await_ready) while the
// socket's readiness bit is set, so a socket that is ready costs one call
// and no suspension. Only when the OS says it would block does the task
// wait; the loop then calls perform() when an event says the socket is
// ready, and wakes the task once the operation is done.
//
// A read that comes back short (fewer bytes than asked) clears the read
// bit: a TCP socket returns everything it holds, up to the buffer's size, so
// a short read took it all, and the edge-triggered registration reports
// the next data that arrives. This saves the second read (the one that
// would say EAGAIN) of every message; Tokio's TcpStream does the same. Not
// once an event has reported the end of the stream or an error (ready_end):
// the short read may have stopped at the FIN, and nothing would report the
// end again, so from then on reads always make the call. (A read also stops
// short at TCP urgent data, which braid does not use: a peer that sends it
// and then waits for an answer would leave the rest unread until it sends
// more.)

#include <braid/detail/loop/io_state.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/net/endpoint.hpp>
#include <braid/detail/task_core.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace braid::detail {

struct socket_state : io_state {
    explicit socket_state(int descriptor, const endpoint& e) noexcept : where(e) {
        fd = descriptor;
        describe = &socket_state::describe_endpoint;
    }
    endpoint where; // the peer of a stream, the local address of a listener

    static void describe_endpoint(const io_state& s, std::string& out) {
        static_cast<const socket_state&>(s).where.append_to(out);
    }
};

[[noreturn]] inline void throw_socket_error(int code, const char* function, const endpoint& e) {
    std::string what = function;
    what += ' ';
    e.append_to(what);
    throw std::system_error(code, std::system_category(), what);
}

// Closes a socket: its waiting tasks are woken with operation_canceled, its
// loop stops watching it, and its descriptor is closed.
inline void close_socket(socket_state* s) noexcept {
    for (io_wait* w : {s->reader, s->writer}) {
        if (w != nullptr) {
            w->cancel();
        }
    }
    if (s->loop != nullptr) {
        s->loop->io_detach(*s);
    }
    ::close(s->fd);
    delete s;
}

// The owner of a socket_state, for tcp_stream and tcp_listener: move-only,
// closes the socket when it goes. Null once closed or moved from.
class socket_handle {
public:
    socket_handle() noexcept = default;
    explicit socket_handle(socket_state* s) noexcept : s_(s) {}
    socket_handle(socket_handle&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    socket_handle& operator=(socket_handle&& other) noexcept {
        if (this != &other) {
            close();
            s_ = std::exchange(other.s_, nullptr);
        }
        return *this;
    }
    ~socket_handle() { close(); }

    void close() noexcept {
        if (s_ != nullptr) {
            close_socket(std::exchange(s_, nullptr));
        }
    }
    [[nodiscard]] socket_state* get() const noexcept { return s_; }
    socket_state* operator->() const noexcept { return s_; }
    socket_state& operator*() const noexcept { return *s_; }
    [[nodiscard]] int fd() const noexcept { return s_ != nullptr ? s_->fd : -1; }

private:
    socket_state* s_ = nullptr;
};

// Takes ownership of a connected stream's descriptor: TCP_NODELAY (as
// asyncio sets it: a small write goes out at once), and its state. On
// failure the descriptor is closed and the error thrown.
inline socket_state* adopt_stream(int fd, const endpoint& peer) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    try {
        auto* s = new socket_state(fd, peer);
        // Not known to be readable: the registration on its first wait says.
        s->ready = ready_write;
        return s;
    } catch (...) {
        ::close(fd);
        throw;
    }
}

inline bool would_block(int error) noexcept {
    return error == EAGAIN || error == EWOULDBLOCK;
}

// co_await stream.read_some(buffer): the number of bytes read, 0 at the end
// of the stream.
class [[nodiscard]] read_awaiter : private io_wait {
public:
    read_awaiter(socket_state* s, std::span<std::byte> buffer) noexcept
        : io_wait(&operation), s_(s), buffer_(buffer) {}
    read_awaiter(const read_awaiter&) = delete;
    read_awaiter& operator=(const read_awaiter&) = delete;
    ~read_awaiter() { forget(); }

    bool await_ready() noexcept {
        if (buffer_.empty()) {
            return true;
        }
        return (s_->ready & ready_read) != 0 && perform_read(*this);
    }
    template <braid_promise P>
    void await_suspend(std::coroutine_handle<P> self) {
        self.promise().owner()->io_wait_for(*s_, *this, ready_read, self, self.promise());
    }
    std::size_t await_resume() const {
        resume_point();
        if (error) {
            std::rethrow_exception(error);
        }
        return result_;
    }

private:
    static bool perform_read(io_wait& w) noexcept {
        auto& self = static_cast<read_awaiter&>(w);
        for (;;) {
            const ssize_t n = ::recv(self.s_->fd, self.buffer_.data(), self.buffer_.size(), 0);
            if (n >= 0) {
                if (n > 0 && static_cast<std::size_t>(n) < self.buffer_.size() &&
                    (self.s_->ready & ready_end) == 0) {
                    self.s_->ready &= static_cast<std::uint8_t>(~ready_read); // took it all
                }
                self.result_ = static_cast<std::size_t>(n);
                return true;
            }
            if (errno == EINTR) {
                continue;
            }
            if (would_block(errno)) {
                self.s_->ready &= static_cast<std::uint8_t>(~ready_read);
                return false;
            }
            self.fail(errno, *self.s_);
            return true;
        }
    }
    static constexpr io_operation operation{"braid::tcp_stream::read_some", &perform_read};

    socket_state* s_;
    std::span<std::byte> buffer_;
    std::size_t result_ = 0;
};

// co_await stream.write_all(data): returns once every byte was handed to
// the OS.
class [[nodiscard]] write_awaiter : private io_wait {
public:
    write_awaiter(socket_state* s, std::span<const std::byte> data) noexcept
        : io_wait(&operation), s_(s), rest_(data) {}
    write_awaiter(const write_awaiter&) = delete;
    write_awaiter& operator=(const write_awaiter&) = delete;
    ~write_awaiter() { forget(); }

    bool await_ready() noexcept {
        if (rest_.empty()) {
            return true;
        }
        return (s_->ready & ready_write) != 0 && perform_write(*this);
    }
    template <braid_promise P>
    void await_suspend(std::coroutine_handle<P> self) {
        self.promise().owner()->io_wait_for(*s_, *this, ready_write, self, self.promise());
    }
    void await_resume() const {
        resume_point();
        if (error) {
            std::rethrow_exception(error);
        }
    }

private:
    static bool perform_write(io_wait& w) noexcept {
        auto& self = static_cast<write_awaiter&>(w);
        for (;;) {
            // MSG_NOSIGNAL: a peer that has gone gives EPIPE here, never a
            // SIGPIPE that would end the process.
            const ssize_t n =
                ::send(self.s_->fd, self.rest_.data(), self.rest_.size(), MSG_NOSIGNAL);
            if (n >= 0) {
                self.rest_ = self.rest_.subspan(static_cast<std::size_t>(n));
                if (self.rest_.empty()) {
                    return true;
                }
                continue; // the OS took part: the next call says whether it takes more
            }
            if (errno == EINTR) {
                continue;
            }
            if (would_block(errno)) {
                self.s_->ready &= static_cast<std::uint8_t>(~ready_write);
                return false;
            }
            self.fail(errno, *self.s_);
            return true;
        }
    }
    static constexpr io_operation operation{"braid::tcp_stream::write_all", &perform_write};

    socket_state* s_;
    std::span<const std::byte> rest_;
};

} // namespace braid::detail
