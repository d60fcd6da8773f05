// SPDX-License-Identifier: MIT
// braid::chrome_tracer: the trace-event JSON it writes for small known
// schedules, read back with nlohmann/json (a dependency of this test only).
// A manual clock, advanced inside the steps, gives every event a known time.

#include <braid/braid.hpp>

#include "support/catch.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// A trace read back, with the questions the tests ask of it.
struct trace {
    json events;

    explicit trace(const std::string& text) : events(json::parse(text)) {}

    // The metadata event `name` ("thread_name", ...) about `id`: a tid, or a
    // pid for process metadata.
    std::vector<json> metadata(const std::string& name) const {
        std::vector<json> found;
        for (const json& e : events) {
            if (e["ph"] == "M" && e["name"] == name) {
                found.push_back(e);
            }
        }
        return found;
    }
    // The tid of the track named `name` in the group `pid` (0: any group).
    std::int64_t track(const std::string& name, std::int64_t pid = 0) const {
        std::vector<std::int64_t> tids;
        for (const json& e : metadata("thread_name")) {
            if (e["args"]["name"] == name && (pid == 0 || e["pid"] == pid)) {
                tids.push_back(e["tid"]);
            }
        }
        REQUIRE(tids.size() == 1);
        return tids.front();
    }
    std::vector<std::string> track_names(std::int64_t pid) const {
        std::vector<std::pair<std::int64_t, std::string>> tracks; // by sort index
        for (const json& e : metadata("thread_sort_index")) {
            if (e["pid"] == pid) {
                tracks.emplace_back(e["args"]["sort_index"], name_of(e["tid"]));
            }
        }
        std::sort(tracks.begin(), tracks.end());
        std::vector<std::string> names;
        for (auto& t : tracks) {
            names.push_back(t.second);
        }
        return names;
    }
    std::string name_of(std::int64_t tid) const {
        for (const json& e : metadata("thread_name")) {
            if (e["tid"] == tid) {
                return e["args"]["name"];
            }
        }
        return "?";
    }
    // The events on a track other than metadata, in time order (the file
    // writes a step's slice when the step ends: not in time order).
    std::vector<json> on(std::int64_t tid) const {
        std::vector<json> found;
        for (const json& e : events) {
            if (e["ph"] != "M" && e["tid"] == tid) {
                found.push_back(e);
            }
        }
        std::stable_sort(found.begin(), found.end(), [](const json& a, const json& b) {
            return a["ts"].get<double>() < b["ts"].get<double>();
        });
        return found;
    }
};

// A slice or instant as one line: "X 1.5+2.25 name suspended=yield",
// "i 0 spawn". Times in microseconds, as the file has them.
std::string describe(const json& e) {
    std::ostringstream out;
    out << std::setprecision(12) << e["ph"].get<std::string>() << ' ' << e["ts"].get<double>();
    if (e.contains("dur")) {
        out << '+' << e["dur"].get<double>();
    }
    out << ' ' << e["name"].get<std::string>();
    if (e.contains("args")) {
        for (auto& [key, value] : e["args"].items()) {
            out << ' ' << key << '=' << value.get<std::string>();
        }
    }
    return out.str();
}

std::vector<std::string> describe(const std::vector<json>& events) {
    std::vector<std::string> lines;
    std::transform(events.begin(), events.end(), std::back_inserter(lines),
                   [](const json& e) { return describe(e); });
    return lines;
}

double end_of(const json& slice) {
    return slice["ts"].get<double>() + slice["dur"].get<double>();
}

braid::task<> work(braid::manual_clock& clock, std::vector<std::chrono::nanoseconds> steps) {
    for (std::size_t i = 0; i < steps.size(); ++i) {
        clock.advance(steps[i]);
        if (i + 1 < steps.size()) {
            co_await braid::yield();
        }
    }
}

} // namespace

