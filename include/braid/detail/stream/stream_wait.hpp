// SPDX-License-Identifier: MIT
#pragma once

// How a stream thread waits a little before it sleeps.
//
// braid::detail::stream_backoff: handing an item between threads through a
// condition variable costs a system call on each side; most waits in a busy
// stream are shorter than that, so a waiter first spins (with the CPU's pause
// hint), then yields its core (on a machine with fewer cores than busy
// threads the thread it waits for may need that core), and only then blocks.
//
// braid::detail::stream_placement: the CPU each pool worker ran its latest
// chunk of a map on, so that a waiting producer or consumer does not yield when
// that keeps the drainers crowded. While a thread spins and yields, the
// kernel counts its CPU as busy; if two drainers share one CPU and the
// producer and the consumer take turns on the other, both CPUs look equally
// loaded and the kernel's load balancer leaves the drainers where they are,
// at half speed. (Measured with 2 workers on 2 cores, 1 us per item: that
// placement came and went on its own and lasted up to half a second.) A
// waiter whose CPU runs none of the drainers while another CPU runs two or
// more of them blocks at once instead; its CPU then goes idle, and the
// balancer moves a drainer there. A worker's entry stays when its drainer
// leaves: crowded workers run dry and leave often, and a worker that sleeps
// wakes where it slept. The rule is off while items are so cheap that a
// drainer's largest chunk (64 items) takes under 20 us: results then come
// faster than a sleeping waiter wakes (with f doing nothing, the rule took
// the map from about 15 to 5.5-13 million items a second on 2 cores).
//
// The same notes serve the drainers themselves (should_move). With long
// items the producer and consumer sleep most of the time, and their CPU is
// idle but for a moment per result; the kernel then skips the balancing it
// does when a CPU goes idle (it waits for a CPU to stay idle about half a
// millisecond on average) and its periodic balancing finds that CPU busy,
// so two drainers can share one CPU for a whole map while the other idles
// (measured with 2 workers on 2 cores, 100 us per item, buffer 1,000: up
// to 1 map in 10 took a fifth longer than ideal, some twice as long). And
// with short items the kernel may never move a crowded drainer: the CPU
// that would take it runs the reader, which is rarely idle. So a drainer
// that shares its CPU with a running drainer of the map on a lower worker
// (one of the two moves, not both), while the running drainers use fewer
// CPUs than there are of them and of CPUs the process may use, moves
// itself, at most once every 2 ms: it narrows its affinity to the CPUs it
// may use that run none of the map's drainers, which makes the kernel
// migrate it at once, and sets its affinity back (move_away). Where that
// fails it sleeps 50 us instead, for the kernel to wake it on an idle CPU.

#include <braid/detail/cpu_relax.hpp>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace braid::detail {

class stream_placement {
public:
    explicit stream_placement(std::size_t workers)
        : cpus_(std::min(workers, max_tracked)), running_(cpus_.size()) {
        for (std::atomic<int>& cpu : cpus_)
            cpu.store(unknown, std::memory_order_relaxed);
        for (std::atomic<bool>& running : running_)
            running.store(false, std::memory_order_relaxed);
    }

    // The drainer on pool worker `worker` is about to run a chunk. Writes
    // only when the worker has moved, so the line stays read-mostly.
    void running(std::size_t worker) noexcept {
        if (worker >= cpus_.size())
            return;
        const int cpu = ::sched_getcpu();
        // relaxed (here and below): a scheduling hint; nothing is read through it.
        if (cpus_[worker].load(std::memory_order_relaxed) != cpu)
            cpus_[worker].store(cpu, std::memory_order_relaxed);
        if (!running_[worker].load(std::memory_order_relaxed))
            running_[worker].store(true, std::memory_order_relaxed);
    }

    // The drainer on pool worker `worker` has left it. Its CPU stays noted
    // (see above); it no longer counts for should_move().
    void left(std::size_t worker) noexcept {
        if (worker < running_.size() && running_[worker].load(std::memory_order_relaxed))
            running_[worker].store(false, std::memory_order_relaxed);
    }

    // Whether the drainer on pool worker `worker`, which has just run a
    // chunk, shares its CPU with a running drainer of the map on a lower
    // worker while the running drainers are on fewer CPUs than there are of
    // them and of CPUs the process may use; false while waits are short (see
    // set_waits_long).
    bool should_move(std::size_t worker) const noexcept {
        if (worker >= cpus_.size() || !waits_long_.load(std::memory_order_relaxed))
            return false;
        const int mine = cpus_[worker].load(std::memory_order_relaxed);
        if (mine < 0)
            return false;
        std::uint64_t seen = 0;
        std::size_t drainers = 0;
        bool shared = false;
        for (std::size_t w = 0; w < cpus_.size(); ++w) {
            const int cpu = cpus_[w].load(std::memory_order_relaxed);
            if (cpu < 0 || !running_[w].load(std::memory_order_relaxed))
                continue;
            ++drainers;
            seen |= cpu_bit(cpu);
            shared = shared || (w < worker && cpu == mine);
        }
        const auto cpus_used = static_cast<std::size_t>(std::popcount(seen));
        return shared && cpus_used < std::min(drainers, usable_cpus());
    }

