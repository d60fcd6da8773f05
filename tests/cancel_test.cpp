// SPDX-License-Identifier: MIT
// task::cancel: at every kind of suspension point, passed down to children,
// caught and cleaned up after, never started, racing completion; cancelled();
// the stop token. Deterministic: a manual clock and counted rounds.

#include <braid/braid.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace std::chrono_literals;
using braid_test::contains;

namespace {

// Counts live instances, to check that cancelled frames are freed.
struct tracked {
    static inline int alive = 0;
    tracked() noexcept { ++alive; }
    tracked(const tracked&) noexcept { ++alive; }
    tracked& operator=(const tracked&) = default;
    ~tracked() { --alive; }
};

braid::task<int> sleeper(std::chrono::seconds d, int value) {
    co_await braid::sleep_for(d);
    co_return value;
}

// What a task ended with, as text.
template <class T>
std::string ending(braid::task<T>& t) {
    if (!t.done()) {
        return "running";
    }
    if (t.cancelled()) {
        return "cancelled";
    }
    try {
        if constexpr (std::is_void_v<T>) {
            t.result();
            return "value";
        } else {
            return "value " + std::to_string(t.result());
        }
    } catch (const std::exception& e) {
        return std::string("error ") + e.what();
    }
}

} // namespace

TEST_CASE("braid::cancelled is not a std::exception, so catch (std::exception&) lets it "
          "through",
          "[cancel]") {
    static_assert(!std::is_base_of_v<std::exception, braid::cancelled>);
    static_assert(std::is_base_of_v<std::runtime_error, braid::timeout_error>);
    CHECK(std::string(braid::cancelled{}.what()).find("cancelled") != std::string::npos);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    bool swallowed = false;
    auto worker = [&]() -> braid::task<> {
        try {
            co_await braid::sleep_for(1h);
        } catch (const std::exception&) {
            swallowed = true;
        }
    };
    braid::task<> t = worker();
    loop.spawn(t);
    loop.call_later(1s, [&] { t.cancel(); });
    loop.run();
    CHECK_FALSE(swallowed);
    CHECK(t.cancelled());
    REQUIRE_THROWS_AS(t.result(), braid::cancelled);
}

TEST_CASE("cancel returns false once the task is done, and true while it is not, also when "
          "a cancellation is pending",
          "[cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::task<int> t = sleeper(10s, 1);
    loop.spawn(t);
    loop.call_later(1s, [&] {
        CHECK(t.cancel());
        CHECK(t.cancel());          // pending: still true
        CHECK_FALSE(t.cancelled()); // not finished yet
    });
    loop.run();
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel());
    braid::task<int> finished = sleeper(0s, 2);
    CHECK(loop.run_until_complete(finished) == 2);
    CHECK_FALSE(finished.cancel());
    CHECK_FALSE(finished.cancelled());
}

TEST_CASE("a task never started finishes as cancelled at once, without running its body, "
          "and its callbacks run inside cancel",
          "[cancel]") {
    bool body_ran = false;
    auto body = [&]() -> braid::task<int> {
        body_ran = true;
        co_return 1;
    };
    braid::task<int> t = body();
    std::vector<std::string> seen;
    t.add_done_callback([&](braid::task<int>& self) { seen.push_back(ending(self)); });
    CHECK(t.cancel());
    CHECK(seen == std::vector<std::string>{"cancelled"});
    CHECK_FALSE(body_ran);
    CHECK(t.done());
    CHECK(t.cancelled());
    REQUIRE_THROWS_AS(t.result(), braid::cancelled);
    braid::event_loop loop;
    REQUIRE_THROWS_AS(loop.spawn(t), braid::usage_error); // it has finished
    REQUIRE_THROWS_AS(loop.run_until_complete(t), braid::cancelled);
}

