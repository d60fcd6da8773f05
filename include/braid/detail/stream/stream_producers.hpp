// SPDX-License-Identifier: MIT
#pragma once

// braid::detail::stream_producers: the threads that run map producers, one
// producer per thread, apart from the thread_pool's workers, so a producer
// that waits for its input (or for room in its buffer) never holds a worker.
//
// Threads are made on demand and kept when idle, up to a small number, so a
// program that maps many short inputs does not create a thread per map. The
// set owns its threads and the jobs queued for them; shutdown() (and the
// destructor) lets running jobs finish and joins every thread.

#include <braid/errors.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace braid::detail {

class stream_producer_job {
public:
    virtual ~stream_producer_job() = default;
    virtual void run() noexcept = 0;
};

class stream_producers {
public:
    explicit stream_producers(std::size_t max_idle) : max_idle_(max_idle) {}
    stream_producers(const stream_producers&) = delete;
    stream_producers& operator=(const stream_producers&) = delete;
    ~stream_producers() { shutdown(); }

    // Runs `job` on an idle thread or a new one. Throws executor_shut_down
    // after shutdown(), std::system_error when no thread can be made.
    void run(std::unique_ptr<stream_producer_job> job);

    // Lets the running jobs finish, then joins every thread. Idempotent.
    void shutdown();

    bool is_producer_thread() const noexcept { return current() == this; }

private:
    using thread_list = std::list<std::thread>;

    static const stream_producers*& current() noexcept {
        static thread_local const stream_producers* owner = nullptr;
        return owner;
    }

    void serve(thread_list::iterator self) noexcept;

    std::mutex mutex_;
    std::condition_variable job_available_;
    std::deque<std::unique_ptr<stream_producer_job>> jobs_; // guarded by mutex_
    std::size_t idle_ = 0;                                  // guarded by mutex_
    bool stopping_ = false;                                 // guarded by mutex_
    thread_list threads_;                                   // guarded by mutex_
    std::vector<std::thread> retired_; // guarded by mutex_: exited, to be joined
    const std::size_t max_idle_;
};

// --- Implementation ----------------------------------------------------------

inline void stream_producers::run(std::unique_ptr<stream_producer_job> job) {
    std::vector<std::thread> to_join;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            throw executor_shut_down("braid::stream_executor::map: the executor has been shut down "
                                     "and takes no more work");
        }
        jobs_.push_back(std::move(job));
        if (jobs_.size() > idle_) {
            try {
                auto self = threads_.emplace(threads_.end());
                try {
                    *self = std::thread([this, self] { serve(self); });
                } catch (...) {
                    threads_.erase(self);
                    throw;
                }
            } catch (...) {
                jobs_.pop_back();
                throw;
            }
        } else {
            job_available_.notify_one();
        }
        to_join.swap(retired_);
    }
    for (std::thread& t : to_join)
        t.join(); // they have left serve(); this is short
}

inline void stream_producers::shutdown() {
    std::list<std::thread> threads;
    std::vector<std::thread> retired;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    job_available_.notify_all();
    // Threads still serving remove themselves from threads_ only when they
    // retire, which they no longer do once stopping_ is set; so the list is
    // stable from here and can be joined outside the lock.
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            threads.splice(threads.end(), threads_);
            retired.swap(retired_);
        }
        if (threads.empty() && retired.empty())
            break;
        for (std::thread& t : threads)
            t.join();
        for (std::thread& t : retired)
            t.join();
        threads.clear();
        retired.clear();
    }
}

inline void stream_producers::serve(thread_list::iterator self) noexcept {
    current() = this;
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!jobs_.empty()) {
            std::unique_ptr<stream_producer_job> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job->run();
            job.reset(); // an owned input dies here, on this thread
            lock.lock();
            continue;
        }
        if (stopping_)
            return;
        if (idle_ >= max_idle_) {
            // Retire: hand our std::thread to whoever joins next.
            retired_.push_back(std::move(*self));
            threads_.erase(self);
            return;
        }
        ++idle_;
        job_available_.wait(lock, [&] { return !jobs_.empty() || stopping_; });
        --idle_;
    }
}

} // namespace braid::detail
