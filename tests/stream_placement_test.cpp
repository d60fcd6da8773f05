// SPDX-License-Identifier: MIT
// detail::stream_placement: a map's producer and consumer stop yielding their
// CPU while the map's workers are crowded onto another CPU (and items take
// long enough to sleep through a wait), so the kernel sees that CPU idle and
// moves a worker there; and a drainer that shares its CPU with another while
// a CPU is free is told to move, and moves itself to that CPU. The rules are
// checked here from threads pinned to known CPUs.

#include <braid/detail/stream/stream_wait.hpp>

#include "support/catch.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstddef>
#include <thread>
#include <vector>

namespace {

// Runs f on a thread pinned to `cpu`; false if the thread could not be pinned.
template <class F>
bool on_cpu(int cpu, F f) {
    bool pinned = false;
    std::thread thread([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0 || sched_getcpu() != cpu)
            return;
        pinned = true;
        f();
    });
    thread.join();
    return pinned;
}

// The CPUs this process may run on.
std::vector<int> usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set))
                cpus.push_back(cpu);
        }
    }
    return cpus;
}

std::size_t usable_cpu_count() {
    return usable_cpus().size();
}

// Two CPUs this process may run on, in a and b; false (with a warning in the
// test's output) on a machine that gives it fewer.
bool two_usable_cpus(int& a, int& b) {
    const std::vector<int> cpus = usable_cpus();
    if (cpus.size() < 2) {
        WARN("needs two CPUs to pin threads to; this machine gives the test fewer");
        return false;
    }
    a = cpus[0];
    b = cpus[1];
    return true;
}

// Each test's two CPUs: `usable` is false (and the test returns at once) on a
// machine that gives the process fewer.
struct two_cpus {
    int a = 0;
    int b = 0;
    bool usable = two_usable_cpus(a, b);
};

} // namespace

