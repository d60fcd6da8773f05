// SPDX-License-Identifier: MIT
#pragma once

// braid::run_in(ex, f, args...): a task that runs f(args...) on an executor's
// thread -- a braid::thread_pool or braid::stream_executor -- and finishes,
// with f's value or exception, on the event loop that runs the task. The
// loop's thread never blocks meanwhile: other tasks run, or the loop sleeps.
//
//   braid::thread_pool pool{4};
//   braid::task<std::string> handle(braid::thread_pool& pool) {
//       std::string page = co_await braid::run_in(pool, render, request); // on a worker
//       co_return page;                                                   // back on the loop
//   }
//
// f and the arguments are decay-copied at the call (as std::async does) and
// moved to the worker, where they are called once and destroyed; the result
// is f's, by value (std::remove_cvref_t of it). The work is submitted when the
// task starts (it is awaited or spawned), not at the call. An executor that
// has been shut down makes the task fail with its executor_shut_down. The
// executor must outlive the task. Cancelling the task resumes it at once with
// braid::cancelled. If no worker has started f yet, none will (as Python's
// concurrent.futures drops a cancelled work item that has not started); once
// f runs it cannot be stopped half-way, and its result is dropped when it
// comes back.
//
// Threads: run_in is called on the loop's thread; f runs on the executor's.
// The task resumes on its loop's thread, never on the worker, so a task's
// thread never changes across a co_await.

#include <braid/detail/loop/nodes.hpp>
#include <braid/detail/loop/remote_queue.hpp>
#include <braid/detail/loop/remote_wait.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>
#include <braid/task.hpp>

#include <atomic>
#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace braid {
namespace detail {

// The shared part of one run_in: a remote_wait (the loop's side), how to run
// or abandon the work (the executor's side), and the result.
class offload_base : public remote_wait {
public:
    void (*execute)(offload_base*) noexcept = nullptr;
    void (*abandon)(offload_base*) noexcept = nullptr;
    // Set on the loop's thread when the waiting task is cancelled: a worker
    // that has not started f yet skips it.
    std::atomic<bool> dropped{false};
};

// What the executor runs: move-only, runs the work once. Destroyed without
// having run (an executor that drops queued work), it finishes the task with
// executor_shut_down instead of leaving it waiting for ever.
class offload_job {
public:
    explicit offload_job(offload_base* node) noexcept : node_(node) {}
    offload_job(offload_job&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    offload_job& operator=(offload_job&&) = delete;
    ~offload_job() {
        if (node_ != nullptr) {
            node_->abandon(node_);
        }
    }
    void operator()() noexcept {
        offload_base* const node = std::exchange(node_, nullptr);
        node->execute(node);
    }

private:
    offload_base* node_;
};

template <class R>
class offload_result : public offload_base {
public:
    offload_result() noexcept = default;
    offload_result(const offload_result&) = delete;
    offload_result& operator=(const offload_result&) = delete;

    // On the loop's thread, once the work has come back.
    R take() {
        if (error_) {
            std::rethrow_exception(std::move(error_));
        }
        if constexpr (!std::is_void_v<R>) {
            return std::move(*value_);
        }
    }

protected:
    template <class Call>
    void compute(Call& call) noexcept {
        try {
            if constexpr (std::is_void_v<R>) {
                call();
            } else {
                value_.emplace(call());
            }
        } catch (...) {
            error_ = std::current_exception();
        }
    }
    void fail(std::exception_ptr error) noexcept { error_ = std::move(error); }

private:
    struct nothing {};
    std::optional<std::conditional_t<std::is_void_v<R>, nothing, R>> value_;
    std::exception_ptr error_;
};

template <class R, class F, class... Args>
class offload final : public offload_result<R> {
public:
    template <class G, class... A>
    explicit offload(G&& g, A&&... a) {
        call_.emplace(std::forward<G>(g), std::forward<A>(a)...);
        this->execute = &offload::execute_impl;
        this->abandon = &offload::abandon_impl;
        this->free = &offload::free_impl;
    }

private:
    static void execute_impl(offload_base* base) noexcept {
        auto* self = static_cast<offload*>(base);
        // relaxed: nothing is read through the flag; a worker that misses a
        // cancellation that races with it runs f, whose result is dropped.
        if (!self->dropped.load(std::memory_order_relaxed)) {
            self->compute(*self->call_);
        }
        self->call_.reset(); // f and the arguments die on the worker
        self->complete();
    }
    static void abandon_impl(offload_base* base) noexcept {
        auto* self = static_cast<offload*>(base);
        self->call_.reset();
        try {
            self->fail(std::make_exception_ptr(
                executor_shut_down("braid::run_in: the executor destroyed the work without "
                                   "running it")));
        } catch (...) {
            self->fail(std::current_exception()); // out of memory making the exception
        }
        self->complete();
    }
    static void free_impl(remote_wait* base) noexcept { delete static_cast<offload*>(base); }

