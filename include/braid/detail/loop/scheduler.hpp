// SPDX-License-Identifier: MIT
#pragma once

// detail::scheduler: the core of braid::event_loop, without templates. It owns
// the ready queue, runs coroutines through a trampoline, applies the
// scheduling policy, keeps the list of spawned tasks it owns, and collects the
// exceptions nobody else can observe. It also connects the loop to the world
// outside it: timers, calls and finished work from other threads, file
// descriptors (scheduler_io.hpp), and the one place where the loop's thread
// blocks (see scheduler_impl.hpp).
//
// The attention word. Per step, the run loop reads one word, attention_, and
// goes on when it is zero: no pending error, no stop, nothing outside the
// loop to look at. When timers are pending, work on other threads is
// outstanding or a task waits on a descriptor (the `world` bit) or another
// thread has queued a call (the
// `remote` bit), the loop counts the steps of the current pass -- what was
// ready when it last collected -- and collects again at the end of it: due
// timers, thread-safe calls, finished work and tasks whose descriptors are
// ready join the back of the ready queue. Other threads set bits with one atomic RMW (stop,
// remote); the loop reads the word with a relaxed load, as cheap as a plain one.
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

#include <braid/clock.hpp>
#include <braid/detail/frame_pool.hpp>
#include <braid/detail/hot_inline.hpp>
#include <braid/detail/loop/io_state.hpp>
#include <braid/detail/loop/nodes.hpp>
#include <braid/detail/loop/ready_queue.hpp>
#include <braid/detail/loop/remote_queue.hpp>
#include <braid/detail/loop/remote_wait.hpp>
#include <braid/detail/loop/root_table.hpp>
#include <braid/detail/loop/timer_queue.hpp>
#include <braid/detail/loop/wait_point.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>
#include <braid/policy.hpp>
#include <braid/tracer.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace braid::detail {

// Something that refers to a loop and may outlive it (a task_group): the
// loop tells it, when it is destroyed, that it is gone.
struct loop_link {
    loop_link* prev = nullptr;
    loop_link* next = nullptr;
    void (*loop_gone)(loop_link*) noexcept = nullptr;
};

// A policy whose decision is not a constant: called at every yield.
class dynamic_policy {
public:
    virtual ~dynamic_policy() = default;
    // The parts of a yield_info rather than a reference to one, see
    // scheduler::ask_policy.
    virtual placement on_yield(std::coroutine_handle<> coroutine, std::uint64_t round,
                               std::size_t ready) = 0;
};

template <class Policy>
class dynamic_policy_for final : public dynamic_policy {
public:
    explicit dynamic_policy_for(Policy policy) : policy_(std::move(policy)) {}
    placement on_yield(std::coroutine_handle<> coroutine, std::uint64_t round,
                       std::size_t ready) override {
        return policy_.on_yield(yield_info{coroutine, round, ready});
    }
    Policy& policy() noexcept { return policy_; }

private:
    Policy policy_;
};

class scheduler {
public:
    // One entry of the ready queue, one word: a task's frame to resume, or a
    // callback with its lowest bit set (frames and nodes are aligned to at
    // least 8 bytes, so the bit is free). The queue links them through the
    // task's promise and the node: both links sit 16 bytes past the item's
    // address without the bit, since a callback's address is its node's less
    // 8 (see ready_links::link).
    struct ready_item {
        std::uintptr_t bits;

        static constexpr std::uintptr_t node_offset = 8;

        static ready_item frame(void* f) noexcept { return {reinterpret_cast<std::uintptr_t>(f)}; }
        static ready_item callback(call_node* n) noexcept {
            return {(reinterpret_cast<std::uintptr_t>(n) - node_offset) | 1};
        }
        [[nodiscard]] bool is_callback() const noexcept { return (bits & 1) != 0; }
        [[nodiscard]] void* coroutine() const noexcept { return reinterpret_cast<void*>(bits); }
        [[nodiscard]] call_node* node() const noexcept {
            return reinterpret_cast<call_node*>((bits & ~std::uintptr_t{1}) + node_offset);
        }
    };

