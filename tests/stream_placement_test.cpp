// SPDX-License-Identifier: MIT
// detail::stream_placement: a map's producer and consumer stop yielding their
// CPU while the map's workers are crowded onto another CPU (and items take
// long enough to sleep through a wait), so the kernel sees that CPU idle and
// moves a worker there. The rule is checked here from threads pinned to
// known CPUs.

#include <braid/detail/stream/stream_wait.hpp>

#include "support/catch.hpp"

#include <pthread.h>
#include <sched.h>

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

// Two CPUs this process may run on, in a and b; false (with a warning in the
// test's output) on a machine that gives it fewer.
bool two_usable_cpus(int& a, int& b) {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu) {
            if (CPU_ISSET(cpu, &set))
                cpus.push_back(cpu);
        }
    }
    if (cpus.size() < 2) {
        WARN("needs two CPUs to pin threads to; this machine gives the test fewer");
        return false;
    }
    a = cpus[0];
    b = cpus[1];
    return true;
}

} // namespace

TEST_CASE("a waiter stops yielding only while the workers crowd another CPU",
          "[stream_executor][placement]") {
    int a = 0;
    int b = 0;
    if (!two_usable_cpus(a, b))
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

TEST_CASE("a backoff with crowded workers elsewhere blocks at once after its spins",
          "[stream_executor][placement]") {
    int a = 0;
    int b = 0;
    if (!two_usable_cpus(a, b))
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
