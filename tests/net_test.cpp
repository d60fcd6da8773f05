// SPDX-License-Identifier: MIT
// braid::tcp_listener and braid::tcp_stream on loopback (127.0.0.1 and ::1):
// round trips, large transfers, many connections, how peers that go away
// are reported, errors and their messages, closing, and lifetimes.

#include <braid/event_loop.hpp>
#include <braid/io.hpp>
#include <braid/net.hpp>

#include "support/catch.hpp"
#include "support/concurrency.hpp"
#include "support/descriptors.hpp"

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <sys/socket.h>

using namespace std::chrono_literals;
using braid_test::contains;

namespace {

// Reads until `size` bytes have come, or the end of the stream.
braid::task<std::string> read_exactly(braid::tcp_stream& s, std::size_t size) {
    std::string data(size, '\0');
    std::size_t got = 0;
    while (got < size) {
        const std::size_t n = co_await s.read_some(std::span<char>(data).subspan(got));
        if (n == 0) {
            break;
        }
        got += n;
    }
    data.resize(got);
    co_return data;
}

// Echoes one connection until the peer closes.
braid::task<> echo(braid::tcp_stream s) {
    std::array<char, 4096> buffer;
    for (;;) {
        const std::size_t n = co_await s.read_some(buffer);
        if (n == 0) {
            co_return;
        }
        co_await s.write_all(std::string_view(buffer.data(), n));
    }
}

// Accepts `count` connections and echoes each in a task of its own.
braid::task<> echo_server(braid::event_loop& loop, braid::tcp_listener& listener, int count) {
    for (int i = 0; i < count; ++i) {
        braid::tcp_stream client = co_await listener.accept();
        loop.spawn(echo(std::move(client)));
    }
}

braid::task<std::string> echo_once(std::string host, std::uint16_t port, std::string message) {
    braid::tcp_stream s = co_await braid::tcp_stream::connect(host, port);
    co_await s.write_all(message);
    co_return co_await read_exactly(s, message.size());
}

template <class T>
std::error_code error_of(braid::task<T>& t) {
    try {
        (void)t.result();
    } catch (const std::system_error& e) {
        return e.code();
    }
    return {};
}

template <class T>
std::string message_of(braid::task<T>& t) {
    try {
        (void)t.result();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

} // namespace

TEST_CASE("an echo round trip over 127.0.0.1, ::1 and localhost", "[net]") {
    braid::event_loop loop;
    for (const char* host : {"127.0.0.1", "::1", "localhost", "[::1]"}) {
        auto listener = braid::tcp_listener::bind(host, 0);
        CHECK(listener.port() != 0);
        loop.spawn(echo_server(loop, listener, 1));
        CHECK(loop.run_until_complete(echo_once(host, listener.port(), "hello, braid")) ==
              "hello, braid");
        loop.run(); // the server's task ends when the client has closed
    }
}

TEST_CASE("16 MiB each way at once on one connection, one write_all each, with a reader and "
          "a writer task on each side",
          "[net]") {
    constexpr std::size_t size = 16 << 20;
    std::string a_to_b(size, '\0');
    std::string b_to_a(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
        a_to_b[i] = static_cast<char>(i * 7 + i / 4096);
        b_to_a[i] = static_cast<char>(i * 13 + 1);
    }
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    braid::tcp_stream a;
    braid::tcp_stream b;
    auto accept_b = [&]() -> braid::task<> { b = co_await listener.accept(); };
    auto connect_a = [&]() -> braid::task<> {
        a = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
    };
    loop.spawn(accept_b());
    loop.run_until_complete(connect_a());
    loop.run();
    REQUIRE(b.is_open());

    auto write_then_shutdown = [](braid::tcp_stream& s, const std::string& data) -> braid::task<> {
        co_await s.write_all(data);
        s.shutdown_write();
    };
    auto read_all = [](braid::tcp_stream& s) -> braid::task<std::string> {
        std::string data;
        std::vector<char> buffer(1 << 16);
        for (;;) {
            const std::size_t n = co_await s.read_some(buffer);
            if (n == 0) {
                co_return data;
            }
            data.append(buffer.data(), n);
        }
    };
    auto read_at_a = read_all(a);
    auto read_at_b = read_all(b);
    loop.spawn(write_then_shutdown(a, a_to_b));
    loop.spawn(write_then_shutdown(b, b_to_a));
    loop.spawn(read_at_a);
    loop.spawn(read_at_b);
    loop.run();
    CHECK(read_at_b.result() == a_to_b);
    CHECK(read_at_a.result() == b_to_a);
}

TEST_CASE("1,000 concurrent connections each doing 100 round trips on one loop", "[net][many]") {
    constexpr int connections = 1000;
    constexpr int round_trips = 100;
    REQUIRE(braid_test::raise_fd_limit(2 * connections + 100));
    braid_test::watchdog guard("1,000 connections");
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    loop.spawn(echo_server(loop, listener, connections));
    int finished = 0;
    int wrong = 0;
    auto client = [&](int id) -> braid::task<> {
        braid::tcp_stream s = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        for (int i = 0; i < round_trips; ++i) {
            const std::string message = std::to_string(id) + ":" + std::to_string(i) + ";";
            co_await s.write_all(message);
            const std::string back = co_await read_exactly(s, message.size());
            if (back != message) {
                ++wrong;
            }
        }
        ++finished;
    };
    for (int id = 0; id < connections; ++id) {
        loop.spawn(client(id));
    }
    loop.run();
    CHECK(finished == connections);
    CHECK(wrong == 0);
}

TEST_CASE("a peer closing mid-read gives 0, and mid-write gives std::system_error and the process "
          "survives",
          "[net]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    auto close_after_reading = [&](std::size_t n) -> braid::task<> {
        braid::tcp_stream s = co_await listener.accept();
        const std::string unused = co_await read_exactly(s, n);
        s.close();
    };

    // Mid-read: the client waits for a reply that never comes.
    loop.spawn(close_after_reading(5));
    auto reader = [&]() -> braid::task<std::size_t> {
        auto s = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        co_await s.write_all("hello");
        std::array<char, 16> buffer;
        co_return co_await s.read_some(buffer);
    };
    CHECK(loop.run_until_complete(reader()) == 0);
    loop.run();

    // Mid-write: the client writes far more than the buffers hold.
    loop.spawn(close_after_reading(1));
    auto writer = [&]() -> braid::task<> {
        auto s = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        const std::string big(64 << 20, 'x');
        for (;;) {
            co_await s.write_all(big);
        }
    };
    auto w = writer();
    loop.spawn(w);
    loop.run();
    const std::error_code code = error_of(w);
    CHECK((code == std::errc::broken_pipe || code == std::errc::connection_reset));
    CHECK_THAT(message_of(w), contains("braid::tcp_stream::write_all 127.0.0.1:"));
}

TEST_CASE("a reset connection makes read_some throw ECONNRESET", "[net]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    auto reset_with_data_unread = [&]() -> braid::task<> {
        braid::tcp_stream s = co_await listener.accept();
        const std::string unused = co_await read_exactly(s, 1); // more follows, unread
        s.close();
    };
    loop.spawn(reset_with_data_unread());
    auto client = [&]() -> braid::task<> {
        auto s = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        co_await s.write_all("x and more");
        std::array<char, 16> buffer;
        (void)co_await s.read_some(buffer);
    };
    auto c = client();
    loop.spawn(c);
    loop.run();
    CHECK(error_of(c) == std::errc::connection_reset);
    CHECK_THAT(message_of(c), contains("braid::tcp_stream::read_some 127.0.0.1:"));
}