    template <scheduling_policy Policy>
    explicit scheduler(Policy policy, manual_clock* clock = nullptr)
        : clock_(clock), remote_(new remote_queue()) {
        if constexpr (constant_policy<Policy>) {
            mode_ = Policy{}.on_yield(yield_info{}) == placement::back ? yield_mode::back
                                                                       : yield_mode::front;
        } else if constexpr (std::same_as<Policy, step_slice>) {
            dynamic_ = std::make_unique<dynamic_policy_for<Policy>>(std::move(policy));
            mode_ = yield_mode::slice;
        } else {
            try {
                dynamic_ = std::make_unique<dynamic_policy_for<Policy>>(std::move(policy));
            } catch (...) {
                remote_->release();
                throw;
            }
            mode_ = yield_mode::dynamic;
        }
    }

    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    // Frees every task the loop still owns without running it further; their
    // callbacks never run. A task whose braid::task object is still alive is
    // only marked abandoned: its object frees it later. Pending timers,
    // queued thread-safe calls and the results of outstanding work on other
    // threads are dropped without running. Tasks waiting on descriptors are
    // freed like the others; sockets that outlive the loop forget it and
    // only close their descriptors. Defined in scheduler_impl.hpp.
    ~scheduler();

    // --- what tasks and awaiters call ---------------------------------------

    // A running task yields: queue its innermost coroutine per the policy.
    BRAID_DETAIL_HOT_INLINE void yield(std::coroutine_handle<> h) {
        const std::uintptr_t item = ready_item::frame(h.address()).bits;
        if (mode_ == yield_mode::back) [[likely]] {
            ready_.push_back(item);
        } else if (mode_ == yield_mode::front || ask_policy(h) == placement::front) {
            ready_.push_front(item);
        } else {
            ready_.push_back(item);
        }
    }

    // How many awaited children may be started by nested calls (each one a
    // few hundred bytes of stack at most) before starts go through the
    // trampoline.
    static constexpr unsigned max_inline_depth = 16;

    // The trampoline's slot: resume h as soon as the running coroutine
    // suspends, within the same round. The slot is still taken only when a
    // task resumed outside the trampoline (see settle_outside) handed it a
    // coroutine and another did the same before anything took it: that one
    // is resumed first, here.
    void transfer_to(std::coroutine_handle<> h) noexcept {
        if (next_) [[unlikely]] {
            resume_stranded();
        }
        next_ = h;
    }

    // A finished frame nobody owns, freed by the trampoline once the
    // coroutine that finished has returned to it. One still waiting here
    // belongs to a coroutine that returned long ago (it finished outside the
    // trampoline), so it is freed at once.
    void dispose_later(std::coroutine_handle<> h) noexcept {
        if (dispose_) [[unlikely]] {
            dispose_.destroy();
        }
        dispose_ = h;
    }

    // An exception nobody else can observe: handed to the exception handler
    // after the current step.
    void report(std::exception_ptr error) noexcept {
        try {
            pending_.push_back(std::move(error));
            // relaxed: the loop's own bit, read by the loop's own thread.
            attention_.fetch_or(attention_error, std::memory_order_relaxed);
        } catch (...) {
            // Out of memory while reporting an error: there is no way left to
            // deliver it, and losing it silently is not an option.
            std::terminate();
        }
    }

    // --- what event_loop calls ----------------------------------------------

    // Takes one reference to a created task and queues its first step.
    void spawn(promise_base& p) {
        const std::uint32_t index = roots_.take(); // the one step that may throw
        p.add_ref();
        wake(p.self()); // its first step joins the back, as a woken task does
        roots_.set(index, &p);
        p.root_index_ = index;
        p.sched_ = this;
        p.state_ = task_state::started;
        p.set(promise_base::spawned_bit);
        if (tracer_ != nullptr) [[unlikely]] {
            tracer_->on_spawn(&p, p.name(), now());
        }
    }

    void call_soon(call_node* node) noexcept { ready_.push_back(ready_item::callback(node).bits); }