TEST_CASE("a trace has a track per task with a slice per step, and the loop's own track",
          "[chrome_tracer]") {
    std::ostringstream out;
    {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        braid::chrome_tracer tracer(out);
        loop.set_tracer(&tracer);
        loop.spawn(work(clock, {1'234'567ns, 1ns}).set_name("worker"));
        loop.spawn([]() -> braid::task<> { co_await braid::sleep_for(1ms); }());
        loop.call_soon([&] { clock.advance(100ns); });
        loop.call_soon_threadsafe([] {});
        loop.run();
        loop.set_tracer(nullptr);
    }
    const trace t(out.str());

    // The only group, and its tracks: the loop's first, then the tasks in
    // the order they appeared, a task without a name numbered.
    REQUIRE(t.metadata("process_name").size() == 1);
    const std::int64_t pid = t.metadata("process_name")[0]["pid"];
    CHECK(t.metadata("process_name")[0]["args"]["name"] == "braid::event_loop");
    CHECK(t.track_names(pid) == std::vector<std::string>{"loop", "worker", "task 2"});

    // Round 1: the worker's first step (1234.567 µs); round 2: task 2 sleeps;
    // round 3 and 4: the callbacks (the first takes 0.1 µs); round 5: the
    // worker's last step (1 ns); then the clock jumps to the timer.
    CHECK(describe(t.on(t.track("worker"))) ==
          std::vector<std::string>{"i 0 spawn", "X 0+1234.567 worker suspended=yield",
                                   "X 1234.667+0.001 worker finished=value"});
    CHECK(describe(t.on(t.track("task 2"))) ==
          std::vector<std::string>{"i 0 spawn", "X 1234.567+0 task 2 suspended=sleep",
                                   "X 2234.567+0 task 2 finished=value"});
    CHECK(describe(t.on(t.track("loop"))) ==
          std::vector<std::string>{"i 0 wake-up", "X 1234.567+0.1 callback",
                                   "X 1234.667+0 callback", "i 2234.567 timer"});

    // Times are written to the nanosecond, as fractions of a microsecond.
    CHECK(out.str().find(R"("ts":1234.667,"dur":0.001,)") != std::string::npos);
    // Every event has the fields the viewers need.
    for (const json& e : t.events) {
        CHECK(e.contains("ph"));
        CHECK(e.contains("pid"));
        CHECK(e.contains("name"));
        if (e["ph"] != "M") {
            CHECK(e.contains("tid"));
            CHECK(e.contains("ts"));
            CHECK(e.contains("cat"));
        }
    }
}

TEST_CASE("a child's steps are on its own track, between the steps of the task awaiting it",
          "[chrome_tracer]") {
    std::ostringstream out;
    {
        braid::manual_clock clock;
        braid::event_loop loop{braid::interleaved, clock};
        braid::chrome_tracer tracer(out);
        loop.set_tracer(&tracer);
        auto child = [&]() -> braid::task<int> {
            clock.advance(1us); // inside the parent's first step
            co_await braid::yield();
            clock.advance(2us);
            co_return 1;
        };
        auto parent = [&]() -> braid::task<int> {
            clock.advance(1us);
            int r = co_await child();
            clock.advance(4us);
            co_return r;
        };
        loop.spawn(parent().set_name("parent"));
        loop.run();
        loop.set_tracer(nullptr);
    }
    const trace t(out.str());
    const std::vector<json> parent = t.on(t.track("parent"));
    const std::vector<json> child = t.on(t.track("task 2"));
    CHECK(describe(parent) == std::vector<std::string>{"i 0 spawn", "X 0+2 parent suspended=await",
                                                       "X 4+4 parent finished=value"});
    CHECK(describe(child) == std::vector<std::string>{"X 2+2 task 2 finished=value"});
    // The child's step lies after the parent's first step, and the parent's
    // second step goes on from where the child's ended (the same step of the
    // loop).
    CHECK(child[0]["ts"].get<double>() >= end_of(parent[1]));
    CHECK(end_of(child[0]) == parent[2]["ts"].get<double>());
}

