// SPDX-License-Identifier: MIT
// The first example of README.md and docs/task_and_event_loop.md.

#include <braid/event_loop.hpp>

#include <iostream>

braid::task<int> count_to(int n, const char* who) {
    for (int i = 1; i <= n; ++i) {
        std::cout << who << ' ' << i << '\n';
        co_await braid::yield(); // give the other tasks a turn
    }
    co_return n;
}

braid::task<int> both() {
    braid::task<int> a = count_to(3, "a"); // nothing runs yet: tasks are lazy
    int b = co_await count_to(2, "b");     // runs b to the end, then goes on
    co_return b + co_await a;              // now a runs
}

int main() {
    braid::event_loop loop;                               // round-robin ("interleaved")
    loop.spawn(count_to(2, "background"));                // fire-and-forget
    std::cout << loop.run_until_complete(both()) << '\n'; // 5
}