TEST_CASE("cancelling a task never started runs every callback, and the first exception one "
          "throws leaves cancel",
          "[cancel]") {
    auto body = []() -> braid::task<int> { co_return 1; };
    braid::task<int> t = body();
    std::vector<int> ran;
    t.add_done_callback([&](braid::task<int>&) {
        ran.push_back(1);
        throw std::runtime_error("first");
    });
    t.add_done_callback([&](braid::task<int>&) {
        ran.push_back(2);
        throw std::runtime_error("second");
    });
    t.add_done_callback([&](braid::task<int>&) { ran.push_back(3); });
    REQUIRE_THROWS_WITH(t.cancel(), "first");
    CHECK(ran == std::vector<int>{1, 2, 3});
    CHECK(t.cancelled());
    CHECK_FALSE(t.cancel()); // finished: nothing more runs
    CHECK(ran.size() == 3);
}

TEST_CASE("a spawned task cancelled before its first step finishes cancelled without running "
          "its body",
          "[cancel]") {
    braid::event_loop loop;
    bool body_ran = false;
    auto body = [&]() -> braid::task<> {
        body_ran = true;
        co_return;
    };
    braid::task<> t = body();
    loop.spawn(t);
    CHECK(t.cancel());
    loop.run();
    CHECK_FALSE(body_ran);
    CHECK(t.cancelled());
}

TEST_CASE("a task ready to run gets braid::cancelled from the yield it last suspended at",
          "[cancel][yield]") {
    std::vector<std::string> log;
    auto worker = [&]() -> braid::task<> {
        for (int i = 0;; ++i) {
            log.push_back("step " + std::to_string(i));
            try {
                co_await braid::yield();
            } catch (const braid::cancelled&) {
                log.push_back("cancelled at yield " + std::to_string(i));
                throw;
            }
        }
    };
    braid::task<> t = worker();
    auto canceller = [&]() -> braid::task<> {
        co_await braid::yield();
        t.cancel(); // t is in the ready queue, behind us
    };
    braid::event_loop loop;
    loop.spawn(t);
    loop.spawn(canceller());
    loop.run();
    CHECK(log == std::vector<std::string>{"step 0", "step 1", "cancelled at yield 1"});
    CHECK(t.cancelled());
}

TEST_CASE("a task can cancel itself, and it receives braid::cancelled at its next suspension",
          "[cancel]") {
    braid::event_loop loop;
    braid::task<int>* self = nullptr;
    int after = 0;
    auto body = [&]() -> braid::task<int> {
        self->cancel();
        ++after; // still running: nothing is thrown here
        co_await braid::yield();
        ++after; // never reached
        co_return 1;
    };
    braid::task<int> t = body();
    self = &t;
    loop.spawn(t);
    loop.run();
    CHECK(after == 1);
    CHECK(t.cancelled());
}

TEST_CASE("a task whose cancellation is pending passes it to a task it then awaits that has not "
          "started, which ends cancelled without running its body, at any depth of nested awaits",
          "[cancel][child]") {
    // The task that cancels itself is the innermost of a chain of `depth`
    // awaited tasks; past the loop's limit of nested starts an awaited task
    // would begin only after its awaiter suspended, which must not change
    // the outcome.
    for (int depth = 0; depth <= 40; ++depth) {
        INFO("depth " << depth);
        braid::event_loop loop;
        braid::task<int>* innermost = nullptr;
        std::vector<std::string> log;
        auto child = [&]() -> braid::task<int> {
            log.push_back("child ran");
            co_return 1;
        };
        std::function<braid::task<int>(int)> chain = [&](int level) -> braid::task<int> {
            if (level > 0) {
                braid::task<int> inner = chain(level - 1);
                if (level == 1) {
                    innermost = &inner;
                }
                co_return co_await inner;
            }
            innermost->cancel(); // running: the cancellation is pending
            braid::task<int> first = child();
            try {
                (void)co_await first;
            } catch (const braid::cancelled&) {
                log.push_back(first.cancelled() ? "cancelled at the await" : "?");
            }
            co_await braid::yield(); // delivered once: nothing more here
            log.push_back("goes on");
            co_return 2;
        };
        braid::task<int> top = chain(depth);
        if (depth == 0) {
            innermost = &top;
        }
        CHECK(loop.run_until_complete(top) == 2);
        CHECK(log == std::vector<std::string>{"cancelled at the await", "goes on"});
    }
}

