// SPDX-License-Identifier: MIT
#pragma once

// TCP on the event loop: braid::tcp_listener and braid::tcp_stream.
//
//   auto listener = braid::tcp_listener::bind("127.0.0.1", 0); // port 0: any free port
//   braid::tcp_stream client = co_await listener.accept();
//
//   braid::tcp_stream s = co_await braid::tcp_stream::connect("127.0.0.1", 8080);
//   co_await s.write_all("hello\n");
//   std::array<char, 1024> buffer;
//   std::size_t n = co_await s.read_some(buffer);             // 0: the peer closed
//
// Sockets are non-blocking, move-only and close themselves. A socket is
// registered with the event loop of the first task that waits on it, once,
// and stays registered until it is closed; reads and writes try the system
// call first and wait only when the OS says it would block. While a task
// waits, the loop runs other tasks; a waiting task takes no rounds.
//
// One task at a time may wait to read (or accept) and one to write on a
// socket; a second gets usage_error. Closing a socket (close(), its
// destructor, or assigning another to it) wakes the tasks waiting on it with
// std::system_error (operation_canceled). A socket may outlive the loop it
// was used on: it then only closes its descriptor.
//
// Hosts are numeric IPv4 or IPv6 addresses, or "localhost" (127.0.0.1): name
// resolution is out of scope (see docs/io.md). Every failure is a
// std::system_error whose message names the call and the address, e.g.
// "braid::tcp_stream::connect 127.0.0.1:9: Connection refused". Writing to a
// peer that has gone is std::system_error (EPIPE or ECONNRESET), never a
// SIGPIPE. A connection the peer reset makes read_some throw (ECONNRESET); an
// orderly close gives 0.
//
// Threads: a socket is used on the thread of the loop its tasks run on.

#include <braid/detail/loop/io_state.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/net/endpoint.hpp>
#include <braid/detail/net/socket.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

namespace braid {

namespace detail {
class connect_awaiter;
class accept_awaiter;
} // namespace detail

class tcp_stream {
public:
    // A closed stream (nothing to read or write).
    tcp_stream() noexcept = default;
    tcp_stream(tcp_stream&&) noexcept = default;
    tcp_stream& operator=(tcp_stream&&) noexcept = default; // closes what it held
    ~tcp_stream() = default;                                // closes the socket

    // co_await it: a stream connected to host:port. Throws
    // std::invalid_argument at once for a host that is not numeric nor
    // "localhost"; the co_await throws std::system_error when the connection
    // fails ("braid::tcp_stream::connect 127.0.0.1:9: Connection refused").
    [[nodiscard]] static detail::connect_awaiter connect(std::string_view host, std::uint16_t port);

    // co_await it: reads what has arrived, up to buffer.size() bytes, waiting
    // until something has; gives the number of bytes read, 0 at the end of
    // the stream (or for an empty buffer). The buffer must outlive the
    // co_await.
    [[nodiscard]] detail::read_awaiter read_some(std::span<std::byte> buffer) {
        return {checked("read_some"), buffer};
    }
    [[nodiscard]] detail::read_awaiter read_some(std::span<char> buffer) {
        return read_some(std::as_writable_bytes(buffer));
    }

    // co_await it: writes all of data, waiting while the OS buffer is full.
    // The data must outlive the co_await. On failure some of it may have
    // been sent.
    [[nodiscard]] detail::write_awaiter write_all(std::span<const std::byte> data) {
        return {checked("write_all"), data};
    }
    [[nodiscard]] detail::write_awaiter write_all(std::string_view data) {
        return write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
    }

    // Sends the end of the stream to the peer (its reads give 0 once it has
    // read the rest); reading goes on.
    void shutdown_write() {
        detail::socket_state* const s = checked("shutdown_write");
        if (::shutdown(s->fd, SHUT_WR) != 0) {
            detail::throw_socket_error(errno, "braid::tcp_stream::shutdown_write", s->where);
        }
    }

    // Closes the descriptor; tasks waiting on the stream get
    // std::system_error (operation_canceled). Closing a closed stream does
    // nothing.
    void close() noexcept { s_.close(); }

