// SPDX-License-Identifier: MIT
// An echo server: every connection gets back what it sends, one task per
// connection, all on one thread.
//
//   echo_server [port]     (no port, or 0: a free one, printed)
//
// It runs until SIGINT or SIGTERM, which it reads from a signalfd with
// co_await braid::readable, then says how many connections it served. Try it
// with `nc 127.0.0.1 <port>`.

#include <braid/event_loop.hpp>
#include <braid/io.hpp>
#include <braid/net.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <system_error>

#include <sys/signalfd.h>
#include <unistd.h>

braid::task<> echo(braid::tcp_stream client) {
    std::array<char, 4096> buffer;
    try {
        for (;;) {
            const std::size_t n = co_await client.read_some(buffer);
            if (n == 0) {
                co_return; // the client closed its side
            }
            co_await client.write_all(std::string_view(buffer.data(), n));
        }
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what()); // a reset, say: this client only
    }
}

braid::task<> serve(braid::event_loop& loop, braid::tcp_listener& listener, int& served) {
    for (;;) {
        braid::tcp_stream client = co_await listener.accept();
        ++served;
        loop.spawn(echo(std::move(client))); // runs on its own; the loop owns it
    }
}

// Stops the loop at SIGINT or SIGTERM.
braid::task<> stop_on_signal(braid::event_loop& loop, int signals) {
    co_await braid::readable(signals);
    signalfd_siginfo info{};
    (void)!::read(signals, &info, sizeof info);
    loop.stop();
}

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 0);

    // The signals arrive through a descriptor the loop waits on, not a handler.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);

    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", port);
    std::printf("echo server listening on 127.0.0.1:%u\n", static_cast<unsigned>(listener.port()));
    std::fflush(stdout);

    int served = 0;
    loop.spawn(serve(loop, listener, served));
    loop.spawn(stop_on_signal(loop, signal_fd));
    loop.run_forever();
    std::printf("stopped after serving %d connections\n", served);
    ::close(signal_fd);
    // The loop's destructor frees the tasks still waiting; their streams close.
}
