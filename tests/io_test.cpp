// SPDX-License-Identifier: MIT
// braid::readable and braid::writable: waiting on descriptors braid does not
// own (pipes, files), how waiting tasks are scheduled, and what the loop does
// with them when it runs out of work, jumps a manual clock or is destroyed.

#include <braid/event_loop.hpp>
#include <braid/io.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/descriptors.hpp"

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using braid_test::contains;
using braid_test::test_pipe;

namespace {

// Waits for the pipe to be readable, then reads what is there.
braid::task<std::string> read_when_ready(int fd, std::vector<std::string>& log) {
    log.push_back("waiting");
    co_await braid::readable(fd);
    log.push_back("readable");
    char buffer[64];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    co_return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

braid::task<> write_after_yields(int fd, int yields, std::vector<std::string>& log) {
    for (int i = 0; i < yields; ++i) {
        log.push_back("yield");
        co_await braid::yield();
    }
    log.push_back("write");
    (void)!::write(fd, "data", 4);
}

braid::task<> yield_forever(long& steps) {
    for (;;) {
        ++steps;
        co_await braid::yield();
    }
}

int error_of(braid::task<>& t) {
    try {
        t.result();
    } catch (const std::system_error& e) {
        return e.code().value();
    }
    return 0;
}

} // namespace

TEST_CASE("readable wakes a task once a pipe has data, and braid never closes the descriptor",
          "[io]") {
    test_pipe pipe;
    REQUIRE(pipe.read_end >= 0);
    braid::event_loop loop;
    std::vector<std::string> log;
    auto reader = read_when_ready(pipe.read_end, log);
    loop.spawn(reader);
    loop.spawn(write_after_yields(pipe.write_end, 2, log));
    loop.run();
    CHECK(reader.result() == "data");
    CHECK(log == std::vector<std::string>{"waiting", "yield", "yield", "write", "readable"});
    CHECK(braid_test::is_open_fd(pipe.read_end));
}

TEST_CASE("writable is ready at once on a pipe with room, and waits while the pipe is full",
          "[io]") {
    test_pipe pipe;
    REQUIRE(pipe.read_end >= 0);
    // Fill the pipe.
    std::vector<char> block(65536, 'x');
    while (::write(pipe.write_end, block.data(), block.size()) > 0) {
    }
    REQUIRE(errno == EAGAIN);
    braid::event_loop loop;
    std::vector<std::string> log;
    auto writer = [&]() -> braid::task<> {
        co_await braid::writable(pipe.write_end);
        log.push_back("writable");
    };
    auto drainer = [&]() -> braid::task<> {
        for (int i = 0; i < 3; ++i) {
            log.push_back("yield");
            co_await braid::yield();
        }
        log.push_back("drain");
        while (::read(pipe.read_end, block.data(), block.size()) > 0) {
        }
    };
    loop.spawn(writer());
    loop.spawn(drainer());
    loop.run();
    CHECK(log == std::vector<std::string>{"yield", "yield", "yield", "drain", "writable"});
}

TEST_CASE("readable on a negative or closed descriptor is std::system_error EBADF at the "
          "co_await",
          "[io]") {
    braid::event_loop loop;
    auto wait_on = [](int fd) -> braid::task<> { co_await braid::readable(fd); };
    auto negative = wait_on(-1);
    loop.spawn(negative);
    loop.run();
    CHECK(error_of(negative) == EBADF);
    REQUIRE_THROWS_WITH(negative.result(), contains("braid::readable fd -1"));

    // Closed descriptors with high numbers: the loop's own (opened lazily)
    // cannot take them.
    int fds[2];
    {
        test_pipe pipe;
        fds[0] = ::fcntl(pipe.read_end, F_DUPFD_CLOEXEC, 900);
        fds[1] = ::fcntl(pipe.write_end, F_DUPFD_CLOEXEC, 900);
        REQUIRE(fds[0] >= 900);
        ::close(fds[0]);
        ::close(fds[1]);
    }
    auto closed = wait_on(fds[0]);
    loop.spawn(closed);
    loop.run();
    CHECK(error_of(closed) == EBADF);
    auto closed_writer = [](int fd) -> braid::task<> { co_await braid::writable(fd); };
    auto w = closed_writer(fds[1]);
    loop.spawn(w);
    loop.run();
    CHECK(error_of(w) == EBADF);
    REQUIRE_THROWS_WITH(w.result(), contains("braid::writable fd "));
}

TEST_CASE("readable on a regular file is std::system_error EPERM, as epoll reports it", "[io]") {
    char name[] = "/tmp/braid_io_test_XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::unlink(name);
    braid::event_loop loop;
    auto wait_on = [](int f) -> braid::task<> { co_await braid::readable(f); };
    auto t = wait_on(fd);
    loop.spawn(t);
    loop.run();
    CHECK(error_of(t) == EPERM);
    CHECK(braid_test::is_open_fd(fd));
    ::close(fd);
}

TEST_CASE("one task at a time may wait to read and one to write on a descriptor", "[io]") {
    test_pipe pipe;
    int sockets[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sockets) == 0);
    braid::event_loop loop;
    std::vector<std::string> log;
    auto wait_read = [&](int fd, std::string name) -> braid::task<> {
        co_await braid::readable(fd);
        log.push_back(name);
    };
    auto wait_write = [&](int fd, std::string name) -> braid::task<> {
        co_await braid::writable(fd);
        log.push_back(name);
    };
    auto first = wait_read(pipe.read_end, "first");
    auto second = wait_read(pipe.read_end, "second");
    loop.spawn(first);
    loop.spawn(second);
    // On a socket both directions at once are fine.
    auto reader = wait_read(sockets[0], "socket read");
    auto writer = wait_write(sockets[0], "socket write");
    loop.spawn(reader);
    loop.spawn(writer);
    loop.call_soon([&] {
        (void)!::write(pipe.write_end, "x", 1);
        (void)!::write(sockets[1], "y", 1);
    });
    loop.run();
    REQUIRE_THROWS_AS(second.result(), braid::usage_error);
    REQUIRE_THROWS_WITH(second.result(), contains("another task is already waiting to read"));
    CHECK(first.done());
    CHECK(reader.done());
    CHECK(writer.done());
    CHECK(log.size() == 3);
    ::close(sockets[0]);
    ::close(sockets[1]);
}