TEST_CASE("a pending cancellation reaches the next wait the task begins at once (a sleep, a "
          "descriptor, run_in, a running task, a group, when_all)",
          "[cancel]") {
    // A task cancelled while it runs (by itself here; by a callback, or
    // while an awaitable of its own had it) does not sit out the wait it
    // begins next: that wait ends as if cancel() had reached it there.
    enum class kind { sleep, descriptor, run_in, running_task, group, when_all };
    const char* const names[] = {"sleep",          "descriptor", "run_in",
                                 "a running task", "a group",    "when_all"};
    const auto next = static_cast<kind>(GENERATE(range(0, 6)));
    INFO("the next wait: " << names[static_cast<int>(next)]);
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::thread_pool pool(1);
    braid_test::gate release;
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    braid::task<int> sleeping = sleeper(1h, 5);
    loop.spawn(sleeping);
    braid::task<int>* self = nullptr;
    bool reached_end = false;
    auto body = [&]() -> braid::task<int> {
        co_await braid::yield(); // `sleeping` has begun its sleep
        self->cancel();
        int got = 0;
        switch (next) {
        case kind::sleep:
            co_await braid::sleep_for(1h);
            break;
        case kind::descriptor:
            co_await braid::readable(fds[0]); // nothing is ever written
            break;
        case kind::run_in: {
            braid::task<int> work = braid::run_in(pool, [&] {
                release.wait();
                return 3;
            });
            got = co_await std::move(work);
            break;
        }
        case kind::running_task:
            got = co_await sleeping;
            break;
        case kind::group: {
            braid::task_group group(loop);
            group.spawn(sleeper(1h, 6));
            co_await group.wait();
            break;
        }
        case kind::when_all: {
            braid::task<std::tuple<int, int>> both =
                braid::when_all(sleeper(1h, 1), sleeper(1h, 2));
            const auto [a, b] = co_await std::move(both);
            got = a + b;
            break;
        }
        }
        reached_end = true;
        co_return got;
    };
    braid::task<int> t = body();
    self = &t;
    loop.spawn(t);
    CHECK_THROWS_AS(loop.run_until_complete(t), braid::cancelled);
    CHECK_FALSE(reached_end);
    CHECK(clock.now().time_since_epoch() == 0s);            // no wait was sat out
    CHECK(sleeping.done() == (next == kind::running_task)); // passed down to it
    release.open();
    pool.shutdown();
    if (next != kind::running_task) {
        CHECK(sleeping.cancel());
    }
    loop.run(); // `sleeping` ends; a late run_in result is dropped
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("a cancelled sleep removes its timer, and the clock never jumps to it",
          "[cancel][sleep]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    braid::task<int> t = sleeper(1h, 1);
    loop.spawn(t);
    loop.call_later(1s, [&] { CHECK(t.cancel()); });
    const auto rounds_before = loop.rounds();
    loop.run();
    CHECK(t.cancelled());
    CHECK(clock.now().time_since_epoch() == 1s); // not an hour
    CHECK(loop.rounds() - rounds_before == 3);   // first step, the timer callback, the wake-up
}

TEST_CASE("a cancelled run_in resumes at once, and the pool still runs f and its result is dropped",
          "[cancel][run_in]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    braid_test::gate release;
    std::atomic<bool> f_started{false};
    std::atomic<bool> f_ran{false};
    braid::task<int> t = braid::run_in(pool, [&] {
        f_started = true;
        release.wait();
        f_ran = true;
        return 7;
    });
    loop.spawn(t);
    auto canceller = [&]() -> braid::task<> {
        co_await braid::yield(); // the work is submitted
        REQUIRE(braid_test::wait_until([&] { return f_started.load(); }));
        CHECK(t.cancel());
    };
    loop.run_until_complete(canceller());
    loop.run(); // returns although f still runs: the wait is over
    CHECK(t.cancelled());
    CHECK_FALSE(f_ran.load());
    release.open();
    pool.shutdown();
    CHECK(f_ran.load());
    loop.run(); // the late result arrives and is dropped
}

TEST_CASE("a run_in cancelled before a worker starts f never runs f", "[cancel][run_in]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    braid_test::gate release;
    std::atomic<bool> worker_busy{false};
    pool.post([&]() noexcept {
        worker_busy = true;
        release.wait(); // the one worker is taken: run_in's work waits in the queue
    });
    std::atomic<int> f_calls{0};
    braid::task<int> t = braid::run_in(pool, [&] {
        ++f_calls;
        return 7;
    });
    loop.spawn(t);
    auto canceller = [&]() -> braid::task<> {
        co_await braid::yield(); // the work is submitted
        CHECK(t.cancel());
    };
    loop.run_until_complete(canceller());
    loop.run(); // returns although the work is still queued: the wait is over
    CHECK(t.cancelled());
    release.open();
    pool.shutdown(); // runs everything queued: run_in's job skips f
    CHECK(worker_busy.load());
    CHECK(f_calls.load() == 0);
    loop.run(); // the job's report arrives and is dropped
}

TEST_CASE("a cancelled async_next resumes at once, and the result stays for the next reader",
          "[cancel][stream]") {
    braid::event_loop loop;
    braid::stream_executor ex(1);
    braid_test::gate release;
    auto results = ex.map(
        [&](int x) {
            release.wait();
            return x;
        },
        std::views::iota(0, 3), 1);
    braid::task<std::optional<int>> next = results.async_next();
    loop.spawn(next);
    auto canceller = [&]() -> braid::task<> {
        co_await braid::yield();
        CHECK(next.cancel());
    };
    loop.run_until_complete(canceller());
    loop.run();
    CHECK(next.cancelled());
    release.open();
    std::vector<int> rest;
    for (int v : results) {
        rest.push_back(v);
    }
    CHECK(rest == std::vector<int>{0, 1, 2});
}

TEST_CASE("cancelling a task that awaits a child cancels the child first, and its cancellation "
          "comes back up",
          "[cancel][child]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> log;
    auto child = [&]() -> braid::task<int> {
        try {
            co_await braid::sleep_for(1h);
        } catch (const braid::cancelled&) {
            log.push_back("child cancelled");
            throw;
        }
        co_return 1;
    };
    auto parent = [&]() -> braid::task<int> {
        try {
            co_return co_await child();
        } catch (const braid::cancelled&) {
            log.push_back("parent sees it");
            throw;
        }
    };
    braid::task<int> t = parent();
    loop.spawn(t);
    loop.call_later(1s, [&] { t.cancel(); });
    loop.run();
    CHECK(log == std::vector<std::string>{"child cancelled", "parent sees it"});
    CHECK(t.cancelled());
}

TEST_CASE("a child that swallows the cancellation passed down to it lets the parent go on "
          "with its value",
          "[cancel][child]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    auto child = []() -> braid::task<int> {
        try {
            co_await braid::sleep_for(1h);
        } catch (const braid::cancelled&) {
            co_return -1; // consumed
        }
        co_return 1;
    };
    int after = 0;
    auto parent = [&]() -> braid::task<int> {
        const int v = co_await child();
        co_await braid::sleep_for(1s); // not cancelled: the cancellation was consumed
        after = v;
        co_return v * 10;
    };
    braid::task<int> t = parent();
    loop.spawn(t);
    loop.call_later(1s, [&] { t.cancel(); });
    loop.run();
    CHECK(t.result() == -10);
    CHECK(after == -1);
    CHECK_FALSE(t.cancelled());
}