    [[nodiscard]] bool is_open() const noexcept { return s_.get() != nullptr; }
    // The socket's descriptor, for socket options (-1 when closed). It stays
    // the stream's: do not close it.
    [[nodiscard]] int native_handle() const noexcept { return s_.fd(); }

private:
    friend class detail::connect_awaiter;
    friend class detail::accept_awaiter;
    explicit tcp_stream(detail::socket_handle s) noexcept : s_(std::move(s)) {}

    detail::socket_state* checked(const char* function) const {
        if (s_.get() == nullptr) {
            throw usage_error(std::string("braid::tcp_stream::") + function +
                              ": the stream is closed (or moved from, or default-constructed)");
        }
        return s_.get();
    }

    detail::socket_handle s_;
};

namespace detail {

// co_await tcp_stream::connect(host, port).
class [[nodiscard]] connect_awaiter : private io_wait {
public:
    explicit connect_awaiter(const endpoint& e) noexcept : io_wait(&operation), where_(e) {}
    connect_awaiter(const connect_awaiter&) = delete;
    connect_awaiter& operator=(const connect_awaiter&) = delete;
    ~connect_awaiter() { forget(); } // then s_ closes the socket, if no stream took it

    bool await_ready() {
        const int fd = ::socket(where_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            throw_socket_error(errno, operation.name, where_);
        }
        s_ = socket_handle(adopt_stream(fd, where_));
        int code = ::connect(fd, &where_.address.any, where_.size()) == 0 ? 0 : errno;
        if (code == EINTR) {
            code = EINPROGRESS; // interrupted, the connection goes on in the background
        }
        if (code == EINPROGRESS) {
            s_->ready = 0; // writable once connected (or failed): the registration says
            return false;
        }
        if (code != 0) {
            fail(code, *s_);
        }
        return true;
    }
    template <braid_promise P>
    void await_suspend(std::coroutine_handle<P> self) {
        self.promise().owner()->io_wait_for(*s_, *this, ready_write, self, self.promise());
    }
    tcp_stream await_resume() {
        resume_point();
        if (error) {
            std::rethrow_exception(error);
        }
        return tcp_stream(std::move(s_));
    }

private:
    static bool perform_connect(io_wait& w) noexcept {
        auto& self = static_cast<connect_awaiter&>(w);
        int code = 0;
        socklen_t size = sizeof code;
        if (::getsockopt(self.s_->fd, SOL_SOCKET, SO_ERROR, &code, &size) != 0) {
            code = errno;
        }
        if (code == 0) {
            sockaddr_storage peer{};
            socklen_t peer_size = sizeof peer;
            if (::getpeername(self.s_->fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0) {
                if (errno == ENOTCONN) {
                    self.s_->ready &= static_cast<std::uint8_t>(~ready_write); // not yet
                    return false;
                }
                code = errno;
            }
        }
        if (code != 0) {
            self.fail(code, *self.s_);
        }
        return true;
    }
    static constexpr io_operation operation{"braid::tcp_stream::connect", &perform_connect};

    endpoint where_;
    socket_handle s_; // the socket, until the stream takes it
};

// co_await listener.accept().
class [[nodiscard]] accept_awaiter : private io_wait {
public:
    explicit accept_awaiter(socket_state* s) noexcept : io_wait(&operation), s_(s) {}
    accept_awaiter(const accept_awaiter&) = delete;
    accept_awaiter& operator=(const accept_awaiter&) = delete;
    ~accept_awaiter() {
        forget();
        if (fd_ >= 0) {
            ::close(fd_); // accepted, never handed out
        }
    }

