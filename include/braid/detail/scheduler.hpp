// SPDX-License-Identifier: MIT
#pragma once

// detail::scheduler: the core of braid::event_loop, without templates. It owns
// the ready queue, runs coroutines through a trampoline, applies the
// scheduling policy, keeps the list of spawned tasks it owns, and collects the
// exceptions nobody else can observe.
//
// The trampoline. Starting an awaited task, and resuming the task that awaited
// one that finished, are not done by calling resume() from inside the
// coroutine that causes them (that nests a stack frame per transfer, and
// symmetric transfer is only a guaranteed tail call on clang at -O2: g++ at
// -O0/-O1 and every compiler under AddressSanitizer grow the stack, as in
// libcoro#273). Instead the coroutine stores the handle in next_ and suspends;
// resume() below, which sits at a constant stack depth, resumes it. A million
// synchronous awaits in a loop, or a chain of awaits 100,000 deep, run in
// constant stack in every build.
//
// Single-threaded: every member is used from the thread running the loop.

#include <braid/detail/frame_pool.hpp>
#include <braid/detail/ring_queue.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>
#include <braid/policy.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
            fixed_ = Policy{}.on_yield(yield_info{});
        } else {
            dynamic_ = std::make_unique<dynamic_policy_for<Policy>>(std::move(policy));
        }
    }

    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    // Frees every task the loop still owns without running it further; their
    // callbacks never run. A task whose braid::task object is still alive is
    // only marked abandoned: its object frees it later.
    ~scheduler() {
        closing_ = true;
        while (roots_ != nullptr) {
            promise_base& p = *roots_;
            unlink(p);
            p.spawned_ = false;
            p.sched_ = nullptr;
            p.state_ = task_state::abandoned;
            if (p.release()) {
                p.self_.destroy();
            }
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
    void yield(std::coroutine_handle<> h) {
        placement where = fixed_;
        if (dynamic_ != nullptr) [[unlikely]] {
            where = dynamic_->on_yield(yield_info{h, rounds_, ready_.size()});
        }
        if (where == placement::back) {
            ready_.push_back(ready_item{h.address(), nullptr});
        } else {
            ready_.push_front(ready_item{h.address(), nullptr});
        }
    }

    // The trampoline's slot: resume h as soon as the running coroutine
    // suspends, within the same round.
    void transfer_to(std::coroutine_handle<> h) noexcept { next_ = h; }

    // An exception nobody else can observe: handed to the exception handler
    // after the current step.
    void report(std::exception_ptr error) noexcept {
        try {
            pending_.push_back(std::move(error));
        } catch (...) {
            // Out of memory while reporting an error: there is no way left to
            // deliver it, and losing it silently is not an option.
            std::terminate();
        }
    }

    // --- what event_loop calls ----------------------------------------------

    // Takes one reference to a created task and queues its first step.
    void spawn(promise_base& p) {
        ready_.push_back(ready_item{p.self_.address(), nullptr});
        p.sched_ = this;
        p.state_ = task_state::started;
        p.spawned_ = true;
        p.add_ref();
        link(p);
    }

    void call_soon(call_node* node) { ready_.push_back(ready_item{nullptr, node}); }

    [[nodiscard]] bool has_ready() const noexcept { return !ready_.empty(); }
    [[nodiscard]] std::size_t ready_count() const noexcept { return ready_.size(); }
    [[nodiscard]] std::uint64_t rounds() const noexcept { return rounds_; }
    [[nodiscard]] bool running() const noexcept { return running_; }

    // Takes one item off the ready queue and runs it. Precondition: has_ready().
    void step() {
        const ready_item item = ready_.pop_front();
        ++rounds_;
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
        while (!pending_.empty()) [[unlikely]] {
            std::exception_ptr error = std::move(pending_.front());
            pending_.erase(pending_.begin());
            if (handler_) {
                handler_(std::move(error));
            } else {
                std::rethrow_exception(std::move(error));
            }
        }
    }

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
    void resume(std::coroutine_handle<> h) noexcept {
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

    void link(promise_base& p) noexcept {
        p.root_prev_ = nullptr;
        p.root_next_ = roots_;
        if (roots_ != nullptr) {
            roots_->root_prev_ = &p;
        }
        roots_ = &p;
    }

    void unlink(promise_base& p) noexcept {
        if (p.root_prev_ != nullptr) {
            p.root_prev_->root_next_ = p.root_next_;
        } else {
            roots_ = p.root_next_;
        }
        if (p.root_next_ != nullptr) {
            p.root_next_->root_prev_ = p.root_prev_;
        }
        p.root_prev_ = p.root_next_ = nullptr;
    }

    friend class promise_base;

    ring_queue<ready_item> ready_;
    std::coroutine_handle<> next_;    // trampoline: resume this next, same round
    std::coroutine_handle<> dispose_; // trampoline: a finished frame nobody owns
    promise_base* roots_ = nullptr;   // spawned, unfinished tasks this loop owns
    std::uint64_t rounds_ = 0;
    std::vector<std::exception_ptr> pending_;
    std::function<void(std::exception_ptr)> handler_;
    std::unique_ptr<dynamic_policy> dynamic_;
    placement fixed_ = placement::back;
    bool running_ = false;
    bool closing_ = false;
};

// --- promise_base members that need the scheduler -----------------------------

inline void promise_base::await_from(std::coroutine_handle<> awaiting,
                                     scheduler* awaiting_sched) noexcept {
    continuation_ = awaiting;
    if (state_ == task_state::created) {
        state_ = task_state::started;
        sched_ = awaiting_sched;
        awaiting_sched->transfer_to(self_);
    }
}

inline void promise_base::finish() noexcept {
    state_ = task_state::done;
    scheduler* const s = sched_;
    sched_ = nullptr;

    const bool has_callbacks = extras_ != nullptr && extras_->first != nullptr;
    // A fire-and-forget task (only the loop owns it) that failed, with nobody
    // awaiting it and no callback to look at it: its error goes to the loop.
    if (exception_ && !continuation_ && !has_callbacks && spawned_ && refs_ == 1) {
        s->report(exception_);
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
                s->report(std::current_exception());
            }
            n->destroy(n);
        }
    }

    if (continuation_) {
        s->transfer_to(std::exchange(continuation_, {}));
    }
    if (spawned_) {
        spawned_ = false;
        s->unlink(*this);
        if (release()) {
            // Nobody holds the task any more. It cannot free itself while it
            // is still inside this call: the trampoline does, once it returns.
            s->dispose_ = self_;
        }
    }
}

} // namespace braid::detail
