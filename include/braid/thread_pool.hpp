// SPDX-License-Identifier: MIT
#pragma once

// braid::thread_pool: a fixed set of worker threads that run small callables
// in the order they were queued.
//
// Ownership: the pool owns its threads and every queued task. Its destructor
// (like shutdown()) stops taking work, lets the workers run everything already
// queued, and joins them; nothing is left running after it returns.
//
// Threads: post(), submit(), thread_count(), is_worker_thread() and
// worker_index() may be called from any thread, including the pool's own
// workers. shutdown() and the
// destructor may be called from any thread except the pool's own workers
// (they would wait for themselves).
//
// Errors: work given to post() and post_all() must be noexcept (checked at
// compile time), so the pool never sees an exception; submit() carries the
// callable's exception to the returned std::future. Either way no exception
// is swallowed and none ends a worker.
//
// Idle workers: a worker that runs out of work polls the queue for about
// 40 microseconds (with the CPU's pause hint) before it sleeps, so work handed
// over at short intervals finds a worker awake and costs neither a system call
// nor a thread wake-up. At most half of the workers (at least one) poll at a
// time, and an idle pool is asleep within about 50 microseconds.

#include <braid/detail/cpu_relax.hpp>
#include <braid/detail/thread_pool_task.hpp>
#include <braid/errors.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <ranges>
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

    // Queues every callable of `tasks`, in order, as that many post() calls
    // would, but under one lock and with one wake-up per worker needed: use it
    // to hand over many tasks at once. Each element must be noexcept-invocable
    // (checked at compile time) and is copied into the pool, or moved when
    // `tasks` is an rvalue container (`post_all(std::move(callables))`) or
    // yields rvalues. All or nothing: when copying an element (or memory)
    // fails, nothing is queued and the exception propagates. Throws
    // executor_shut_down after shutdown() has begun.
    template <std::ranges::input_range R>
        requires std::is_nothrow_invocable_v<std::decay_t<std::ranges::range_reference_t<R>>&>
    void post_all(R&& tasks);

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

    // The calling worker's index, in [0, thread_count()); thread_count() when
    // the caller is not one of this pool's workers. For per-worker state
    // kept by the caller (an array of thread_count() slots needs no lock).
    std::size_t worker_index() const noexcept {
        return is_worker_thread() ? current_index() : thread_count();
    }

    // How many tasks are queued and not yet started, as of some recent moment.
    // Only for scheduling heuristics (a long-running task can see whether
    // others are waiting for its worker).
    std::size_t queued_count() const noexcept {
        // relaxed: a hint; nothing is read through it.
        return queued_.load(std::memory_order_relaxed);
    }