    // Makes room for n spawns, so that they cannot throw.
    void reserve_spawns(std::size_t n) { roots_.reserve(n); }

    // A task that waited for something outside the loop (a timer, another
    // thread, a descriptor) is ready again, or a spawned one is to take its
    // first step: it joins the back of the ready queue. The one way such a
    // task gets there, and the one place that queues no task once the loop
    // is being destroyed. Cannot fail.
    void wake(std::coroutine_handle<> h) noexcept {
        if (!closing_) [[likely]] {
            ready_.push_back(ready_item::frame(h.address()).bits);
        }
    }

    // --- the world outside: timers, other threads (scheduler_impl.hpp) ------

    // The loop's time: the manual clock's, or the steady clock's.
    [[nodiscard]] loop_clock::time_point now() const noexcept {
        return clock_ != nullptr ? clock_->now() : loop_clock::now();
    }

    // Schedules a timer whose node holds one reference for the loop (which
    // the loop takes over). Throws std::bad_alloc with nothing changed.
    void add_timer(timer_node& node, loop_clock::time_point deadline);
    // For timer_handle::cancel and awaiters: true when it stopped the timer.
    bool cancel_timer(timer_node& node) noexcept;

    // A task of this loop waits for another thread's work: prepare gives the
    // finishing side the loop's queue (before the work may start), begin
    // registers the waiting task (once the work is surely submitted), end
    // unregisters it (it no longer waits: resumed, or its frame is going).
    void prepare_remote_wait(remote_wait& w);
    // A prepared wait that will never be completed by the other side (it was
    // ready before it waited, or its waker was taken back).
    void unprepare_remote_wait(remote_wait& w) noexcept;
    void begin_remote_wait(remote_wait& w, std::coroutine_handle<> waiter) noexcept;
    void end_remote_wait(remote_wait& w) noexcept;

    // --- file descriptors (scheduler_io.hpp) ----------------------------------

    // Makes the task h wait, through w, until s is ready in `direction`
    // (ready_read or ready_write), registering s with this loop's wait point
    // first if it is not. Throws usage_error when another task already waits
    // in that direction, std::system_error (naming w's operation) when the
    // OS refuses to watch s.fd; nothing changed then.
    void io_wait_for(io_state& s, io_wait& w, std::uint8_t direction, std::coroutine_handle<> h,
                     promise_base& task);
    // Ends w's wait (w.state is not null); with wake_task, the task joins
    // the back of the ready queue.
    void io_end_wait(io_wait& w, bool wake_task) noexcept;
    // The state braid::readable/writable waits on for fd: the watch another
    // task of this loop already waits on, or a new one (not yet registered).
    // Throws usage_error when a socket of this loop owns fd.
    io_state& io_watch_state(int fd, const io_operation& op);
    // Gives back a watch state nobody waits on (it was never registered, or
    // its wait ended).
    void io_release_watch(io_state& s) noexcept;
    // s is no longer watched here (a socket closing, or moving to another
    // loop). Precondition: s.loop == this and nobody waits on s.
    void io_detach(io_state& s) noexcept;

    // Any thread: queues a thread-safe call, waking the loop if it sleeps.
    // Throws std::bad_alloc when the queue cannot grow.
    void post(remote_item& item);
    // Any thread: run()/run_forever() return after the step in progress.
    void request_stop() noexcept;

    // Links an object that must hear of the loop's end; unlinks it.
    void attach(loop_link& l) noexcept {
        l.prev = nullptr;
        l.next = links_;
        if (links_ != nullptr) {
            links_->prev = &l;
        }
        links_ = &l;
    }
    void detach(loop_link& l) noexcept {
        if (l.prev != nullptr) {
            l.prev->next = l.next;
        } else if (links_ == &l) {
            links_ = l.next;
        }
        if (l.next != nullptr) {
            l.next->prev = l.prev;
        }
        l.prev = l.next = nullptr;
    }

    // The loop's thread: run, run forever, run until p is done.
    void run();
    void run_forever();
    void run_until_done(promise_base& p);