TEST_CASE("groups put each loop's tracks under a name of their own, with ids never shared",
          "[chrome_tracer]") {
    std::ostringstream out;
    {
        braid::chrome_tracer tracer(out);
        for (const char* name : {"first run", "second run"}) {
            braid::manual_clock clock;
            braid::event_loop loop{clock};
            tracer.begin_group(name);
            loop.set_tracer(&tracer);
            loop.spawn(work(clock, {1us, 1us}));
            loop.spawn(work(clock, {1us}).set_name("short"));
            loop.run();
            loop.set_tracer(nullptr);
        }
    }
    const trace t(out.str());
    const std::vector<json> groups = t.metadata("process_name");
    REQUIRE(groups.size() == 2);
    CHECK(groups[0]["args"]["name"] == "first run");
    CHECK(groups[1]["args"]["name"] == "second run");
    std::set<std::int64_t> ids;
    for (const json& g : groups) {
        // Numbered anew in each group.
        CHECK(t.track_names(g["pid"]) == std::vector<std::string>{"task 1", "short"});
        ids.insert(g["pid"].get<std::int64_t>());
    }
    // Viewers key tracks by tid alone: no tid is reused, nor equal to a pid.
    for (const json& e : t.metadata("thread_name")) {
        CHECK(ids.insert(e["tid"].get<std::int64_t>()).second);
    }
    CHECK(describe(t.on(t.track("short", groups[1]["pid"]))) ==
          std::vector<std::string>{"i 0 spawn", "X 1+1 short finished=value"});
}

TEST_CASE("a group begun inside a step ends that step on its old track, and the task goes on in "
          "the new group",
          "[chrome_tracer]") {
    std::ostringstream out;
    {
        braid::chrome_tracer tracer(out);
        braid::manual_clock clock;
        braid::event_loop loop{clock};
        tracer.begin_group("before");
        loop.set_tracer(&tracer);
        auto mover = [&]() -> braid::task<> {
            clock.advance(1us);
            tracer.begin_group("after");
            co_await braid::yield();
            clock.advance(1us);
        };
        loop.spawn(work(clock, {1us, 1us}).set_name("other"));
        loop.spawn(mover().set_name("mover"));
        loop.run();
        loop.set_tracer(nullptr);
    }
    const trace t(out.str());
    const std::vector<json> groups = t.metadata("process_name");
    REQUIRE(groups.size() == 2);
    const std::int64_t before = groups[0]["pid"];
    const std::int64_t after = groups[1]["pid"];
    CHECK(describe(t.on(t.track("mover", before))) ==
          std::vector<std::string>{"i 0 spawn", "X 1+1 mover suspended=yield"});
    CHECK(describe(t.on(t.track("mover", after))) ==
          std::vector<std::string>{"X 3+1 mover finished=value"});
    CHECK(describe(t.on(t.track("other", after))) ==
          std::vector<std::string>{"X 2+1 other finished=value"});
}

TEST_CASE("any task name gives valid JSON, and comes back as it was when it is UTF-8",
          "[chrome_tracer]") {
    const std::string readable =
        "quote \" backslash \\ newline \n tab \t bell \x07 caf\xC3\xA9 \xE2\x9C\x93";
    std::ostringstream out;
    {
        braid::event_loop loop;
        braid::chrome_tracer tracer(out);
        loop.set_tracer(&tracer);
        loop.spawn([]() -> braid::task<> { co_return; }().set_name(readable));
        // Not UTF-8: a stray continuation byte, a truncated sequence, an
        // overlong '/', a surrogate, and a code point past U+10FFFF.
        loop.spawn([]() -> braid::task<> { co_return; }().set_name(
                            "a\x80 b\xE2\x9C c\xC0\xAF d\xED\xA0\x80 e\xF4\x90\x80\x80"));
        loop.run();
        loop.set_tracer(nullptr);
    }
    const trace t(out.str());
    CHECK(t.name_of(t.track(readable)) == readable);
    const std::string replaced =
        "a\xEF\xBF\xBD b\xEF\xBF\xBD\xEF\xBF\xBD c\xEF\xBF\xBD\xEF\xBF\xBD "
        "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
        "e\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
    CHECK(t.name_of(t.track(replaced)) == replaced);
}

