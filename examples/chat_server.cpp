// SPDX-License-Identifier: MIT
// A chat server: a client's first line is its name, which the server answers
// with a welcome; every line it sends after that goes to every other client
// as "name: line", and the others hear when someone joins or leaves.
//
//   chat_server [port]     (no port, or 0: a free one, printed)
//
// It runs until SIGINT or SIGTERM. Try it with a few `nc 127.0.0.1 <port>`.
//
// Only one task at a time may write to a stream, so each client has an
// outbox: whoever delivers to a client appends to it, and the one task
// already writing to that client (if any) sends it along with the rest.

#include <braid/event_loop.hpp>
#include <braid/io.hpp>
#include <braid/net.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory>
#include <string>
#include <system_error>

#include <sys/signalfd.h>
#include <unistd.h>

struct client {
    braid::tcp_stream stream;
    std::string name;
    std::string outbox; // written by deliver()
    bool writing = false;
};

using room = std::list<std::shared_ptr<client>>;

// Sends `line` to c, after what is already on its way.
braid::task<> deliver(std::shared_ptr<client> c, std::string line) {
    c->outbox += line;
    if (c->writing) {
        co_return; // the task writing to c sends it too
    }
    c->writing = true;
    try {
        while (!c->outbox.empty()) {
            const std::string batch = std::move(c->outbox);
            c->outbox.clear();
            co_await c->stream.write_all(batch);
        }
    } catch (const std::system_error&) {
        c->outbox.clear(); // gone: its own reader notices and leaves the room
    }
    c->writing = false;
}

void broadcast(braid::event_loop& loop, room& everyone, const client* from,
               const std::string& line) {
    for (const auto& c : everyone) {
        if (c.get() != from) {
            loop.spawn(deliver(c, line));
        }
    }
}

braid::task<> session(braid::event_loop& loop, room& everyone, braid::tcp_stream stream) {
    auto self = std::make_shared<client>();
    self->stream = std::move(stream);
    std::string pending;
    std::array<char, 1024> buffer;
    bool joined = false;
    try {
        for (;;) {
            const std::size_t n = co_await self->stream.read_some(buffer);
            if (n == 0) {
                break;
            }
            pending.append(buffer.data(), n);
            for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
                std::string line = pending.substr(0, end);
                pending.erase(0, end + 1);
                if (!joined) {
                    self->name = line;
                    joined = true;
                    broadcast(loop, everyone, self.get(), "* " + line + " joined\n");
                    everyone.push_back(self);
                    loop.spawn(deliver(self, "* welcome, " + line + ": " +
                                                 std::to_string(everyone.size()) + " online\n"));
                } else {
                    broadcast(loop, everyone, self.get(), self->name + ": " + line + "\n");
                }
            }
        }
    } catch (const std::system_error&) {
        // a reset: the client has left
    }
    if (joined) {
        everyone.remove(self);
        broadcast(loop, everyone, self.get(), "* " + self->name + " left\n");
    }
}

braid::task<> serve(braid::event_loop& loop, braid::tcp_listener& listener, room& everyone) {
    for (;;) {
        braid::tcp_stream client = co_await listener.accept();
        loop.spawn(session(loop, everyone, std::move(client)));
    }
}

braid::task<> stop_on_signal(braid::event_loop& loop, int signals) {
    co_await braid::readable(signals);
    signalfd_siginfo info{};
    (void)!::read(signals, &info, sizeof info);
    loop.stop();
}

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 0);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);

    room everyone; // declared before the loop: the loop's tasks refer to it
    braid::event_loop loop;
    auto listener = braid::tcp_listener::bind("127.0.0.1", port);
    std::printf("chat server listening on 127.0.0.1:%u\n", static_cast<unsigned>(listener.port()));
    std::fflush(stdout);

    loop.spawn(serve(loop, listener, everyone));
    loop.spawn(stop_on_signal(loop, signal_fd));
    loop.run_forever();
    std::printf("chat server stopped with %zu clients online\n", everyone.size());
    ::close(signal_fd);
}
