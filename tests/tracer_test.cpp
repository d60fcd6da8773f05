// SPDX-License-Identifier: MIT
// loop.set_tracer: what an observer of the loop is told, in order, for small
// known schedules. A recording tracer turns the calls into lines.

#include <braid/braid.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/descriptors.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;

namespace {

class recorder final : public braid::tracer {
public:
    std::vector<std::string> lines;

    void on_spawn(const void* t, std::string_view name, time_point) override {
        names_[t] = std::string(name);
        lines.push_back("spawn " + names_[t]);
    }
    void on_resume(const void* t, std::string_view, time_point) override {
        lines.push_back("resume " + label(t));
    }
    void on_suspend(const void* t, braid::suspend_reason why, time_point) override {
        lines.push_back("suspend " + label(t) + " " + std::string(braid::to_string(why)));
    }
    void on_finish(const void* t, braid::task_ending how, time_point) override {
        lines.push_back("finish " + label(t) + " " + std::string(braid::to_string(how)));
    }
    void on_callback_begin(time_point) override { lines.push_back("callback"); }
    void on_callback_end(time_point) override { lines.push_back("callback end"); }
    void on_timer(time_point) override { lines.push_back("timer"); }
    void on_wakeup(time_point) override { lines.push_back("wakeup"); }

private:
    std::string label(const void* t) {
        auto it = names_.find(t);
        return it == names_.end() ? std::string("?") : it->second;
    }
    std::map<const void*, std::string> names_;
};

braid::task<int> steps(int n) {
    for (int i = 0; i < n; ++i) {
        co_await braid::yield();
    }
    co_return n;
}

} // namespace

TEST_CASE("a tracer sees each step of each task, with why it ended", "[tracer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    recorder trace;
    loop.set_tracer(&trace);
    loop.spawn(steps(1).set_name("a"));
    auto sleeper = []() -> braid::task<> { co_await braid::sleep_for(1s); };
    loop.spawn(sleeper().set_name("b"));
    loop.call_soon([] {});
    loop.run();
    CHECK(trace.lines == std::vector<std::string>{"spawn a", "spawn b",          //
                                                  "resume a", "suspend a yield", // round 1
                                                  "resume b", "suspend b sleep", // round 2
                                                  "callback", "callback end",    // round 3
                                                  "resume a", "finish a value",  // round 4
                                                  "timer", "resume b",
                                                  "finish b value"}); // the clock jumps
    loop.set_tracer(nullptr);
}

// run_in, async_next and when_all are tasks: a task awaiting one starts it
// inside its own step and shows `await`; spawned, each shows what it waits for.
TEST_CASE("a tracer is told what a task waits for: another thread, a stream, a descriptor, a "
          "group",
          "[tracer]") {
    braid::thread_pool pool(1);
    braid::stream_executor executor(1);
    braid::event_loop loop;
    recorder trace;
    loop.set_tracer(&trace);
    braid_test::test_pipe pipe;
    // In body, each wait is released by a callback queued just before it,
    // which runs once the task has suspended, so that no wait is over before
    // it begins. (run_in suspends whatever its work does: its result comes
    // back through the loop.)
    braid_test::gate worked;
    braid_test::gate worked_again;
    braid_test::gate mapped;
    std::atomic<bool> mapping{false};
    auto results = executor.map(
        [&](int x) {
            mapping = true;
            (void)mapped.wait();
            return x;
        },
        std::vector<int>{1, 2}, 1);
    auto body = [&]() -> braid::task<> {
        loop.call_soon([&] { worked.open(); });
        co_await braid::run_in(pool, [&] { return worked.wait(); });
        loop.call_soon([&] { (void)::write(pipe.write_end, "x", 1); });
        co_await braid::readable(pipe.read_end);
        braid::task_group group{loop};
        group.spawn(steps(1));
        co_await group.wait();
    };
    loop.run_until_complete(body().set_name("body"));
    loop.call_soon([&] { worked_again.open(); });
    loop.run_until_complete(
        braid::run_in(pool, [&] { return worked_again.wait(); }).set_name("run_in"));
    // Result 1 is being computed (so its input's arrival cannot wake the
    // reader early); the gate opens after the reader's first step.
    REQUIRE(braid_test::wait_until([&] { return mapping.load(); }));
    loop.call_soon([&] { loop.call_soon([&] { mapped.open(); }); });
    loop.run_until_complete(results.async_next().set_name("async_next"));
    loop.run_until_complete(braid::when_all(steps(1)).set_name("when_all"));
    loop.set_tracer(nullptr);
    std::vector<std::string> waits;
    for (const std::string& line : trace.lines) {
        if (line.rfind("suspend ", 0) == 0 && line.rfind("suspend  ", 0) != 0) {
            waits.push_back(line.substr(8));
        }
    }
    CHECK(waits == std::vector<std::string>{"body await", "body io", "body group", "run_in thread",
                                            "async_next stream", "when_all group"});
}

TEST_CASE("a child finishing hands the step to its parent, and cancellation shows as an ending",
          "[tracer]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    recorder trace;
    loop.set_tracer(&trace);
    auto child = []() -> braid::task<int> {
        co_await braid::yield();
        co_return 1;
    };
    auto parent = [&]() -> braid::task<int> { co_return co_await child().set_name("child"); };
    braid::task<int> p = parent();
    loop.spawn(p.set_name("parent"));
    loop.run();
    // The child started inside the parent's first step, and yielded; the
    // parent waits on it; the child's next step finishes it and the parent
    // goes on in the same step.
    CHECK(trace.lines == std::vector<std::string>{
                             "spawn parent", "resume parent", "suspend parent await", "resume ?",
                             "finish ? value", "resume parent", "finish parent value"});
    trace.lines.clear();
    braid::task<> forever = []() -> braid::task<> {
        for (;;) {
            co_await braid::sleep_for(1h);
        }
    }();
    loop.spawn(forever.set_name("forever"));
    loop.call_later(1s, [&] { forever.cancel(); });
    loop.run();
    CHECK(trace.lines.back() == "finish forever cancelled");
    loop.set_tracer(nullptr);
}

TEST_CASE("installing a tracer mid-run takes effect at the next step, and removing it too",
          "[tracer]") {
    braid::event_loop loop;
    recorder trace;
    auto body = [&]() -> braid::task<> {
        co_await braid::yield();
        loop.set_tracer(&trace);
        co_await braid::yield();
        co_await braid::yield();
        loop.set_tracer(nullptr);
        co_await braid::yield();
    };
    loop.spawn(body().set_name("t"));
    loop.run();
    CHECK(trace.lines ==
          std::vector<std::string>{"resume ?", "suspend ? yield", "resume ?", "suspend ? yield"});
}

TEST_CASE("a wait that a pending cancellation ends as it begins shows as that wait",
          "[tracer][cancel]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    recorder trace;
    loop.set_tracer(&trace);
    braid::task<>* self = nullptr;
    auto body = [&]() -> braid::task<> {
        self->cancel(); // pending: the sleep below ends as it begins
        co_await braid::sleep_for(1h);
    };
    braid::task<> t = body();
    self = &t;
    loop.spawn(t.set_name("t"));
    loop.run();
    CHECK(t.cancelled());
    CHECK(clock.now().time_since_epoch() == 0s);
    CHECK(trace.lines == std::vector<std::string>{"spawn t", "resume t", "suspend t sleep",
                                                  "resume t", "finish t cancelled"});
    loop.set_tracer(nullptr);
}
