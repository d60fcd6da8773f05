// SPDX-License-Identifier: MIT
// Uses every public header through the umbrella header, as a user would.

#include <braid/braid.hpp>

braid::task<int> answer() {
    co_await braid::yield();
    co_return 42;
}

int main() {
    braid::event_loop loop;
    return loop.run_until_complete(answer()) == 42 ? 0 : 1;
}
