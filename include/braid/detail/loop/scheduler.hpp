// SPDX-License-Identifier: MIT
#pragma once

// detail::scheduler: the core of braid::event_loop, without templates. It owns
// the ready queue, runs coroutines through a trampoline, applies the
// scheduling policy, keeps the list of spawned tasks it owns, and collects the
// exceptions nobody else can observe.
//
// The trampoline. Resuming the task that awaited one that finished, and
// starting an awaited task once starts are nested too deep, are not done by
// calling resume() from inside the coroutine that causes them (that nests a
// stack frame per transfer; symmetric transfer is only a guaranteed tail call
// on clang with optimisation: g++ at -O0/-O1 and every compiler under
// AddressSanitizer grow the stack, as reported in libcoro#273). Instead the
// coroutine stores the handle in next_ and suspends; resume() below, which
// sits at a constant stack depth, resumes it.
//
// The fast path. An awaited task that has not started is run by a plain call
// from its awaiter's await_suspend, up to max_inline_depth nested starts. When
// it finishes without suspending (the common case) the awaiter returns false
// and the awaiting coroutine goes on with no trip through the trampoline. So a
// million synchronous awaits in a loop, or a chain of awaits 100,000 deep, run
// in bounded stack in every build, and the common await costs one call.
//
// Single-threaded: every member is used from the thread running the loop.

#include <braid/detail/frame_pool.hpp>
#include <braid/detail/loop/ring_queue.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>
#include <braid/policy.hpp>

#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#if defined(__GNUC__) || defined(__clang__)
#define BRAID_DETAIL_PREFETCH(address) __builtin_prefetch(address)
// The loop's step and a task's yield are the hot path; clang 16 keeps them
// out of line at -O2, which costs two calls per yield.
#define BRAID_DETAIL_HOT_INLINE [[gnu::always_inline]] inline
#else
#define BRAID_DETAIL_PREFETCH(address) ((void)(address))
#define BRAID_DETAIL_HOT_INLINE inline
#endif

namespace braid::detail {

// A call_soon callback, type-erased. run invokes it and frees the node (also
// when it throws); destroy frees it without running it.
struct call_node {
    void (*run)(call_node*) = nullptr;
    void (*destroy)(call_node*) noexcept = nullptr;
};

// A policy whose decision is not a constant: called at every yield.
class dynamic_policy {
public:
    virtual ~dynamic_policy() = default;
    virtual placement on_yield(const yield_info& info) = 0;
};

template <class Policy>
class dynamic_policy_for final : public dynamic_policy {
public:
    explicit dynamic_policy_for(Policy policy) : policy_(std::move(policy)) {}
    placement on_yield(const yield_info& info) override { return policy_.on_yield(info); }

private:
    Policy policy_;
};

class scheduler {
public:
    // One entry of the ready queue: a coroutine to resume, or a callback.
    struct ready_item {
        void* coroutine;
        call_node* callback;
    };

    template <scheduling_policy Policy>
    explicit scheduler(Policy policy) {
        if constexpr (constant_policy<Policy>) {
            mode_ = Policy{}.on_yield(yield_info{}) == placement::back ? yield_mode::back
                                                                       : yield_mode::front;
        } else if constexpr (std::same_as<Policy, step_slice>) {
            dynamic_ = std::make_unique<dynamic_policy_for<Policy>>(std::move(policy));
            mode_ = yield_mode::slice;
        } else {
            dynamic_ = std::make_unique<dynamic_policy_for<Policy>>(std::move(policy));
            mode_ = yield_mode::dynamic;
        }
    }

    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    // Frees every task the loop still owns without running it further; their
    // callbacks never run. A task whose braid::task object is still alive is
    // only marked abandoned: its object frees it later.
    ~scheduler() {
        // Destroying one task can spawn another (from a destructor): it then
        // goes at the end of the list, which is read until its end.
        free_roots_.clear();
        for (std::size_t i = 0; i < roots_.size(); ++i) {
            promise_base* const root = std::exchange(roots_[i], nullptr);
            if (root == nullptr) {
                continue;
            }
            promise_base& p = *root;
            p.spawned_ = false;
            p.sched_ = nullptr;
            p.state_ = task_state::abandoned;
            p.release_and_destroy();
        }
        while (!ready_.empty()) {
            const ready_item item = ready_.pop_front();
            if (item.callback != nullptr) {
                item.callback->destroy(item.callback);
            }
        }
    }

    // --- what tasks and awaiters call ---------------------------------------

    // A running task yields: queue its innermost coroutine per the policy.
    BRAID_DETAIL_HOT_INLINE void yield(std::coroutine_handle<> h) {
        void* const frame = h.address();
        call_node* const no_callback = nullptr;
        if (mode_ == yield_mode::back) [[likely]] {
            ready_.emplace_back(frame, no_callback);
        } else if (mode_ == yield_mode::front || ask_policy(h) == placement::front) {
            ready_.emplace_front(frame, no_callback);
        } else {
            ready_.emplace_back(frame, no_callback);
        }
    }

