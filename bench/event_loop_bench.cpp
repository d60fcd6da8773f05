// SPDX-License-Identifier: MIT
//
// The event loop and tasks against baselines and peers, in one binary:
//
//   yield      one co_await yield() with N tasks taking turns (round-robin)
//   await      one co_await of a child task that completes at once
//   call_soon  one callback queued and run
//   memory     bytes allocated per spawned, waiting task
//
// Baselines are written here: a bare std::deque<std::coroutine_handle<>> loop
// with the smallest possible coroutine type, a minimal lazy task with
// symmetric transfer (with and without a frame free-list; ending the program
// when a child throws, or carrying the exception to the awaiting coroutine as
// braid's task does), a plain function call, and a
// std::deque<std::function<void()>> callback loop. The peer is
// asio (Debian's libasio-dev), when it is installed. Results and the machine
// are recorded in docs/benchmarks.md.

#include "alloc_counter.hpp"

#include <braid/event_loop.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#if BRAID_BENCH_HAVE_ASIO
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
// asio 1.22 enables co_await under clang only with <experimental/coroutine>;
// clang 16 with libstdc++ has the standard <coroutine>, which asio then uses.
#define ASIO_HAS_CO_AWAIT 1
#endif
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#endif

namespace {

// --- Baseline 1: the bare loop -------------------------------------------------
// The least a round-robin loop can do: a deque of handles, a coroutine type
// with nothing in its promise, an awaiter that pushes itself to the back.

struct bare_loop {
    std::deque<std::coroutine_handle<>> ready;

    void run() {
        while (!ready.empty()) {
            auto h = ready.front();
            ready.pop_front();
            h.resume();
            if (h.done()) {
                h.destroy();
            }
        }
    }
};

struct bare_coroutine {
    struct promise_type {
        bare_coroutine get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> h;
};

struct bare_yield {
    bare_loop& loop;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const { loop.ready.push_back(h); }
    void await_resume() const noexcept {}
};

bare_coroutine bare_yielder(bare_loop& loop, int yields) {
    for (int i = 0; i < yields; ++i) {
        co_await bare_yield{loop};
    }
}

// --- Baseline 2: a minimal lazy task with symmetric transfer -----------------

struct malloc_frames {
    static void* allocate(std::size_t n) { return ::operator new(n); }
    static void deallocate(void* p, std::size_t) noexcept { ::operator delete(p); }
};

// One free list per frame size seen (enough for a benchmark of one task type).
struct free_list_frames {
    struct block {
        block* next;
    };
    static inline block* free = nullptr;
    static void* allocate(std::size_t n) {
        if (free != nullptr) {
            return std::exchange(free, free->next);
        }
        return ::operator new(n);
    }
    static void deallocate(void* p, std::size_t) noexcept { free = new (p) block{free}; }
};

// What the minimal task does with an exception its body throws. The first is
// the least a task can do; the second is what any task whose awaiter sees its
// children's exceptions must do, and it changes what clang makes of an await
// (docs/compilers.md, "clang elides a child task's frame only if it is
// destroyed on every path").
struct terminate_on_error {
    [[noreturn]] static void keep() noexcept { std::terminate(); }
    static void rethrow() noexcept {}
};

struct rethrow_error {
    std::exception_ptr error;
    void keep() noexcept { error = std::current_exception(); }
    void rethrow() const {
        if (error) {
            std::rethrow_exception(error);
        }
    }
};

template <class Frames, class Errors = terminate_on_error>
struct min_task {
    struct promise_type {
        int value = 0;
        std::coroutine_handle<> continuation;
        [[no_unique_address]] Errors errors;

        static void* operator new(std::size_t n) { return Frames::allocate(n); }
        static void operator delete(void* p, std::size_t n) noexcept { Frames::deallocate(p, n); }
        min_task get_return_object() noexcept {
            return min_task{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<>
            await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
                if (auto c = h.promise().continuation) {
                    return c;
                }
                return std::noop_coroutine();
            }
            void await_resume() const noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void return_value(int v) noexcept { value = v; }
        void unhandled_exception() noexcept { errors.keep(); }
    };

    explicit min_task(std::coroutine_handle<promise_type> h) noexcept : h(h) {}
    min_task(min_task&& o) noexcept : h(std::exchange(o.h, {})) {}
    ~min_task() {
        if (h) {
            h.destroy();
        }
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
    }
    int await_resume() const noexcept(noexcept(h.promise().errors.rethrow())) {
        h.promise().errors.rethrow();
        return h.promise().value;
    }