    std::optional<bound_call<F, Args...>> call_;
};

// Awaited once, by run_in's own coroutine: submits the work and waits.
template <class R, class Executor>
class offload_awaiter : suspension {
public:
    offload_awaiter(Executor& executor, offload_result<R>* node) noexcept
        : executor_(executor), node_(node) {}
    offload_awaiter(const offload_awaiter&) = delete;
    offload_awaiter& operator=(const offload_awaiter&) = delete;
    ~offload_awaiter() {
        if (node_->loop != nullptr) {
            // Destroyed while waiting (the loop is being destroyed): the
            // result, when it comes, is dropped.
            node_->loop->end_remote_wait(*node_);
        }
        node_->release();
    }

    [[nodiscard]] bool await_ready() const noexcept { return false; }

    // Not noexcept: reserving room in the loop's queue of finished remote
    // work can throw std::bad_alloc, which then surfaces at the co_await.
    template <braid_promise P>
    bool await_suspend(std::coroutine_handle<P> self) {
        scheduler& loop = *self.promise().owner();
        try {
            loop.prepare_remote_wait(*node_);
        } catch (...) {
            node_->release(); // the reference meant for a job that will not exist
            throw;
        }
        try {
            executor_.post(offload_job(node_));
        } catch (...) {
            // Not queued: the job, destroyed, has already let go of its
            // reference; the task goes on with the executor's exception.
            error_ = std::current_exception();
            return false;
        }
        loop.begin_remote_wait(*node_, self);
        cancel = &offload_awaiter::cancel_wait;
        kind = wait_kind::thread;
        task_ = &self.promise();
        task_->suspend_on(this);
        return true;
    }

    R await_resume() {
        if (task_ != nullptr) {
            task_->resumed();
            task_->check_cancel(); // cancelled: f's result is dropped when it comes
        }
        if (error_) {
            std::rethrow_exception(error_);
        }
        return node_->take();
    }

private:
    // Cancelling the waiting task: it stops waiting at once. A worker that
    // has not started f yet skips it; one that has finishes it, and the
    // result is dropped when it comes back.
    static void cancel_wait(suspension* s) noexcept {
        offload_result<R>* node = static_cast<offload_awaiter*>(s)->node_;
        if (scheduler* loop = node->loop) { // still waiting
            // relaxed: see execute_impl.
            node->dropped.store(true, std::memory_order_relaxed);
            loop->end_remote_wait(*node);
            loop->wake(node->waiter);
        }
    }

    Executor& executor_;
    offload_result<R>* node_;
    std::exception_ptr error_;
    promise_base* task_ = nullptr; // set when it waits
};

template <class R, class Executor, class F, class... Args>
task<R> run_in_task(Executor& executor, F f, Args... args) {
    offload_awaiter<R, Executor> work(executor,
                                      new offload<R, F, Args...>(std::move(f), std::move(args)...));
    if constexpr (std::is_void_v<R>) {
        co_await work;
    } else {
        co_return co_await work;
    }
}

} // namespace detail

// Something run_in can hand work to: a post() taking a move-only callable
// that it runs once on one of its threads (braid::thread_pool,
// braid::stream_executor).
template <class Executor>
concept executor = requires(Executor& ex, detail::offload_job job) { ex.post(std::move(job)); };

template <executor Executor, class F, class... Args>
    requires std::invocable<std::decay_t<F>, std::decay_t<Args>...>
[[nodiscard]] auto run_in(Executor& ex, F&& f, Args&&... args) {
    using result =
        std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;
    return detail::run_in_task<result>(ex, std::decay_t<F>(std::forward<F>(f)),
                                       std::decay_t<Args>(std::forward<Args>(args))...);
}

} // namespace braid
