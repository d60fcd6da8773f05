// SPDX-License-Identifier: MIT
#pragma once

// detail::wait_point: where an event loop's thread blocks while it watches
// file descriptors. It waits, with a timeout (the next timer's deadline),
// until the loop's wake-up eventfd fires (a thread-safe call, finished pool
// work, stop()) or a watched descriptor is ready; with a timeout of zero it
// only looks. (With no descriptor watched, scheduler::block, the one place
// that decides how to block, sleeps on the remote queue's futex word
// instead, which is cheaper to wake.)
//
// The backend is Linux's epoll; the interface is small on purpose (open,
// watch/unwatch a descriptor, wait) so that another backend (kqueue,
// io_uring) can stand in for it. Descriptors are watched edge-triggered in
// both directions at once: an event reports that a descriptor has become
// readable or writable since the last event, so a descriptor is registered
// once (not per operation) and its owner remembers what it last saw. Events
// are reported as backend-neutral bits (ready_read, ready_write) with the
// pointer given to watch(); the wake-up eventfd's carry a null pointer.
//
// Opened on first use: a loop that never blocks or watches makes no system
// call.
//
// Single-threaded: the loop's thread only.

#include <braid/detail/loop/wait_timeout.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>

#include <sys/epoll.h>
#include <unistd.h>

namespace braid::detail {

// Readiness bits, as events report them. An error or a hang-up counts as both
// (the next read or write reports it), and also sets ready_end: the peer has
// closed its side or the connection failed, a state that lasts (no later
// event will say it again).
inline constexpr std::uint8_t ready_read = 1;
inline constexpr std::uint8_t ready_write = 2;
inline constexpr std::uint8_t ready_end = 4;

class wait_point {
public:
    wait_point() noexcept = default;
    wait_point(const wait_point&) = delete;
    wait_point& operator=(const wait_point&) = delete;
    ~wait_point() {
        if (epoll_ >= 0) {
            ::close(epoll_);
        }
    }

    [[nodiscard]] bool is_open() const noexcept { return epoll_ >= 0; }

    // Creates the epoll instance and watches wake_fd for reading; its events
    // carry a null data pointer. Edge-triggered: every write to an eventfd
    // makes a new event, so the loop never reads it and a wake-up costs the
    // loop no system call besides the wait (mio's eventfd waker does the
    // same).
    void open(int wake_fd) {
        if (epoll_ >= 0) {
            return;
        }
        const int fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0) {
            throw std::system_error(errno, std::system_category(),
                                    "braid::event_loop: epoll_create1");
        }
        epoll_event event{};
        event.events = EPOLLIN | EPOLLET;
        event.data.ptr = nullptr;
        if (::epoll_ctl(fd, EPOLL_CTL_ADD, wake_fd, &event) != 0) {
            const int error = errno;
            ::close(fd);
            throw std::system_error(error, std::system_category(),
                                    "braid::event_loop: epoll_ctl(eventfd)");
        }
        epoll_ = fd;
    }

    // Starts watching fd in both directions, edge-triggered; its events carry
    // `data` (not null). Returns 0, or the errno the OS gave (EBADF for a
    // closed descriptor, EPERM for one epoll cannot watch, such as a regular
    // file, EEXIST when it is watched already). Precondition: open.
    [[nodiscard]] int watch(int fd, void* data) noexcept {
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        event.data.ptr = data;
        if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
            return errno;
        }
        ++watched_;
        return 0;
    }

    // Stops watching fd (nothing happens if it is not watched). Precondition: open.
    void unwatch(int fd) noexcept {
        epoll_event unused{}; // kernels before 2.6.9 wanted a non-null pointer
        // EBADF: the descriptor was closed first, which removed it from the
        // epoll set (unless a duplicate keeps it open); either way it no
        // longer counts. ENOENT: it was not watched.
        if (::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, &unused) == 0 || errno == EBADF) {
            if (watched_ > 0) {
                --watched_;
            }
        }
    }

    // Whether any descriptor besides the wake-up eventfd is watched. When
    // none is, the loop sleeps on a futex instead (remote_queue).
    [[nodiscard]] bool watching() const noexcept { return watched_ != 0; }

    // Blocks until something is ready or `timeout` has passed (nullopt: no
    // limit; zero: only looks), then calls visit(data, readiness) for each
    // ready item (data null: the wake-up eventfd). Returns how many there
    // were (0 on timeout or interruption by a signal). Precondition: open.
    template <class Visit>
    std::size_t wait(std::optional<std::chrono::nanoseconds> timeout, Visit&& visit) {
        int n = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
        // epoll_pwait2 (Linux 5.11) takes a timespec: a timer due in 300 us
        // is waited for, not rounded to a millisecond.
        if (have_pwait2_) {
            timespec spec{};
            timespec* const limit = to_timespec(timeout, spec);
            n = ::epoll_pwait2(epoll_, events_.data(), static_cast<int>(events_.size()), limit,
                               nullptr);
            if (n < 0 && errno == ENOSYS) {
                have_pwait2_ = false;
            }
        }
        if (!have_pwait2_)
#endif
        {
            n = ::epoll_wait(epoll_, events_.data(), static_cast<int>(events_.size()),
                             milliseconds_for(timeout));
        }
        if (n < 0) {
            if (errno == EINTR) {
                return 0;
            }
            throw std::system_error(errno, std::system_category(), "braid::event_loop: epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const std::uint32_t bits = events_[static_cast<std::size_t>(i)].events;
            std::uint8_t readiness = 0;
            if ((bits & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
                readiness |= ready_read;
            }
            if ((bits & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) {
                readiness |= ready_write;
            }
            if ((bits & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
                readiness |= ready_end;
            }
            visit(events_[static_cast<std::size_t>(i)].data.ptr, readiness);
        }
        return static_cast<std::size_t>(n);
    }

    // The most events one wait() reports.
    static constexpr std::size_t max_events = 64;

private:
    // epoll_wait's timeout in whole milliseconds, rounded up so that a timer
    // is never woken for early; -1 for no limit.
    static int milliseconds_for(std::optional<std::chrono::nanoseconds> timeout) noexcept {
        if (!timeout) {
            return -1;
        }
        const auto ns = timeout->count();
        if (ns <= 0) {
            return 0;
        }
        const auto ms = (ns + 999'999) / 1'000'000;
        return ms > 0x7fff'ffff ? 0x7fff'ffff : static_cast<int>(ms);
    }

    int epoll_ = -1;
    std::size_t watched_ = 0; // descriptors watched, the eventfd not counted
    bool have_pwait2_ = true;
    std::array<epoll_event, max_events> events_{};
};

} // namespace braid::detail
