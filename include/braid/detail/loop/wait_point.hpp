// SPDX-License-Identifier: MIT
#pragma once

// detail::wait_point: the one place where an event loop's thread blocks. It
// waits, with a timeout (the next timer's deadline), until the loop's wake-up
// eventfd fires (a thread-safe call, finished pool work, stop()) or a watched
// descriptor is ready.
//
// The backend is Linux's epoll; the interface is small on purpose (open,
// wait, and watching descriptors) so that another backend (kqueue, io_uring)
// can stand in for it. Opened on first use: a loop that never blocks makes no
// system call.
//
// Single-threaded: the loop's thread only.

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <system_error>

#include <sys/epoll.h>
#include <unistd.h>

namespace braid::detail {

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
    // carry a null data pointer.
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
        event.events = EPOLLIN;
        event.data.ptr = nullptr;
        if (::epoll_ctl(fd, EPOLL_CTL_ADD, wake_fd, &event) != 0) {
            const int error = errno;
            ::close(fd);
            throw std::system_error(error, std::system_category(),
                                    "braid::event_loop: epoll_ctl(eventfd)");
        }
        epoll_ = fd;
    }

    // Blocks until something is ready or `timeout` has passed (nullopt: no
    // limit; zero: only looks). Returns the ready events (empty on timeout or
    // interruption by a signal). Precondition: open.
    std::span<const epoll_event> wait(std::optional<std::chrono::nanoseconds> timeout) {
        int n = -1;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
        // epoll_pwait2 (Linux 5.11) takes a timespec: a timer due in 300 us
        // is waited for, not rounded to a millisecond.
        if (have_pwait2_) {
            timespec spec{};
            timespec* limit = nullptr;
            if (timeout) {
                const auto ns = timeout->count() < 0 ? 0 : timeout->count();
                spec.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
                spec.tv_nsec = static_cast<long>(ns % 1'000'000'000);
                limit = &spec;
            }
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
                return {};
            }
            throw std::system_error(errno, std::system_category(), "braid::event_loop: epoll_wait");
        }
        return {events_.data(), static_cast<std::size_t>(n)};
    }

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
    bool have_pwait2_ = true;
    std::array<epoll_event, 64> events_{};
};

} // namespace braid::detail
