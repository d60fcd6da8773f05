// SPDX-License-Identifier: MIT
// Random programs on real threads and the real clock. The model test and the
// fuzzer check the loop's logic against a model on one thread with a manual
// clock; this test checks what they cannot: a loop that really sleeps and is
// woken by pool workers, a stream executor's threads, a pipe written from
// another thread and loopback TCP, two loops on two threads sharing the pool,
// while tasks cancel each other, time out, a loop is stopped from another
// thread and run again, and a loop may be destroyed with all of that in
// flight. The order of events changes from run to run, so nothing here
// predicts it. What must hold whatever the order:
//
// - every task ends once (its done callbacks run once), with the value its
//   script computes, with the error it throws, or cancelled exactly when a
//   cancel() of it returned true;
// - composition gives each child's value (when_all, when_any's winner,
//   wait_for unless its time ran out, task_group), and bytes sent come back;
// - every thread-safe call runs once, every timer runs or is cancelled;
// - nothing reaches the exception handler;
// - under the sanitizers: no race, no leak, no use after free.
//
// Reproduce a failure: BRAID_SOAK_SEED=<seed> BRAID_SOAK_PROGRAMS=1 (the
// program is the same; the interleaving may not be, so run it repeatedly).

#include <braid/event_loop.hpp>
#include <braid/io.hpp>
#include <braid/net.hpp>
#include <braid/policy.hpp>
#include <braid/run_in.hpp>
#include <braid/sleep.hpp>
#include <braid/stream_executor.hpp>
#include <braid/task_group.hpp>
#include <braid/thread_pool.hpp>
#include <braid/wait_for.hpp>
#include <braid/when_all.hpp>
#include <braid/when_any.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/env.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using braid_test::env_or;

using std::chrono::microseconds;

// --- Programs ------------------------------------------------------------------

enum class op_kind {
    yield,         // co_await braid::yield()
    sleep,         // sleep_for(arg µs)
    compute,       // run_in(pool, ...) giving arg * 3 + 1
    post,          // run_in(pool, ...) whose work posts a thread-safe call to the loop
    pipe,          // a pool worker writes a byte to a pipe after arg µs; readable()
    tcp,           // arg bytes to a task accepting on loopback, and back
    child,         // co_await of a task running children[0]
    all,           // when_all of the children
    any,           // when_any of the children
    bounded,       // wait_for(children[0], arg µs), a timeout caught
    group,         // a task_group running the children, and its wait()
    stream,        // async_next over a map of arg items on the stream executor
    timer,         // call_later(arg µs); every other timer is cancelled at the end
    cancel,        // cancel() of root task `arg` % roots (never the task itself)
    cancel_later,  // the same from a timer's callback, arg / roots µs later
    cancel_posted, // the same from a thread-safe call posted by a pool worker
    fail,          // throws soak_error(arg); only a root's last operation
};

struct op;
struct script {
    std::vector<op> ops;
};
struct op {
    op_kind kind;
    int arg = 0;
    std::vector<script> children;
};

// What one loop runs.
struct loop_program {
    std::vector<script> roots;
    int policy = 0;        // 0 interleaved, 1 sequential, 2 step_slice(3), 3 time_slice, 4 custom
    int stop_after_us = 0; // > 0: stop the loop then and destroy it mid-flight
    // > 0 (never with stop_after_us): another thread calls stop() up to this
    // many times while the loop runs, stop_gap_us apart at most; each stop
    // ends a run early, and the loop's thread runs it again.
    int stops_from_thread = 0;
    int stop_gap_us = 0;
};

// One loop, or two on two threads sharing the pool and the stream executor.
struct program {
    std::vector<loop_program> loops;
};

class program_maker {
public:
    explicit program_maker(std::uint64_t seed) : rng_(seed) {}

