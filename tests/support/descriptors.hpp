// SPDX-License-Identifier: MIT
#pragma once

// Helpers for tests of braid's I/O (Linux):
//
//   open_descriptors  how many descriptors the process has open now
//   highest_open_fd   the highest descriptor number open now
//   raise_fd_limit    raises RLIMIT_NOFILE's soft limit to at least n
//   test_pipe         a non-blocking pipe that closes its ends
//   is_open_fd        whether a descriptor number is open

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

namespace braid_test {

// Entries of /proc/self/fd (the directory iterator's own descriptor
// included, so compare counts taken the same way).
inline std::size_t open_descriptors() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// The highest descriptor number open now (-1 when none).
inline int highest_open_fd() {
    int highest = -1;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        const int fd = std::stoi(entry.path().filename().string());
        highest = fd > highest ? fd : highest;
    }
    return highest;
}

// False when the hard limit is too low.
inline bool raise_fd_limit(rlim_t n) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return false;
    if (limit.rlim_cur >= n)
        return true;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < n)
        return false;
    limit.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

inline bool is_open_fd(int fd) {
    return fcntl(fd, F_GETFD) != -1;
}

struct test_pipe {
    int read_end = -1;
    int write_end = -1;
    test_pipe() {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
            read_end = fds[0];
            write_end = fds[1];
        }
    }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
    ~test_pipe() {
        if (read_end >= 0)
            close(read_end);
        if (write_end >= 0)
            close(write_end);
    }
};

} // namespace braid_test
