// SPDX-License-Identifier: MIT
// A coroutine reads a thread_local in a loop whose body suspends and is
// resumed on a new thread each time. Every read must see the thread it runs
// on; clang may keep the address it computed on the first thread
// (llvm/llvm-project#47179, #63022).
#include <atomic>
#include <coroutine>
#include <cstdio>
#include <thread>

thread_local int id_of_thread = 0;

struct fire_and_forget {
    struct promise_type {
        fire_and_forget get_return_object() { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() {}
        void unhandled_exception() {}
    };
};

constexpr int hops = 5;
std::thread threads[hops + 2];
std::atomic<int> started{0};
std::atomic<bool> finished{false};
int next_id = 1;

// Resumes the coroutine on a new thread.
struct hop {
    bool await_ready() noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        const int id = ++next_id;
        threads[id] = std::thread([h, id] {
            id_of_thread = id;
            h.resume();
        });
        ++started;
    }
    void await_resume() noexcept {}
};

int stale = 0;

fire_and_forget body() {
    for (int i = 0; i < hops; ++i) {
        co_await hop{};
        if (id_of_thread != next_id) {
            ++stale;
        }
    }
    finished = true;
}

int main() {
    id_of_thread = 1;
    body();
    while (!finished || started != hops) {
        std::this_thread::yield();
    }
    for (auto& t : threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    std::printf("%d of %d reads saw another thread's thread_local\n", stale, hops);
    return stale == 0 ? 0 : 1;
}