TEST_CASE_METHOD(two_cpus, "a waiter stops yielding only while the workers crowd another CPU",
                 "[stream_executor][placement]") {
    if (!usable)
        return;
    braid::detail::stream_placement placement(3);
    bool crowded = true;

    // No worker has run a chunk yet: nothing is known, nothing is crowded.
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK_FALSE(crowded);

    // Workers 0 and 1 on CPU a.
    REQUIRE(on_cpu(a, [&] {
        placement.running(0);
        placement.running(1);
        placement.running(7); // past the pool's size: ignored
    }));
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK(crowded);
    // A waiter on the crowded CPU itself yields to them as before.
    REQUIRE(on_cpu(a, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK_FALSE(crowded);

    // Worker 2 runs on b: b has a worker to yield to.
    REQUIRE(on_cpu(b, [&] { placement.running(2); }));
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK_FALSE(crowded);

    // Worker 1 moves to b and worker 2 to a: b has a worker again. Then worker
    // 1 returns to a, and a is crowded again as seen from b.
    REQUIRE(on_cpu(b, [&] { placement.running(1); }));
    REQUIRE(on_cpu(a, [&] { placement.running(2); }));
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK_FALSE(crowded);
    REQUIRE(on_cpu(a, [&] { placement.running(1); }));
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK(crowded);

    // Items too cheap to sleep through a wait turn the rule off, and back on.
    placement.set_waits_long(false);
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK_FALSE(crowded);
    placement.set_waits_long(true);
    REQUIRE(on_cpu(b, [&] { crowded = placement.crowded_elsewhere(); }));
    CHECK(crowded);
}

TEST_CASE_METHOD(two_cpus,
                 "a backoff with crowded workers elsewhere blocks at once after its spins",
                 "[stream_executor][placement]") {
    if (!usable)
        return;
    braid::detail::stream_placement placement(2);
    REQUIRE(on_cpu(a, [&] {
        placement.running(0);
        placement.running(1);
    }));
    const auto pauses = [&](const braid::detail::stream_placement* p) {
        int count = 0;
        braid::detail::stream_backoff backoff(p);
        while (backoff.pause())
            ++count;
        return count;
    };
    int crowded_pauses = 0;
    int plain_pauses = 0;
    int beside_pauses = 0;
    REQUIRE(on_cpu(b, [&] {
        crowded_pauses = pauses(&placement);
        plain_pauses = pauses(nullptr);
    }));
    REQUIRE(on_cpu(a, [&] { beside_pauses = pauses(&placement); }));
    // Spins, then yields, then block; with the workers crowded elsewhere no yields.
    CHECK(plain_pauses > crowded_pauses);
    CHECK(crowded_pauses > 0);
    CHECK(beside_pauses == plain_pauses);
}

TEST_CASE_METHOD(two_cpus,
                 "a drainer sharing its CPU with a lower worker's is told to move only while "
                 "another CPU is free",
                 "[stream_executor][placement]") {
    if (!usable)
        return;
    braid::detail::stream_placement placement(3);
    bool move0 = true;
    bool move1 = true;
    const auto ask = [&] {
        move0 = placement.should_move(0);
        move1 = placement.should_move(1);
    };

    // Nothing noted yet, then worker 0 alone: nobody to share with.
    ask();
    CHECK_FALSE(move0);
    REQUIRE(on_cpu(a, [&] { placement.running(0); }));
    ask();
    CHECK_FALSE(move0);

    // Workers 0 and 1 on CPU a, b free: one of them should move, not both
    // (they would only swap CPUs): the one on the higher worker.
    REQUIRE(on_cpu(a, [&] { placement.running(1); }));
    ask();
    CHECK_FALSE(move0);
    CHECK(move1);
    CHECK_FALSE(placement.should_move(2)); // no chunk noted on worker 2
    CHECK_FALSE(placement.should_move(9)); // past the pool's size

    // Worker 1 moved to b: each has a CPU of its own.
    REQUIRE(on_cpu(b, [&] { placement.running(1); }));
    ask();
    CHECK_FALSE(move0);
    CHECK_FALSE(move1);

    // Back on a, then worker 1 leaves its worker: worker 0 runs alone on a
    // (the note of worker 1's CPU stays, but does not count).
    REQUIRE(on_cpu(a, [&] { placement.running(1); }));
    placement.left(1);
    ask();
    CHECK_FALSE(move0);
    REQUIRE(on_cpu(a, [&] { placement.running(1); })); // back on worker 1
    ask();
    CHECK(move1);

    // Three drainers on two CPUs (two on a, one on b): a move helps only
    // where the process may use a third CPU.
    REQUIRE(on_cpu(b, [&] { placement.running(2); }));
    ask();
    const bool third_cpu = usable_cpu_count() > 2;
    CHECK_FALSE(move0);
    CHECK(move1 == third_cpu);
    CHECK_FALSE(placement.should_move(2)); // alone on b

    // Short items turn it off.
    placement.left(2);
    ask();
    CHECK(move1);
    placement.set_waits_long(false);
    ask();
    CHECK_FALSE(move0);
    CHECK_FALSE(move1);
}

namespace {

// Runs f on a thread that runs on `cpu` but may run on `other` too (pinned to
// `cpu`, then allowed both); false if that could not be arranged.
template <class F>
bool on_cpu_allowing(int cpu, int other, F f) {
    bool arranged = false;
    std::thread thread([&] {
        cpu_set_t only;
        CPU_ZERO(&only);
        CPU_SET(cpu, &only);
        cpu_set_t both = only;
        CPU_SET(other, &both);
        // The kernel may move the thread as soon as it may: try a few times.
        for (int attempt = 0; attempt < 10 && !arranged; ++attempt) {
            arranged = pthread_setaffinity_np(pthread_self(), sizeof only, &only) == 0 &&
                       pthread_setaffinity_np(pthread_self(), sizeof both, &both) == 0 &&
                       sched_getcpu() == cpu;
        }
        if (arranged)
            f(both);
    });
    thread.join();
    return arranged;
}

} // namespace

TEST_CASE_METHOD(two_cpus,
                 "a crowded drainer moves itself to a CPU that runs no drainer and keeps its "
                 "affinity",
                 "[stream_executor][placement]") {
    if (!usable)
        return;
    braid::detail::stream_placement placement(2);
    REQUIRE(on_cpu(a, [&] { placement.running(0); }));
    bool moved = false;
    int after = -1;
    bool same_affinity = false;
    REQUIRE(on_cpu_allowing(a, b, [&](const cpu_set_t& both) {
        placement.running(1); // worker 1's drainer, on a beside worker 0's
        moved = placement.move_away(1);
        after = sched_getcpu();
        cpu_set_t now;
        CPU_ZERO(&now);
        same_affinity =
            pthread_getaffinity_np(pthread_self(), sizeof now, &now) == 0 && CPU_EQUAL(&now, &both);
    }));
    CHECK(moved);
    CHECK(after == b); // the kernel may move it again later, but not within the call
    CHECK(same_affinity);
    // Noted on b: nobody shares a CPU any more.
    CHECK_FALSE(placement.should_move(0));
    CHECK_FALSE(placement.should_move(1));
}

TEST_CASE_METHOD(two_cpus, "a drainer does not move when no CPU it may use is free of drainers",
                 "[stream_executor][placement]") {
    if (!usable)
        return;
    bool moved = true;
    int cpu = -1;
    {
        // Allowed on a and b, with drainers noted on both.
        braid::detail::stream_placement placement(2);
        REQUIRE(on_cpu(b, [&] { placement.running(0); }));
        REQUIRE(on_cpu_allowing(a, b, [&](const cpu_set_t&) {
            placement.running(1);
            moved = placement.move_away(1);
            cpu = sched_getcpu();
        }));
        CHECK_FALSE(moved);
        CHECK(cpu == a);
    }
    {
        // b runs no drainer, but the thread may run on a only.
        braid::detail::stream_placement placement(2);
        REQUIRE(on_cpu(a, [&] {
            placement.running(0);
            placement.running(1);
            moved = placement.move_away(1);
            cpu = sched_getcpu();
        }));
        CHECK_FALSE(moved);
        CHECK(cpu == a);
    }
}
