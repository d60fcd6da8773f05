// SPDX-License-Identifier: MIT
//
// A loopback TCP echo, the same load against every server: C connections
// (1, 10, 100, 1,000), each doing request/response round trips of 64 bytes
// as fast as the server answers. Reported per server and C: round trips per
// second (items_per_second, and rt_per_s), and the p50/p99 round-trip
// latency in microseconds. A second benchmark measures the memory each idle
// connection costs the server (its resident set's growth over 1,000 idle
// connections, each having done one round trip).
//
// Servers, each a process of its own on one thread, started afresh for each
// measurement:
//
//   braid         braid::tcp_listener / tcp_stream, a task per connection
//   asio_coro     asio with C++20 coroutines (awaitable, async_read_some and
//                 async_write), a coroutine per connection
//   asio_callback asio with completion handlers, a session object per connection
//   epoll         a minimal hand-written epoll server (level-triggered, one
//                 read and one write per message, a buffer shared by all
//                 connections): the floor
//   uvloop        Python's asyncio with uvloop (bench/echo_server.py, an
//                 asyncio.Protocol); left out when uvloop is not installed
//   asyncio       the same on plain asyncio; left out without python3
//
// Every per-connection server reads into a buffer of `session_buffer` bytes
// of its own; the C++ servers set TCP_NODELAY on accepted sockets (asyncio
// and uvloop do by default). The load generator is plain epoll on this
// process's thread. Client and server are pinned to the same CPU
// (--echo_cpu, default the last one; -1: not pinned), so a figure is what
// the whole round trip costs one CPU, and the server's share is what differs
// between servers.
//
// Own flags (before Google Benchmark's): --echo_seconds=S measured per
// benchmark (default 1, after a warm-up of a fifth of it), --echo_cpu=N.
// --serve=NAME runs one server and prints "port N" (used by the benchmark
// itself).

#include <braid/event_loop.hpp>
#include <braid/net.hpp>

#include "bench_main.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if BRAID_BENCH_HAVE_ASIO
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
// asio 1.22 enables co_await under clang only with <experimental/coroutine>;
// clang 16 with libstdc++ has the standard <coroutine>, which asio then uses.
#define ASIO_HAS_CO_AWAIT 1
#endif
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#endif

extern char** environ;

namespace {

constexpr std::size_t message_size = 64;
constexpr std::size_t session_buffer = 256;
constexpr int idle_connections = 1000;

double measure_seconds = 1.0;
int pin_cpu = -2; // -2: the last CPU; -1: none
std::string self_path;
std::string python;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "echo_bench: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

void announce(std::uint16_t port) {
    std::printf("port %u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
}

void set_nodelay(int fd) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// --- Servers --------------------------------------------------------------------

braid::task<> braid_session(braid::tcp_stream s) {
    std::array<char, session_buffer> buffer;
    for (;;) {
        const std::size_t n = co_await s.read_some(buffer);
        if (n == 0) {
            co_return;
        }
        co_await s.write_all(std::string_view(buffer.data(), n));
    }
}

braid::task<> braid_acceptor(braid::event_loop& loop, braid::tcp_listener& listener) {
    for (;;) {
        braid::tcp_stream client = co_await listener.accept();
        loop.spawn(braid_session(std::move(client)));
    }
}

void serve_braid() {
    braid::event_loop loop;
    loop.set_exception_handler([](std::exception_ptr) {}); // a client that reset: go on
    auto listener = braid::tcp_listener::bind("127.0.0.1", 0);
    announce(listener.port());
    loop.run_until_complete(braid_acceptor(loop, listener));
}

#if BRAID_BENCH_HAVE_ASIO
using asio::ip::tcp;

asio::awaitable<void> asio_session(tcp::socket s) {
    std::array<char, session_buffer> buffer;
    try {
        for (;;) {
            const std::size_t n =
                co_await s.async_read_some(asio::buffer(buffer), asio::use_awaitable);
            co_await asio::async_write(s, asio::buffer(buffer.data(), n), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // end of stream or a reset: the session is over
    }
}

asio::awaitable<void> asio_acceptor(tcp::acceptor& acceptor) {
    for (;;) {
        tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
        s.set_option(tcp::no_delay(true));
        asio::co_spawn(acceptor.get_executor(), asio_session(std::move(s)), asio::detached);
    }
}

tcp::acceptor asio_listen(asio::io_context& io) {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    announce(acceptor.local_endpoint().port());
    return acceptor;
}

void serve_asio_coro() {
    asio::io_context io(1); // one thread: asio drops its locks
    tcp::acceptor acceptor = asio_listen(io);
    asio::co_spawn(io, asio_acceptor(acceptor), asio::detached);
    io.run();
}

class asio_callback_session : public std::enable_shared_from_this<asio_callback_session> {
public:
    explicit asio_callback_session(tcp::socket s) : s_(std::move(s)) {}
    void read() {
        s_.async_read_some(asio::buffer(buffer_),
                           [self = shared_from_this()](std::error_code error, std::size_t n) {
                               if (!error) {
                                   self->write(n);
                               }
                           });
    }

private:
    void write(std::size_t n) {
        asio::async_write(s_, asio::buffer(buffer_.data(), n),
                          [self = shared_from_this()](std::error_code error, std::size_t) {
                              if (!error) {
                                  self->read();
                              }
                          });
    }
    tcp::socket s_;
    std::array<char, session_buffer> buffer_;
};

void asio_callback_accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](std::error_code error, tcp::socket s) {
        if (!error) {
            s.set_option(tcp::no_delay(true));
            std::make_shared<asio_callback_session>(std::move(s))->read();
        }
        asio_callback_accept(acceptor);
    });
}

void serve_asio_callback() {
    asio::io_context io(1);
    tcp::acceptor acceptor = asio_listen(io);
    asio_callback_accept(acceptor);
    io.run();
}
#endif

// The floor: what any event-loop server must do, and nothing else.
void serve_epoll() {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::listen(listener, SOMAXCONN) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
        die("epoll server: listen");
    }
    const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listener;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    announce(ntohs(address.sin_port));
    std::array<epoll_event, 64> events;
    std::array<char, 65536> buffer; // shared by all connections
    for (;;) {
        const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listener) {
                for (int c; (c = ::accept4(listener, nullptr, nullptr,
                                           SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                    set_nodelay(c);
                    event.events = EPOLLIN;
                    event.data.fd = c;
                    ::epoll_ctl(epoll, EPOLL_CTL_ADD, c, &event);
                }
                continue;
            }
            const ssize_t got = ::read(fd, buffer.data(), buffer.size());
            if (got <= 0) {
                if (got == 0 || errno != EAGAIN) {
                    ::close(fd);
                }
                continue;
            }
            // A 64-byte echo always fits the socket's buffer: a partial write
            // would mean a client that does not read, which this load never is.
            if (::send(fd, buffer.data(), static_cast<std::size_t>(got), MSG_NOSIGNAL) != got) {
                ::close(fd);
            }
        }
    }
}

