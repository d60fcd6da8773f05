// SPDX-License-Identifier: MIT
//
// Timers on the event loop: a heartbeat that reschedules itself with
// call_later, a countdown task that sleeps between its lines, and an alarm
// cancelled before it fires.
//
// The loop runs on a manual clock, so the program takes no time and prints
// the same thing on every run: when nothing is ready, the loop moves the
// clock to the next deadline. Make the loop with `braid::event_loop loop;`
// and the same code runs in real time (about five seconds).

#include <braid/event_loop.hpp>

#include <chrono>
#include <cstdio>
#include <functional>

using namespace std::chrono_literals;

int main() {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    const auto start = loop.time();
    auto say = [&](const char* what) {
        const std::chrono::duration<double> t = loop.time() - start;
        std::printf("%4.1fs  %s\n", t.count(), what);
    };

    // A heartbeat every 1.5 s: each beat schedules the next.
    braid::timer_handle heartbeat;
    std::function<void()> beat = [&] {
        say("heartbeat");
        heartbeat = loop.call_later(1500ms, beat);
    };
    heartbeat = loop.call_later(1500ms, beat);

    // An alarm for 10 s, called off at 2 s.
    braid::timer_handle alarm = loop.call_later(10s, [&] { say("alarm (never printed)"); });
    loop.call_later(2s, [&] { say(alarm.cancel() ? "alarm cancelled" : "alarm already rang"); });

    // A countdown: a task that sleeps a second between lines, then stops the
    // heartbeat.
    auto countdown = [&](int from) -> braid::task<> {
        char line[32];
        for (int i = from; i > 0; --i) {
            std::snprintf(line, sizeof line, "countdown %d", i);
            say(line);
            co_await braid::sleep_for(1s);
        }
        say("liftoff");
        heartbeat.cancel();
    };
    loop.run_until_complete(countdown(5));

    loop.run(); // returns at once: every timer has run or been cancelled
    say("done");
}