TEST_CASE("a task may catch braid::cancelled, clean up with awaits, and return normally",
          "[cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<std::string> log;
    auto worker = [&]() -> braid::task<int> {
        try {
            co_await braid::sleep_for(1h);
        } catch (const braid::cancelled&) {
            log.push_back("cleaning up");
        }
        co_await braid::sleep_for(5s); // awaiting during clean-up is allowed
        log.push_back("clean");
        co_return 42;
    };
    braid::task<int> t = worker();
    loop.spawn(t);
    loop.call_later(1s, [&] { t.cancel(); });
    loop.run();
    CHECK(log == std::vector<std::string>{"cleaning up", "clean"});
    CHECK(t.result() == 42);
    CHECK_FALSE(t.cancelled());
    CHECK(clock.now().time_since_epoch() == 6s);
}

TEST_CASE("done callbacks run for a cancelled task, which never reaches the exception handler",
          "[cancel][errors]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    int handled = 0;
    loop.set_exception_handler([&](std::exception_ptr) { ++handled; });
    std::vector<std::string> seen;
    braid::task<int> observed = sleeper(1h, 1);
    observed.add_done_callback([&](braid::task<int>& t) { seen.push_back(ending(t)); });
    loop.spawn(observed);
    // Fire-and-forget: nobody looks at it, and a cancellation is not an error.
    braid::task<int> forgotten = sleeper(1h, 2);
    loop.spawn(forgotten);
    loop.call_later(1s, [&, f = &forgotten] {
        observed.cancel();
        f->cancel();
    });
    loop.run();
    CHECK(seen == std::vector<std::string>{"cancelled"});
    CHECK(handled == 0);
}