// --- Server processes -----------------------------------------------------------

enum class server_kind { braid, asio_coro, asio_callback, epoll, uvloop, asyncio };

const char* name_of(server_kind k) {
    switch (k) {
    case server_kind::braid:
        return "braid";
    case server_kind::asio_coro:
        return "asio_coro";
    case server_kind::asio_callback:
        return "asio_callback";
    case server_kind::epoll:
        return "epoll";
    case server_kind::uvloop:
        return "uvloop";
    case server_kind::asyncio:
        return "asyncio";
    }
    return "?";
}

// Runs `argv` with its standard output on a pipe; returns its pid and exit
// status handling to the caller.
pid_t spawn(const std::vector<std::string>& args, int* out_fd) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        die("pipe2");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (out_fd != nullptr) {
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int error = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (error != 0) {
        ::close(fds[0]);
        return -1;
    }
    if (out_fd != nullptr) {
        *out_fd = fds[0];
    } else {
        ::close(fds[0]);
    }
    return pid;
}

bool python_can_import(const char* module) {
    if (python.empty()) {
        return false;
    }
    const pid_t pid = spawn({python, "-c", std::string("import ") + module}, nullptr);
    int status = 0;
    return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

class server_process {
public:
    explicit server_process(server_kind kind) {
        std::vector<std::string> args;
        if (kind == server_kind::uvloop || kind == server_kind::asyncio) {
            args = {python, BRAID_BENCH_SOURCE_DIR "/echo_server.py", name_of(kind)};
        } else {
            args = {self_path, std::string("--serve=") + name_of(kind)};
        }
        int out = -1;
        pid_ = spawn(args, &out);
        if (pid_ < 0) {
            throw std::runtime_error(std::string("cannot start ") + args[0]);
        }
        // "port N\n", within 10 s (Python starts slowly).
        std::string line;
        pollfd p{out, POLLIN, 0};
        while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10'000) == 1) {
            char c[64];
            const ssize_t n = ::read(out, c, sizeof c);
            if (n <= 0) {
                break;
            }
            line.append(c, static_cast<std::size_t>(n));
        }
        ::close(out);
        unsigned port = 0;
        if (std::sscanf(line.c_str(), "port %u", &port) != 1) {
            stop();
            throw std::runtime_error(std::string(name_of(kind)) + " server did not start");
        }
        port_ = static_cast<std::uint16_t>(port);
    }
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;
    ~server_process() { stop(); }

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

    // CPU time the server has used, in nanoseconds (its thread's, from the
    // scheduler: exact, and not inflated by other processes' load the way a
    // throughput figure is).
    [[nodiscard]] std::uint64_t cpu_ns() const {
        std::ifstream schedstat("/proc/" + std::to_string(pid_) + "/schedstat");
        std::uint64_t ns = 0;
        schedstat >> ns;
        return ns;
    }

    // Resident set size in bytes (VmRSS).
    [[nodiscard]] long resident_bytes() const {
        std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
        std::string key;
        while (status >> key) {
            if (key == "VmRSS:") {
                long kb = 0;
                status >> kb;
                return kb * 1024;
            }
            std::getline(status, key);
        }
        return -1;
    }

private:
    void stop() noexcept {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }

    pid_t pid_ = -1;
    std::uint16_t port_ = 0;
};

