// SPDX-License-Identifier: MIT
//
// Timers against a minimal heap and asio, in one binary, with 10^3, 10^5 and
// 10^6 timers pending (due an hour or two from now, so they never fire):
//
//   schedule_fire    per timer: schedule one that is due before every
//                    pending timer, and run it
//   schedule_cancel  per timer: schedule one among the pending timers, and
//                    cancel it
//
// braid runs on a manual clock, so "firing" costs what the loop does (the
// heap, the clock jump, the collection, the ready queue, the call) and no
// sleeping. The baseline is the textbook design written here: a binary heap
// of pointers to nodes that know their index (so a cancel removes its node at
// once), each node holding a deadline, a sequence number and a
// std::function. The peer is asio's steady_timer (Debian's libasio-dev), whose
// timers are due at once (a deadline in the past) and run by io_context::poll.

#include <braid/event_loop.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#if BRAID_BENCH_HAVE_ASIO
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#endif

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int batch = 1000; // timers per benchmark iteration

// A deadline an hour or two away, in nanoseconds.
std::chrono::nanoseconds far_away(std::mt19937_64& rng) {
    return 1h + std::chrono::nanoseconds(rng() % 3'600'000'000'000ULL);
}

// --- braid ---------------------------------------------------------------------

void BM_timer_schedule_fire_braid(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    for (std::int64_t i = 0; i < pending; ++i) {
        (void)loop.call_later(far_away(rng), [] {});
    }
    std::uint64_t fired = 0;
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            (void)loop.call_later(std::chrono::nanoseconds(rng() % 1'000'000),
                                  [&fired] { ++fired; });
        }
        (void)loop.call_later(1ms, [&loop] { loop.stop(); });
        loop.run_forever(); // the clock jumps from deadline to deadline
    }
    benchmark::DoNotOptimize(fired);
    state.SetItemsProcessed(state.iterations() * batch);
}

void BM_timer_schedule_cancel_braid(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    for (std::int64_t i = 0; i < pending; ++i) {
        (void)loop.call_later(far_away(rng), [] {});
    }
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            braid::timer_handle h = loop.call_later(far_away(rng), [] {});
            benchmark::DoNotOptimize(h.cancel());
        }
    }
    state.SetItemsProcessed(state.iterations() * batch);
}

// --- Baseline: a minimal indexed binary heap -----------------------------------

class minimal_timers {
public:
    struct node {
        clock_type::time_point deadline;
        std::uint64_t seq;
        std::function<void()> callback;
        std::size_t index;
    };

    minimal_timers() = default;
    minimal_timers(const minimal_timers&) = delete;
    minimal_timers& operator=(const minimal_timers&) = delete;
    ~minimal_timers() {
        for (node* n : heap_) {
            delete n;
        }
    }

    node* schedule(clock_type::time_point deadline, std::function<void()> f) {
        auto* n = new node{deadline, seq_++, std::move(f), heap_.size()};
        heap_.push_back(n);
        up(n->index);
        return n;
    }
    void cancel(node* n) {
        remove(n->index);
        delete n;
    }
    // Runs every timer due at or before now, in order.
    void run_due(clock_type::time_point now) {
        while (!heap_.empty() && heap_[0]->deadline <= now) {
            node* n = heap_[0];
            remove(0);
            n->callback();
            delete n;
        }
    }
    clock_type::time_point earliest() const { return heap_[0]->deadline; }

private:
    static bool before(const node* a, const node* b) {
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
    }
    void put(std::size_t i, node* n) {
        heap_[i] = n;
        n->index = i;
    }
    void up(std::size_t i) {
        node* n = heap_[i];
        while (i > 0 && before(n, heap_[(i - 1) / 2])) {
            put(i, heap_[(i - 1) / 2]);
            i = (i - 1) / 2;
        }
        put(i, n);
    }
    void down(std::size_t i) {
        node* n = heap_[i];
        for (;;) {
            std::size_t c = 2 * i + 1;
            if (c >= heap_.size()) {
                break;
            }
            if (c + 1 < heap_.size() && before(heap_[c + 1], heap_[c])) {
                ++c;
            }
            if (!before(heap_[c], n)) {
                break;
            }
            put(i, heap_[c]);
            i = c;
        }
        put(i, n);
    }
    void remove(std::size_t i) {
        node* last = heap_.back();
        heap_.pop_back();
        if (i < heap_.size()) {
            put(i, last);
            up(i);
            down(heap_[i]->index);
        }
    }

