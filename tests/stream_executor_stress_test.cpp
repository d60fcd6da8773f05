// SPDX-License-Identifier: MIT
// Randomized runs of stream_executor::map: 1-4 threads, buffers 1-64 (and
// sometimes unbounded), pipelines 1-3 stages deep, fast, slow and throwing
// f and inputs (read by a producer, or a vector the workers read by
// position), readers that stop early or race a shutdown. Every run must
// keep every stage's bound, give exactly the expected results and the
// expected exception at its position, free every item and join every thread.
//
// Reproduce one run: BRAID_STRESS_SEED=<seed> BRAID_STRESS_RUNS=1.

#include <braid/stream_executor.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/env.hpp"
#include "support/stream_inputs.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace braid_test;

namespace {

using braid_test::env_or;

struct item {
    std::uint64_t index;
    std::int64_t value;
    atomic_counted tag;
};

struct f_failure : std::runtime_error {
    f_failure(int stage_, std::uint64_t at)
        : std::runtime_error("stage " + std::to_string(stage_) + " failed at " +
                             std::to_string(at)),
          stage(stage_), index(at) {}
    int stage;
    std::uint64_t index;
};

// An element of a source the workers read by position: copying it takes
// the item (so the bound is checked where the copy is made), and can throw.
struct positioned {
    positioned(std::uint64_t i, take_log& log, std::atomic<std::uint64_t>& copies,
               std::uint64_t throw_at)
        : index(i), log_(&log), copies_(&copies), throw_at_(throw_at) {}
    positioned(const positioned& other)
        : index(other.index), log_(other.log_), copies_(other.copies_), throw_at_(other.throw_at_) {
        if (index == throw_at_)
            throw input_failure(index);
        log_->record_take(copies_->fetch_add(1) + 1);
    }
    positioned(positioned&&) noexcept = default;
    positioned& operator=(const positioned&) = delete;
    positioned& operator=(positioned&&) = delete;
    operator std::uint64_t() const { return index; }

    std::uint64_t index;

private:
    take_log* log_;
    std::atomic<std::uint64_t>* copies_;
    std::uint64_t throw_at_;
};

enum class speed { fast, slow };
enum class source_kind { producer, by_position_owned, by_position_referenced };

struct config {
    std::uint64_t seed;
    std::size_t threads;
    int depth;
    std::uint64_t buffers[3];
    bool unbounded[3];
    speed speeds[3];
    std::uint64_t f_throw[3];
    input_options source;
    source_kind kind;
    std::uint64_t read_at_most;
    bool shutdown_midway;
    bool pauses;

    std::string describe() const {
        std::ostringstream out;
        out << "seed " << seed << ": threads " << threads << ", depth " << depth << ", source size "
            << (source.size == no_index ? std::string("infinite") : std::to_string(source.size));
        for (int i = 0; i < depth; ++i) {
            out << ", stage " << i << " buffer "
                << (unbounded[i] ? std::string("unbounded") : std::to_string(buffers[i]))
                << (speeds[i] == speed::slow ? " slow" : " fast");
            if (f_throw[i] != no_index)
                out << " throws at " << f_throw[i];
        }
        if (source.throw_on_take != no_index)
            out << ", input throws taking " << source.throw_on_take;
        if (source.throw_on_read != no_index)
            out << ", input throws reading " << source.throw_on_read;
        if (kind != source_kind::producer)
            out << ", a vector read by position ("
                << (kind == source_kind::by_position_owned ? "owned" : "referenced") << ")";
        out << ", reads at most " << read_at_most << (shutdown_midway ? ", shuts down midway" : "");
        return out.str();
    }
};

config make_config(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
        return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    };
    auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };
    config c{};
    c.seed = seed;
    c.threads = pick(1, 4);
    c.depth = static_cast<int>(pick(1, 3));
    const bool finite = chance(0.6);
    c.source.size = finite ? pick(0, 300) : no_index;
    c.source.delay = chance(0.2) ? std::chrono::microseconds(20) : std::chrono::microseconds(0);
    if (chance(0.15))
        c.source.throw_on_take = pick(0, 200);
    if (chance(0.1))
        c.source.throw_on_read = pick(0, 200);
    c.kind = !finite || chance(0.6) ? source_kind::producer
                                    : (chance(0.5) ? source_kind::by_position_owned
                                                   : source_kind::by_position_referenced);
    for (int i = 0; i < 3; ++i) {
        c.buffers[i] = chance(0.3) ? pick(1, 3) : pick(1, 64);
        c.unbounded[i] = finite && chance(0.1);
        c.speeds[i] = chance(0.3) ? speed::slow : speed::fast;
        c.f_throw[i] = chance(0.15) ? pick(0, 200) : no_index;
    }
    c.read_at_most = pick(0, 350);
    c.shutdown_midway = chance(0.1);
    c.pauses = chance(0.2);
    return c;
}

// What the reader must see at position j.
struct expectation {
    enum kinds { value, end, input_error, f_error } kind;
    std::int64_t result = 0;
    int stage = -1;
};

expectation expected_at(const config& c, std::uint64_t j) {
    if (j >= c.source.size)
        return {expectation::end};
    if (j == c.source.throw_on_take || j == c.source.throw_on_read)
        return {expectation::input_error};
    std::int64_t v = static_cast<std::int64_t>(j);
    for (int i = 0; i < c.depth; ++i) {
        if (c.f_throw[i] == j)
            return {expectation::f_error, 0, i};
        v = v * 3 + i + 1;
    }
    return {expectation::value, v, -1};
}

