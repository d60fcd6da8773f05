// SPDX-License-Identifier: MIT
#pragma once

// Inputs and readers that let stream tests count what a map takes and check
// its buffer bound at every take, from inside the map's own threads (they
// record; the test asserts afterwards on its own thread).
//
//   take_log      counts items taken from one input and results requested
//                 from the map reading it; flags a take beyond the bound
//   taking_input  a move-only, generator-like input: begin() and ++ take an
//                 item (0, 1, 2, ...); can be slow, block, or throw
//   tapped        an owning wrapper that counts the items a map takes from
//                 another range (e.g. an upstream stream_results)
//   read_counted  reads up to n results, telling a take_log before each one

#include "support/concurrency.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace braid_test {

inline constexpr std::uint64_t no_index = std::numeric_limits<std::uint64_t>::max();

struct take_log {
    explicit take_log(std::uint64_t buffer_size) : buffer(buffer_size) {}

    // A take of item count-1 just happened (count items taken in all).
    void record_take(std::uint64_t count) {
        taken.store(count, std::memory_order_seq_cst);
        const std::uint64_t asked = requested.load(std::memory_order_seq_cst);
        // `asked` is at least the consumer's true count (it is raised before
        // each request), so this never flags a correct map.
        if (count > asked + buffer)
            over.store(true, std::memory_order_relaxed);
        std::uint64_t worst = largest_gap.load(std::memory_order_relaxed);
        const std::uint64_t gap = count > asked ? count - asked : 0;
        while (gap > worst &&
               !largest_gap.compare_exchange_weak(worst, gap, std::memory_order_relaxed)) {
        }
    }

    const std::uint64_t buffer;
    std::atomic<std::uint64_t> taken{0};
    std::atomic<std::uint64_t> requested{0}; // results asked for, raised before asking
    std::atomic<std::uint64_t> largest_gap{0};
    std::atomic<bool> over{false};
    std::atomic<std::thread::id> reader{}; // the thread that last took an item
};

struct input_failure : std::runtime_error {
    explicit input_failure(std::uint64_t at)
        : std::runtime_error("input failed at " + std::to_string(at)), index(at) {}
    std::uint64_t index;
};

struct input_options {
    std::uint64_t size = no_index;          // no_index: infinite
    std::uint64_t throw_on_take = no_index; // begin() / ++ throws when taking this item
    std::uint64_t throw_on_read = no_index; // operator* throws on this item
    std::chrono::microseconds delay{0};     // per take
    gate* hold = nullptr;                   // taking item hold_from or later waits for it
    std::uint64_t hold_from = 0;
    std::atomic<int>* inside = nullptr; // counts threads inside begin() / ++ / *
};

class taking_input {
public:
    taking_input(take_log& log, input_options options) : log_(&log), options_(options) {}
    taking_input(taking_input&&) = default;
    taking_input& operator=(taking_input&&) = default;

    class iterator {
    public:
        using value_type = std::uint64_t;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        std::uint64_t operator*() const {
            scope s(owner_);
            if (index_ == owner_->options_.throw_on_read)
                throw input_failure(index_);
            return index_;
        }
        iterator& operator++() {
            scope s(owner_);
            owner_->take(++index_);
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

    private:
        friend class taking_input;
        bool at_end() const { return index_ >= owner_->options_.size; }
        iterator(taking_input* owner, std::uint64_t index) : owner_(owner), index_(index) {}
        taking_input* owner_ = nullptr;
        std::uint64_t index_ = 0;
    };

    iterator begin() {
        scope s(this);
        take(0);
        return iterator(this, 0);
    }
    std::default_sentinel_t end() const { return {}; }

private:
    struct scope {
        explicit scope(const taking_input* in) : inside(in->options_.inside) {
            if (inside)
                inside->fetch_add(1);
        }
        ~scope() {
            if (inside)
                inside->fetch_sub(1);
        }
        std::atomic<int>* inside;
    };

    void take(std::uint64_t index) {
        if (index >= options_.size)
            return; // reaching the end takes nothing
        if (options_.hold != nullptr && index >= options_.hold_from)
            options_.hold->wait();
        if (options_.delay.count() > 0)
            std::this_thread::sleep_for(options_.delay);
        if (index == options_.throw_on_take)
            throw input_failure(index);
        log_->reader.store(std::this_thread::get_id());
        log_->record_take(index + 1);
    }

    take_log* log_;
    input_options options_;
};

// Owns `range` and counts, in `log`, each item a reader takes from it; before
// asking `range` for item k it tells `upstream` (the log of the map that
// produces `range`, if any) that k+1 results are requested.
template <class Range>
class tapped {
public:
    tapped(Range range, take_log& log, take_log* upstream)
        : range_(std::move(range)), log_(&log), upstream_(upstream) {}
    tapped(tapped&&) = default;
    tapped& operator=(tapped&&) = default;

    class iterator {
    public:
        using value_type = std::ranges::range_value_t<Range>;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        decltype(auto) operator*() const {
            ensure();
            return *it_;
        }
        iterator& operator++() {
            ++it_;
            ++index_;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) {
            it.ensure();
            return it.at_end_;
        }

    private:
        friend class tapped;
        iterator(tapped* owner, std::ranges::iterator_t<Range> it)
            : owner_(owner), it_(std::move(it)) {}
        void ensure() const {
            if (checked_ == index_ + 1)
                return;
            if (owner_->upstream_ != nullptr)
                owner_->upstream_->requested.store(index_ + 1);
            at_end_ = (it_ == std::ranges::end(owner_->range_));
            if (!at_end_)
                owner_->log_->record_take(index_ + 1);
            checked_ = index_ + 1;
        }
        tapped* owner_ = nullptr;
        mutable std::ranges::iterator_t<Range> it_{};
        std::uint64_t index_ = 0;
        mutable std::uint64_t checked_ = 0;
        mutable bool at_end_ = false;
    };

    iterator begin() { return iterator(this, std::ranges::begin(range_)); }
    std::default_sentinel_t end() const { return {}; }

private:
    Range range_;
    take_log* log_;
    take_log* upstream_;
};

// Reads at most `n` results, raising log.requested before each request.
template <class Results>
auto read_counted(Results& results, std::size_t n, take_log& log) {
    std::vector<std::ranges::range_value_t<Results>> out;
    auto it = results.begin();
    for (std::size_t k = 0; k < n; ++k) {
        log.requested.store(k + 1);
        if (it == results.end())
            break;
        out.push_back(*it);
        ++it;
    }
    return out;
}

} // namespace braid_test
