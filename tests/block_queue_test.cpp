// SPDX-License-Identifier: MIT
// detail::block_queue, the event loop's ready queue: it must behave as a
// std::deque under any mix of pushes at both ends and pops, across block
// boundaries; a push that fails to allocate must change nothing; and pushes
// after reserve_more, steps of a queue moving along its blocks and pushes
// and pops across a block's edge must allocate nothing. Allocations are
// counted by replacing the global operator new (all but the aligned forms),
// except under ThreadSanitizer, whose runtime defines it too: there the
// allocation checks are left out and the rest runs.

#include <braid/detail/loop/block_queue.hpp>

#include "support/catch.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <new>
#include <random>

#if defined(__SANITIZE_THREAD__)
#define BRAID_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BRAID_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef BRAID_TEST_COUNTS_ALLOCATIONS
#define BRAID_TEST_COUNTS_ALLOCATIONS 1
#endif
#if BRAID_TEST_COUNTS_ALLOCATIONS
#include "support/replace_new.hpp"
#endif

namespace {

// Like scheduler::ready_item (holds_at_an_end compares `bits`), with a
// second word that must travel with the first.
struct item {
    std::uint64_t bits;
    std::uint64_t check;
};
item make_item(std::uint64_t value) {
    return {value, ~value};
}

template <std::size_t BlockItems>
using queue_of = braid::detail::block_queue<item, BlockItems>;
using default_queue = braid::detail::block_queue<item>;

constexpr bool counts_allocations = BRAID_TEST_COUNTS_ALLOCATIONS != 0;

// Counted only while `counting` is set, so Catch's own allocations do not
// count. `fail_after` >= 0: that many allocations succeed, the next throws.
bool counting = false;
std::size_t allocations = 0;
int fail_after = -1;

// Allocations made while f runs.
template <class F>
std::size_t allocations_during(F&& f) {
    allocations = 0;
    counting = true;
    f();
    counting = false;
    return allocations;
}

// Runs f with the allocation after `succeeding` more failing; whether f threw
// std::bad_alloc.
template <class F>
bool fails_with_bad_alloc(int succeeding, F&& f) {
    bool threw = false;
    fail_after = succeeding;
    try {
        f();
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    fail_after = -1;
    return threw;
}

// Pops every item, checking each against the model (which is emptied too).
template <class Queue>
void drain_and_compare(Queue& queue, std::deque<std::uint64_t>& model) {
    REQUIRE(queue.size() == model.size());
    while (!model.empty()) {
        REQUIRE(!queue.empty());
        const item x = queue.pop_front();
        REQUIRE(x.bits == model.front());
        REQUIRE(x.check == ~x.bits);
        model.pop_front();
    }
    REQUIRE(queue.empty());
    REQUIRE(queue.size() == 0);
}

// A queue and a model of it, changed together; `allocations` counts what the
// queue's own calls allocate, not the model's.
template <class Queue>
struct side_by_side {
    Queue queue;
    std::deque<std::uint64_t> model;
    std::uint64_t next = 1;
    std::size_t allocations = 0;
    bool in_order = true; // every item popped was the model's first

    void push_back() {
        allocations += allocations_during([&] { queue.push_back(make_item(next)); });
        model.push_back(next++);
    }
    void push_front() {
        allocations += allocations_during([&] { queue.push_front(make_item(next)); });
        model.push_front(next++);
    }
    void pop() {
        item x{};
        allocations += allocations_during([&] { x = queue.pop_front(); });
        in_order = in_order && x.bits == model.front() && x.check == ~x.bits;
        model.pop_front();
    }
};

template <class Queue>
void check_against_deque_at_random(std::uint32_t seed) {
    Queue queue;
    std::deque<std::uint64_t> model;
    std::mt19937 rng(seed);
    for (std::uint64_t i = 1; i <= 200'000; ++i) {
        // Grow and shrink in phases, so the queue takes and leaves many blocks.
        const int phase = static_cast<int>(i / 20'000) % 2;
        const auto op = rng() % 5;
        if (op < 2u + static_cast<unsigned>(phase)) {
            queue.push_back(make_item(i));
            model.push_back(i);
        } else if (op == 3) {
            queue.push_front(make_item(i));
            model.push_front(i);
        } else if (!model.empty()) {
            const item x = queue.pop_front();
            REQUIRE(x.bits == model.front());
            REQUIRE(x.check == ~x.bits);
            model.pop_front();
        }
        REQUIRE(queue.size() == model.size());
        REQUIRE(queue.empty() == model.empty());
        if (!model.empty()) {
            REQUIRE(queue.holds_at_an_end(make_item(model.front())));
            REQUIRE(queue.holds_at_an_end(make_item(model.back())));
        }
        if (model.size() >= 3) {
            REQUIRE_FALSE(queue.holds_at_an_end(make_item(model[model.size() / 2])));
        }
        REQUIRE_FALSE(queue.holds_at_an_end(make_item(0))); // never pushed
    }
    drain_and_compare(queue, model);
}

} // namespace

#if BRAID_TEST_COUNTS_ALLOCATIONS
void* braid_test::counted_allocation(std::size_t size) {
    if (fail_after == 0) {
        fail_after = -1;
        throw std::bad_alloc();
    }
    if (fail_after > 0) {
        --fail_after;
    }
    if (counting) {
        ++allocations;
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
#endif

TEST_CASE("the ready queue behaves as a deque under random pushes and pops", "[block_queue]") {
    SECTION("4 KiB blocks") {
        check_against_deque_at_random<default_queue>(20261121);
    }
    SECTION("8-item blocks: a boundary every few steps, and a map that grows often") {
        check_against_deque_at_random<queue_of<8>>(20261122);
    }
    SECTION("13-item blocks") {
        check_against_deque_at_random<queue_of<13>>(20261123);
    }
}

TEST_CASE("size() counts the items across block boundaries, at both ends", "[block_queue]") {
    queue_of<8> queue;
    std::deque<std::uint64_t> model;
    std::uint64_t next = 1;
    for (int i = 0; i < 50; ++i) {
        queue.push_back(make_item(next));
        model.push_back(next++);
        REQUIRE(queue.size() == model.size());
    }
    for (int i = 0; i < 50; ++i) {
        queue.push_front(make_item(next));
        model.push_front(next++);
        REQUIRE(queue.size() == model.size());
    }
    for (int i = 0; i < 70; ++i) {
        REQUIRE(queue.pop_front().bits == model.front());
        model.pop_front();
        REQUIRE(queue.size() == model.size());
    }
    drain_and_compare(queue, model);
}

TEST_CASE("holds_at_an_end sees the first and the last item when they are in other blocks "
          "than tail_",
          "[block_queue]") {
    queue_of<8> queue;
    CHECK_FALSE(queue.holds_at_an_end(make_item(1)));
    // The first block is filled from its start: the eighth item fills its
    // last slot and the next push_back goes to a second block.
    for (std::uint64_t i = 1; i <= 8; ++i) {
        queue.push_back(make_item(i));
    }
    CHECK(queue.holds_at_an_end(make_item(1)));
    CHECK(queue.holds_at_an_end(make_item(8)));
    CHECK_FALSE(queue.holds_at_an_end(make_item(4)));
    CHECK_FALSE(queue.holds_at_an_end(make_item(9)));
    for (std::uint64_t i = 1; i <= 7; ++i) {
        REQUIRE(queue.pop_front().bits == i);
    }
    // One item, in the last slot of the first block.
    CHECK(queue.holds_at_an_end(make_item(8)));
    CHECK_FALSE(queue.holds_at_an_end(make_item(7)));
    queue.push_back(make_item(9)); // the first slot of the second block
    CHECK(queue.holds_at_an_end(make_item(8)));
    CHECK(queue.holds_at_an_end(make_item(9)));
    REQUIRE(queue.pop_front().bits == 8);
    REQUIRE(queue.pop_front().bits == 9);
    CHECK_FALSE(queue.holds_at_an_end(make_item(9)));
}

TEST_CASE("after reserve_more(n), n pushes at either end allocate nothing, whatever pops come "
          "between",
          "[block_queue][allocation]") {
    if (!counts_allocations) {
        SUCCEED("allocations are not counted under ThreadSanitizer");
        return;
    }
    auto check = [](auto& q, std::size_t most, int rounds, std::uint32_t seed) {
        std::mt19937 rng(seed);
        for (int round = 0; round < rounds; ++round) {
            const std::size_t n = rng() % (most + 1);
            q.queue.reserve_more(n);
            q.allocations = 0;
            for (std::size_t pushed = 0; pushed < n;) {
                const auto op = rng() % 16;
                if (op == 0) {
                    // Another, smaller promise meanwhile: it may allocate
                    // (not counted), and must not weaken the first.
                    q.queue.reserve_more(rng() % 4);
                } else if (op < 7) {
                    if (!q.model.empty()) {
                        q.pop();
                    }
                } else {
                    if (op < 12) {
                        q.push_back();
                    } else {
                        q.push_front();
                    }
                    ++pushed;
                }
            }
            REQUIRE(q.allocations == 0);
            REQUIRE(q.in_order);
            REQUIRE(q.queue.size() == q.model.size());
            // Now and then much of the queue goes, and with it blocks.
            if (rng() % 4 == 0) {
                for (std::size_t k = rng() % (q.model.size() + 1); k > 0; --k) {
                    q.pop();
                }
            }
        }
        drain_and_compare(q.queue, q.model);
    };
    SECTION("8-item blocks") {
        side_by_side<queue_of<8>> q;
        check(q, 40, 3000, 7);
    }
    SECTION("4 KiB blocks") {
        side_by_side<default_queue> q;
        check(q, 3 * default_queue::block_items, 300, 8);
    }
}

TEST_CASE("reserve_more counts a block for each end that can run out of room",
          "[block_queue][allocation]") {
    side_by_side<queue_of<8>> q;
    // Seven items from the first block's start: no room at either end and no
    // spare.
    for (int i = 0; i < 7; ++i) {
        q.push_back();
    }
    q.queue.reserve_more(2);
    q.allocations = 0;
    q.push_back();
    q.push_front();
    if (counts_allocations) {
        CHECK(q.allocations == 0);
    }
    CHECK(q.queue.size() == 9);
    drain_and_compare(q.queue, q.model);
}

TEST_CASE("a reservation holds across a pop that leaves a block", "[block_queue][allocation]") {
    side_by_side<queue_of<8>> q;
    // A full first block, a second one filled but for its last slot, and the
    // head at the first block's last slot: room at the front for 7, at the
    // back for none, and no spare.
    for (int i = 0; i < 15; ++i) {
        q.push_back();
    }
    for (int i = 0; i < 7; ++i) {
        q.pop();
    }
    q.queue.reserve_more(2); // one block is enough for now: the back's
    q.allocations = 0;
    q.pop(); // the head moves to the second block, with no room before it
    q.push_back();
    q.push_front();
    if (counts_allocations) {
        CHECK(q.allocations == 0);
    }
    CHECK(q.in_order);
    drain_and_compare(q.queue, q.model);
}

TEST_CASE("a queue moving along its blocks allocates nothing per step once it has a spare",
          "[block_queue][allocation]") {
    side_by_side<queue_of<8>> q;
    for (int i = 0; i < 5; ++i) {
        q.push_back();
    }
    auto step = [&] { // the loop's steady state: what is taken goes back
        q.pop();
        q.push_back();
    };
    for (int i = 0; i < 16; ++i) { // across two block boundaries
        step();
    }
    q.allocations = 0;
    for (int i = 0; i < 1000; ++i) {
        step();
    }
    if (counts_allocations) {
        CHECK(q.allocations == 0);
    }
    CHECK(q.in_order);
    drain_and_compare(q.queue, q.model);
}

TEST_CASE("pushes and pops at the front across a block's first slot allocate nothing per step",
          "[block_queue][allocation]") {
    side_by_side<queue_of<8>> q;
    for (int i = 0; i < 12; ++i) {
        q.push_back();
    }
    for (int i = 0; i < 8; ++i) { // the head moves to the second block's first slot
        q.pop();
    }
    auto step = [&] { // a policy that puts the task back in front, then runs it
        q.push_front();
        q.pop();
    };
    step();
    q.allocations = 0;
    for (int i = 0; i < 1000; ++i) {
        step();
    }
    if (counts_allocations) {
        CHECK(q.allocations == 0);
    }
    CHECK(q.in_order);
    drain_and_compare(q.queue, q.model);
}

TEST_CASE("a queue that empties and refills at block boundaries behaves as a deque",
          "[block_queue]") {
    side_by_side<queue_of<8>> q;
    std::mt19937 rng(5);
    for (int cycle = 0; cycle < 5000; ++cycle) {
        // Up to 3 blocks, at one end or both; then all of it goes.
        const auto fill = 1 + rng() % 24;
        const auto ends = rng() % 3;
        for (unsigned i = 0; i < fill; ++i) {
            if (ends == 0 || (ends == 2 && rng() % 2 == 0)) {
                q.push_back();
            } else {
                q.push_front();
            }
        }
        REQUIRE(q.queue.size() == q.model.size());
        drain_and_compare(q.queue, q.model);
    }
}

TEST_CASE("a queue of one item at a time allocates nothing per step once past its first block",
          "[block_queue][allocation]") {
    // A loop with one task: pop it, run it, push it back.
    side_by_side<default_queue> q;
    q.push_back();
    for (std::size_t i = 0; i < default_queue::block_items; ++i) {
        q.pop();
        q.push_back();
    }
    q.allocations = 0;
    for (int i = 0; i < 100'000; ++i) {
        q.pop();
        q.push_back();
    }
    if (counts_allocations) {
        CHECK(q.allocations == 0);
    }
    CHECK(q.in_order);
    drain_and_compare(q.queue, q.model);
}

TEST_CASE("an empty queue allocates nothing", "[block_queue][allocation]") {
    bool empty = false;
    const std::size_t during = allocations_during([&] {
        const default_queue queue;
        empty = queue.empty();
    });
    CHECK(empty);
    if (counts_allocations) {
        CHECK(during == 0);
    }
}

TEST_CASE("a push or a reservation that fails to allocate throws std::bad_alloc and changes "
          "nothing",
          "[block_queue][allocation]") {
    if (!counts_allocations) {
        SUCCEED("allocations cannot be made to fail under ThreadSanitizer");
        return;
    }
    queue_of<8> queue;
    std::deque<std::uint64_t> model;
    std::uint64_t next = 1;
    auto unchanged = [&] {
        REQUIRE(queue.size() == model.size());
        REQUIRE(queue.empty() == model.empty());
        if (!model.empty()) {
            REQUIRE(queue.holds_at_an_end(make_item(model.front())));
            REQUIRE(queue.holds_at_an_end(make_item(model.back())));
        }
    };
    auto push_back = [&] {
        queue.push_back(make_item(next));
        model.push_back(next++);
    };
    auto push_front = [&] {
        queue.push_front(make_item(next));
        model.push_front(next++);
    };

    // The first push: the map (the first allocation), then the block.
    CHECK(fails_with_bad_alloc(0, push_back));
    unchanged();
    CHECK(fails_with_bad_alloc(1, push_front));
    unchanged();
    push_back();
    for (int i = 0; i < 6; ++i) {
        push_back();
    }
    // Seven items from the block's start: the next push_back fills its last
    // slot and needs a second block, and there is no spare.
    CHECK(fails_with_bad_alloc(0, push_back));
    unchanged();
    // The head is at the block's first slot: a push_front needs a block too.
    CHECK(fails_with_bad_alloc(0, push_front));
    unchanged();
    CHECK(fails_with_bad_alloc(0, [&] { queue.reserve_more(20); }));
    unchanged();
    // Fill the map's first 8 slots: the ninth block needs a bigger map
    // (the first allocation), then the block.
    while (model.size() < 8 * 8 - 1) {
        push_back();
    }
    CHECK(fails_with_bad_alloc(0, push_back));
    unchanged();
    CHECK(fails_with_bad_alloc(1, push_back));
    unchanged();
    push_back();
    push_front();
    unchanged();
    drain_and_compare(queue, model);
}