TEST_CASE("a task waiting on a descriptor takes no rounds and joins the back of the ready "
          "queue",
          "[io]") {
    for (const bool sequential : {false, true}) {
        test_pipe pipe;
        braid::event_loop interleaved_loop{braid::interleaved};
        braid::event_loop sequential_loop{braid::sequential};
        braid::event_loop& loop = sequential ? sequential_loop : interleaved_loop;
        std::vector<std::string> log;
        auto reader = read_when_ready(pipe.read_end, log);
        loop.spawn(reader);
        loop.run_until_complete(write_after_yields(pipe.write_end, 0, log));
        const auto rounds_before = loop.rounds();
        // The reader is ready now; it runs when the pass in progress is over.
        loop.run();
        CHECK(loop.rounds() - rounds_before == 1); // the reader's one step after the wake
        CHECK(reader.result() == "data");
    }
}

TEST_CASE("run() keeps running while a task waits on a descriptor, and the thread sleeps", "[io]") {
    test_pipe pipe;
    braid::event_loop loop;
    std::vector<std::string> log;
    auto reader = read_when_ready(pipe.read_end, log);
    loop.spawn(reader);
    std::thread writer([&] {
        std::this_thread::sleep_for(50ms);
        (void)!::write(pipe.write_end, "late", 4);
    });
    const auto rounds_before = loop.rounds();
    loop.run();
    writer.join();
    CHECK(reader.result() == "late");
    CHECK(loop.rounds() - rounds_before == 2); // the reader's two steps: no busy polling
}

