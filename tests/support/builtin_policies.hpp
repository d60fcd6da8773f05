// SPDX-License-Identifier: MIT
#pragma once

// braid_test::for_each_builtin_policy: calls f(name, policy) for every policy
// braid ships. The model test and the fuzz target run each program under
// every policy listed here, so a new built-in policy is one line below.

#include <braid/policy.hpp>

namespace braid_test {

template <class F>
void for_each_builtin_policy(F&& f) {
    f("interleaved", braid::interleaved);
    f("sequential", braid::sequential);
}

} // namespace braid_test
