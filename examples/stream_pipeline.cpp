// SPDX-License-Identifier: MIT
// The word-count pipeline of the README of pkch's Python package
// stream_executors (github.com/pkch/stream_executors), on local files this
// program writes:
//
//   read (stands for download)  ->  count a word  ->  report (stands for upload)
//
// three maps on one executor, each with buffer_size 1. After the consumer has
// taken the first two reports and gone off to do other work, each stage has
// run exactly as far as its bound allows, and no further:
//   report ran 2 + 1 = 3 times (two taken by the consumer, one ahead),
//   count  ran 3 + 1 = 4 times, read ran 4 + 1 = 5 times.
// (The Python version allows one more item per stage and counts before the
// consumer takes anything, hence its 2, 4 and 6.)

#include <braid/stream_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct word_count {
    std::string file;
    int count;
};

int count_word(const std::string& text, const std::string& word) {
    std::istringstream in(text);
    int n = 0;
    for (std::string w; in >> w;)
        n += (w == word);
    return n;
}

template <class Condition>
bool wait_for(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

} // namespace

int main() {
    // The "web pages": files with the word braid i % 4 times.
    const fs::path dir =
        fs::temp_directory_path() / ("braid-pipeline-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::vector<fs::path> pages;
    int expected_total = 0;
    for (int i = 0; i < 20; ++i) {
        pages.push_back(dir / ("page-" + std::to_string(i) + ".txt"));
        std::ofstream out(pages.back());
        for (int k = 0; k < i % 4; ++k)
            out << "some text about braid and threads\n";
        out << "the end\n";
        expected_total += i % 4;
    }

    std::atomic<int> read_calls{0}, count_calls{0}, report_calls{0};
    const auto read = [&](const fs::path& path) {
        ++read_calls;
        std::ifstream in(path);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const auto count = [&](const std::string& text) {
        ++count_calls;
        return count_word(text, "braid");
    };
    const auto report = [&](int n) {
        ++report_calls;
        return word_count{"page " + std::to_string(report_calls.load() - 1), n};
    };

    bool ok = true;
    {
        braid::stream_executor ex{2};
        auto texts = ex.map(read, pages, 1);
        auto counts = ex.map(count, std::move(texts), 1);
        auto reports = ex.map(report, std::move(counts), 1);

        auto it = reports.begin();
        int total = 0;
        for (int i = 0; i < 2; ++i, ++it)
            total += (*it).count; // the consumer takes two

        // ... and does other work: meanwhile the stages fill their buffers.
        const bool filled =
            wait_for([&] { return report_calls == 3 && count_calls == 4 && read_calls == 5; });
        std::this_thread::sleep_for(50ms); // time to overshoot, if the bound were broken
        std::printf("after the consumer took 2 results: read %d, count %d, report %d\n",
                    read_calls.load(), count_calls.load(), report_calls.load());
        ok = filled && read_calls == 5 && count_calls == 4 && report_calls == 3;

        for (; it != reports.end(); ++it)
            total += (*it).count; // then greedily takes the rest
        std::printf("occurrences of \"braid\" in %zu pages: %d\n", pages.size(), total);
        ok = ok && total == expected_total && report_calls == 20;
    }
    fs::remove_all(dir);
    if (!ok)
        std::printf("UNEXPECTED: a stage ran past its bound, or the total is wrong\n");
    return ok ? 0 : 1;
}
