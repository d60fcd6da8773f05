// SPDX-License-Identifier: MIT
#pragma once

// braid_test::trace: records events as strings in the order they happen, so
// that a test can compare an interleaving with the one it expects.

#include <string>
#include <utility>
#include <vector>

namespace braid_test {

class trace {
public:
    void operator()(std::string event) { events_.push_back(std::move(event)); }
    [[nodiscard]] const std::vector<std::string>& events() const noexcept { return events_; }
    void clear() noexcept { events_.clear(); }

private:
    std::vector<std::string> events_;
};

} // namespace braid_test
