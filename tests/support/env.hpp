// SPDX-License-Identifier: MIT
#pragma once

// env_or: a number from the environment, for tests whose random programs or
// run counts can be chosen from outside (BRAID_MODEL_SEED, ...).

#include <cstdint>
#include <cstdlib>

namespace braid_test {

// The value of environment variable `name` as a decimal number, or
// `fallback` when it is not set.
inline std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* text = std::getenv(name);
    return text != nullptr ? std::strtoull(text, nullptr, 10) : fallback;
}

} // namespace braid_test
