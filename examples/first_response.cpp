// SPDX-License-Identifier: MIT
//
// Ask several mirrors for the same file and take the first answer:
// braid::when_any races the requests, each bounded by braid::wait_for; the
// losers are cancelled, and each prints its clean-up as it unwinds.
//
// The delays are random (a fixed seed) and the loop runs on a manual clock,
// so the program takes no time and prints the same thing on every run.

#include <braid/braid.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

braid::manual_clock clock_;

void say(const std::string& line) {
    const std::chrono::duration<double> t = clock_.now().time_since_epoch();
    std::printf("%6.3fs  %s\n", t.count(), line.c_str());
}

// One request: sends, waits for the answer (the delay stands for the
// network), and closes its connection however it ends.
braid::task<std::string> fetch(std::string mirror, std::chrono::milliseconds delay) {
    say(mirror + ": request sent (answers in " + std::to_string(delay.count()) + " ms)");
    try {
        co_await braid::sleep_for(delay);
    } catch (const braid::cancelled&) {
        say(mirror + ": cancelled, closing the connection");
        throw; // stay cancelled
    }
    say(mirror + ": answered");
    co_return "file from " + mirror;
}

// Races every mirror, each bounded by `timeout`.
braid::task<> race(const std::vector<std::string>& mirrors, std::mt19937& rng,
                   std::chrono::milliseconds timeout) {
    std::vector<braid::task<std::string>> requests;
    for (const std::string& mirror : mirrors) {
        const std::chrono::milliseconds delay(100 + rng() % 400);
        requests.push_back(braid::wait_for(fetch(mirror, delay), timeout));
    }
    try {
        auto [index, file] = co_await braid::when_any(std::move(requests));
        say("winner: " + mirrors[index] + " -> \"" + file + "\"");
    } catch (const braid::timeout_error&) {
        say("no mirror answered within " + std::to_string(timeout.count()) + " ms");
    }
}

} // namespace

int main() {
    braid::event_loop loop{braid::interleaved, clock_};
    std::mt19937 rng(2026); // std::mt19937's output is the same everywhere
    const std::vector<std::string> mirrors{"eu", "us", "asia", "backup"};

    say("round 1: a 300 ms timeout per request");
    loop.run_until_complete(race(mirrors, rng, 300ms));
    say("round 2: a 100 ms timeout per request");
    loop.run_until_complete(race(mirrors, rng, 100ms));
    loop.run(); // nothing is left running: when_any waited for every loser
    say("done");
}