    bool await_ready() noexcept { return (s_->ready & ready_read) != 0 && perform_accept(*this); }
    template <braid_promise P>
    void await_suspend(std::coroutine_handle<P> self) {
        self.promise().owner()->io_wait_for(*s_, *this, ready_read, self, self.promise());
    }
    tcp_stream await_resume() {
        resume_point();
        if (error) {
            std::rethrow_exception(error);
        }
        return tcp_stream(socket_handle(adopt_stream(std::exchange(fd_, -1), peer_)));
    }

private:
    static bool perform_accept(io_wait& w) noexcept {
        auto& self = static_cast<accept_awaiter&>(w);
        for (;;) {
            socklen_t size = sizeof self.peer_.address;
            const int fd = ::accept4(self.s_->fd, &self.peer_.address.any, &size,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                self.fd_ = fd;
                return true;
            }
            switch (errno) {
            case EINTR:
            // A connection that failed before it was accepted, or a network
            // error accept(2) says to treat like EAGAIN: the next one.
            case ECONNABORTED:
            case EPROTO:
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                self.s_->ready &= static_cast<std::uint8_t>(~ready_read);
                return false;
            default:
                // EMFILE and the like: the connection stays queued, and the
                // read bit stays set, so the next accept tries again.
                self.fail(errno, *self.s_);
                return true;
            }
        }
    }
    static constexpr io_operation operation{"braid::tcp_listener::accept", &perform_accept};

    socket_state* s_;
    int fd_ = -1;
    endpoint peer_;
};

} // namespace detail

class tcp_listener {
public:
    // A closed listener.
    tcp_listener() noexcept = default;
    tcp_listener(tcp_listener&&) noexcept = default;
    tcp_listener& operator=(tcp_listener&&) noexcept = default; // closes what it held
    ~tcp_listener() = default;                                  // closes the socket

    // Listens on host:port (port 0: a free port the OS picks; port() says
    // which), with SO_REUSEADDR, at once (no loop needed). Throws
    // std::invalid_argument for a host that is not numeric nor "localhost",
    // std::system_error when the OS refuses ("braid::tcp_listener::bind
    // 127.0.0.1:80: Permission denied").
    [[nodiscard]] static tcp_listener bind(std::string_view host, std::uint16_t port,
                                           int backlog = SOMAXCONN) {
        constexpr const char* function = "braid::tcp_listener::bind";
        detail::endpoint where = detail::endpoint::parse(function, host, port);
        const int fd = ::socket(where.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            detail::throw_socket_error(errno, function, where);
        }
        const int one = 1;
        socklen_t size = where.size();
        if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(fd, &where.address.any, where.size()) != 0 || ::listen(fd, backlog) != 0 ||
            ::getsockname(fd, &where.address.any, &size) != 0) {
            const int error = errno;
            ::close(fd);
            detail::throw_socket_error(error, function, where);
        }
        detail::socket_state* s = nullptr;
        try {
            s = new detail::socket_state(fd, where);
        } catch (...) {
            ::close(fd);
            throw;
        }
        s->ready = 0; // the registration on the first wait says whether one is queued
        return tcp_listener(detail::socket_handle(s));
    }

    // co_await it: the next connection. Throws std::system_error when the
    // OS fails the accept (EMFILE, ...; the connection stays queued).
    [[nodiscard]] detail::accept_awaiter accept() { return detail::accept_awaiter(checked()); }

    // The port it listens on.
    [[nodiscard]] std::uint16_t port() const { return checked()->where.port(); }

    // Closes the descriptor; a task waiting in accept() gets
    // std::system_error (operation_canceled).
    void close() noexcept { s_.close(); }

    [[nodiscard]] bool is_open() const noexcept { return s_.get() != nullptr; }
    // The listening socket's descriptor, for socket options (-1 when closed).
    [[nodiscard]] int native_handle() const noexcept { return s_.fd(); }

private:
    explicit tcp_listener(detail::socket_handle s) noexcept : s_(std::move(s)) {}

    detail::socket_state* checked() const {
        if (s_.get() == nullptr) {
            throw usage_error("braid::tcp_listener: the listener is closed (or moved from, or "
                              "default-constructed)");
        }
        return s_.get();
    }

    detail::socket_handle s_;
};

inline detail::connect_awaiter tcp_stream::connect(std::string_view host, std::uint16_t port) {
    return detail::connect_awaiter(
        detail::endpoint::parse("braid::tcp_stream::connect", host, port));
}

} // namespace braid