    // How many awaited children may be started by nested calls (each one a
    // few hundred bytes of stack at most) before starts go through the
    // trampoline.
    static constexpr unsigned max_inline_depth = 16;

    // The trampoline's slot: resume h as soon as the running coroutine
    // suspends, within the same round.
    void transfer_to(std::coroutine_handle<> h) noexcept { next_ = h; }

    // An exception nobody else can observe: handed to the exception handler
    // after the current step.
    void report(std::exception_ptr error) noexcept {
        try {
            pending_.push_back(std::move(error));
            has_pending_ = true;
        } catch (...) {
            // Out of memory while reporting an error: there is no way left to
            // deliver it, and losing it silently is not an option.
            std::terminate();
        }
    }

    // --- what event_loop calls ----------------------------------------------

    // Takes one reference to a created task and queues its first step.
    void spawn(promise_base& p) {
        const std::uint32_t index = take_root_slot();
        try {
            ready_.emplace_back(p.self_.address(), static_cast<call_node*>(nullptr));
        } catch (...) {
            free_roots_.push_back(index); // cannot throw: see take_root_slot
            throw;
        }
        roots_[index] = &p;
        p.root_index_ = index;
        p.sched_ = this;
        p.state_ = task_state::started;
        p.spawned_ = true;
        p.finish_rare_ = true;
        p.add_ref();
    }

    void call_soon(call_node* node) { ready_.emplace_back(static_cast<void*>(nullptr), node); }

    [[nodiscard]] bool has_ready() const noexcept { return !ready_.empty(); }
    [[nodiscard]] std::size_t ready_count() const noexcept { return ready_.size(); }
    [[nodiscard]] std::uint64_t rounds() const noexcept { return rounds_; }
    [[nodiscard]] bool running() const noexcept { return running_; }

    // Takes one item off the ready queue and runs it. Precondition: has_ready().
    BRAID_DETAIL_HOT_INLINE void step() {
        const ready_item item = ready_.pop_front();
        ++rounds_;
        if (const ready_item* next = ready_.second(); next != nullptr && next->coroutine) {
            // With many tasks ready, frames are cold: start loading the first
            // two cache lines of the frame that runs after the next one, while
            // this one runs. (Only real frames: prefetching an unmapped
            // address is harmless but can cost a page walk.)
            const auto* frame = static_cast<const char*>(next->coroutine);
            BRAID_DETAIL_PREFETCH(frame);
            BRAID_DETAIL_PREFETCH(frame + 64);
        }
        if (item.callback == nullptr) [[likely]] {
            resume(std::coroutine_handle<>::from_address(item.coroutine));
        } else {
            try {
                item.callback->run(item.callback);
            } catch (...) {
                report(std::current_exception());
            }
        }
    }

    // Gives every pending exception to the handler; without a handler, the
    // first one is rethrown (the others wait for the next call).
    void deliver_pending() {
        if (has_pending_) [[unlikely]] {
            deliver_pending_now();
        }
    }

private:
    // A policy whose answer is not a constant. step_slice, built in and cheap,
    // is called directly (dynamic_policy_for is final, so the call is not
    // virtual, and it is inlined); any other through the virtual call.
    BRAID_DETAIL_HOT_INLINE placement ask_policy(std::coroutine_handle<> h) {
        // One yield_info per branch, so that what step_slice does not read
        // (the size of the queue) is not computed for it.
        if (mode_ == yield_mode::slice) {
            return static_cast<dynamic_policy_for<step_slice>&>(*dynamic_).on_yield(
                yield_info{h, rounds_, ready_.size()});
        }
        return dynamic_->on_yield(yield_info{h, rounds_, ready_.size()});
    }

    void deliver_pending_now() {
        while (!pending_.empty()) {
            std::exception_ptr error = std::move(pending_.front());
            pending_.erase(pending_.begin());
            has_pending_ = !pending_.empty();
            if (handler_) {
                handler_(std::move(error));
            } else {
                std::rethrow_exception(std::move(error));
            }
        }
    }

public:
    void set_handler(std::function<void(std::exception_ptr)> handler) noexcept {
        handler_ = std::move(handler);
    }

    // Marks the loop running for the lifetime of a run()/run_until_complete().
    class run_guard {
    public:
        run_guard(scheduler& s, const char* function) : s_(s) {
            if (s_.running_) {
                throw usage_error(std::string("braid::event_loop::") + function +
                                  ": called from inside the loop it would run (a task or "
                                  "callback of this loop); co_await the task instead");
            }
            s_.running_ = true;
        }
        run_guard(const run_guard&) = delete;
        run_guard& operator=(const run_guard&) = delete;
        ~run_guard() { s_.running_ = false; }

