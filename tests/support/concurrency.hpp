// SPDX-License-Identifier: MIT
#pragma once

// Helpers for tests of braid's threaded parts. None asserts: worker threads
// record what happened and the test asserts on its own thread.
//
//   gate            a one-shot door threads wait at until the test opens it
//   wait_until      polls a condition, with a generous hang guard
//   watchdog        ends the test program with a message if it hangs
//   process_threads how many threads the process has now (Linux)
//   atomic_counted  a value type that counts its live instances, atomically

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace braid_test {

using namespace std::chrono_literals;

// Far beyond any correct wait, even under a sanitizer on a loaded machine:
// reaching it means a hang, not slowness.
inline constexpr std::chrono::seconds hang_guard{60};

class gate {
public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    // True when opened, false when the hang guard ran out.
    bool wait() {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, hang_guard, [&] { return open_; });
    }
    bool is_open() {
        std::lock_guard lock(mutex_);
        return open_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

// Polls `condition` every millisecond; false if it still fails after `limit`.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds limit = hang_guard) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Aborts the program with `what` when it is still alive after `limit`: a
// deadlocked test then fails fast and says where, instead of at the ctest
// timeout.
class watchdog {
public:
    explicit watchdog(std::string what, std::chrono::seconds limit = 2 * hang_guard)
        : what_(std::move(what)), thread_([this, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
                  std::fprintf(stderr, "watchdog: hang in %s\n", what_.c_str());
                  std::fflush(stderr);
                  std::abort();
              }
          }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::string what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// The number of threads of this process (entries of /proc/self/task).
inline std::size_t process_threads() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

// The thread count to return to after a test's threads are gone. Starts and
// joins one thread first: ThreadSanitizer starts a helper thread of its own
// with the program's first thread, which must not look like a leak.
inline std::size_t baseline_threads() {
    std::thread([] {}).join();
    return process_threads();
}

// The thread count settles after threads are joined (the kernel removes an
// exited thread a moment later): waits for it to fall to `expected`.
inline bool threads_settle_to(std::size_t expected) {
    return wait_until([&] { return process_threads() <= expected; }, 10s);
}

// A value that counts how many of it are alive, to find leaks and double
// destruction of items a map stores. The count is atomic, since items are
// made and destroyed on several threads (counted.hpp's is not; the names
// differ so that a test may include both).
struct atomic_counted {
    static std::atomic<long>& live() {
        static std::atomic<long> n{0};
        return n;
    }
    explicit atomic_counted(int v = 0) : value(v) {
        live().fetch_add(1, std::memory_order_relaxed);
    }
    atomic_counted(const atomic_counted& o) : value(o.value) {
        live().fetch_add(1, std::memory_order_relaxed);
    }
    atomic_counted(atomic_counted&& o) noexcept : value(o.value) {
        live().fetch_add(1, std::memory_order_relaxed);
    }
    atomic_counted& operator=(const atomic_counted&) = default;
    atomic_counted& operator=(atomic_counted&&) noexcept = default;
    ~atomic_counted() { live().fetch_sub(1, std::memory_order_relaxed); }
    int value;
};

} // namespace braid_test