auto stage_function(const config& c, int stage) {
    return [&c, stage](const auto& in) {
        std::uint64_t index = 0;
        std::int64_t value = 0;
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(in)>, item>) {
            index = in.index;
            value = in.value;
        } else {
            index = in;
            value = static_cast<std::int64_t>(in);
        }
        if (c.speeds[stage] == speed::slow && index % 4 == 1)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (index == c.f_throw[stage])
            throw f_failure(stage, index);
        return item{index, value * 3 + stage + 1, atomic_counted{}};
    };
}

braid::stream_buffer buffer_of(const config& c, int stage) {
    return c.unbounded[stage] ? braid::unbounded : braid::stream_buffer(c.buffers[stage]);
}

// Reads like a user who stops early; returns a description of any mismatch.
template <class Results>
std::string read_and_check(const config& c, braid::stream_executor& ex, Results& results,
                           take_log& log) {
    std::mt19937_64 rng(c.seed ^ 0x5eed);
    auto it = results.begin();
    bool shut = false;
    for (std::uint64_t j = 0; j < c.read_at_most; ++j) {
        if (c.shutdown_midway && !shut && j == c.read_at_most / 2) {
            ex.shutdown();
            shut = true;
        }
        if (c.pauses && rng() % 16 == 0)
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        const expectation e = expected_at(c, j);
        log.requested.store(j + 1);
        try {
            const bool at_end = (it == results.end());
            if (at_end) {
                if (e.kind != expectation::end)
                    return "ended early at " + std::to_string(j);
                return {};
            }
            const item got = *it;
            if (e.kind != expectation::value)
                return "a value where an end or error was due at " + std::to_string(j);
            if (got.index != j || got.value != e.result)
                return "wrong value at " + std::to_string(j);
            ++it;
        } catch (const braid::executor_shut_down&) {
            if (!shut)
                return "executor_shut_down without a shutdown at " + std::to_string(j);
            return {};
        } catch (const input_failure& failure) {
            if (e.kind != expectation::input_error || failure.index != j)
                return "unexpected input_failure at " + std::to_string(j);
            return {};
        } catch (const f_failure& failure) {
            if (e.kind != expectation::f_error || failure.stage != e.stage || failure.index != j) {
                return "unexpected f_failure at " + std::to_string(j);
            }
            return {};
        }
    }
    return {};
}

std::string run_once(const config& c) {
    take_log logs[3]{take_log(c.unbounded[0] ? no_index / 2 : c.buffers[0]),
                     take_log(c.unbounded[1] ? no_index / 2 : c.buffers[1]),
                     take_log(c.unbounded[2] ? no_index / 2 : c.buffers[2])};
    std::string problem;
    // A source read by position: the input's exceptions come from copying.
    std::atomic<std::uint64_t> copies{0};
    std::vector<positioned> vector_source;
    if (c.kind != source_kind::producer) {
        const std::uint64_t throw_at = std::min(c.source.throw_on_take, c.source.throw_on_read);
        vector_source.reserve(c.source.size);
        for (std::uint64_t i = 0; i < c.source.size; ++i)
            vector_source.emplace_back(i, logs[0], copies, throw_at);
    }
    {
        braid::stream_executor ex{c.threads};
        auto run = [&](auto s1) {
            if (c.depth == 1) {
                problem = read_and_check(c, ex, s1, logs[0]);
            } else {
                auto s2 = ex.map(stage_function(c, 1), tapped(std::move(s1), logs[1], &logs[0]),
                                 buffer_of(c, 1));
                if (c.depth == 2) {
                    problem = read_and_check(c, ex, s2, logs[1]);
                } else {
                    auto s3 = ex.map(stage_function(c, 2), tapped(std::move(s2), logs[2], &logs[1]),
                                     buffer_of(c, 2));
                    problem = read_and_check(c, ex, s3, logs[2]);
                }
            }
        };
        switch (c.kind) {
        case source_kind::producer:
            run(ex.map(stage_function(c, 0), taking_input(logs[0], c.source), buffer_of(c, 0)));
            break;
        case source_kind::by_position_owned:
            run(ex.map(stage_function(c, 0), std::move(vector_source), buffer_of(c, 0)));
            break;
        case source_kind::by_position_referenced:
            run(ex.map(stage_function(c, 0), vector_source, buffer_of(c, 0)));
            break;
        }
    }
    for (int i = 0; i < c.depth && problem.empty(); ++i) {
        if (logs[i].over.load())
            problem = "stage " + std::to_string(i) + " took more than its buffer ahead";
    }
    if (problem.empty() && atomic_counted::live().load() != 0) {
        problem =
            std::to_string(atomic_counted::live().load()) + " items leaked or destroyed twice";
    }
    return problem;
}

} // namespace

TEST_CASE("randomized maps and pipelines keep the bound, the order, every exception, and no thread",
          "[stream_executor][stress]") {
    const std::uint64_t base = env_or("BRAID_STRESS_SEED", 20261121);
    const std::uint64_t runs = env_or("BRAID_STRESS_RUNS", 400);
    const auto budget = std::chrono::seconds(env_or("BRAID_STRESS_SECONDS", 4));
    const std::size_t threads_before = baseline_threads();
    const auto started = std::chrono::steady_clock::now();
    atomic_counted::live().store(0);
    std::uint64_t done = 0;
    for (; done < runs && std::chrono::steady_clock::now() - started < budget; ++done) {
        const config c = make_config(base + done);
        INFO(c.describe());
        std::string problem;
        {
            watchdog dog(c.describe());
            problem = run_once(c);
        }
        if (problem.empty() && !threads_settle_to(threads_before))
            problem = "a thread outlived its executor";
        INFO(problem);
        REQUIRE(problem.empty());
    }
    std::printf("stress: %llu runs from seed %llu in %.1f s\n",
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(base),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    CHECK(done > 0);
}
