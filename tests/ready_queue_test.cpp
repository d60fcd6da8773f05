// SPDX-License-Identifier: MIT
// detail::ready_queue, the event loop's ready queue, threaded through its
// items: it must behave as a std::deque of the items under any mix of pushes
// at both ends and pops (each item queued at most once at a time, and queued
// again after it is popped), tell the owner of a queued item's link that the
// item is queued, and never fail to queue.

#include <braid/detail/loop/ready_queue.hpp>

#include "support/catch.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace {

using braid::detail::queued_tag;

// Like a frame or a callback node: the link is a word of the item's own.
// Items of the second kind carry the lowest bit, as callbacks do in the loop.
struct node {
    std::uintptr_t before = 0;
    std::uintptr_t link = 0;
    std::uintptr_t after = 0;
};

struct node_links {
    static std::uintptr_t& link(std::uintptr_t item) noexcept {
        return reinterpret_cast<node*>(item & ~std::uintptr_t{1})->link;
    }
};

using queue = braid::detail::ready_queue<node_links>;

static_assert(
    noexcept(std::declval<queue&>().push_back(0)) && noexcept(
        std::declval<queue&>().push_front(0)) && noexcept(std::declval<queue&>().pop_front()),
    "queueing cannot fail: a wake-up must never be lost");

std::uintptr_t item_of(node& n, bool second_kind) {
    return reinterpret_cast<std::uintptr_t>(&n) | (second_kind ? 1 : 0);
}

// Pops every item, checking each against the model (which is emptied too).
void drain_and_compare(queue& q, std::deque<std::uintptr_t>& model) {
    REQUIRE(q.size() == model.size());
    while (!model.empty()) {
        REQUIRE(!q.empty());
        REQUIRE(q.pop_front() == model.front());
        model.pop_front();
    }
    REQUIRE(q.empty());
    REQUIRE(q.size() == 0);
}

} // namespace

TEST_CASE("the ready queue behaves as a deque under random pushes at both ends and pops",
          "[ready_queue]") {
    const auto seed = GENERATE(1u, 2u, 3u, 4u);
    std::mt19937 rng(seed);
    std::vector<node> nodes(64);
    std::vector<std::uintptr_t> idle; // items not in the queue
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        idle.push_back(item_of(nodes[i], i % 3 == 0));
    }
    queue q;
    std::deque<std::uintptr_t> model;
    for (int step = 0; step < 20'000; ++step) {
        const unsigned op = rng() % 8;
        if (op < 5 && !idle.empty()) {
            const std::size_t pick = rng() % idle.size();
            const std::uintptr_t item = idle[pick];
            idle[pick] = idle.back();
            idle.pop_back();
            if (op < 3) {
                q.push_back(item);
                model.push_back(item);
            } else {
                q.push_front(item);
                model.push_front(item);
            }
        } else if (!model.empty()) {
            REQUIRE(q.pop_front() == model.front());
            idle.push_back(model.front());
            model.pop_front();
        }
        REQUIRE(q.size() == model.size());
        REQUIRE(q.empty() == model.empty());
        if (!model.empty()) {
            REQUIRE(q.holds_at_an_end(model.front()));
            REQUIRE(q.holds_at_an_end(model.back()));
        }
        for (const std::uintptr_t item : idle) {
            if (model.size() < 2 || (item != model.front() && item != model.back())) {
                REQUIRE_FALSE(q.holds_at_an_end(item));
            }
        }
    }
    drain_and_compare(q, model);
}

TEST_CASE("a queued item's link has queued_tag set, so its owner can tell it from a pointer",
          "[ready_queue]") {
    std::vector<node> nodes(5);
    queue q;
    for (node& n : nodes) {
        n.link = reinterpret_cast<std::uintptr_t>(&n.after); // "a pointer of its own"
        REQUIRE((n.link & queued_tag) == 0);
    }
    q.push_back(item_of(nodes[0], false));
    q.push_back(item_of(nodes[1], true));
    q.push_front(item_of(nodes[2], false));
    q.push_back(item_of(nodes[3], false));
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK((nodes[i].link & queued_tag) != 0);
    }
    CHECK((nodes[4].link & queued_tag) == 0); // never queued: untouched
    // The rest of each item is untouched.
    for (const node& n : nodes) {
        CHECK(n.before == 0);
        CHECK(n.after == 0);
    }
    std::deque<std::uintptr_t> model{item_of(nodes[2], false), item_of(nodes[0], false),
                                     item_of(nodes[1], true), item_of(nodes[3], false)};
    drain_and_compare(q, model);
}

TEST_CASE("the ready queue empties and fills again from either end", "[ready_queue]") {
    std::vector<node> nodes(3);
    queue q;
    std::deque<std::uintptr_t> model;
    for (int round = 0; round < 4; ++round) {
        // The first push of each round finds the queue empty: from the front
        // in odd rounds, from the back in even ones.
        const std::uintptr_t a = item_of(nodes[0], round % 2 == 0);
        const std::uintptr_t b = item_of(nodes[1], false);
        const std::uintptr_t c = item_of(nodes[2], true);
        if (round % 2 == 0) {
            q.push_back(a);
        } else {
            q.push_front(a);
        }
        q.push_back(b);  // after a: the tail moved with the first push
        q.push_front(c); // before a
        model = {c, a, b};
        REQUIRE(q.holds_at_an_end(c));
        REQUIRE(q.holds_at_an_end(b));
        REQUIRE_FALSE(q.holds_at_an_end(a));
        drain_and_compare(q, model);
        REQUIRE_FALSE(q.holds_at_an_end(a));
    }
}

TEST_CASE("the only item, popped and queued again, is followed by the next item pushed",
          "[ready_queue]") {
    // A loop with one task that yields: its frame leaves the queue and comes
    // back to it at every step.
    node only;
    node other;
    queue q;
    for (int i = 0; i < 4; ++i) {
        if (i % 2 == 0) {
            q.push_back(item_of(only, false));
        } else {
            q.push_front(item_of(only, false));
        }
        REQUIRE(q.size() == 1);
        REQUIRE(q.pop_front() == item_of(only, false));
        REQUIRE(q.empty());
    }
    q.push_back(item_of(only, false));
    q.push_back(item_of(other, true));
    std::deque<std::uintptr_t> model{item_of(only, false), item_of(other, true)};
    drain_and_compare(q, model);
}
