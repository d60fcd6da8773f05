// SPDX-License-Identifier: MIT
// The slow producer of the README of pkch's Python package stream_executors
// (github.com/pkch/stream_executors): 100 inputs that take 20 ms each to
// make, and a square that takes 100 ms. Time until the first 10 results:
//
//   stream_executor::map      ~ 10 x 20 ms + 100 ms           = 0.3 s
//     (with 2 workers: the 10 squares take 5 x 100 ms       = 0.5 s)
//   a sequential loop         ~ 10 x (20 ms + 100 ms)         = 1.2 s
//   eager: submit every input,
//   then collect              ~ 100 x 20 ms + 100 ms          = 2.1 s
//
// The times printed are measured here. The self-check compares the runs with
// wide margins; it never tests an absolute time.

#include <braid/stream_executor.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <ranges>
#include <thread>
#include <vector>

using namespace std::chrono;

namespace {

auto slow_inputs() {
    return std::views::iota(0, 100) | std::views::transform([](int i) {
               std::this_thread::sleep_for(20ms); // producing an input is slow
               return i;
           });
}

int square(int x) {
    std::this_thread::sleep_for(100ms);
    return x * x;
}

double seconds_since(steady_clock::time_point start) {
    return duration<double>(steady_clock::now() - start).count();
}

bool first_ten_right(const std::vector<int>& got) {
    if (got.size() != 10)
        return false;
    for (int i = 0; i < 10; ++i) {
        if (got[static_cast<std::size_t>(i)] != i * i)
            return false;
    }
    return true;
}

} // namespace

int main() {
    braid::stream_executor ex{8}; // the work sleeps, so more workers than cores is right

    // Each time is taken when the 10th result is in hand: dropping the
    // results afterwards waits for the squares still running (so nothing of
    // the map outlives it), which is not part of getting the first ten.
    auto start = steady_clock::now();
    std::vector<int> streamed;
    double stream_time = 0;
    for (int s : ex.map(square, slow_inputs()) | std::views::take(10)) {
        streamed.push_back(s);
        stream_time = seconds_since(start);
    }

    // With only two workers the f calls, not the input, set the pace: 10
    // squares on 2 workers take 5 x 100 ms after the first input. The
    // producer is not one of the two, so both compute all the time.
    double two_worker_time = 0;
    {
        braid::stream_executor two{2};
        start = steady_clock::now();
        std::vector<int> got;
        for (int s : two.map(square, slow_inputs()) | std::views::take(10)) {
            got.push_back(s);
            two_worker_time = seconds_since(start);
        }
        if (!first_ten_right(got))
            two_worker_time = -1;
    }

    start = steady_clock::now();
    std::vector<int> sequential;
    for (int x : slow_inputs() | std::views::take(10))
        sequential.push_back(square(x));
    const double sequential_time = seconds_since(start);

    start = steady_clock::now();
    std::vector<std::future<int>> futures; // what an eager map does: take all input first
    for (int x : slow_inputs())
        futures.push_back(ex.submit(square, x));
    std::vector<int> eager;
    for (std::size_t i = 0; i < 10; ++i)
        eager.push_back(futures[i].get());
    const double eager_time = seconds_since(start);

    std::printf("time to the first 10 results (the stream_executors README gives 0.3 s / 1.2 s / "
                "2.1 s in Python):\n");
    std::printf("  stream_executor::map    %.2f s  (with only 2 workers: %.2f s)\n", stream_time,
                two_worker_time);
    std::printf("  sequential loop         %.2f s\n", sequential_time);
    std::printf("  eager submit-then-get   %.2f s\n", eager_time);

    const bool values_ok =
        first_ten_right(streamed) && first_ten_right(sequential) && first_ten_right(eager);
    // The sleeps make 1.2 s and 2.0 s hard lower bounds of the last two; the
    // stream only has to stay well below the sequential loop.
    const bool shape_ok = stream_time * 2 < sequential_time && sequential_time < eager_time &&
                          two_worker_time > 0 && two_worker_time < sequential_time;
    if (!values_ok)
        std::printf("UNEXPECTED: wrong results\n");
    if (!shape_ok)
        std::printf("UNEXPECTED: the stream was not clearly the fastest to its first results\n");
    return values_ok && shape_ok ? 0 : 1;
}