    program make() {
        program p;
        for (int n = pick(0, 2) == 0 ? 2 : 1; n > 0; --n) {
            p.loops.push_back(make_loop_program());
        }
        // Drawn last, so that the rest of each seed's program stays as it was.
        for (loop_program& l : p.loops) {
            if (l.stop_after_us == 0 && pick(0, 2) == 0) {
                l.stops_from_thread = pick(1, 20);
                l.stop_gap_us = pick(0, 1) == 0 ? 30 : 400;
            }
        }
        return p;
    }

private:
    loop_program make_loop_program() {
        loop_program p;
        p.policy = pick(0, 4);
        if (pick(0, 4) == 0) {
            p.stop_after_us = pick(1, 3000);
        }
        // Short waits make completions race with cancellations; longer ones
        // let the loop sleep and be woken.
        max_wait_ = pick(0, 1) == 0 ? 20 : 300;
        roots_ = pick(2, 12);
        destroys_ = p.stop_after_us > 0;
        for (int i = 0; i < roots_; ++i) {
            self_ = i;
            p.roots.push_back(make_script(0));
        }
        return p;
    }

    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    script make_script(int depth) {
        script s;
        const int length = pick(1, depth == 0 ? 8 : 4);
        for (int i = 0; i < length; ++i) {
            s.ops.push_back(make_op(depth));
        }
        if (depth == 0 && pick(0, 7) == 0) {
            s.ops.push_back({op_kind::fail, pick(1, 1000), {}});
        }
        return s;
    }

    op make_op(int depth) {
        for (;;) {
            const auto kind =
                static_cast<op_kind>(pick(0, static_cast<int>(op_kind::cancel_posted)));
            op o{kind, 0, {}};
            switch (kind) {
            case op_kind::yield:
                return o;
            case op_kind::sleep:
            case op_kind::timer:
            case op_kind::pipe:
                o.arg = pick(0, max_wait_);
                return o;
            case op_kind::compute:
                o.arg = pick(0, 1000);
                return o;
            case op_kind::post:
                // Posting to a destroyed loop is the caller's bug: programs
                // that destroy theirs do not post.
                if (destroys_) {
                    continue;
                }
                return o;
            case op_kind::stream:
                o.arg = pick(0, 40);
                return o;
            case op_kind::tcp:
                o.arg = pick(1, 100'000);
                return o;
            case op_kind::child:
            case op_kind::all:
            case op_kind::any:
            case op_kind::bounded:
            case op_kind::group:
                if (depth >= 2) {
                    continue;
                }
                for (int n = kind == op_kind::child || kind == op_kind::bounded ? 1 : pick(1, 4);
                     n > 0; --n) {
                    o.children.push_back(make_script(depth + 1));
                }
                o.arg = pick(0, 2 * max_wait_);
                return o;
            case op_kind::cancel:
            case op_kind::cancel_later:
            case op_kind::cancel_posted: {
                // Only roots cancel, and never themselves: a task that
                // cancels itself and never suspends again ends normally.
                if (depth > 0 || (kind == op_kind::cancel_posted && destroys_)) {
                    continue;
                }
                const int target = pick(0, roots_ - 2);
                o.arg = (target + (target >= self_ ? 1 : 0)) + roots_ * pick(0, max_wait_);
                return o;
            }
            case op_kind::fail:
                continue;
            }
        }
    }

    std::mt19937_64 rng_;
    int max_wait_ = 0; // µs
    int roots_ = 0;
    int self_ = 0;
    bool destroys_ = false;
};

// What a script returns when nothing cancels it.
long expected(const script& s) {
    long sum = 0;
    for (const op& o : s.ops) {
        switch (o.kind) {
        case op_kind::compute:
            sum += o.arg * 3L + 1;
            break;
        case op_kind::pipe:
        case op_kind::tcp:
            sum += o.arg;
            break;
        case op_kind::child:
        case op_kind::all:
        case op_kind::group:
            for (const script& c : o.children) {
                sum += expected(c);
            }
            break;
        case op_kind::stream:
            sum += static_cast<long>(o.arg) * (o.arg - 1); // 2 * (0 + 1 + ... + arg-1)
            break;
        default:
            break;
        }
    }
    return sum;
}

bool ends_failing(const script& s) {
    return !s.ops.empty() && s.ops.back().kind == op_kind::fail;
}

struct soak_error : std::runtime_error {
    explicit soak_error(int code) : std::runtime_error("soak_error"), code(code) {}
    int code;
};

// --- Running them ----------------------------------------------------------------

// A pipe shared by the waiting task and the worker that writes to it, closed
// when both are done with it: a cancelled reader must not close a descriptor
// the worker may still write to (its number could be reused meanwhile).
struct shared_pipe {
    shared_pipe() {
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
            throw std::system_error(errno, std::generic_category(), "pipe2");
        }
    }
    shared_pipe(const shared_pipe&) = delete;
    shared_pipe& operator=(const shared_pipe&) = delete;
    ~shared_pipe() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    int fds[2] = {-1, -1};
};