private:
    // How long an idle worker polls before it sleeps, and how old its last
    // sign of life may be for push() to count on it (it looks every ~1 us).
    static constexpr std::chrono::microseconds spin_time{40};
    static constexpr std::chrono::microseconds poll_stale{10};

    static const thread_pool*& current_pool() noexcept {
        static thread_local const thread_pool* pool = nullptr;
        return pool;
    }
    static std::size_t& current_index() noexcept {
        static thread_local std::size_t index = 0;
        return index;
    }

    void push(detail::thread_pool_task&& task, const char* caller);
    void push_all(std::vector<detail::thread_pool_task>& tasks, const char* caller);
    // For the posting thread: takes mutex_, trying it a few times with the
    // pause hint before sleeping on it. Workers hold it only to move a task
    // out of the queue, so a poster that meets one there gets it a moment
    // later without a system call on either side. (Measured with 2 workers:
    // 100 tasks posted one by one took 35-46 us, then 17-33; a round trip
    // 2.3-2.9 us, then 0.8-1.3. Workers that spun the same way gained
    // nothing and slowed posting 10,000 tasks by 10-20 %.)
    static void lock_for_push(std::unique_lock<std::mutex>& lock);
    // How many sleeping workers the queue needs woken (mutex_ held).
    std::size_t workers_to_wake() const noexcept;
    // Whether a worker polling for work was seen on a CPU very recently.
    bool poller_on_cpu() const noexcept;
    void wake(std::size_t count, std::size_t sleeping) noexcept;
    void work(std::size_t index) noexcept;
    // Polls for work for up to spin_time; true when some was queued.
    bool spin_for_work() noexcept;

    std::mutex mutex_;
    std::condition_variable work_available_;
    detail::thread_pool_queue queue_;    // guarded by mutex_
    std::size_t sleeping_ = 0;           // guarded by mutex_
    std::size_t spinning_ = 0;           // guarded by mutex_: polling, or about to take mutex_
    std::size_t max_spinning_ = 1;       // set before the workers start
    bool stopping_ = false;              // guarded by mutex_
    std::atomic<std::size_t> queued_{0}; // mirrors queue_.size(); polled without the lock
    // steady_clock ticks when a polling worker last looked at queued_; 0
    // when none polls.
    std::atomic<std::chrono::steady_clock::rep> polled_at_{0};
    std::once_flag shutdown_once_; // the thread that joins runs shutdown's body
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
    max_spinning_ = std::max<std::size_t>(1, thread_count / 2);
    threads_.reserve(thread_count);
    try {
        for (std::size_t i = 0; i < thread_count; ++i)
            threads_.emplace_back([this, i] { work(i); });
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

template <std::ranges::input_range R>
    requires std::is_nothrow_invocable_v<std::decay_t<std::ranges::range_reference_t<R>>&>
void thread_pool::post_all(R&& tasks) {
    // An rvalue container owns its callables: they may be moved. A view's
    // lvalue elements belong to someone else: they are copied.
    constexpr bool owned =
        !std::is_lvalue_reference_v<R> && !std::ranges::view<std::remove_cvref_t<R>>;
    // Made before the lock is taken: copying a callable or walking the range
    // runs user code, which must not run under the pool's lock (it may post).
    std::vector<detail::thread_pool_task> made;
    if constexpr (std::ranges::sized_range<R>)
        made.reserve(static_cast<std::size_t>(std::ranges::size(tasks)));
    for (auto&& task : tasks) {
        if constexpr (owned)
            made.emplace_back(std::move(task));
        else
            made.emplace_back(std::forward<decltype(task)>(task));
    }
    push_all(made, "braid::thread_pool::post_all");
}

inline void thread_pool::push(detail::thread_pool_task&& task, const char* caller) {
    std::size_t to_wake = 0;
    {
        std::unique_lock lock(mutex_, std::defer_lock);
        lock_for_push(lock);
        if (stopping_) {
            throw executor_shut_down(std::string(caller) +
                                     ": the pool has been shut down and takes no more work");
        }
        queue_.push(std::move(task));
        // relaxed: polling workers take the task under mutex_, which orders it.
        queued_.store(queue_.size(), std::memory_order_relaxed);
        to_wake = workers_to_wake();
    }
    if (to_wake > 0)
        work_available_.notify_one();
}

inline void thread_pool::push_all(std::vector<detail::thread_pool_task>& tasks,
                                  const char* caller) {
    std::size_t to_wake = 0;
    std::size_t sleeping = 0;
    {
        std::unique_lock lock(mutex_, std::defer_lock);
        lock_for_push(lock);
        if (stopping_) {
            throw executor_shut_down(std::string(caller) +
                                     ": the pool has been shut down and takes no more work");
        }
        queue_.reserve_more(tasks.size()); // the one step that may throw
        for (detail::thread_pool_task& task : tasks)
            queue_.push(std::move(task));
        // relaxed: see push().
        queued_.store(queue_.size(), std::memory_order_relaxed);
        to_wake = workers_to_wake();
        sleeping = sleeping_;
    }
    wake(to_wake, sleeping);
}

inline void thread_pool::lock_for_push(std::unique_lock<std::mutex>& lock) {
    for (int i = 0; i < 64; ++i) {
        if (lock.try_lock())
            return;
        detail::cpu_relax();
    }
    lock.lock();
}

inline std::size_t thread_pool::workers_to_wake() const noexcept {
    if (sleeping_ == 0)
        return 0;
    const std::size_t waiting = queue_.size();
    // Each polling worker takes one task, if it is really polling now: one
    // that lost its core to another thread would leave the task waiting
    // until it gets the core back, so then a sleeper is woken anyway.
    if (waiting <= spinning_ && poller_on_cpu())
        return 0;
    return std::min(sleeping_, waiting > spinning_ ? waiting - spinning_ : 1);
}

inline bool thread_pool::poller_on_cpu() const noexcept {
    // relaxed: a hint; a wrong guess costs one wake-up too many or a task
    // that waits for a poller a moment longer.
    const std::chrono::steady_clock::rep polled = polled_at_.load(std::memory_order_relaxed);
    if (polled == 0)
        return false;
    const auto since = std::chrono::steady_clock::now().time_since_epoch() -
                       std::chrono::steady_clock::duration(polled);
    return since < poll_stale;
}

inline void thread_pool::wake(std::size_t count, std::size_t sleeping) noexcept {
    if (count == 0)
        return;
    if (count >= sleeping) {
        work_available_.notify_all();
        return;
    }
    for (std::size_t i = 0; i < count; ++i)
        work_available_.notify_one();
}

inline bool thread_pool::spin_for_work() noexcept {
    const auto start = std::chrono::steady_clock::now();
    for (auto now = start; now - start < spin_time; now = std::chrono::steady_clock::now()) {
        // relaxed: a hint for push(), which reads it under no lock either.
        polled_at_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
        for (int i = 0; i < 16; ++i) {
            // relaxed: a hint; the task itself is taken under mutex_.
            if (queued_.load(std::memory_order_relaxed) != 0) {
                polled_at_.store(0, std::memory_order_relaxed);
                return true;
            }
            detail::cpu_relax();
        }
        // A thread that waits for this core (the one that just gave us
        // work, waiting for its result) gets it; when there is none this
        // returns at once.
        std::this_thread::yield();
    }
    polled_at_.store(0, std::memory_order_relaxed);
    return false;
}

inline void thread_pool::work(std::size_t index) noexcept {
    current_pool() = this;
    current_index() = index;
    bool may_spin = true; // false after a poll that found nothing: sleep then
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
            may_spin = true;
            continue;
        }
        if (stopping_)
            break;
        if (may_spin && spinning_ < max_spinning_) {
            // Counted as spinning until it holds the lock again, so that a
            // push() meanwhile counts on it to take one task and wakes no
            // sleeper for that one; it looks at the queue under the lock
            // before it sleeps, so nothing is missed.
            ++spinning_;
            lock.unlock();
            may_spin = spin_for_work();
            lock.lock();
            --spinning_;
            continue;
        }
        ++sleeping_;
        work_available_.wait(lock);
        --sleeping_;
        may_spin = true;
    }
}

inline void thread_pool::shutdown() {
    if (is_worker_thread()) {
        throw usage_error("braid::thread_pool::shutdown: called from one of the pool's own "
                          "workers, which would wait for itself; call it from another thread");
    }
    // Once; a concurrent caller waits until it is done. No lock is held
    // meanwhile (a mutex held while joining was also held around mutex_,
    // which ThreadSanitizer's lock-order graph mistook for a cycle across
    // pools made at the same stack address).
    std::call_once(shutdown_once_, [this] {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        work_available_.notify_all();
        for (std::thread& thread : threads_) {
            if (thread.joinable())
                thread.join();
        }
    });
}

} // namespace braid