    // Installs (or, with nullptr, removes) the loop's observer.
    void set_tracer(tracer* t) noexcept;
    // A pending cancellation ends the wait of kind `k` the running task is
    // beginning: a tracer is told that it suspended on that wait.
    void note_wait_cut_short(wait_kind k) noexcept {
        if (tracer_ != nullptr) {
            wait_cut_short_ = k;
        }
    }

    [[nodiscard]] bool has_ready() const noexcept { return !ready_.empty(); }
    // Steps waiting in the ready queue.
    [[nodiscard]] std::size_t ready_count() const noexcept { return ready_.size() + marker_steps_; }
    [[nodiscard]] std::uint64_t rounds() const noexcept { return rounds_; }
    [[nodiscard]] bool running() const noexcept { return running_; }

    // Takes one item off the ready queue and runs it. Precondition: has_ready().
    // No software prefetch of the frames to come: when the ready queue kept
    // its items in blocks of its own, prefetching the frame after the next
    // cost clang 13 instructions a step (17% of a yield at 1,000 tasks) and
    // made no yield faster, also with 1,000 to 10^6 frames scattered in
    // memory. With the queue threaded through the frames, prefetching the
    // new first item's frame right after each pop made yields of 100,000
    // tasks no faster with either compiler and those of 1 and 1,000 tasks 2
    // to 8 % slower (A/B, 3 processes each).
    BRAID_DETAIL_HOT_INLINE void step() {
        const ready_item item{ready_.pop_front()};
        ++rounds_;
        if (!item.is_callback()) [[likely]] {
            resume(std::coroutine_handle<>::from_address(item.coroutine()));
        } else {
            try {
                item.node()->run();
            } catch (...) {
                report(std::current_exception());
            }
            settle_if_outside();
        }
    }

    // A coroutine resumed outside the trampoline: an awaitable that is not
    // braid's resumes the task waiting on it from a callback (or from the
    // loop's thread between runs). The task runs there; when it finishes or
    // starts a child through the trampoline, it leaves the trampoline its
    // successor (next_) and its frame to free (dispose_), which nothing takes
    // until this does, right after the callback (or when the next run
    // starts). Stack depth stays constant: this is the trampoline.
    void settle_if_outside() noexcept {
        if (next_ || dispose_) [[unlikely]] {
            settle_outside();
        }
    }
    void settle_outside() noexcept;
    // transfer_to found next_ taken: resumes what is there now, from inside
    // the coroutine that is suspending (one nested call, at most once per
    // such coroutine).
    void resume_stranded() noexcept;

private:
    // A policy whose answer is not a constant. step_slice, built in and cheap,
    // is called directly (dynamic_policy_for is final, so the call is not
    // virtual, and it is inlined); any other through the virtual call.
    BRAID_DETAIL_HOT_INLINE placement ask_policy(std::coroutine_handle<> h) {
        // One yield_info per branch, so that what step_slice does not read
        // (the size of the queue) is not computed for it. The virtual call
        // takes the fields, not a yield_info: this is inlined into every task
        // body that yields, and clang 16 kept a yield_info whose address the
        // call took in the coroutine frame, as if it lived across the
        // suspension (24 bytes more in every such frame, even with a constant
        // policy that never comes here). step_slice's on_yield is inlined, so
        // its yield_info has no address.
        if (mode_ == yield_mode::slice) {
            return static_cast<dynamic_policy_for<step_slice>&>(*dynamic_).policy().on_yield(
                yield_info{h, rounds_, ready_count()});
        }
        return dynamic_->on_yield(h, rounds_, ready_count());
    }

