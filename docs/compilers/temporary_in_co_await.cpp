// SPDX-License-Identifier: MIT
// A lambda with a capture, made inside a co_await expression: each object
// must be destroyed as many times as it was made. g++ 12 destroys one more
// (GCC PR c++/100611, fixed in GCC 13).
#include <coroutine>
#include <cstdio>
#include <exception>
#include <utility>

int alive = 0;
struct tracked {
    tracked() { ++alive; }
    tracked(const tracked&) { ++alive; }
    ~tracked() { --alive; }
};

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

template <class F>
task call(F f) {
    f();
    co_return;
}

task body() {
    co_await call([t = tracked{}] { (void)t; });
}

int main() {
    {
        task t = body();
        t.h.resume();
    }
    std::printf("%d objects alive after everything was destroyed (0 is right)\n", alive);
    return alive == 0 ? 0 : 1;
}