// The threads a program's loops share. They outlive the loops, so that a
// loop destroyed mid-flight goes first and their late completions find it
// gone.
struct executors {
    braid::thread_pool pool{2};
    braid::stream_executor streams{2};
};

// One loop and what it runs. Used by the loop's thread while it runs, and by
// the test's thread once that thread is joined.
struct world {
    explicit world(executors& ex) : pool(ex.pool), streams(ex.streams) {}
    braid::thread_pool& pool;
    braid::stream_executor& streams;
    std::unique_ptr<braid::event_loop> loop;
    std::vector<braid::task<long>> roots;
    std::vector<int> endings;     // done callbacks run, per root
    std::vector<char> cancel_hit; // a cancel() of the root returned true
    std::atomic<long> posted{0};
    long ran = 0;
    long timers_made = 0;
    long timers_fired = 0;
    long timers_cancelled = 0;
    long reported = 0;
    std::vector<std::string> wrong; // what went wrong inside tasks

    // Cancels root `target` % roots, and notes it when the cancel reached it.
    void cancel(int target) {
        const auto i = static_cast<std::size_t>(target) % roots.size();
        if (roots[i].cancel()) {
            cancel_hit[i] = 1;
        }
    }

    void check(bool ok, const char* what) {
        if (!ok) {
            wrong.emplace_back(what);
        }
    }
};

braid::task<long> run_script(world& w, const script& s);

// Reads until `data` is full or the peer closes; gives the bytes read.
braid::task<std::size_t> read_up_to(braid::tcp_stream& s, std::span<char> data) {
    std::size_t got = 0;
    while (got < data.size()) {
        const std::size_t n = co_await s.read_some(data.subspan(got));
        if (n == 0) {
            break;
        }
        got += n;
    }
    co_return got;
}

// Accepts one connection and sends back the `bytes` it reads.
braid::task<long> echo_once(braid::tcp_listener& listener, int bytes) {
    braid::tcp_stream s = co_await listener.accept();
    std::string data(static_cast<std::size_t>(bytes), '\0');
    braid::task<std::size_t> reading = read_up_to(s, data);
    const std::size_t got = co_await std::move(reading);
    co_await s.write_all(std::string_view(data).substr(0, got));
    co_return 0;
}

// Sends `bytes` to the listener's port and reads them back.
braid::task<long> send_and_receive(world& w, std::uint16_t port, int bytes) {
    braid::tcp_stream s = co_await braid::tcp_stream::connect("127.0.0.1", port);
    std::string out(static_cast<std::size_t>(bytes), '\0');
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<char>(i * 7 + 1);
    }
    co_await s.write_all(out);
    std::string in(out.size(), '\0');
    braid::task<std::size_t> reading = read_up_to(s, in);
    const std::size_t got = co_await std::move(reading);
    w.check(got == out.size() && in == out, "tcp: the bytes did not come back");
    co_return bytes;
}

