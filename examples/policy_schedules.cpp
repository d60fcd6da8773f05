// SPDX-License-Identifier: MIT
//
// The schedules of the deterministic built-in policies, printed: which task
// the loop runs in each round, and the round in which each task finishes.
// Each task notes loop.rounds() (the round it is in) at every step.
//
// Two sets of tasks: the factorial demo's factorial(12), (8) and (4), which
// take 10, 6 and 2 steps, and one long task started before four short ones.
// (time_slice is left out: its schedule depends on how fast the steps run.)

#include <braid/event_loop.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct task_spec {
    std::string label;
    int steps;
};

struct schedule {
    std::vector<std::size_t> task_of_round; // [round - 1]: the task run then
    std::vector<std::uint64_t> finished;    // per task: the round it finished in
};

braid::task<> steps(braid::event_loop& loop, schedule& out, std::size_t task, int count) {
    for (int i = 1; i <= count; ++i) {
        out.task_of_round.push_back(task);
        if (i < count) {
            co_await braid::yield();
        }
    }
    out.finished[task] = loop.rounds();
}

template <class Policy>
schedule run(Policy policy, const std::vector<task_spec>& tasks) {
    braid::event_loop loop{policy};
    schedule s;
    s.finished.assign(tasks.size(), 0);
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        loop.spawn(steps(loop, s, i, tasks[i].steps));
    }
    loop.run();
    return s;
}

void show(const char* title, const std::vector<task_spec>& tasks) {
    struct row {
        const char* policy;
        schedule s;
    };
    const row rows[] = {
        {"sequential", run(braid::sequential, tasks)},
        {"interleaved", run(braid::interleaved, tasks)},
        {"step_slice{3}", run(braid::step_slice{3}, tasks)},
        {"step_slice{4}", run(braid::step_slice{4}, tasks)},
    };

    std::printf("%s\n\nWhich task runs in each round:\n\n%-14s", title, "round");
    for (std::size_t r = 1; r <= rows[0].s.task_of_round.size(); ++r) {
        std::printf("%3zu", r);
    }
    std::printf("\n");
    for (const row& r : rows) {
        std::printf("%-14s", r.policy);
        for (std::size_t t : r.s.task_of_round) {
            std::printf("%3s", tasks[t].label.c_str());
        }
        std::printf("\n");
    }

    std::printf("\nThe round in which each task finishes:\n\n%-14s", "policy");
    for (const task_spec& t : tasks) {
        std::printf("%5s", t.label.c_str());
    }
    std::printf("   mean\n");
    for (const row& r : rows) {
        std::uint64_t sum = 0;
        std::printf("%-14s", r.policy);
        for (std::uint64_t f : r.s.finished) {
            std::printf("%5llu", static_cast<unsigned long long>(f));
            sum += f;
        }
        std::printf("%7.1f\n", static_cast<double>(sum) / static_cast<double>(r.s.finished.size()));
    }
}

} // namespace

int main() {
    show("The factorial demo: factorial(12), (8) and (4) take 10, 6 and 2 steps.",
         {{"12", 10}, {"8", 6}, {"4", 2}});
    std::printf("\n");
    show("One long task (L, 12 steps) started before four short ones (a-d, 3 steps each).",
         {{"L", 12}, {"a", 3}, {"b", 3}, {"c", 3}, {"d", 3}});
}
