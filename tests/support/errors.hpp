// SPDX-License-Identifier: MIT
#pragma once

// braid_test::log_errors: an exception handler for tests that check what
// reached the loop's handler. It appends each error's what() to `messages`
// (which must outlive the loop's use of the handler); an exception that is
// not a std::exception leaves run(), as with the default handler.

#include <braid/event_loop.hpp>

#include <exception>
#include <string>
#include <vector>

namespace braid_test {

inline void log_errors(braid::event_loop& loop, std::vector<std::string>& messages) {
    loop.set_exception_handler([&messages](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            messages.emplace_back(x.what());
        }
    });
}

} // namespace braid_test