braid::task<long> run_op(world& w, const op& o, std::vector<braid::timer_handle>& timers) {
    switch (o.kind) {
    case op_kind::yield:
        co_await braid::yield();
        co_return 0;
    case op_kind::sleep:
        co_await braid::sleep_for(microseconds(o.arg));
        co_return 0;
    case op_kind::compute: {
        braid::task<long> work = braid::run_in(w.pool, [v = o.arg] { return v * 3L + 1; });
        co_return co_await std::move(work);
    }
    case op_kind::post: {
        braid::task<void> work = braid::run_in(w.pool, [&w] {
            w.posted.fetch_add(1, std::memory_order_relaxed);
            w.loop->call_soon_threadsafe([&w] { ++w.ran; });
        });
        co_await std::move(work);
        co_return 0;
    }
    case op_kind::pipe: {
        auto p = std::make_shared<shared_pipe>();
        w.pool.post([p, delay = microseconds(o.arg)]() noexcept {
            std::this_thread::sleep_for(delay);
            const char byte = 1;
            [[maybe_unused]] const auto n = ::write(p->fds[1], &byte, 1);
        });
        co_await braid::readable(p->fds[0]);
        char byte = 0;
        w.check(::read(p->fds[0], &byte, 1) == 1 && byte == 1, "pipe: readable without a byte");
        co_return o.arg;
    }
    case op_kind::tcp: {
        auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
        std::vector<braid::task<long>> ends;
        ends.push_back(echo_once(listener, o.arg));
        ends.push_back(send_and_receive(w, listener.port(), o.arg));
        braid::task<std::vector<long>> both = braid::when_all(std::move(ends));
        const std::vector<long> values = co_await std::move(both);
        co_return values[1];
    }
    case op_kind::child: {
        braid::task<long> child = run_script(w, o.children[0]);
        const long v = co_await std::move(child);
        w.check(v == expected(o.children[0]), "child: wrong value");
        co_return v;
    }
    case op_kind::all: {
        std::vector<braid::task<long>> children;
        for (const script& c : o.children) {
            children.push_back(run_script(w, c));
        }
        braid::task<std::vector<long>> joined = braid::when_all(std::move(children));
        const std::vector<long> values = co_await std::move(joined);
        long sum = 0;
        for (std::size_t i = 0; i < values.size(); ++i) {
            w.check(values[i] == expected(o.children[i]), "when_all: wrong value");
            sum += values[i];
        }
        co_return sum;
    }
    case op_kind::any: {
        std::vector<braid::task<long>> children;
        for (const script& c : o.children) {
            children.push_back(run_script(w, c));
        }
        auto first = braid::when_any(std::move(children));
        const auto [index, value] = co_await std::move(first);
        w.check(index < o.children.size() && value == expected(o.children[index]),
                "when_any: the winner's value is wrong");
        co_return 0;
    }
    case op_kind::bounded: {
        braid::task<long> bounded =
            braid::wait_for(run_script(w, o.children[0]), microseconds(o.arg));
        try {
            const long v = co_await std::move(bounded);
            w.check(v == expected(o.children[0]), "wait_for: wrong value");
        } catch (const braid::timeout_error&) {
        }
        co_return 0;
    }
    case op_kind::group: {
        braid::task_group group(*w.loop);
        std::vector<braid::task<long>> children;
        children.reserve(o.children.size());
        for (const script& c : o.children) {
            children.push_back(run_script(w, c));
            group.spawn(children.back());
        }
        co_await group.wait();
        long sum = 0;
        for (std::size_t i = 0; i < children.size(); ++i) {
            const long v = children[i].result();
            w.check(v == expected(o.children[i]), "task_group: wrong value");
            sum += v;
        }
        co_return sum;
    }
    case op_kind::stream: {
        auto results = w.streams.map([](int i) { return 2 * i; }, std::views::iota(0, o.arg), 4);
        long sum = 0;
        for (;;) {
            braid::task<std::optional<int>> next = results.async_next();
            const std::optional<int> v = co_await std::move(next);
            if (!v) {
                break;
            }
            sum += *v;
        }
        co_return sum;
    }
    case op_kind::timer:
        timers.push_back(w.loop->call_later(microseconds(o.arg), [&w] { ++w.timers_fired; }));
        ++w.timers_made;
        co_return 0;
    case op_kind::cancel:
        w.cancel(o.arg);
        co_return 0;
    case op_kind::cancel_later: {
        const auto delay = microseconds(o.arg / static_cast<int>(w.roots.size()));
        w.loop->call_later(delay, [&w, target = o.arg] { w.cancel(target); });
        co_return 0;
    }
    case op_kind::cancel_posted: {
        braid::task<void> work = braid::run_in(w.pool, [&w, target = o.arg] {
            w.posted.fetch_add(1, std::memory_order_relaxed);
            w.loop->call_soon_threadsafe([&w, target] {
                ++w.ran;
                w.cancel(target);
            });
        });
        co_await std::move(work);
        co_return 0;
    }
    case op_kind::fail:
        throw soak_error(o.arg);
    }
    co_return 0;
}

