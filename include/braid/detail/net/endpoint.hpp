// SPDX-License-Identifier: MIT
#pragma once

// detail::endpoint: an IPv4 or IPv6 address and port, as the socket calls
// take it, parsed from what braid accepts as a host (numeric addresses and
// "localhost", never a name lookup) and written as messages show it
// ("127.0.0.1:8080", "[::1]:8080").

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace braid::detail {

struct endpoint {
    union {
        sockaddr any;
        sockaddr_in v4;
        sockaddr_in6 v6;
    } address{};

    // "localhost" (127.0.0.1), a numeric IPv4 address, or a numeric IPv6
    // address (with or without brackets). Anything else is
    // std::invalid_argument naming `function`: no resolver is called.
    static endpoint parse(const char* function, std::string_view host, std::uint16_t port) {
        endpoint e;
        std::string text(host);
        if (text == "localhost") {
            text = "127.0.0.1";
        }
        if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
            text = text.substr(1, text.size() - 2);
            if (::inet_pton(AF_INET6, text.c_str(), &e.address.v6.sin6_addr) == 1) {
                e.address.v6.sin6_family = AF_INET6;
                e.address.v6.sin6_port = htons(port);
                return e;
            }
        } else if (::inet_pton(AF_INET, text.c_str(), &e.address.v4.sin_addr) == 1) {
            e.address.v4.sin_family = AF_INET;
            e.address.v4.sin_port = htons(port);
            return e;
        } else if (::inet_pton(AF_INET6, text.c_str(), &e.address.v6.sin6_addr) == 1) {
            e.address.v6.sin6_family = AF_INET6;
            e.address.v6.sin6_port = htons(port);
            return e;
        }
        throw std::invalid_argument(std::string(function) + ": \"" + std::string(host) +
                                    "\" is not a numeric IPv4 or IPv6 address nor \"localhost\" "
                                    "(braid does not resolve host names; resolve them first, "
                                    "for example with getaddrinfo inside braid::run_in)");
    }

    [[nodiscard]] int family() const noexcept { return address.any.sa_family; }
    [[nodiscard]] socklen_t size() const noexcept {
        return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    }
    [[nodiscard]] std::uint16_t port() const noexcept {
        return ntohs(family() == AF_INET6 ? address.v6.sin6_port : address.v4.sin_port);
    }

    // "127.0.0.1:8080" or "[::1]:8080".
    void append_to(std::string& out) const {
        char text[INET6_ADDRSTRLEN] = "?";
        if (family() == AF_INET6) {
            ::inet_ntop(AF_INET6, &address.v6.sin6_addr, text, sizeof text);
            out += '[';
            out += text;
            out += ']';
        } else {
            ::inet_ntop(AF_INET, &address.v4.sin_addr, text, sizeof text);
            out += text;
        }
        out += ':';
        out += std::to_string(port());
    }
};

} // namespace braid::detail
