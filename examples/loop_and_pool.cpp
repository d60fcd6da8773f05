// SPDX-License-Identifier: MIT
//
// A loop that stays responsive while work runs on other threads:
//
//   - three slow "render" jobs go to a thread pool with braid::run_in;
//   - a task reads checksums from a stream_executor map with async_next;
//   - meanwhile a timer prints progress every 10 ms.
//
// The loop's thread never blocks: between results it runs the timer, or
// sleeps until the next result or deadline. Results go to standard output in
// a fixed order (CTest compares them); the progress lines, whose number
// depends on timing, go to standard error.

#include <braid/event_loop.hpp>
#include <braid/run_in.hpp>
#include <braid/stream_executor.hpp>
#include <braid/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <ranges>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Stands for real work: it takes a while and keeps a worker busy.
std::string render(const std::string& name, int size) {
    std::this_thread::sleep_for(50ms);
    return name + " rendered at " + std::to_string(size) + "x" + std::to_string(size);
}

std::uint32_t checksum(int block) {
    std::this_thread::sleep_for(2ms);
    std::uint32_t h = 2166136261u; // FNV-1a over the block number's bytes
    for (int i = 0; i < 4; ++i) {
        h = (h ^ static_cast<std::uint32_t>((block >> (8 * i)) & 0xff)) * 16777619u;
    }
    return h;
}

} // namespace

int main() {
    braid::thread_pool pool(2);
    braid::stream_executor ex(2);
    braid::event_loop loop;

    int jobs_done = 0;
    int blocks_read = 0;
    int ticks = 0;
    braid::timer_handle ticker;
    std::function<void()> tick = [&] {
        ++ticks;
        std::fprintf(stderr, "progress: %d of 3 jobs, %d of 40 blocks\n", jobs_done, blocks_read);
        ticker = loop.call_later(10ms, tick);
    };
    ticker = loop.call_later(10ms, tick);

    auto render_all = [&]() -> braid::task<> {
        std::vector<braid::task<std::string>> jobs;
        for (const char* name : {"cover", "thumbnail", "banner"}) {
            jobs.push_back(braid::run_in(pool, render, std::string(name), 256));
            loop.spawn(jobs.back()); // all three run at once
        }
        for (auto& job : jobs) {
            const std::string& line = co_await job; // in order
            std::printf("%s\n", line.c_str());
            ++jobs_done;
        }
    };

    auto read_checksums = [&]() -> braid::task<std::uint32_t> {
        auto sums = ex.map(checksum, std::views::iota(0, 40), 8);
        std::uint32_t combined = 0;
        while (auto sum = co_await sums.async_next()) {
            combined ^= *sum;
            ++blocks_read;
        }
        co_return combined;
    };

    auto main_task = [&]() -> braid::task<> {
        braid::task<> rendering = render_all();
        braid::task<std::uint32_t> reading = read_checksums();
        loop.spawn(rendering);
        loop.spawn(reading);
        const std::uint32_t combined = co_await reading;
        co_await rendering;
        std::printf("40 blocks read, combined checksum %08x\n", static_cast<unsigned>(combined));
        ticker.cancel();
    };
    loop.run_until_complete(main_task());

    std::fprintf(stderr, "the timer ticked %d times while the work ran\n", ticks);
    return ticks > 0 ? 0 : 1; // a loop that blocked on the work would not have ticked
}