braid::task<long> run_script(world& w, const script& s) {
    std::vector<braid::timer_handle> timers;
    long sum = 0;
    for (const op& o : s.ops) {
        braid::task<long> step = run_op(w, o, timers);
        sum += co_await std::move(step);
    }
    for (std::size_t i = 0; i < timers.size(); i += 2) {
        w.timers_cancelled += timers[i].cancel() ? 1 : 0;
    }
    co_return sum;
}

// A policy of the user's own (the loop calls it through a virtual call): the
// front for a yield in every third round, the back otherwise.
struct every_third_in_front {
    braid::placement on_yield(const braid::yield_info& info) const noexcept {
        return info.round % 3 == 0 ? braid::placement::front : braid::placement::back;
    }
};

std::unique_ptr<braid::event_loop> make_loop(int policy) {
    switch (policy) {
    case 1:
        return std::make_unique<braid::event_loop>(braid::sequential);
    case 2:
        return std::make_unique<braid::event_loop>(braid::step_slice(3));
    case 3:
        return std::make_unique<braid::event_loop>(braid::time_slice(microseconds(50)));
    case 4:
        return std::make_unique<braid::event_loop>(every_third_in_front{});
    default:
        return std::make_unique<braid::event_loop>();
    }
}

// What became of a root, checked against its script.
void check_root(world& w, std::size_t i, const script& s, bool loop_destroyed) {
    INFO("root " << i);
    braid::task<long>& t = w.roots[i];
    if (!t.done()) {
        // Only a loop destroyed mid-flight leaves a task unfinished.
        CHECK(loop_destroyed);
        CHECK(w.endings[i] == 0);
        CHECK_THROWS_AS(t.result(), braid::task_not_finished);
        return;
    }
    CHECK(w.endings[i] == 1);
    if (w.cancel_hit[i] != 0) {
        CHECK(t.cancelled());
        CHECK_THROWS_AS(t.result(), braid::cancelled);
    } else if (ends_failing(s)) {
        CHECK_FALSE(t.cancelled());
        try {
            t.result();
            FAIL("a failing script gave a value");
        } catch (const soak_error& e) {
            CHECK(e.code == s.ops.back().arg);
        }
    } else {
        CHECK_FALSE(t.cancelled());
        CHECK(t.result() == expected(s));
    }
}

void start(world& w, const loop_program& prog) {
    w.loop = make_loop(prog.policy);
    w.loop->set_exception_handler([&w](std::exception_ptr) { ++w.reported; });
    w.roots.reserve(prog.roots.size());
    w.endings.assign(prog.roots.size(), 0);
    w.cancel_hit.assign(prog.roots.size(), 0);
    for (std::size_t i = 0; i < prog.roots.size(); ++i) {
        w.roots.push_back(run_script(w, prog.roots[i]));
        w.roots.back().add_done_callback([&w, i](braid::task<long>&) { ++w.endings[i]; });
        w.loop->spawn(w.roots.back());
    }
    if (prog.stop_after_us > 0) {
        w.loop->call_later(microseconds(prog.stop_after_us), [&w] { w.loop->stop(); });
    }
}

void check(world& w, const loop_program& prog) {
    const bool destroyed = prog.stop_after_us > 0;
    for (std::size_t i = 0; i < prog.roots.size(); ++i) {
        check_root(w, i, prog.roots[i], destroyed);
    }
    for (const std::string& what : w.wrong) {
        UNSCOPED_INFO(what); // shown with the next assertion's result
    }
    CHECK(w.wrong.empty());
    CHECK(w.reported == 0);
    CHECK(w.ran == w.posted.load());
    if (destroyed) {
        CHECK(w.timers_fired + w.timers_cancelled <= w.timers_made);
    } else {
        CHECK(w.timers_fired + w.timers_cancelled == w.timers_made);
    }
}