TEST_CASE("a child tree five deep cancelled from the top frees every frame", "[cancel][lifetime]") {
    tracked::alive = 0;
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    std::vector<int> unwound;
    std::function<braid::task<int>(int, tracked)> level = [&](int depth,
                                                              tracked) -> braid::task<int> {
        try {
            if (depth == 5) {
                co_await braid::sleep_for(1h);
                co_return 0;
            }
            co_return co_await level(depth + 1, tracked{});
        } catch (const braid::cancelled&) {
            unwound.push_back(depth);
            throw;
        }
    };
    braid::task<int> top = level(1, tracked{});
    loop.spawn(top);
    loop.call_later(1s, [&] { top.cancel(); });
    loop.run();
    CHECK(unwound == std::vector<int>{5, 4, 3, 2, 1});
    CHECK(top.cancelled());
    top = {};
    CHECK(tracked::alive == 0);
}

TEST_CASE("cancel racing completion: cancelled from a sibling's done callback, and a task that "
          "finishes in the same round",
          "[cancel][race]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    // A sleeps 1 s; B sleeps 1 s too and, when done, cancels A. Both are due in
    // the same collection: A's wake-up runs first, so A finishes before B's
    // callback cancels it, and the cancel says false.
    braid::task<int> a = sleeper(1s, 1);
    braid::task<int> b = sleeper(1s, 2);
    bool cancel_said = true;
    b.add_done_callback([&](braid::task<int>&) { cancel_said = a.cancel(); });
    loop.spawn(a);
    loop.spawn(b);
    loop.run();
    CHECK_FALSE(cancel_said);
    CHECK(a.result() == 1);
    // The other order: B is woken first, cancels A, which is ready to run: A
    // gets braid::cancelled from its sleep.
    braid::task<int> c = sleeper(2s, 3);
    braid::task<int> d = sleeper(1s, 4);
    d.add_done_callback([&](braid::task<int>&) { cancel_said = c.cancel(); });
    loop.spawn(c);
    loop.spawn(d);
    loop.run();
    CHECK(cancel_said);
    CHECK(c.cancelled());
    // A task whose wake-up is queued (its timer fired) but has not run yet.
    braid::task<int> e = sleeper(1s, 5);
    loop.spawn(e);
    loop.call_later(1s, [&] { CHECK(e.cancel()); }); // after e's timer: e is in the queue
    loop.run();
    CHECK(e.cancelled());
}

