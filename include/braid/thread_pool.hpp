// SPDX-License-Identifier: MIT
#pragma once

// braid::thread_pool: a fixed set of worker threads that run small callables
// in the order they were queued.
//
// Ownership: the pool owns its threads and every queued task. Its destructor
// (like shutdown()) stops taking work, lets the workers run everything already
// queued, and joins them; nothing is left running after it returns.
//
// Threads: post(), submit(), thread_count() and is_worker_thread() may be
// called from any thread, including the pool's own workers. shutdown() and the
// destructor may be called from any thread except the pool's own workers
// (they would wait for themselves).
//
// Errors: work given to post() must be noexcept (checked at compile time), so
// the pool never sees an exception; submit() carries the callable's exception
// to the returned std::future. Either way no exception is swallowed and none
// ends a worker.

#include <braid/detail/thread_pool_task.hpp>
#include <braid/errors.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace braid {

class thread_pool {
public:
    // std::thread::hardware_concurrency(), or 1 where it is unknown.
    static std::size_t default_thread_count() noexcept;

    // default_thread_count() workers.
    thread_pool();

    // `thread_count` workers; 0 throws std::invalid_argument.
    explicit thread_pool(std::size_t thread_count);

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    // shutdown(). Calling it from one of the pool's workers is a bug that would
    // deadlock; it ends the program with a message instead.
    ~thread_pool();

    std::size_t thread_count() const noexcept { return threads_.size(); }

    // Queues `f` to run on a worker. `f` must be noexcept: use submit() to get
    // a callable's result or exception back. Throws executor_shut_down after
    // shutdown() has begun.
    template <class F>
        requires std::is_nothrow_invocable_v<std::decay_t<F>&>
    void post(F&& f);

    // Queues `f(args...)` (all decay-copied, as std::async does) and returns
    // the future of its result; an exception from `f` is stored in the future.
    // Throws executor_shut_down after shutdown() has begun.
    template <class F, class... Args>
        requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
    [[nodiscard]] std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>
    submit(F&& f, Args&&... args);

    // Stops taking work, runs everything already queued, joins the workers.
    // Idempotent; a concurrent second call returns once the first is done.
    // Throws usage_error when called from one of the pool's workers.
    void shutdown();

    // Whether the calling thread is one of this pool's workers.
    bool is_worker_thread() const noexcept { return current_pool() == this; }

    // How many tasks are queued and not yet started, as of some recent moment.
    // Only for scheduling heuristics (a long-running task can see whether
    // others are waiting for its worker).
    std::size_t queued_count() const noexcept {
        // relaxed: a hint; nothing is read through it.
        return queued_.load(std::memory_order_relaxed);
    }

private:
    static const thread_pool*& current_pool() noexcept {
        static thread_local const thread_pool* pool = nullptr;
        return pool;
    }

    void push(detail::thread_pool_task&& task, const char* caller);
    void work() noexcept;

    std::mutex mutex_;
    std::condition_variable work_available_;
    detail::thread_pool_queue queue_;    // guarded by mutex_
    std::size_t sleeping_ = 0;           // guarded by mutex_
    bool stopping_ = false;              // guarded by mutex_
    std::atomic<std::size_t> queued_{0}; // mirrors queue_.size()
    std::mutex shutdown_mutex_;          // held by the thread that joins
    std::vector<std::thread> threads_;
};

// --- Implementation ----------------------------------------------------------

inline std::size_t thread_pool::default_thread_count() noexcept {
    return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

inline thread_pool::thread_pool() : thread_pool(default_thread_count()) {}

inline thread_pool::thread_pool(std::size_t thread_count) {
    if (thread_count == 0) {
        throw std::invalid_argument(
            "braid::thread_pool::thread_pool: thread_count is 0; a pool needs at least one thread");
    }
    threads_.reserve(thread_count);
    try {
        for (std::size_t i = 0; i < thread_count; ++i)
            threads_.emplace_back([this] { work(); });
    } catch (...) {
        shutdown(); // join the threads that did start, then report
        throw;
    }
}

inline thread_pool::~thread_pool() {
    if (is_worker_thread()) {
        std::fputs("braid::thread_pool::~thread_pool: called from one of the pool's own workers, "
                   "which would wait for itself\n",
                   stderr);
        std::terminate();
    }
    shutdown();
}

template <class F>
    requires std::is_nothrow_invocable_v<std::decay_t<F>&>
void thread_pool::post(F&& f) {
    push(detail::thread_pool_task(std::forward<F>(f)), "braid::thread_pool::post");
}

template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
std::future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>
thread_pool::submit(F&& f, Args&&... args) {
    using result = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    std::packaged_task<result()> job(
        [f = std::forward<F>(f), ... args = std::forward<Args>(args)]() mutable -> result {
            return std::invoke(std::move(f), std::move(args)...);
        });
    std::future<result> future = job.get_future();
    // packaged_task::operator() throws only when it has no state or ran
    // before; neither can happen here, so the wrapper is truly noexcept.
    push(detail::thread_pool_task([job = std::move(job)]() mutable noexcept { job(); }),
         "braid::thread_pool::submit");
    return future;
}

inline void thread_pool::push(detail::thread_pool_task&& task, const char* caller) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            throw executor_shut_down(std::string(caller) +
                                     ": the pool has been shut down and takes no more work");
        }
        queue_.push(std::move(task));
        // relaxed: a hint for queued_count(); the queue itself is under mutex_.
        queued_.store(queue_.size(), std::memory_order_relaxed);
        wake = sleeping_ > 0;
    }
    if (wake)
        work_available_.notify_one();
}

inline void thread_pool::work() noexcept {
    current_pool() = this;
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!queue_.empty()) {
            detail::thread_pool_task task = queue_.pop();
            // relaxed: see push().
            queued_.store(queue_.size(), std::memory_order_relaxed);
            lock.unlock();
            task();
            task.reset(); // the task's captures die on the worker, outside the lock
            lock.lock();
            continue;
        }
        if (stopping_)
            break;
        ++sleeping_;
        work_available_.wait(lock);
        --sleeping_;
    }
}

inline void thread_pool::shutdown() {
    if (is_worker_thread()) {
        throw usage_error("braid::thread_pool::shutdown: called from one of the pool's own "
                          "workers, which would wait for itself; call it from another thread");
    }
    std::lock_guard joining(shutdown_mutex_);
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_available_.notify_all();
    for (std::thread& thread : threads_) {
        if (thread.joinable())
            thread.join();
    }
}

} // namespace braid
