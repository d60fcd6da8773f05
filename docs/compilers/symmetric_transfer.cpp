// SPDX-License-Identifier: MIT
// A minimal lazy task that uses symmetric transfer (await_suspend returns the
// handle to resume), awaited a million times by a loop, each awaited task
// finishing at once. Where symmetric transfer is a tail call this runs in
// constant stack; where it is a plain call, every await nests two frames and
// the stack overflows (GCC PR c++/100897).
#include <coroutine>
#include <cstdio>
#include <exception>
#include <utility>

struct task {
    struct promise_type {
        std::coroutine_handle<> continuation = std::noop_coroutine();
        task get_return_object() {
            return task{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
                return h.promise().continuation;
            }
            void await_resume() noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void return_void() {}
        void unhandled_exception() { std::terminate(); }
    };
    explicit task(std::coroutine_handle<promise_type> h) : h(h) {}
    task(task&& other) noexcept : h(std::exchange(other.h, {})) {}
    ~task() {
        if (h) {
            h.destroy();
        }
    }
    bool await_ready() noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
    }
    void await_resume() noexcept {}
    std::coroutine_handle<promise_type> h;
};

task leaf() {
    co_return;
}

task loop(int n, int& done) {
    for (int i = 0; i < n; ++i) {
        co_await leaf();
        ++done;
    }
}

int main() {
    int done = 0;
    task t = loop(1'000'000, done);
    t.h.resume();
    std::printf("%d awaits done\n", done);
    return done == 1'000'000 ? 0 : 1;
}
