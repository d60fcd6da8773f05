// SPDX-License-Identifier: MIT
//
// Three factorials computed one multiplication per step, on a loop that runs
// each task to completion (braid::sequential) and then on one that takes
// turns (braid::interleaved). The output is the transcript of the example of
// *Interleaving computations*, from Jordan Moldow's Python generator tutorial
// (docs/task_and_event_loop.md cites it): the same products, in the same
// order, finishing after the same rounds.

#include <braid/event_loop.hpp>

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

// The steps: one multiplication, then a turn for the loop.
braid::task<std::uint64_t> factorial_steps(int n) {
    if (n <= 1) {
        co_return 1;
    }
    if (n == 2) {
        co_return 2;
    }
    std::uint64_t product = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(n - 1);
    for (int k = n - 2; k > 1; --k) {
        std::cout << "partial product for " << n << "! is " << product << '\n';
        co_await braid::yield();
        product *= static_cast<std::uint64_t>(k);
    }
    co_return product;
}

// Checks the argument before any frame runs, then names the task for logs.
braid::task<std::uint64_t> factorial(int n) {
    if (n < 0) {
        throw std::invalid_argument("factorial: requires a non-negative number, got " +
                                    std::to_string(n));
    }
    if (n > 20) {
        throw std::out_of_range("factorial: " + std::to_string(n) +
                                "! does not fit in 64 bits (at most 20)");
    }
    return factorial_steps(n).set_name("factorial(" + std::to_string(n) + ")");
}

void run(braid::event_loop& loop, const char* mode) {
    std::cout << "Starting " << mode << " computations.\n";
    for (int n : {12, 8, 4}) {
        loop.spawn(factorial(n)
                       .add_done_callback([&loop](auto& t) {
                           std::cout << "Completed " << t.name() << " after " << loop.rounds()
                                     << " rounds\n";
                       })
                       .add_done_callback(
                           [](auto& t) { std::cout << t.name() << " == " << t.result() << '\n'; }));
    }
    loop.run();
}

} // namespace

int main() {
    {
        braid::event_loop loop{braid::sequential};
        run(loop, "non-interleaved");
    }
    std::cout << '\n';
    {
        braid::event_loop loop{braid::interleaved};
        run(loop, "interleaved");
    }
}