TEST_CASE("a refused connection is std::system_error naming the call and the address", "[net]") {
    std::uint16_t port = 0;
    {
        auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
        port = listener.port(); // free once it closes
    }
    braid::event_loop loop;
    for (const char* host : {"127.0.0.1", "::1"}) {
        auto t = echo_once(host, port, "x");
        loop.spawn(t);
        loop.run();
        CHECK(error_of(t) == std::errc::connection_refused);
        const std::string where = std::string(host) == "::1" ? "[::1]" : host;
        CHECK(message_of(t) == "braid::tcp_stream::connect " + where + ":" + std::to_string(port) +
                                   ": Connection refused");
    }
}

TEST_CASE("a host that is neither numeric nor localhost is std::invalid_argument, with no "
          "lookup",
          "[net]") {
    REQUIRE_THROWS_AS(braid::tcp_listener::bind("example.com", 0), std::invalid_argument);
    REQUIRE_THROWS_WITH(braid::tcp_listener::bind("example.com", 0),
                        contains("braid::tcp_listener::bind: \"example.com\" is not a numeric"));
    REQUIRE_THROWS_AS((void)braid::tcp_stream::connect("localhost.", 80), std::invalid_argument);
    REQUIRE_THROWS_AS((void)braid::tcp_stream::connect("1.2.3", 80), std::invalid_argument);
    REQUIRE_THROWS_AS((void)braid::tcp_stream::connect("", 80), std::invalid_argument);
}