    // Gives every pending exception to the handler; without a handler, the
    // first one is rethrown (the others wait for the next call).
    void deliver_pending_now() {
        while (!pending_.empty()) {
            std::exception_ptr error = std::move(pending_.front());
            pending_.erase(pending_.begin());
            if (pending_.empty()) {
                // relaxed: the loop's own bit.
                attention_.fetch_and(~attention_error, std::memory_order_relaxed);
            }
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
            s_.settle_if_outside();
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
            note_resuming(h);
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

    void unlink(promise_base& p) noexcept { roots_.release(p.root_index_); }

    // --- the world outside (scheduler_impl.hpp) --------------------------------

    static constexpr std::uint32_t attention_error = 1;  // pending_ is not empty
    static constexpr std::uint32_t attention_stop = 2;   // stop() was called
    static constexpr std::uint32_t attention_world = 4;  // timers, remote or I/O waits exist
    static constexpr std::uint32_t attention_remote = 8; // a thread-safe call was queued
    static constexpr std::uint32_t attention_trace = 16; // a tracer is installed

    enum class idle_mode : unsigned char { until_stuck, forever, until_done };
    enum class idle_result : unsigned char { ready, stuck, stop };

    // The slow path of a step, when attention_ is not zero. Returns true when
    // run()/run_forever() must return (honour_stop: a stop was requested).
    bool attend(bool honour_stop);
    // run(), run_forever(), run_until_complete(): the prologue, then steps
    // (traced or not) until the run is over.
    template <idle_mode Mode>
    void run_loop(promise_base* until);
    // Steps until the run is over (true) or tracing was turned on or off
    // (false: the caller starts the other kind of loop).
    template <idle_mode Mode, bool Traced>
    bool take_steps(promise_base* until);
    // A step, and the trampoline, telling the tracer.
    void step_traced();
    void resume_traced(std::coroutine_handle<> h) noexcept;
    // Runs what is ready now, once (a stop() made before run_forever()).
    void run_one_pass();
    // Moves due timers, thread-safe calls, finished remote work and (with
    // poll_descriptors, while tasks wait on some) the tasks whose
    // descriptors are ready to the ready queue, and starts a new pass.
    void collect(bool poll_descriptors = true);
    void take_remote();
    void fire_due_timers();
    void update_world() noexcept;
    // Looks, without blocking, for ready descriptors (scheduler_io.hpp).
    void poll_io();
    // One event of the wait point: a descriptor's readiness, or (data null)
    // the wake-up eventfd.
    void io_event(void* data, std::uint8_t readiness) noexcept;
    // Lets go of every descriptor: the loop is being destroyed.
    void io_abandon_all() noexcept;
    // The ready queue is empty: collects, jumps a manual clock, or blocks.
    idle_result idle(idle_mode mode);
    bool spin_for_remote(idle_mode mode);
    void block(idle_mode mode);
    bool stop_requested(idle_mode mode) const noexcept {
        // acquire: pairs with request_stop's RMW (nothing is read through it,
        // but the stop should be seen no later than its wake-up).
        return mode != idle_mode::until_done &&
               (attention_.load(std::memory_order_acquire) & attention_stop) != 0;
    }
    void clear_stop() noexcept {
        // relaxed: a stop() racing with this one is merged into it, as two
        // calls of stop() are one.
        attention_.fetch_and(~attention_stop, std::memory_order_relaxed);
    }

    static void run_timer(call_node* node);
    static void destroy_timer(call_node* node) noexcept;
    static constexpr call_ops timer_ops{&scheduler::run_timer, &scheduler::destroy_timer};

    // A ready-queue item standing for the next `calls` collected thread-safe
    // calls, which were consecutive when collected: calls wait in
    // threadsafe_calls_, in order, and each takes its own step. The marker
    // runs one and, if more are left, goes back to the front of the queue
    // first, where the next would have been (so the queue counts it as
    // `calls` items: marker_steps_). A marker per call instead cost a link
    // written in another node per call: 100,000 calls from another thread
    // took about 15 % longer (g++, both threads on one CPU). Markers are
    // kept for reuse (spare_markers_): in a steady state, collecting calls
    // allocates nothing.
    struct threadsafe_marker final : call_node {
        explicit threadsafe_marker(scheduler* s) noexcept : call_node(&ops_table), owner(s) {}
        static void run_impl(call_node* node) {
            auto* const m = static_cast<threadsafe_marker*>(node);
            scheduler& s = *m->owner;
            remote_item call = s.threadsafe_calls_.pop();
            s.marker_done(*m);
            call.run();
        }
        static void destroy_impl(call_node* node) noexcept {
            auto* const m = static_cast<threadsafe_marker*>(node);
            for (; m->calls > 1; --m->calls) {
                (void)m->owner->threadsafe_calls_.pop();
                --m->owner->marker_steps_;
            }
            (void)m->owner->threadsafe_calls_.pop();
            m->owner->spare_markers_.push_back(m); // room kept: cannot throw
        }
        static constexpr call_ops ops_table{&threadsafe_marker::run_impl,
                                            &threadsafe_marker::destroy_impl};
        scheduler* owner;
        std::size_t calls = 0;
    };
    // Makes n markers spare, so that n runs of calls can be queued without
    // failing.
    void reserve_markers(std::size_t n);
    // The marker's next call has been taken.
    void marker_done(threadsafe_marker& m) noexcept {
        if (--m.calls != 0) {
            ready_.push_front(ready_item::callback(&m).bits);
            --marker_steps_;
        } else {
            spare_markers_.push_back(&m); // room kept: cannot throw
        }
    }

    // Where the ready queue keeps an item's link: in a task's promise (the
    // word that holds what it waits for) or in the callback's node.
    struct ready_links {
        static std::uintptr_t& link(std::uintptr_t item) noexcept;
    };

    friend class promise_base;
    friend struct remote_wait;
    friend struct io_wait;

    std::atomic<std::uint32_t> attention_{0};
    ready_queue<ready_links> ready_;
    std::coroutine_handle<> next_;    // trampoline: resume this next, same round
    std::coroutine_handle<> dispose_; // trampoline: a finished frame nobody owns
    // The spawned, unfinished tasks this loop owns, at their root_index_.
    root_table roots_;
    std::uint64_t rounds_ = 0;
    unsigned inline_depth_ = 0; // children being started by nested calls
    std::vector<std::exception_ptr> pending_;
    std::function<void(std::exception_ptr)> handler_;
    std::unique_ptr<dynamic_policy> dynamic_;
    // The policy's answer when it is a constant, else which policy to ask.
    enum class yield_mode : unsigned char { back, front, slice, dynamic } mode_ = yield_mode::back;
    bool running_ = false;
    bool closing_ = false; // being destroyed: tasks are no longer queued

    // The world outside.
    bool world_on_ = false;     // mirrors attention_world
    bool counting_ = false;     // pass_left_ counts the pass in progress
    std::size_t pass_left_ = 0; // steps left in the current pass
    manual_clock* clock_;       // null: the steady clock
    timer_queue timers_;
    std::uint64_t timer_seq_ = 0;
    remote_queue* remote_;           // shared with threads that may still push
    std::vector<remote_item> taken_; // swapped with remote_'s items at collection
    remote_fifo threadsafe_calls_;   // collected, waiting for their step
    // Every marker made, and those not in the ready queue (room for all).
    std::vector<std::unique_ptr<threadsafe_marker>> markers_;
    std::vector<threadsafe_marker*> spare_markers_;
    std::size_t marker_steps_ = 0; // queued markers' calls beyond one each
    remote_wait* waits_ = nullptr; // outstanding remote waits (a list)
    std::size_t wait_count_ = 0;
    loop_link* links_ = nullptr; // objects to tell when the loop goes
    tracer* tracer_ = nullptr;
    // While traced: the kind of wait a pending cancellation ended as the
    // running task began it (the task is then queued again, and its wait
    // word links it there instead of naming the wait).
    std::optional<wait_kind> wait_cut_short_;
    // Descriptors: the states registered with wait_, at their fd (null: none);
    // watch states nobody uses, for reuse (room for all of them is kept, so
    // giving one back cannot fail); how many watch states exist; how many
    // tasks wait on descriptors.
    std::vector<io_state*> io_table_;
    std::vector<io_state*> io_spare_;
    std::size_t io_watch_states_ = 0;
    std::size_t io_waiting_ = 0;
    wait_point wait_;
};

} // namespace braid::detail

#include <braid/detail/loop/scheduler_impl.hpp>
#include <braid/detail/loop/scheduler_io.hpp>