    std::coroutine_handle<promise_type> h;
};

template <class Frames, class Errors>
min_task<Frames, Errors> min_child(int i) {
    co_return i & 1;
}

template <class Frames, class Errors>
min_task<Frames, Errors> min_parent(int children, std::int64_t& out) {
    std::int64_t sum = 0;
    for (int i = 0; i < children; ++i) {
        sum += co_await min_child<Frames, Errors>(i);
    }
    out = sum;
    co_return 0;
}

[[gnu::noinline]] int plain_child(int i) {
    return i & 1;
}

// --- braid ---------------------------------------------------------------------

braid::task<> braid_yielder(int yields) {
    for (int i = 0; i < yields; ++i) {
        co_await braid::yield();
    }
}

braid::task<int> braid_child(int i) {
    co_return i & 1;
}

braid::task<std::int64_t> braid_parent(int children) {
    std::int64_t sum = 0;
    for (int i = 0; i < children; ++i) {
        sum += co_await braid_child(i);
    }
    co_return sum;
}

// Yields per run: a million, spread over the tasks, but at least 100 per task
// so that spawning and finishing a task stay small next to its yields.
constexpr int yields_per_run = 1'000'000;
int yields_for(int tasks) {
    return std::max(100, yields_per_run / tasks);
}
constexpr int children_per_run = 1000;
constexpr int callbacks_per_run = 1000;

// --- yield ---------------------------------------------------------------------

template <class Policy>
void BM_event_loop_yield(benchmark::State& state) {
    const auto tasks = static_cast<int>(state.range(0));
    const int yields = yields_for(tasks);
    for (auto _ : state) {
        braid::event_loop loop{Policy{}};
        for (int t = 0; t < tasks; ++t) {
            loop.spawn(braid_yielder(yields));
        }
        loop.run();
    }
    state.SetItemsProcessed(state.iterations() * tasks * yields);
}

void BM_baseline_deque_loop_yield(benchmark::State& state) {
    const auto tasks = static_cast<int>(state.range(0));
    const int yields = yields_for(tasks);
    for (auto _ : state) {
        bare_loop loop;
        for (int t = 0; t < tasks; ++t) {
            loop.ready.push_back(bare_yielder(loop, yields).h);
        }
        loop.run();
    }
    state.SetItemsProcessed(state.iterations() * tasks * yields);
}

// --- await ---------------------------------------------------------------------

void BM_task_await(benchmark::State& state) {
    braid::event_loop loop;
    for (auto _ : state) {
        benchmark::DoNotOptimize(loop.run_until_complete(braid_parent(children_per_run)));
    }
    state.SetItemsProcessed(state.iterations() * children_per_run);
}

template <class Frames, class Errors = terminate_on_error>
void BM_baseline_min_task_await(benchmark::State& state) {
    for (auto _ : state) {
        std::int64_t out = 0;
        auto parent = min_parent<Frames, Errors>(children_per_run, out);
        parent.h.resume();
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations() * children_per_run);
}

void BM_baseline_function_call(benchmark::State& state) {
    for (auto _ : state) {
        std::int64_t sum = 0;
        for (int i = 0; i < children_per_run; ++i) {
            sum += plain_child(i);
        }
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(state.iterations() * children_per_run);
}

// --- call_soon -----------------------------------------------------------------

void BM_event_loop_call_soon(benchmark::State& state) {
    braid::event_loop loop;
    std::int64_t counter = 0;
    for (auto _ : state) {
        for (int i = 0; i < callbacks_per_run; ++i) {
            loop.call_soon([&counter] { ++counter; });
        }
        loop.run();
    }
    benchmark::DoNotOptimize(counter);
    state.SetItemsProcessed(state.iterations() * callbacks_per_run);
}

void BM_baseline_function_queue(benchmark::State& state) {
    std::deque<std::function<void()>> queue;
    std::int64_t counter = 0;
    for (auto _ : state) {
        for (int i = 0; i < callbacks_per_run; ++i) {
            queue.emplace_back([&counter] { ++counter; });
        }
        while (!queue.empty()) {
            auto f = std::move(queue.front());
            queue.pop_front();
            f();
        }
    }
    benchmark::DoNotOptimize(counter);
    state.SetItemsProcessed(state.iterations() * callbacks_per_run);
}

// --- memory --------------------------------------------------------------------

// Heap bytes per task (malloc's chunk overhead included), measured while
// `tasks` of them wait to run. Frames freed earlier may be reused from a
// cache (braid's pool, asio's recycling allocator): start from a state where
// that cache is small next to `tasks` frames.
template <class Spawn, class Drain>
void measure_memory(benchmark::State& state, Spawn spawn, Drain drain) {
    const auto tasks = static_cast<int>(state.range(0));
    double per_task = 0;
    for (auto _ : state) {
        braid_bench::start_counting_allocations();
        spawn(tasks);
        per_task = static_cast<double>(braid_bench::stop_counting_allocations()) / tasks;
        drain();
    }
    state.counters["bytes_per_task"] = per_task;
}

void BM_event_loop_memory_per_task(benchmark::State& state) {
    std::unique_ptr<braid::event_loop> loop;
    measure_memory(
        state,
        [&](int tasks) {
            loop = std::make_unique<braid::event_loop>();
            for (int t = 0; t < tasks; ++t) {
                loop->spawn(braid_yielder(1));
            }
        },
        [&] { loop.reset(); });
}

void BM_baseline_deque_loop_memory_per_task(benchmark::State& state) {
    std::unique_ptr<bare_loop> loop;
    measure_memory(
        state,
        [&](int tasks) {
            loop = std::make_unique<bare_loop>();
            for (int t = 0; t < tasks; ++t) {
                loop->ready.push_back(bare_yielder(*loop, 1).h);
            }
        },
        [&] { loop->run(); });
}

#if BRAID_BENCH_HAVE_ASIO

asio::awaitable<void> asio_yielder(int yields) {
    auto executor = co_await asio::this_coro::executor;
    for (int i = 0; i < yields; ++i) {
        co_await asio::post(executor, asio::use_awaitable);
    }
}

asio::awaitable<int> asio_child(int i) {
    co_return i & 1;
}

asio::awaitable<void> asio_parent(int children, std::int64_t& out) {
    std::int64_t sum = 0;
    for (int i = 0; i < children; ++i) {
        sum += co_await asio_child(i);
    }
    out = sum;
}

void BM_asio_post_yield(benchmark::State& state) {
    const auto tasks = static_cast<int>(state.range(0));
    const int yields = yields_for(tasks);
    for (auto _ : state) {
        asio::io_context ctx(1);
        for (int t = 0; t < tasks; ++t) {
            asio::co_spawn(ctx, asio_yielder(yields), asio::detached);
        }
        ctx.run();
    }
    state.SetItemsProcessed(state.iterations() * tasks * yields);
}

void BM_asio_awaitable_await(benchmark::State& state) {
    asio::io_context ctx(1);
    for (auto _ : state) {
        std::int64_t out = 0;
        asio::co_spawn(ctx, asio_parent(children_per_run, out), asio::detached);
        ctx.run();
        ctx.restart();
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations() * children_per_run);
}

void BM_asio_post_callback(benchmark::State& state) {
    asio::io_context ctx(1);
    std::int64_t counter = 0;
    for (auto _ : state) {
        for (int i = 0; i < callbacks_per_run; ++i) {
            asio::post(ctx, [&counter] { ++counter; });
        }
        ctx.run();
        ctx.restart();
    }
    benchmark::DoNotOptimize(counter);
    state.SetItemsProcessed(state.iterations() * callbacks_per_run);
}

void BM_asio_memory_per_task(benchmark::State& state) {
    std::unique_ptr<asio::io_context> ctx;
    measure_memory(
        state,
        [&](int tasks) {
            ctx = std::make_unique<asio::io_context>(1);
            for (int t = 0; t < tasks; ++t) {
                asio::co_spawn(*ctx, asio_yielder(1), asio::detached);
            }
        },
        [&] {
            ctx->run();
            ctx.reset();
        });
}

BENCHMARK(BM_asio_post_yield)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_asio_awaitable_await);
BENCHMARK(BM_asio_post_callback);
BENCHMARK(BM_asio_memory_per_task)->Arg(10000)->Iterations(3);

#endif

} // namespace

BENCHMARK(BM_event_loop_yield<braid::interleaved_t>)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_event_loop_yield<braid::sequential_t>)->Arg(1000);
BENCHMARK(BM_baseline_deque_loop_yield)->Arg(1)->Arg(1000)->Arg(100000);
BENCHMARK(BM_task_await);
BENCHMARK(BM_baseline_min_task_await<malloc_frames>);
BENCHMARK(BM_baseline_min_task_await<free_list_frames>);
BENCHMARK_TEMPLATE(BM_baseline_min_task_await, malloc_frames, rethrow_error);
BENCHMARK_TEMPLATE(BM_baseline_min_task_await, free_list_frames, rethrow_error);
BENCHMARK(BM_baseline_function_call);
BENCHMARK(BM_event_loop_call_soon);
BENCHMARK(BM_baseline_function_queue);
BENCHMARK(BM_event_loop_memory_per_task)->Arg(10000)->Iterations(3);
BENCHMARK(BM_baseline_deque_loop_memory_per_task)->Arg(10000)->Iterations(3);

BENCHMARK_MAIN();