TEST_CASE("binding a port in use is std::system_error naming the address", "[net]") {
    auto first = braid::tcp_listener::bind("127.0.0.1", 0);
    const std::string expected =
        "braid::tcp_listener::bind 127.0.0.1:" + std::to_string(first.port()) + ": ";
    try {
        (void)braid::tcp_listener::bind("127.0.0.1", first.port());
        FAIL("bind succeeded");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::address_in_use);
        CHECK_THAT(std::string(e.what()), contains(expected));
    }
}

TEST_CASE("one task at a time may read, write or accept on a socket", "[net]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("::1", 0);
    braid::tcp_stream server_side;
    auto accept_one = [&]() -> braid::task<> { server_side = co_await listener.accept(); };
    auto first_accept = accept_one();
    auto second_accept = accept_one();
    loop.spawn(first_accept);
    loop.spawn(second_accept);
    braid::tcp_stream client;
    auto connect = [&]() -> braid::task<> {
        client = co_await braid::tcp_stream::connect("::1", listener.port());
    };
    loop.spawn(connect());
    loop.run();
    CHECK(first_accept.done());
    REQUIRE_THROWS_AS(second_accept.result(), braid::usage_error);
    REQUIRE_THROWS_WITH(second_accept.result(), contains("braid::tcp_listener::accept: another "
                                                         "task is already waiting"));

    std::array<char, 8> buffer_1;
    std::array<char, 8> buffer_2;
    auto read_into = [](braid::tcp_stream& s, std::span<char> b) -> braid::task<std::size_t> {
        co_return co_await s.read_some(b);
    };
    auto first = read_into(server_side, buffer_1);
    auto second = read_into(server_side, buffer_2);
    loop.spawn(first);
    loop.spawn(second);
    auto write = [&]() -> braid::task<> { co_await client.write_all("ab"); };
    loop.spawn(write());
    loop.run();
    CHECK(first.result() == 2);
    REQUIRE_THROWS_AS(second.result(), braid::usage_error);
    REQUIRE_THROWS_WITH(second.result(),
                        contains("braid::tcp_stream::read_some: another task is already waiting "
                                 "to read from [::1]:"));
}

TEST_CASE("closing a stream or listener wakes its waiting tasks with operation_canceled", "[net]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    auto accept_one = [&]() -> braid::task<braid::tcp_stream> {
        co_return co_await listener.accept();
    };
    auto first = accept_one();
    loop.spawn(first);
    braid::tcp_stream client;
    auto connect = [&]() -> braid::task<> {
        client = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
    };
    loop.spawn(connect());
    loop.run();
    braid::tcp_stream server_side = std::move(first.result());

    auto pending_accept = accept_one();
    auto read_one = [](braid::tcp_stream& s) -> braid::task<std::size_t> {
        std::array<char, 8> buffer;
        co_return co_await s.read_some(buffer);
    };
    auto pending_read = read_one(server_side);
    std::vector<std::string> log;
    auto closer = [&]() -> braid::task<> {
        co_await braid::yield();
        log.push_back("closing");
        server_side.close();
        listener.close();
        log.push_back("closed");
    };
    pending_read.add_done_callback([&](auto&) { log.push_back("read done"); });
    pending_accept.add_done_callback([&](auto&) { log.push_back("accept done"); });
    loop.spawn(pending_accept);
    loop.spawn(pending_read);
    loop.spawn(closer());
    loop.run();
    CHECK(log == std::vector<std::string>{"closing", "closed", "read done", "accept done"});
    CHECK(error_of(pending_read) == std::errc::operation_canceled);
    CHECK(error_of(pending_accept) == std::errc::operation_canceled);
    CHECK_THAT(message_of(pending_read), contains("braid::tcp_stream::read_some 127.0.0.1:"));
    CHECK_THAT(message_of(pending_accept), contains("braid::tcp_listener::accept 127.0.0.1:"));
    REQUIRE_THROWS_AS(server_side.read_some(std::span<char>()), braid::usage_error);
    REQUIRE_THROWS_AS(listener.accept(), braid::usage_error);
}