// --- The load generator ---------------------------------------------------------

struct connection {
    int fd = -1;
    std::size_t received = 0;
    std::chrono::steady_clock::time_point sent_at;
};

class load {
public:
    load(std::uint16_t port, int count) : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
        connections_.resize(static_cast<std::size_t>(count));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(port);
        for (std::size_t i = 0; i < connections_.size(); ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0 ||
                ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
                die("load: connect");
            }
            set_nodelay(fd);
            ::fcntl(fd, F_SETFL, O_NONBLOCK);
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.u64 = i;
            ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
            connections_[i].fd = fd;
        }
        request_.fill('x');
    }
    load(const load&) = delete;
    load& operator=(const load&) = delete;
    ~load() {
        for (const connection& c : connections_) {
            ::close(c.fd);
        }
        ::close(epoll_);
    }

    struct result {
        double seconds = 0;
        std::uint64_t round_trips = 0;
        double p50_us = 0;
        double p99_us = 0;
    };

    // Every connection keeps one request in flight from now on.
    void start() {
        for (connection& c : connections_) {
            send_request(c);
        }
    }

    // Runs the started load for `length`; `record`: keep latencies.
    result drive(std::chrono::duration<double> length, bool record) {
        using clock = std::chrono::steady_clock;
        latencies_.clear();
        std::array<epoll_event, 256> events;
        const auto start = clock::now();
        const auto end = start + std::chrono::duration_cast<clock::duration>(length);
        std::uint64_t round_trips = 0;
        auto now = start;
        while (now < end) {
            const int n =
                ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10'000);
            if (n <= 0) {
                die("load: no answer within 10 s");
            }
            for (int i = 0; i < n; ++i) {
                connection& c = connections_[events[static_cast<std::size_t>(i)].data.u64];
                if (receive(c)) {
                    now = clock::now();
                    if (record) {
                        latencies_.push_back(static_cast<std::uint32_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at)
                                .count()));
                    }
                    ++round_trips;
                    send_request(c);
                }
            }
        }
        result r;
        r.seconds = std::chrono::duration<double>(now - start).count();
        r.round_trips = round_trips;
        if (!latencies_.empty()) {
            auto at = [&](double q) {
                const auto k =
                    static_cast<std::size_t>(q * static_cast<double>(latencies_.size() - 1));
                std::nth_element(latencies_.begin(),
                                 latencies_.begin() + static_cast<std::ptrdiff_t>(k),
                                 latencies_.end());
                return latencies_[k] / 1000.0;
            };
            r.p50_us = at(0.50);
            r.p99_us = at(0.99);
        }
        return r;
    }

    // One round trip on every connection, then nothing: idle connections.
    void one_round_trip_each() {
        for (connection& c : connections_) {
            send_request(c);
        }
        std::size_t done = 0;
        std::array<epoll_event, 256> events;
        while (done < connections_.size()) {
            const int n =
                ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10'000);
            if (n <= 0) {
                die("load: no answer");
            }
            for (int i = 0; i < n; ++i) {
                if (receive(connections_[events[static_cast<std::size_t>(i)].data.u64])) {
                    ++done;
                }
            }
        }
    }

private:
    void send_request(connection& c) {
        c.received = 0;
        c.sent_at = std::chrono::steady_clock::now();
        if (::send(c.fd, request_.data(), request_.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request_.size())) {
            die("load: send");
        }
    }

    // True when the whole answer has come.
    bool receive(connection& c) {
        std::array<char, message_size> reply;
        const ssize_t n = ::recv(c.fd, reply.data(), message_size - c.received, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) {
                return false;
            }
            die("load: recv");
        }
        c.received += static_cast<std::size_t>(n);
        return c.received == message_size;
    }

    int epoll_;
    std::vector<connection> connections_;
    std::array<char, message_size> request_;
    std::vector<std::uint32_t> latencies_;
};

// --- Benchmarks -----------------------------------------------------------------