    private:
        scheduler& s_;
    };

private:
    // The trampoline: resumes h, then whatever it transferred to, until a
    // coroutine suspends without naming a successor.
    BRAID_DETAIL_HOT_INLINE void resume(std::coroutine_handle<> h) noexcept {
        for (;;) {
            h.resume();
            if (dispose_) [[unlikely]] {
                std::exchange(dispose_, {}).destroy();
            }
            if (!next_) {
                return;
            }
            h = std::exchange(next_, {});
        }
    }

    // A slot in roots_ for a task being spawned. free_roots_ always has room
    // for every slot, so returning one (when a task finishes) cannot fail.
    std::uint32_t take_root_slot() {
        if (!free_roots_.empty()) {
            const std::uint32_t index = free_roots_.back();
            free_roots_.pop_back();
            return index;
        }
        roots_.push_back(nullptr);
        try {
            free_roots_.reserve(roots_.capacity());
        } catch (...) {
            roots_.pop_back();
            throw;
        }
        return static_cast<std::uint32_t>(roots_.size() - 1);
    }

    void unlink(promise_base& p) noexcept {
        roots_[p.root_index_] = nullptr;
        free_roots_.push_back(p.root_index_);
    }

    friend class promise_base;

    ring_queue<ready_item> ready_;
    std::coroutine_handle<> next_;    // trampoline: resume this next, same round
    std::coroutine_handle<> dispose_; // trampoline: a finished frame nobody owns
    // The spawned, unfinished tasks this loop owns, at their root_index_
    // (null: a free slot, also listed in free_roots_). Finishing a task
    // touches its own slot only, not other tasks' frames.
    std::vector<promise_base*> roots_;
    std::vector<std::uint32_t> free_roots_;
    std::uint64_t rounds_ = 0;
    unsigned inline_depth_ = 0; // children being started by nested calls
    std::vector<std::exception_ptr> pending_;
    bool has_pending_ = false; // !pending_.empty(), in one load
    std::function<void(std::exception_ptr)> handler_;
    std::unique_ptr<dynamic_policy> dynamic_;
    // The policy's answer when it is a constant, else which policy to ask.
    enum class yield_mode : unsigned char { back, front, slice, dynamic } mode_ = yield_mode::back;
    bool running_ = false;
};

// --- promise_base members that need the scheduler -----------------------------

inline bool promise_base::await_from(std::coroutine_handle<> awaiting,
                                     scheduler* awaiting_sched) noexcept {
    continuation_ = awaiting;
    if (state_ != task_state::created) {
        return true; // started elsewhere: finish() resumes the awaiting coroutine
    }
    state_ = task_state::started;
    sched_ = awaiting_sched;
    scheduler& s = *awaiting_sched;
    if (s.inline_depth_ < scheduler::max_inline_depth) {
        // Run the child right here. Most children finish without suspending,
        // and then the awaiting coroutine goes on without a trip through the
        // trampoline. The nesting is bounded, so the stack is too.
        ++s.inline_depth_;
        started_inline_ = true;
        self_.resume();
        --s.inline_depth_;
        if (state_ == task_state::done) {
            return false;
        }
        // The child suspended: from now on it is resumed by the trampoline,
        // and finish() hands the awaiting coroutine to the trampoline too.
        started_inline_ = false;
        return true;
    }
    s.transfer_to(self_);
    return true;
}

inline void promise_base::finish() noexcept {
    state_ = task_state::done;
    scheduler* const s = std::exchange(sched_, nullptr);
    // A task that was awaited and simply returned takes the short path.
    if (finish_rare_) [[unlikely]] {
        finish_rare(*s);
    }
    // A child run by its awaiter's await_suspend returns there by itself.
    if (continuation_ && !started_inline_) {
        s->transfer_to(continuation_);
    }
}

inline void promise_base::finish_rare(scheduler& s) noexcept {
    const bool has_callbacks = extras_ != nullptr && extras_->first != nullptr;
    // A fire-and-forget task (only the loop owns it) that failed, with nobody
    // awaiting it and no callback to look at it: its error goes to the loop.
    if (exception_ && !continuation_ && !has_callbacks && spawned_ && refs_ == 1) {
        s.report(exception_);
    }

    // Callbacks run now, in order, before the loop does anything else.
    if (has_callbacks) {
        while (callback_node* n = extras_->first) {
            extras_->first = n->next;
            if (extras_->first == nullptr) {
                extras_->last = nullptr;
            }
            try {
                n->invoke(n, self_.address());
            } catch (...) {
                s.report(std::current_exception());
            }
            n->destroy(n);
        }
    }

    if (spawned_) {
        spawned_ = false;
        s.unlink(*this);
        if (release()) {
            // Nobody holds the task any more. It cannot free itself while it
            // is still inside this call: the trampoline does, once it returns.
            s.dispose_ = self_;
        }
    }
}

} // namespace braid::detail