TEST_CASE("with a manual clock, ready descriptors are seen before the clock jumps", "[io]") {
    braid::manual_clock clock;
    braid::event_loop loop{braid::interleaved, clock};
    test_pipe pipe;
    (void)!::write(pipe.write_end, "now", 3);
    std::vector<std::string> log;
    auto reader = read_when_ready(pipe.read_end, log);
    std::chrono::nanoseconds read_at{-1};
    reader.add_done_callback([&](auto&) { read_at = clock.now().time_since_epoch(); });
    loop.spawn(reader);
    loop.call_later(1h, [&] { log.push_back("timer"); });
    loop.run();
    CHECK(read_at == 0ns);
    CHECK(log == std::vector<std::string>{"waiting", "readable", "timer"});
    CHECK(clock.now().time_since_epoch() == 1h);
}

TEST_CASE("while tasks keep the loop busy, ready descriptors are collected once per pass", "[io]") {
    test_pipe pipe;
    (void)!::write(pipe.write_end, "x", 1);
    braid::event_loop loop;
    long steps = 0;
    loop.spawn(yield_forever(steps));
    loop.spawn(yield_forever(steps));
    std::vector<std::string> log;
    auto reader = read_when_ready(pipe.read_end, log);
    loop.spawn(reader);
    auto stopper = [&](braid::task<std::string>& r) -> braid::task<> {
        while (!r.done()) {
            co_await braid::yield();
        }
        loop.stop();
    };
    loop.spawn(stopper(reader));
    loop.run();
    CHECK(reader.result() == "x");
    // The reader registers in the first pass; the end of a pass finds it
    // ready, and it runs in the next: a few steps of the others, not more.
    CHECK(steps <= 8);
}

TEST_CASE("destroying the loop while a task waits on a descriptor frees the task and leaves "
          "the descriptor open",
          "[io]") {
    test_pipe pipe;
    std::vector<std::string> log;
    const auto descriptors_before = braid_test::open_descriptors();
    braid::task<std::string> kept; // outlives the loop: frees its frame itself, later
    {
        braid::event_loop loop;
        kept = read_when_ready(pipe.read_end, log);
        loop.spawn(kept);
        // Readable never comes on a pipe's write end: fire-and-forget, freed by the loop.
        loop.spawn(read_when_ready(pipe.write_end, log));
        loop.call_soon([&] { loop.stop(); });
        loop.run();
        CHECK(log == std::vector<std::string>{"waiting", "waiting"});
    }
    CHECK_THROWS_AS(kept.result(), braid::task_not_finished);
    kept = {};
    CHECK(braid_test::is_open_fd(pipe.read_end));
    CHECK(braid_test::is_open_fd(pipe.write_end));
    CHECK(braid_test::open_descriptors() == descriptors_before);
}

// A loop that watches a descriptor sleeps in epoll, not on the futex it uses
// otherwise: other threads must reach it there too.
TEST_CASE("a loop waiting on a descriptor is woken by other threads' calls and by stop",
          "[io][threads]") {
    test_pipe pipe;
    REQUIRE(pipe.read_end >= 0);
    braid_test::watchdog guard("a loop waiting on a descriptor, woken from another thread");
    braid::event_loop loop;
    std::vector<std::string> log;

    SECTION("call_soon_threadsafe") {
        braid::task<std::string> reader = read_when_ready(pipe.read_end, log);
        loop.spawn(reader);
        std::thread other([&] {
            std::this_thread::sleep_for(20ms); // the loop is asleep on the pipe by now
            loop.call_soon_threadsafe([&] {
                log.push_back("call");
                (void)!::write(pipe.write_end, "x", 1);
            });
        });
        loop.run(); // waits: a task waits on the pipe
        other.join();
        CHECK(reader.result() == "x");
        CHECK(log == std::vector<std::string>{"waiting", "call", "readable"});
    }
    SECTION("stop") {
        braid::task<std::string> reader = read_when_ready(pipe.read_end, log);
        loop.spawn(reader);
        std::thread other([&] {
            std::this_thread::sleep_for(20ms);
            loop.stop();
        });
        loop.run_forever();
        other.join();
        CHECK_FALSE(reader.done());
        CHECK(log == std::vector<std::string>{"waiting"});
    }
}
