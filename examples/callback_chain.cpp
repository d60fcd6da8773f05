// SPDX-License-Identifier: MIT
//
// Factorials split across tasks that are chained through callbacks, as in the
// second example ("Tasks and callbacks") of *Interleaving computations*, from
// Jordan Moldow's Python generator tutorial (docs/task_and_event_loop.md
// cites it). Each task multiplies twice with a
// turn for the loop in between, then either returns the product or returns
// what is left to do. A done callback hands that result to a call_soon
// callback, which spawns the next task or prints the final product. The
// products of 4! and 3! come out as 24, then 6, as in the tutorial.

#include <braid/event_loop.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <variant>
#include <vector>

namespace {

// What is left to compute: n! * product (for the factorial of original).
struct remaining {
    int n;
    std::uint64_t product;
    int original;
};

using step_result = std::variant<std::uint64_t, remaining>;

std::string describe(const remaining& r) {
    return "factorial(n=" + std::to_string(r.n) + ", product=" + std::to_string(r.product) + ", " +
           std::to_string(r.original) + ")";
}

braid::task<step_result> factorial_part(remaining r) {
    if (r.n <= 1) {
        co_return r.product;
    }
    if (r.n == 2) {
        co_return 2 * r.product;
    }
    r.product *= static_cast<std::uint64_t>(r.n--);
    co_await braid::yield();
    r.product *= static_cast<std::uint64_t>(r.n--);
    co_return r;
}

class chain {
public:
    explicit chain(braid::event_loop& loop) : loop_(loop) {}

    void schedule(remaining r) {
        std::cout << "Scheduling task " << describe(r) << '\n';
        loop_.spawn(factorial_part(r).set_name(describe(r)).add_done_callback([this](auto& t) {
            std::cout << t.name() << " finished\n";
            loop_.call_soon(&chain::on_result, this, t.result());
        }));
    }

    const std::vector<std::uint64_t>& results() const { return results_; }

private:
    void on_result(const step_result& result) {
        if (const auto* next = std::get_if<remaining>(&result)) {
            schedule(*next);
        } else {
            const std::uint64_t product = std::get<std::uint64_t>(result);
            std::cout << product << '\n';
            results_.push_back(product);
        }
    }

    braid::event_loop& loop_;
    std::vector<std::uint64_t> results_;
};

} // namespace

int main() {
    braid::event_loop loop;
    chain factorials(loop);
    factorials.schedule({4, 1, 4});
    factorials.schedule({3, 1, 3});
    loop.run();
    std::cout << "No more callbacks, after " << loop.rounds() << " rounds\n";

    if (factorials.results() != std::vector<std::uint64_t>{24, 6}) {
        std::cerr << "callback_chain: expected 24 then 6\n";
        return 1;
    }
}
