// SPDX-License-Identifier: MIT
//
// Three factorials computed one multiplication per step, on a loop that runs
// each task to completion (braid::sequential) and then on one that takes
// turns (braid::interleaved). The output is the transcript of the example of
// *Interleaving computations*, from Jordan Moldow's Python generator tutorial
// (docs/task_and_event_loop.md cites it): the same products, in the same
// order, finishing after the same rounds.
//
//   factorial_interleaving [--policy P]... [--trace FILE]
//
// --policy runs the demo under P instead: sequential, interleaved or
// step_slice:K (a slice of K steps), once per --policy given. --trace writes
// the timeline of the runs to FILE in Chrome's trace-event format (open it at
// ui.perfetto.dev, or in chrome://tracing), one group of tracks per run; the
// output stays the same. docs/policies.md draws these timelines.

#include <braid/chrome_tracer.hpp>
#include <braid/event_loop.hpp>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

// The steps: one multiplication, then a turn for the loop.
braid::task<std::uint64_t> factorial_steps(int n) {
    if (n <= 1) {
        co_return 1;
    }
    if (n == 2) {
        co_return 2;
    }
    std::uint64_t product = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(n - 1);
    for (int k = n - 2; k > 1; --k) {
        std::cout << "partial product for " << n << "! is " << product << '\n';
        co_await braid::yield();
        product *= static_cast<std::uint64_t>(k);
    }
    co_return product;
}

// Checks the argument before any frame runs, then names the task for logs.
braid::task<std::uint64_t> factorial(int n) {
    if (n < 0) {
        throw std::invalid_argument("factorial: requires a non-negative number, got " +
                                    std::to_string(n));
    }
    if (n > 20) {
        throw std::out_of_range("factorial: " + std::to_string(n) +
                                "! does not fit in 64 bits (at most 20)");
    }
    return factorial_steps(n).set_name("factorial(" + std::to_string(n) + ")");
}

void run(braid::event_loop& loop, const std::string& mode) {
    std::cout << "Starting " << mode << " computations.\n";
    for (int n : {12, 8, 4}) {
        loop.spawn(factorial(n)
                       .add_done_callback([&loop](auto& t) {
                           std::cout << "Completed " << t.name() << " after " << loop.rounds()
                                     << " rounds\n";
                       })
                       .add_done_callback(
                           [](auto& t) { std::cout << t.name() << " == " << t.result() << '\n'; }));
    }
    loop.run();
}

// A policy named on the command line: sequential, interleaved or
// step_slice:K.
struct policy_choice {
    std::string name;        // the policy as C++ spells it, which names its group of tracks
    std::uint32_t slice = 0; // step_slice's K; 0 for the others
};

std::optional<policy_choice> parse_policy(std::string_view arg) {
    if (arg == "sequential" || arg == "interleaved") {
        return policy_choice{std::string(arg)};
    }
    if (!arg.starts_with("step_slice:")) {
        return std::nullopt;
    }
    const std::string_view digits = arg.substr(arg.find(':') + 1);
    std::uint32_t k = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
    if (error != std::errc{} || end != digits.data() + digits.size() || k == 0) {
        return std::nullopt;
    }
    return policy_choice{"step_slice{" + std::to_string(k) + "}", k};
}

// A run of the demo on a loop of its own, traced when `trace` is set.
template <class Policy>
void run(Policy policy, const policy_choice& choice, braid::chrome_tracer* trace) {
    braid::event_loop loop{policy};
    if (trace != nullptr) {
        trace->begin_group(choice.name);
        loop.set_tracer(trace);
    }
    // The tutorial's name for sequential, C++'s for the others.
    run(loop, choice.name == "sequential" ? "non-interleaved" : choice.name);
    loop.set_tracer(nullptr);
}

int demo(int argc, char** argv) {
    std::vector<policy_choice> policies;
    std::optional<std::filesystem::path> trace_file;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        std::optional<policy_choice> policy;
        if (arg == "--policy" && i + 1 < argc && (policy = parse_policy(argv[i + 1]))) {
            policies.push_back(*policy);
            ++i;
        } else if (arg == "--trace" && i + 1 < argc) {
            trace_file = argv[++i];
        } else {
            std::cerr << "usage: factorial_interleaving [--policy P]... [--trace FILE]\n"
                         "  P: sequential, interleaved or step_slice:K (K > 0)\n";
            return 2;
        }
    }
    if (policies.empty()) { // the tutorial's pair
        policies = {{"sequential"}, {"interleaved"}};
    }
    std::optional<braid::chrome_tracer> trace;
    if (trace_file) {
        trace.emplace(*trace_file);
    }
    braid::chrome_tracer* const tracer = trace ? &*trace : nullptr;
    for (std::size_t i = 0; i < policies.size(); ++i) {
        if (i > 0) {
            std::cout << '\n';
        }
        const policy_choice& p = policies[i];
        if (p.slice != 0) {
            run(braid::step_slice{p.slice}, p, tracer);
        } else if (p.name == "sequential") {
            run(braid::sequential, p, tracer);
        } else {
            run(braid::interleaved, p, tracer);
        }
    }
    if (trace) {
        trace->close(); // reports a write error, which the destructor cannot
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return demo(argc, argv);
    } catch (const std::exception& e) { // a trace file that cannot be written
        std::cerr << "factorial_interleaving: " << e.what() << '\n';
        return 1;
    }
}