void BM_echo(benchmark::State& state, server_kind kind) {
    const int connections = static_cast<int>(state.range(0));
    server_process server(kind);
    load clients(server.port(), connections);
    load::result r;
    std::uint64_t server_ns = 0;
    for (auto _ : state) {
        clients.start();
        (void)clients.drive(std::chrono::duration<double>(measure_seconds / 5), false);
        const std::uint64_t cpu_before = server.cpu_ns();
        r = clients.drive(std::chrono::duration<double>(measure_seconds), true);
        server_ns = server.cpu_ns() - cpu_before;
        state.SetIterationTime(r.seconds);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(r.round_trips));
    state.counters["rt_per_s"] = static_cast<double>(r.round_trips) / r.seconds;
    // The server's CPU time per round trip: what the servers are compared on
    // when the machine is shared.
    state.counters["server_ns_per_rt"] =
        static_cast<double>(server_ns) / static_cast<double>(r.round_trips);
    state.counters["p50_us"] = r.p50_us;
    state.counters["p99_us"] = r.p99_us;
}

void BM_echo_idle_memory(benchmark::State& state, server_kind kind) {
    server_process server(kind);
    double per_connection = 0;
    for (auto _ : state) {
        // A first connection makes the server allocate what it allocates
        // once (its loop's structures, first pages of its pools).
        load first(server.port(), 1);
        first.one_round_trip_each();
        const long before = server.resident_bytes();
        load idle(server.port(), idle_connections);
        idle.one_round_trip_each();
        ::usleep(20'000); // the server goes back to waiting
        const long after = server.resident_bytes();
        per_connection = static_cast<double>(after - before) / idle_connections;
    }
    state.counters["bytes_per_connection"] = per_connection;
}

void register_all() {
    std::vector<server_kind> kinds{server_kind::braid};
#if BRAID_BENCH_HAVE_ASIO
    kinds.push_back(server_kind::asio_coro);
    kinds.push_back(server_kind::asio_callback);
#else
    std::fprintf(stderr, "echo_bench: asio not found: left out\n");
#endif
    kinds.push_back(server_kind::epoll);
    if (python_can_import("uvloop")) {
        kinds.push_back(server_kind::uvloop);
    } else {
        std::fprintf(stderr, "echo_bench: python3 with uvloop not found (apt-get install "
                             "python3-uvloop): left out\n");
    }
    if (python_can_import("asyncio")) {
        kinds.push_back(server_kind::asyncio);
    } else {
        std::fprintf(stderr, "echo_bench: python3 not found: asyncio left out\n");
    }
    for (server_kind kind : kinds) {
        benchmark::RegisterBenchmark((std::string("BM_echo_") + name_of(kind)).c_str(), BM_echo,
                                     kind)
            ->ArgName("connections")
            ->Arg(1)
            ->Arg(10)
            ->Arg(100)
            ->Arg(idle_connections)
            ->Iterations(1)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
    for (server_kind kind : kinds) {
        benchmark::RegisterBenchmark((std::string("BM_echo_idle_memory_") + name_of(kind)).c_str(),
                                     BM_echo_idle_memory, kind)
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }
}

int serve(std::string_view name) {
    if (name == "braid") {
        serve_braid();
    } else if (name == "epoll") {
        serve_epoll();
#if BRAID_BENCH_HAVE_ASIO
    } else if (name == "asio_coro") {
        serve_asio_coro();
    } else if (name == "asio_callback") {
        serve_asio_callback();
#endif
    } else {
        std::fprintf(stderr, "echo_bench: no server named %.*s\n", static_cast<int>(name.size()),
                     name.data());
        return 2;
    }
    return 0;
}

void pin(int cpu) {
    if (cpu == -2) {
        cpu = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)) - 1;
    }
    if (cpu < 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
        std::fprintf(stderr, "echo_bench: cannot pin to CPU %d: %s\n", cpu, std::strerror(errno));
    }
}

} // namespace

int main(int argc, char** argv) {
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg.starts_with("--serve=")) {
            return serve(arg.substr(8));
        }
        if (arg.starts_with("--echo_seconds=")) {
            measure_seconds = std::stod(std::string(arg.substr(15)));
        } else if (arg.starts_with("--echo_cpu=")) {
            pin_cpu = std::stoi(std::string(arg.substr(11)));
        } else {
            rest.push_back(argv[i]);
        }
    }
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    self_path = n > 0 ? std::string(path, static_cast<std::size_t>(n)) : argv[0];
    if (const char* p = std::getenv("BRAID_BENCH_PYTHON"); p != nullptr) {
        python = p;
    } else if (::access("/usr/bin/python3", X_OK) == 0) {
        python = "/usr/bin/python3"; // Debian's, where python3-uvloop installs
    } else {
        python = "python3";
    }
    pin(pin_cpu);
    register_all();
    return braid_bench::run_benchmarks(std::move(rest));
}
