// SPDX-License-Identifier: MIT
// One braid task yielding two million times on an interleaved loop: the
// loop's step, its trampoline and the yield are the whole of the work.
// reproduce.sh counts its instructions with braid's headers as they are and
// with BRAID_DETAIL_HOT_INLINE reduced to plain `inline`.
#include <braid/event_loop.hpp>

#include <cstdio>

braid::task<> yielder(int n) {
    for (int i = 0; i < n; ++i) {
        co_await braid::yield();
    }
}

int main() {
    braid::event_loop loop;
    loop.spawn(yielder(2'000'000));
    loop.run();
    std::printf("%llu rounds\n", static_cast<unsigned long long>(loop.rounds()));
    return loop.rounds() == 2'000'001 ? 0 : 1;
}