TEST_CASE("the stop token is requested when the task is cancelled", "[cancel][stop_token]") {
    braid::thread_pool pool(1);
    braid::event_loop loop;
    std::atomic<int> polls{0};
    auto worker = [&]() -> braid::task<bool> {
        std::stop_token stop = co_await braid::get_stop_token();
        CHECK_FALSE(stop.stop_requested());
        // Blocking work on a worker that polls the token. (Named, not
        // written inside the co_await: g++ 12 destroys the captures of a
        // lambda in a co_await expression twice, gcc.gnu.org/PR100611.)
        auto poll_until_stopped = [stop, &polls] {
            while (!stop.stop_requested()) {
                ++polls;
                std::this_thread::sleep_for(100us);
            }
            return true;
        };
        co_return co_await braid::run_in(pool, poll_until_stopped);
    };
    braid::task<bool> t = worker();
    loop.spawn(t);
    auto canceller = [&]() -> braid::task<> {
        while (polls.load() == 0) {
            co_await braid::sleep_for(1ms);
        }
        t.cancel();
    };
    loop.run_until_complete(canceller());
    loop.run();
    CHECK(t.cancelled());
    pool.shutdown(); // the worker saw the token and returned
    // A token asked for after the cancellation is requested already.
    auto late = [&]() -> braid::task<bool> {
        try {
            co_await braid::yield();
        } catch (const braid::cancelled&) {
        }
        std::stop_token stop = co_await braid::get_stop_token();
        co_return stop.stop_requested();
    };
    braid::task<bool> l = late();
    loop.spawn(l);
    auto cancel_late = [&]() -> braid::task<> {
        l.cancel(); // l waits in the ready queue, at its first yield
        co_return;
    };
    loop.spawn(cancel_late());
    loop.run();
    CHECK(l.result());
}

TEST_CASE(
    "a cancelled wait on a descriptor stops at once, and the descriptor can be waited on again",
    "[cancel][io]") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    braid::event_loop loop;
    auto reader = [&]() -> braid::task<> { co_await braid::readable(fds[0]); };
    braid::task<> t = reader();
    loop.spawn(t);
    auto canceller = [&]() -> braid::task<> {
        co_await braid::yield(); // t waits on the pipe now
        CHECK(t.cancel());
    };
    loop.run_until_complete(canceller());
    loop.run(); // returns: nothing waits on the pipe any more
    CHECK(t.cancelled());
    // Not left registered: another task can wait on it, and is woken.
    REQUIRE(::write(fds[1], "x", 1) == 1);
    loop.run_until_complete(reader());
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("a task cancelled in read_some gets braid::cancelled, and the stream stays usable",
          "[cancel][io]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    auto scenario = [&]() -> braid::task<std::string> {
        braid::tcp_stream client =
            co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        braid::tcp_stream server = co_await listener.accept();
        char buffer[16];
        auto read_one = [&]() -> braid::task<std::size_t> {
            co_return co_await server.read_some(std::span<char>(buffer));
        };
        braid::task<std::size_t> waiting = read_one();
        loop.spawn(waiting);
        co_await braid::yield(); // it waits for data now
        CHECK(waiting.cancel());
        co_await braid::yield();
        CHECK(waiting.cancelled());
        co_await client.write_all(std::string_view("hello"));
        const std::size_t n = co_await read_one();
        co_return std::string(buffer, n);
    };
    CHECK(loop.run_until_complete(scenario()) == "hello");
}