    std::vector<node*> heap_;
    std::uint64_t seq_ = 0;
};

void BM_timer_schedule_fire_minimal_heap(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    minimal_timers timers;
    clock_type::time_point now{};
    for (std::int64_t i = 0; i < pending; ++i) {
        timers.schedule(now + far_away(rng), [] {});
    }
    std::uint64_t fired = 0;
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            timers.schedule(now + std::chrono::nanoseconds(rng() % 1'000'000),
                            [&fired] { ++fired; });
        }
        const auto until = now + 1ms;
        while (timers.earliest() < until) {
            now = timers.earliest(); // a manual clock, jumping as braid's does
            timers.run_due(now);
        }
        now = until;
    }
    benchmark::DoNotOptimize(fired);
    state.SetItemsProcessed(state.iterations() * batch);
}

void BM_timer_schedule_cancel_minimal_heap(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    minimal_timers timers;
    const clock_type::time_point now{};
    for (std::int64_t i = 0; i < pending; ++i) {
        timers.schedule(now + far_away(rng), [] {});
    }
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            timers.cancel(timers.schedule(now + far_away(rng), [] {}));
        }
    }
    state.SetItemsProcessed(state.iterations() * batch);
}

// --- Peer: asio ----------------------------------------------------------------

#if BRAID_BENCH_HAVE_ASIO

void BM_timer_schedule_fire_asio(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    asio::io_context io(1);
    std::vector<std::unique_ptr<asio::steady_timer>> waiting;
    waiting.reserve(static_cast<std::size_t>(pending));
    for (std::int64_t i = 0; i < pending; ++i) {
        waiting.push_back(std::make_unique<asio::steady_timer>(io, far_away(rng)));
        waiting.back()->async_wait([](const std::error_code&) {});
    }
    std::vector<asio::steady_timer> timers;
    timers.reserve(batch);
    std::uint64_t fired = 0;
    const auto past = clock_type::now() - 1s;
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            // Due at once: asio fires on the real clock.
            timers.emplace_back(io, past + std::chrono::nanoseconds(rng() % 1'000'000));
            timers.back().async_wait([&fired](const std::error_code&) { ++fired; });
        }
        while (io.poll() > 0) {
        }
        timers.clear();
    }
    benchmark::DoNotOptimize(fired);
    state.SetItemsProcessed(state.iterations() * batch);
    for (auto& t : waiting) {
        t->cancel();
    }
    io.poll();
}

void BM_timer_schedule_cancel_asio(benchmark::State& state) {
    const auto pending = state.range(0);
    std::mt19937_64 rng(42);
    asio::io_context io(1);
    std::vector<std::unique_ptr<asio::steady_timer>> waiting;
    waiting.reserve(static_cast<std::size_t>(pending));
    for (std::int64_t i = 0; i < pending; ++i) {
        waiting.push_back(std::make_unique<asio::steady_timer>(io, far_away(rng)));
        waiting.back()->async_wait([](const std::error_code&) {});
    }
    for (auto _ : state) {
        for (int i = 0; i < batch; ++i) {
            asio::steady_timer t(io, far_away(rng));
            t.async_wait([](const std::error_code&) {});
            benchmark::DoNotOptimize(t.cancel());
        }
        while (io.poll() > 0) { // the cancelled handlers run, with operation_aborted
        }
    }
    state.SetItemsProcessed(state.iterations() * batch);
    for (auto& t : waiting) {
        t->cancel();
    }
    io.poll();
}

BENCHMARK(BM_timer_schedule_fire_asio)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_timer_schedule_cancel_asio)->Arg(1000)->Arg(100000)->Arg(1000000);

#endif

BENCHMARK(BM_timer_schedule_fire_braid)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_timer_schedule_fire_minimal_heap)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_timer_schedule_cancel_braid)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_timer_schedule_cancel_minimal_heap)->Arg(1000)->Arg(100000)->Arg(1000000);

} // namespace

BENCHMARK_MAIN();