    // Moves the calling thread, the drainer on pool worker `worker`, to a
    // CPU it may use that runs none of the map's drainers, and notes it
    // there. The kernel migrates a thread at once when its affinity leaves
    // out the CPU it is on; the thread's affinity is then set back as it
    // was. False (nothing changed) when there is no such CPU or the calls
    // fail.
    bool move_away(std::size_t worker) noexcept {
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0)
            return false;
        cpu_set_t elsewhere = allowed;
        for (std::size_t w = 0; w < cpus_.size(); ++w) {
            const int cpu = cpus_[w].load(std::memory_order_relaxed);
            if (cpu >= 0 && cpu < CPU_SETSIZE && running_[w].load(std::memory_order_relaxed))
                CPU_CLR(cpu, &elsewhere);
        }
        if (CPU_COUNT(&elsewhere) == 0 || ::sched_setaffinity(0, sizeof elsewhere, &elsewhere) != 0)
            return false;
        (void)::sched_setaffinity(0, sizeof allowed, &allowed);
        if (worker < cpus_.size())
            cpus_[worker].store(::sched_getcpu(), std::memory_order_relaxed);
        return true;
    }

    // Whether the map's items take long enough for a waiter to sleep
    // through a wait: false while a drainer's largest chunk takes under
    // 20 us, where results come faster than a thread wakes up and a waiter
    // that slept would only slow the map down.
    void set_waits_long(bool waits_long) noexcept {
        if (waits_long_.load(std::memory_order_relaxed) != waits_long)
            waits_long_.store(waits_long, std::memory_order_relaxed);
    }

    // Whether some CPU runs two or more drainers while the caller's runs
    // none, and waits are long.
    bool crowded_elsewhere() const noexcept {
        if (!waits_long_.load(std::memory_order_relaxed))
            return false;
        const int mine = ::sched_getcpu();
        if (mine < 0)
            return false;
        std::uint64_t seen = 0;
        bool crowded = false;
        for (const std::atomic<int>& slot : cpus_) {
            const int cpu = slot.load(std::memory_order_relaxed);
            if (cpu < 0)
                continue;
            if (cpu == mine)
                return false;
            const std::uint64_t bit = cpu_bit(cpu);
            crowded = crowded || (seen & bit) != 0;
            seen |= bit;
        }
        return crowded;
    }

private:
    static constexpr std::size_t max_tracked = 64; // workers past it are not tracked
    static constexpr int unknown = -1;

    // A CPU's bit in a set of CPUs. CPUs are told apart modulo 64: a rare
    // mix-up only makes a waiter sleep sooner, or a drainer nap once more.
    static std::uint64_t cpu_bit(int cpu) noexcept {
        return std::uint64_t{1} << (static_cast<unsigned>(cpu) % 64);
    }

    // CPUs this process may run on, as it started (a later change of its
    // affinity is not seen).
    static std::size_t usable_cpus() noexcept {
        static const std::size_t count = [] {
            cpu_set_t set;
            CPU_ZERO(&set);
            if (::sched_getaffinity(0, sizeof set, &set) == 0)
                return static_cast<std::size_t>(CPU_COUNT(&set));
            return static_cast<std::size_t>(std::max(1u, std::thread::hardware_concurrency()));
        }();
        return count;
    }

    std::vector<std::atomic<int>> cpus_;
    std::vector<std::atomic<bool>> running_; // a drainer of the map is on that worker
    std::atomic<bool> waits_long_{true};
};

class stream_backoff {
public:
    // With a placement, the waiter blocks instead of yielding while the
    // map's drainers are crowded onto another CPU (see above).
    explicit stream_backoff(const stream_placement* placement = nullptr) noexcept
        : placement_(placement) {}

    // Waits a moment and returns true while the caller should keep polling;
    // returns false once it should block instead.
    bool pause() noexcept {
        if (rounds_ < spins) {
            cpu_relax();
        } else if (rounds_ < spins + yields) {
            if (rounds_ == spins && placement_ != nullptr && placement_->crowded_elsewhere())
                return false;
            std::this_thread::yield();
        } else {
            return false;
        }
        ++rounds_;
        return true;
    }

private:
    static constexpr unsigned spins = 16;
    static constexpr unsigned yields = 4;
    const stream_placement* placement_;
    unsigned rounds_ = 0;
};

} // namespace braid::detail