TEST_CASE("a trace is a JSON array once closed, and whole events after each flush",
          "[chrome_tracer]") {
    std::ostringstream out;
    braid::manual_clock clock;
    braid::event_loop loop{clock};
    braid::chrome_tracer tracer(out);
    tracer.flush();
    CHECK(trace(out.str() + "]").events.empty());
    loop.set_tracer(&tracer);
    loop.spawn(work(clock, {1us, 1us}));
    loop.run();
    tracer.flush();
    // What a program that ends here leaves: the viewers add the bracket.
    const std::string cut = out.str();
    CHECK(cut.back() != ']');
    const std::size_t events = trace(cut + "]").events.size();
    CHECK(events > 0);
    tracer.close();
    CHECK(trace(out.str()).events.size() == events);
    // Closed: later events are not written, and closing again does nothing.
    loop.spawn(work(clock, {1us}));
    loop.run();
    loop.set_tracer(nullptr);
    tracer.close();
    CHECK(trace(out.str()).events.size() == events);
}

TEST_CASE("a trace file is complete when its tracer is destroyed", "[chrome_tracer]") {
    const std::filesystem::path path =
        std::filesystem::temp_directory_path() /
        ("braid_chrome_tracer_" + std::to_string(::getpid()) + ".json");
    {
        braid::manual_clock clock;
        braid::event_loop loop{clock};
        braid::chrome_tracer tracer(path);
        loop.set_tracer(&tracer);
        loop.spawn(work(clock, {1ns}).set_name("only"));
        loop.run();
        loop.set_tracer(nullptr);
    }
    std::ifstream in(path);
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    std::filesystem::remove(path);
    const trace t(text);
    CHECK(describe(t.on(t.track("only"))) ==
          std::vector<std::string>{"i 0 spawn", "X 0+0.001 only finished=value"});
}

TEST_CASE("a trace whose writing fails is an error at close, not a silent partial file",
          "[chrome_tracer]") {
    if (std::filesystem::exists("/dev/full")) { // Linux's
        braid::manual_clock clock;
        braid::event_loop loop{clock};
        // A full disk: /dev/full opens, and every write to it fails.
        braid::chrome_tracer to_full_disk(std::filesystem::path("/dev/full"));
        loop.set_tracer(&to_full_disk);
        loop.spawn(work(clock, {1us}));
        loop.run();
        loop.set_tracer(nullptr);
        REQUIRE_THROWS_AS(to_full_disk.close(), std::runtime_error);
        CHECK_NOTHROW(to_full_disk.close()); // said once
    }
    std::ostringstream broken;
    broken.setstate(std::ios::badbit);
    braid::chrome_tracer to_stream(broken);
    REQUIRE_THROWS_WITH(
        to_stream.close(),
        braid_test::contains("braid::chrome_tracer::close: writing the trace failed"));
    {
        std::ostringstream also_broken;
        also_broken.setstate(std::ios::badbit);
        braid::chrome_tracer dropped(also_broken); // its destructor cannot report it, nor throws
    }
}

TEST_CASE("a trace file that cannot be opened is an error naming the file", "[chrome_tracer]") {
    REQUIRE_THROWS_AS(braid::chrome_tracer("/nonexistent-directory/trace.json"), std::system_error);
    REQUIRE_THROWS_WITH(braid::chrome_tracer("/nonexistent-directory/trace.json"),
                        braid_test::contains("/nonexistent-directory/trace.json"));
}