bool all_ended(const world& w) {
    return std::all_of(w.endings.begin(), w.endings.end(), [](int e) { return e != 0; });
}

// Runs the loop until every root has ended while another thread calls stop()
// at random moments. A stop ends the run in progress after its step, or
// makes the next run one pass, so each ends one run at most and a stopped
// run is run again. Gives the number of runs that ended before the roots did.
int run_with_stops(world& w, const loop_program& prog, std::uint64_t seed) {
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
        std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
        std::uniform_int_distribution<int> gap(0, prog.stop_gap_us);
        for (int i = 0; i < prog.stops_from_thread && !finished.load(); ++i) {
            std::this_thread::sleep_for(microseconds(gap(rng)));
            w.loop->stop();
        }
    });
    int stopped = 0;
    for (int runs = 0; runs <= prog.stops_from_thread; ++runs) {
        w.loop->run();
        if (all_ended(w)) {
            break;
        }
        ++stopped;
    }
    finished = true;
    stopper.join();
    // A stop made after that run returned makes this one a single pass, so
    // that the run after the pool's shutdown below runs in full.
    w.loop->run();
    return stopped;
}

// Runs each loop on a thread of its own until it is out of work, or stops
// and is destroyed. Then, with the pool shut down (a cancelled run_in leaves
// its work running, and the thread-safe call that work makes may arrive
// after run() returned), the loops still alive run what arrived late.
// Gives the number of runs that stops from other threads ended early.
int run_program(const program& prog, std::uint64_t seed) {
    executors ex;
    std::vector<std::unique_ptr<world>> worlds;
    for (std::size_t k = 0; k < prog.loops.size(); ++k) {
        worlds.push_back(std::make_unique<world>(ex));
        start(*worlds[k], prog.loops[k]);
    }
    braid_test::gate pool_shut_down;
    std::atomic<int> waiting{0};
    std::atomic<int> stopped{0};
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < worlds.size(); ++k) {
        threads.emplace_back([&w = *worlds[k], &prog = prog.loops[k], &pool_shut_down, &waiting,
                              &stopped, stopper_seed = seed * 2 + k] {
            if (prog.stops_from_thread > 0) {
                stopped += run_with_stops(w, prog, stopper_seed);
            } else {
                w.loop->run();
            }
            if (prog.stop_after_us > 0) {
                w.loop.reset();
            }
            waiting.fetch_add(1);
            if (pool_shut_down.wait() && w.loop) {
                w.loop->run();
            }
        });
    }
    const bool all_waiting =
        braid_test::wait_until([&] { return waiting.load() == static_cast<int>(worlds.size()); });
    ex.pool.shutdown();
    pool_shut_down.open();
    for (std::thread& t : threads) {
        t.join();
    }
    REQUIRE(all_waiting);
    for (std::size_t k = 0; k < prog.loops.size(); ++k) {
        INFO("loop " << k);
        check(*worlds[k], prog.loops[k]);
    }
    return stopped.load();
}

} // namespace

TEST_CASE("random programs on real threads: every task ends once, with its value, its error, "
          "or cancelled exactly when a cancel reached it",
          "[soak][threads][cancel][lifetime]") {
    const std::uint64_t base = env_or("BRAID_SOAK_SEED", 20261129);
    const std::uint64_t count = env_or("BRAID_SOAK_PROGRAMS", 300);
    int stopped_runs = 0;
    for (std::uint64_t seed = base; seed < base + count; ++seed) {
        const braid_test::watchdog guard("the soak program BRAID_SOAK_SEED=" +
                                         std::to_string(seed));
        const program prog = program_maker(seed).make();
        INFO("BRAID_SOAK_SEED=" << seed << ": " << prog.loops.size() << " loops");
        stopped_runs += run_program(prog, seed);
    }
    // About a quarter of the loops are stopped from another thread; over this
    // many programs some stops must have come while a loop was running.
    if (count >= 100) {
        CHECK(stopped_runs > 0);
    }
}
