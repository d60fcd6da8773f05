// SPDX-License-Identifier: MIT
#pragma once

// Out-of-line definitions of braid::stream_executor; included at the end of
// <braid/stream_executor.hpp>, never on its own by users.

#include <braid/stream_executor.hpp>

#include <cstdio>
#include <exception>

namespace braid {
namespace detail {

// One map's producer job: the shared state and the inputs as held (an owned
// range or a ref_view). Run once on a producer thread, destroyed there, so an
// owned input dies on that thread, never on the consumer's or a worker.
template <class State, class... Held>
class stream_producer_job_for final : public stream_producer_job {
public:
    template <class... Inputs>
    explicit stream_producer_job_for(std::shared_ptr<State> state, Inputs&&... inputs)
        : state_(std::move(state)), inputs_(std::forward<Inputs>(inputs)...) {}

    void run() noexcept override { state_->produce(state_, inputs_); }

private:
    std::shared_ptr<State> state_;
    std::tuple<Held...> inputs_; // destroyed first
};

} // namespace detail

inline stream_executor::~stream_executor() {
    if (is_own_thread()) {
        std::fputs(
            "braid::stream_executor::~stream_executor: called from one of the executor's own "
            "threads, which would wait for itself\n",
            stderr);
        std::terminate();
    }
    shutdown();
}

template <class F, class... Args>
    requires detail::stream_map_arguments<Args...>
auto stream_executor::map(F&& f, Args&&... args) {
    constexpr std::size_t count = sizeof...(Args);
    constexpr bool has_buffer =
        detail::stream_buffer_argument<std::tuple_element_t<count - 1, std::tuple<Args...>>>;
    std::tuple<Args&&...> all(std::forward<Args>(args)...);
    stream_buffer buffer = default_buffer_size;
    if constexpr (has_buffer)
        buffer = stream_buffer(std::get<count - 1>(all));
    return start_map(std::forward<F>(f), buffer,
                     std::make_index_sequence < has_buffer ? count - 1 : count > {},
                     std::move(all));
}

template <class F, std::size_t... I, class Args>
auto stream_executor::start_map(F&& f, stream_buffer buffer, std::index_sequence<I...>, Args args) {
    using inputs = Args; // reference types: A& for an lvalue, A&& for an rvalue
    using function = std::decay_t<F>;
    using held = std::tuple<detail::stream_held_t<std::tuple_element_t<I, inputs>>...>;
    constexpr bool zipped = sizeof...(I) > 1;
    using in =
        std::conditional_t<zipped,
                           std::tuple<std::ranges::range_value_t<std::tuple_element_t<I, held>>...>,
                           std::ranges::range_value_t<std::tuple_element_t<0, held>>>;
    static_assert(
        std::is_invocable_v<const function&,
                            std::ranges::range_value_t<std::tuple_element_t<I, held>>&&...>,
        "braid::stream_executor::map: f must be callable as a const object with the input values "
        "(as rvalues): it runs on several workers at once, so a mutable lambda, which would race "
        "with itself, is refused");
    using raw_result =
        std::invoke_result_t<const function&,
                             std::ranges::range_value_t<std::tuple_element_t<I, held>>&&...>;
    static_assert(
        !std::is_void_v<raw_result>,
        "braid::stream_executor::map: f returns void, but map yields one value per input; "
        "return a value, or use submit()");
    using result = std::remove_cvref_t<raw_result>;
    static_assert(std::move_constructible<result>,
                  "braid::stream_executor::map: f's result must be move-constructible");

    if (buffer.negative_ || buffer.size() == 0) {
        throw std::invalid_argument(
            "braid::stream_executor::map: buffer_size must be at least 1 (got " +
            std::string(buffer.negative_ ? "a negative number" : "0") +
            "); pass a positive count or braid::unbounded");
    }
    check_running("braid::stream_executor::map");

    constexpr bool referenced =
        (... || std::is_lvalue_reference_v<std::tuple_element_t<I, inputs>>);
    using state_type = detail::stream_map_state<result, function, in, zipped>;
    using job_type = detail::stream_producer_job_for<state_type, std::tuple_element_t<I, held>...>;
    auto state = std::make_shared<state_type>(pool_, std::forward<F>(f), buffer.size(), referenced);
    auto job = std::make_unique<job_type>(
        state, std::forward<std::tuple_element_t<I, inputs>>(std::get<I>(args))...);
    {
        std::lock_guard lock(mutex_);
        if (shut_down_) {
            throw executor_shut_down("braid::stream_executor::map: the executor has been shut down "
                                     "and takes no more work");
        }
        if (maps_.size() >= prune_at_) {
            std::erase_if(maps_,
                          [](const std::weak_ptr<detail::stream_state>& m) { return m.expired(); });
            prune_at_ = std::max<std::size_t>(64, 2 * maps_.size());
        }
        maps_.push_back(state);
    }
    producers_.run(std::move(job));
    return stream_results<result>(std::move(state));
}

inline void stream_executor::shutdown() {
    if (is_own_thread()) {
        throw usage_error(
            "braid::stream_executor::shutdown: called from one of the executor's own threads, "
            "which would wait for itself; call it from another thread");
    }
    // Once; a concurrent caller waits until it is done, holding no lock (see
    // thread_pool::shutdown).
    std::call_once(shutdown_once_, [this] {
        std::vector<std::shared_ptr<detail::stream_state>> live;
        {
            std::lock_guard lock(mutex_);
            shut_down_ = true;
            for (const auto& map : maps_) {
                if (auto state = map.lock())
                    live.push_back(std::move(state));
            }
            maps_.clear();
        }
        for (const auto& state : live)
            state->request_stop();
        live.clear();
        producers_.shutdown(); // every producer has stopped taking input
        pool_.shutdown();      // running f calls and submitted tasks finish
    });
}

} // namespace braid