TEST_CASE("a stream may outlive its loop, and be used on another loop afterwards", "[net]") {
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    braid::tcp_stream client;
    braid::tcp_stream server_side;
    {
        braid::event_loop first;
        auto accept_one = [&]() -> braid::task<> { server_side = co_await listener.accept(); };
        auto connect = [&]() -> braid::task<> {
            client = co_await braid::tcp_stream::connect("127.0.0.1", listener.port());
        };
        first.spawn(accept_one());
        first.run_until_complete(connect());
        first.run();
        CHECK(first.run_until_complete([&]() -> braid::task<std::string> {
            co_await client.write_all("one");
            co_return co_await read_exactly(server_side, 3);
        }()) == "one");
    }
    braid::event_loop second;
    CHECK(second.run_until_complete([&]() -> braid::task<std::string> {
        co_await server_side.write_all("two");
        co_return co_await read_exactly(client, 3);
    }()) == "two");
    CHECK(second.run_until_complete([&]() -> braid::task<std::string> {
        co_await client.write_all("three");
        co_return co_await read_exactly(server_side, 5);
    }()) == "three");
}

TEST_CASE("destroying a loop in mid-traffic frees the tasks and closes every descriptor "
          "through the sockets' destructors",
          "[net]") {
    const auto descriptors_before = braid_test::open_descriptors();
    {
        braid::event_loop loop;
        auto listener =
            std::make_shared<braid::tcp_listener>(braid::tcp_listener::bind("127.0.0.1", 0));
        const std::uint16_t port = listener->port();
        auto server = [](braid::event_loop& l,
                         std::shared_ptr<braid::tcp_listener> owned) -> braid::task<> {
            for (;;) {
                braid::tcp_stream client = co_await owned->accept();
                l.spawn(echo(std::move(client)));
            }
        };
        loop.spawn(server(loop, std::move(listener)));
        int round_trips = 0;
        auto client = [&](std::uint16_t p) -> braid::task<> {
            auto s = co_await braid::tcp_stream::connect("127.0.0.1", p);
            for (;;) {
                co_await s.write_all("ping");
                const std::string unused = co_await read_exactly(s, 4);
                ++round_trips;
            }
        };
        for (int i = 0; i < 20; ++i) {
            loop.spawn(client(port));
        }
        auto stop_later = [&]() -> braid::task<> {
            while (round_trips < 200) {
                co_await braid::yield();
            }
            loop.stop();
        };
        loop.spawn(stop_later());
        loop.run();
        CHECK(round_trips >= 200);
        CHECK(braid_test::open_descriptors() > descriptors_before + 40);
    }
    CHECK(braid_test::open_descriptors() == descriptors_before);
}

TEST_CASE("readable on a socket's own descriptor is usage_error: use the socket's operations",
          "[net]") {
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    auto accept_one = [&]() -> braid::task<> { braid::tcp_stream s = co_await listener.accept(); };
    auto a = accept_one();
    loop.spawn(a);
    auto wait_raw = [&]() -> braid::task<> { co_await braid::readable(listener.native_handle()); };
    auto raw = wait_raw();
    loop.spawn(raw);
    loop.call_soon([&] { listener.close(); });
    loop.run();
    REQUIRE_THROWS_AS(raw.result(), braid::usage_error);
    CHECK(error_of(a) == std::errc::operation_canceled);
}
