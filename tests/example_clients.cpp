// SPDX-License-Identifier: MIT
// Drives examples/echo_server and examples/chat_server as a user would: starts
// the server, connects clients written with braid, checks what they get back,
// stops the server with SIGTERM, and prints a transcript (ports left out) that
// CTest compares with tests/expected/<server>.txt.
//
//   example_clients echo <path to echo_server>
//   example_clients chat <path to chat_server>

#include <braid/event_loop.hpp>
#include <braid/net.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using namespace std::chrono_literals;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "example_clients: %s\n", what.c_str());
    std::exit(1);
}

// A server process whose standard output comes through a pipe.
class server {
public:
    explicit server(const char* path) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            fail("pipe2");
        }
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        char* argv[] = {const_cast<char*>(path), nullptr};
        if (::posix_spawn(&pid_, path, &actions, nullptr, argv, environ) != 0) {
            fail(std::string("cannot start ") + path);
        }
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        out_ = fds[0];
    }
    ~server() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_);
    }

    // The next line it prints (without '\n'), waiting up to 30 s.
    std::string line() {
        for (;;) {
            if (const auto end = buffered_.find('\n'); end != std::string::npos) {
                std::string l = buffered_.substr(0, end);
                buffered_.erase(0, end + 1);
                return l;
            }
            pollfd p{out_, POLLIN, 0};
            char chunk[256];
            const ssize_t n = ::poll(&p, 1, 30'000) == 1 ? ::read(out_, chunk, sizeof chunk) : -1;
            if (n <= 0) {
                fail("the server printed no complete line");
            }
            buffered_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    // "... listening on 127.0.0.1:PORT": the port; prints the line without it.
    std::uint16_t listening() {
        const std::string l = line();
        const auto colon = l.rfind(':');
        if (colon == std::string::npos) {
            fail("unexpected first line: " + l);
        }
        std::printf("server: %s:PORT\n", l.substr(0, colon).c_str());
        return static_cast<std::uint16_t>(std::atoi(l.c_str() + colon + 1));
    }

    // SIGTERM; prints what it says until it exits, and how it exited.
    void stop() {
        ::kill(pid_, SIGTERM);
        std::printf("server: %s\n", line().c_str());
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        std::printf("server exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffered_;
};

// Reads one line (without '\n') from s, keeping what follows in `rest`.
braid::task<std::string> read_line(braid::tcp_stream& s, std::string& rest) {
    std::array<char, 256> buffer;
    for (;;) {
        if (const auto end = rest.find('\n'); end != std::string::npos) {
            std::string l = rest.substr(0, end);
            rest.erase(0, end + 1);
            co_return l;
        }
        const std::size_t n = co_await s.read_some(buffer);
        if (n == 0) {
            co_return "(end of stream)";
        }
        rest.append(buffer.data(), n);
    }
}

// Three clients at once, each sending three lines and reading them back.
braid::task<std::string> echo_client(std::uint16_t port, int id) {
    auto s = co_await braid::tcp_stream::connect("127.0.0.1", port);
    std::string rest;
    std::string transcript;
    for (int i = 1; i <= 3; ++i) {
        const std::string line = "client " + std::to_string(id) + " line " + std::to_string(i);
        co_await s.write_all(line + "\n");
        const std::string back = co_await read_line(s, rest);
        transcript +=
            "client " + std::to_string(id) + " sent \"" + line + "\", got \"" + back + "\"\n";
        co_await braid::yield(); // let the others interleave
    }
    s.shutdown_write();
    const std::string last = co_await read_line(s, rest);
    transcript += "client " + std::to_string(id) + " then read \"" + last + "\"\n";
    co_return transcript;
}

int run_echo(const char* path) {
    server srv(path);
    const std::uint16_t port = srv.listening();
    braid::event_loop loop;
    std::vector<braid::task<std::string>> clients;
    for (int id = 1; id <= 3; ++id) {
        clients.push_back(echo_client(port, id));
        loop.spawn(clients.back());
    }
    loop.run();
    for (auto& c : clients) {
        std::printf("%s", c.result().c_str());
    }
    srv.stop();
    return 0;
}

struct chat_client {
    std::string name;
    braid::tcp_stream stream;
    std::string rest;
};

int run_chat(const char* path) {
    server srv(path);
    const std::uint16_t port = srv.listening();
    braid::event_loop loop;
    std::map<std::string, chat_client> clients;

    auto join = [&](std::string name) -> braid::task<> {
        chat_client& c = clients[name];
        c.name = name;
        c.stream = co_await braid::tcp_stream::connect("127.0.0.1", port);
        co_await c.stream.write_all(name + "\n");
        const std::string welcome = co_await read_line(c.stream, c.rest); // in the room now
        std::printf("  %s hears \"%s\"\n", name.c_str(), welcome.c_str());
    };
    // Each of `who` reads one line; printed in name order.
    auto expect = [&](std::vector<std::string> who) -> braid::task<> {
        for (const std::string& name : who) {
            chat_client& c = clients[name];
            const std::string heard = co_await read_line(c.stream, c.rest);
            std::printf("  %s hears \"%s\"\n", name.c_str(), heard.c_str());
        }
    };
    auto say = [&](std::string name, std::string text) -> braid::task<> {
        std::printf("%s says \"%s\"\n", name.c_str(), text.c_str());
        co_await clients[name].stream.write_all(text + "\n");
    };

    std::printf("alice joins\n");
    loop.run_until_complete(join("alice"));
    std::printf("bob joins\n");
    loop.run_until_complete(join("bob"));
    loop.run_until_complete(expect({"alice"}));
    std::printf("carol joins\n");
    loop.run_until_complete(join("carol"));
    loop.run_until_complete(expect({"alice", "bob"}));
    loop.run_until_complete(say("alice", "hello, everyone"));
    loop.run_until_complete(expect({"bob", "carol"}));
    loop.run_until_complete(say("bob", "hi alice"));
    loop.run_until_complete(expect({"alice", "carol"}));
    loop.run_until_complete(say("carol", "hi both"));
    loop.run_until_complete(expect({"alice", "bob"}));
    std::printf("carol leaves\n");
    clients["carol"].stream.close();
    loop.run_until_complete(expect({"alice", "bob"}));
    srv.stop();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fail("usage: example_clients echo|chat <path to the server>");
    }
    ::alarm(120); // a hang ends the test, with SIGALRM, well before CTest's timeout
    const std::string_view which = argv[1];
    return which == "echo" ? run_echo(argv[2]) : run_chat(argv[2]);
}
