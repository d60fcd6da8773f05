// SPDX-License-Identifier: MIT
#pragma once

// The one place that knows which Catch2 the tests are built with: 3.x where it
// is installed, else 2.13 (what Debian 12 ships). Test files include this.

#if BRAID_CATCH2_MAJOR == 3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

namespace braid_test {

// A matcher for REQUIRE_THROWS_WITH: the message contains `part`.
inline auto contains(const std::string& part) {
#if BRAID_CATCH2_MAJOR == 3
    return Catch::Matchers::ContainsSubstring(part);
#else
    return Catch::Matchers::Contains(part);
#endif
}

} // namespace braid_test
