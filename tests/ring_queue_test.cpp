// SPDX-License-Identifier: MIT
// detail::ring_queue, the event loop's ready queue: it must behave as a
// std::deque under any mix of pushes at both ends and pops, across growth.

#include <braid/detail/loop/ring_queue.hpp>

#include "support/catch.hpp"

#include <cstdint>
#include <deque>
#include <random>

namespace {
struct item {
    std::int64_t value;
    std::int64_t check;
};
} // namespace

TEST_CASE("the ready queue behaves as a deque under random pushes and pops", "[ring_queue]") {
    braid::detail::ring_queue<item> queue;
    std::deque<std::int64_t> model;
    std::mt19937 rng(20261121);
    for (std::int64_t i = 0; i < 200'000; ++i) {
        // Grow and shrink in phases, so the ring wraps and grows many times.
        const int phase = static_cast<int>(i / 20'000) % 2;
        const auto op = rng() % 5;
        if (op < 2u + static_cast<unsigned>(phase)) {
            queue.push_back(item{i, -i});
            model.push_back(i);
        } else if (op == 3) {
            queue.push_front(item{i, -i});
            model.push_front(i);
        } else if (!model.empty()) {
            const item x = queue.pop_front();
            REQUIRE(x.value == model.front());
            REQUIRE(x.check == -x.value);
            model.pop_front();
        }
        REQUIRE(queue.size() == model.size());
        REQUIRE(queue.empty() == model.empty());
    }
}
