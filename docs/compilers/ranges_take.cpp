// SPDX-License-Identifier: MIT
// A range adaptor over a vector: libstdc++ 12's <ranges> as braid's
// stream_executor uses it. clang 14 rejects it (llvm/llvm-project#44178).
#include <ranges>
#include <vector>

int main() {
    std::vector<int> v{1, 2, 3};
    int sum = 0;
    for (int x : v | std::views::take(2)) {
        sum += x;
    }
    return sum == 3 ? 0 : 1;
}
