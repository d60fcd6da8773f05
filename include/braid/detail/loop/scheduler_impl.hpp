// SPDX-License-Identifier: MIT
#pragma once

// Out-of-line members of detail::scheduler and of promise_base that need it;
// included at the end of scheduler.hpp.
//
// Running. run(), run_forever() and run_until_done() take steps while tasks
// are ready. After each step one load of attention_ says whether anything
// else needs doing (attend()): an error to deliver, a stop, or -- when timers
// are pending, work on other threads is outstanding or a thread-safe call was
// queued -- counting the pass and, at its end, collect(): due timers, calls
// and finished work from other threads join the back of the ready queue.
//
// Waiting. When nothing is ready, idle() collects; if that brings nothing, it
// returns "stuck" when nothing can make progress any more (run() and
// run_until_done() then return or throw), moves a manual clock to the next
// deadline when nothing else is outstanding (after a look at the descriptors
// tasks wait on), or blocks in the wait point until the next deadline, a
// wake-up from another thread or a ready descriptor. Work on other threads
// (run_in, async_next) is usually back within microseconds, so the loop first
// spins for it briefly (up to spin_limit), then sleeps.

#include <braid/detail/cpu_relax.hpp>
#include <braid/detail/loop/scheduler.hpp>

#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace braid::detail {

// How long an idle loop polls for outstanding work from other threads before
// it sleeps: long enough for a pool to run a small function and hand it back,
// short enough that an idle loop is asleep well within 100 us.
inline constexpr std::chrono::microseconds spin_limit{50};

inline scheduler::~scheduler() {
    // 0. Objects that outlive their loop (task groups) learn it is gone.
    while (loop_link* link = links_) {
        links_ = link->next;
        link->prev = link->next = nullptr;
        link->loop_gone(link);
    }
    // 1. Other threads can no longer reach this loop: what they queued, and
    //    what they finish from now on, is dropped unrun.
    {
        std::vector<remote_item> queued;
        remote_->close(queued);
        taken_.clear();
    }
    // 2. Outstanding remote waits forget this loop, so that an awaiter
    //    destroyed with its frame (below, or later by a task object that
    //    outlives the loop) does not reach back into it.
    while (remote_wait* w = waits_) {
        waits_ = w->next_wait;
        w->loop = nullptr;
        w->prev_wait = w->next_wait = nullptr;
    }
    wait_count_ = 0;
    // 2b. So do tasks waiting on descriptors, and sockets forget this loop
    //     (they only close their descriptors from now on).
    io_abandon_all();

    // 3. Failed tasks whose error is unread, held by task objects: reading
    //    them still works, and dropping them unread from now on reports
    //    nothing, as there is no loop left to report to.
    for (std::size_t i = 0; i < roots_.used(); ++i) {
        promise_base* const root = roots_.at(i);
        if (root != nullptr && root->has(promise_base::unread_bit)) {
            root->clear(promise_base::unread_bit);
            root->sched_ = nullptr;
            roots_.release(static_cast<std::uint32_t>(i));
        }
    }
    // 4. Tasks, ready callbacks and pending timers, dropped unrun. What a
    //    destructor run here schedules (a task spawned, a callback queued, a
    //    timer made) is dropped too, in the next round of this loop. First
    //    what a task resumed outside the trampoline since the last run left
    //    (settle_outside): its frame to free, and the coroutine it would have
    //    resumed, which goes with its own task below.
    next_ = {};
    if (dispose_) {
        std::exchange(dispose_, {}).destroy();
    }
    //    The ready queue is emptied before any frame is freed (it links
    //    queued tasks through their frames), and from now on takes no task:
    //    none can run again.
    closing_ = true;
    for (;;) {
        bool dropped = false;
        while (!ready_.empty()) {
            dropped = true;
            const ready_item item{ready_.pop_front()};
            if (item.is_callback()) {
                item.node()->destroy();
            }
        }
        for (std::size_t i = 0; i < roots_.used(); ++i) {
            promise_base* const root = roots_.at(i);
            if (root == nullptr) {
                continue;
            }
            roots_.release(static_cast<std::uint32_t>(i));
            dropped = true;
            promise_base& p = *root;
            p.clear(promise_base::spawned_bit);
            p.sched_ = nullptr;
            p.state_ = task_state::abandoned;
            p.release_and_destroy();
        }
        if (timers_.size() > 0) {
            dropped = true;
            timers_.clear([](timer_node* t) noexcept {
                t->state = timer_state::cancelled;
                t->loop = nullptr;
                t->drop_payload();
                t->release();
            });
        }
        if (!dropped) {
            break;
        }
    }
    remote_->release();
}

// --- Timers -------------------------------------------------------------------

inline void scheduler::add_timer(timer_node& node, loop_clock::time_point deadline) {
    node.deadline = timer_ticks(deadline);
    node.seq = timer_seq_++;
    node.loop = this;
    node.state = timer_state::pending;
    node.ops = &timer_ops;
    timers_.push(&node);
    update_world();
}

inline bool scheduler::cancel_timer(timer_node& node) noexcept {
    switch (node.state) {
    case timer_state::pending:
        node.state = timer_state::cancelled;
        node.loop = nullptr;
        node.drop_payload();
        if (timers_.cancel(&node)) {
            node.release(); // the queue's reference; the caller holds another
        }
        update_world();
        return true;
    case timer_state::due:
        // In the ready queue: run_timer will find it cancelled.
        node.state = timer_state::cancelled;
        node.drop_payload();
        return true;
    default:
        return false;
    }
}

inline void scheduler::run_timer(call_node* n) {
    auto* t = static_cast<timer_node*>(n);
    struct releaser {
        timer_node* t;
        ~releaser() { t->release(); }
    } owner{t};
    scheduler* const s = std::exchange(t->loop, nullptr);
    if (t->state == timer_state::cancelled) {
        --s->rounds_; // nothing ran: not a round
        return;
    }
    t->state = timer_state::done; // from here on, cancel() says false
    t->op(t, timer_op::run);
}

inline void scheduler::destroy_timer(call_node* n) noexcept {
    auto* t = static_cast<timer_node*>(n);
    t->state = timer_state::cancelled;
    t->loop = nullptr;
    t->drop_payload();
    t->release();
}

inline void scheduler::fire_due_timers() {
    const loop_clock::rep now_ticks = timer_ticks(now());
    while (timer_node* t = timers_.pop_due(now_ticks)) {
        if (tracer_ != nullptr) [[unlikely]] {
            tracer_->on_timer(loop_clock::time_point(loop_clock::duration(now_ticks)));
        }
        if (t->waiter) {
            // A sleeping task is ready; the queue's reference goes.
            wake(t->waiter);
            t->state = timer_state::done;
            t->loop = nullptr;
            t->release();
        } else {
            // A callback: the queue's reference moves to the ready queue.
            call_soon(t);
            t->state = timer_state::due;
        }
    }
}

// --- Other threads ------------------------------------------------------------

inline void scheduler::prepare_remote_wait(remote_wait& w) {
    remote_->reserve_wake(); // may throw: nothing prepared
    w.queue = remote_;
    remote_->add_ref(); // for the finishing side's push
}

inline void scheduler::unprepare_remote_wait(remote_wait& w) noexcept {
    w.withdraw();
}

inline void scheduler::begin_remote_wait(remote_wait& w, std::coroutine_handle<> waiter) noexcept {
    w.loop = this;
    w.waiter = waiter;
    w.prev_wait = nullptr;
    w.next_wait = waits_;
    if (waits_ != nullptr) {
        waits_->prev_wait = &w;
    }
    waits_ = &w;
    ++wait_count_;
    update_world();
}

inline void scheduler::end_remote_wait(remote_wait& w) noexcept {
    if (w.prev_wait != nullptr) {
        w.prev_wait->next_wait = w.next_wait;
    } else {
        waits_ = w.next_wait;
    }
    if (w.next_wait != nullptr) {
        w.next_wait->prev_wait = w.prev_wait;
    }
    w.prev_wait = w.next_wait = nullptr;
    w.loop = nullptr;
    --wait_count_;
}

inline void scheduler::post(remote_item& item) {
    if (remote_->push(item) == remote_queue::push_result::first) {
        // The loop is awake and may be busy: have it collect by the end of
        // its pass. (A sleeping loop was woken by the push itself; on
        // `closed` the loop is being destroyed and the caller's item is
        // destroyed unrun.)
        // release: orders the push before the bit for a reader that acquires.
        attention_.fetch_or(attention_remote, std::memory_order_release);
    }
}

inline void scheduler::request_stop() noexcept {
    // seq_cst: with remote_queue::wake and begin_sleep, either the loop sees
    // the bit before it blocks, or wake() sees it blocked and wakes it.
    attention_.fetch_or(attention_stop, std::memory_order_seq_cst);
    remote_->wake();
}

inline void scheduler::take_remote() {
    if (taken_.empty()) {
        remote_->take(taken_);
    }
    // Room first, so that delivering cannot fail half-way (if this throws,
    // taken_ keeps the items for the next collection).
    std::size_t runs = 0; // of consecutive calls: at most this many markers
    bool in_run = false;
    for (const remote_item& item : taken_) {
        runs += !item.is_wake() && !in_run ? 1 : 0;
        in_run = !item.is_wake();
    }
    reserve_markers(runs);
    threadsafe_calls_.reserve_more(taken_.size());
    if (tracer_ != nullptr) [[unlikely]] {
        const loop_clock::time_point t = now();
        for (std::size_t i = 0; i < taken_.size(); ++i) {
            tracer_->on_wakeup(t);
        }
    }
    threadsafe_marker* run = nullptr; // the marker of the calls just before
    for (remote_item& item : taken_) {
        if (item.is_wake()) {
            remote_wait* const w = item.take_wait();
            if (w->loop == this) { // it still waits
                end_remote_wait(*w);
                wake(w->waiter);
                run = nullptr;
            }
            w->release(); // the finishing side's reference, handed over
        } else {
            threadsafe_calls_.push(std::move(item));
            if (run != nullptr) {
                ++run->calls;
                ++marker_steps_;
            } else {
                run = spare_markers_.back();
                spare_markers_.pop_back();
                run->calls = 1;
                call_soon(run);
            }
        }
    }
    taken_.clear();
}

inline void scheduler::reserve_markers(std::size_t n) {
    if (spare_markers_.size() >= n) {
        return;
    }
    const std::size_t more = n - spare_markers_.size();
    markers_.reserve(markers_.size() + more);
    spare_markers_.reserve(markers_.size() + more); // room for every marker to be spare
    for (std::size_t i = 0; i < more; ++i) {
        markers_.push_back(std::make_unique<threadsafe_marker>(this)); // room reserved
        spare_markers_.push_back(markers_.back().get());
    }
}

// --- Passes -------------------------------------------------------------------

inline void scheduler::update_world() noexcept {
    const bool on = timers_.live() > 0 || wait_count_ > 0 || io_waiting_ > 0;
    if (on != world_on_) {
        world_on_ = on;
        // relaxed: the loop's own bit, read by the loop's own thread.
        if (on) {
            attention_.fetch_or(attention_world, std::memory_order_relaxed);
        } else {
            attention_.fetch_and(~attention_world, std::memory_order_relaxed);
            // Steps from now on are not counted, so the count of the pass in
            // progress is lost: whatever appears next is collected right
            // after its step (see attend), not when a stale count runs out.
            counting_ = false;
        }
    }
}

inline void scheduler::collect(bool poll_descriptors) {
    // acq_rel: the bit is cleared before the queue is emptied (take's
    // exchange cannot move above it), so a call queued after the take sets
    // it again and is collected by the next pass.
    if ((attention_.load(std::memory_order_relaxed) & attention_remote) != 0) {
        attention_.fetch_and(~attention_remote, std::memory_order_acq_rel);
    }
    if (remote_->nonempty() || !taken_.empty()) {
        take_remote();
    }
    if (timers_.size() > 0) {
        fire_due_timers();
    }
    if (poll_descriptors && io_waiting_ > 0) {
        poll_io();
    }
    pass_left_ = ready_count();
    update_world();
    counting_ = world_on_;
}

inline bool scheduler::attend(bool honour_stop) {
    const std::uint32_t bits = attention_.load(std::memory_order_relaxed);
    if ((bits & attention_error) != 0) {
        deliver_pending_now();
    }
    if (honour_stop && (bits & attention_stop) != 0) {
        clear_stop();
        return true;
    }
    if ((bits & (attention_world | attention_remote)) != 0) {
        if (!counting_) {
            // A timer, a remote wait or a thread-safe call appeared during
            // this step while passes were not counted: where the pass in
            // progress ends is unknown, so collect now (at least once per
            // pass, as promised, and no later).
            collect();
        } else if (pass_left_ > 1) {
            --pass_left_;
        } else if (!ready_.empty()) {
            collect(); // (with nothing ready, the loop's idle path collects at once)
        }
    }
    return false;
}

// --- Idle ---------------------------------------------------------------------

inline scheduler::idle_result scheduler::idle(idle_mode mode) {
    for (;;) {
        if (stop_requested(mode)) {
            clear_stop();
            return idle_result::stop;
        }
        collect(false); // descriptors: block() looks at them, or the poll below
        if (!ready_.empty()) {
            return idle_result::ready;
        }
        const bool outstanding = wait_count_ > 0;
        const bool timers = timers_.live() > 0;
        const bool descriptors = io_waiting_ > 0;
        if (!outstanding && !timers && !descriptors && mode != idle_mode::forever) {
            return idle_result::stuck;
        }
        if (clock_ != nullptr && !outstanding && timers) {
            const loop_clock::rep next = timers_.earliest();
            if (descriptors && next != std::numeric_limits<loop_clock::rep>::max()) {
                // A ready descriptor comes before time moves.
                poll_io();
                if (!ready_.empty()) {
                    pass_left_ = ready_count();
                    update_world();
                    return idle_result::ready;
                }
            }
            if (next != std::numeric_limits<loop_clock::rep>::max()) {
                // Nothing else can happen first: time moves to the deadline.
                if (loop_clock::time_point(loop_clock::duration(next)) > clock_->now()) {
                    clock_->advance_to(loop_clock::time_point(loop_clock::duration(next)));
                }
                fire_due_timers();
                pass_left_ = ready_count();
                update_world();
                counting_ = world_on_;
                if (!ready_.empty()) {
                    return idle_result::ready;
                }
                continue;
            }
        }
        if (outstanding && spin_for_remote(mode)) {
            continue;
        }
        block(mode);
    }
}

inline bool scheduler::spin_for_remote(idle_mode mode) {
    auto until = loop_clock::now() + spin_limit;
    if (clock_ == nullptr && timers_.live() > 0) {
        const auto next = loop_clock::time_point(loop_clock::duration(timers_.earliest()));
        if (next < until) {
            until = next;
        }
    }
    for (unsigned i = 1;; ++i) {
        if (remote_->nonempty() || stop_requested(mode)) {
            return true;
        }
        cpu_relax();
        if (i % 32 == 0 && loop_clock::now() >= until) {
            return false;
        }
    }
}

inline void scheduler::block(idle_mode mode) {
    std::optional<std::chrono::nanoseconds> timeout;
    if (clock_ == nullptr && timers_.live() > 0) {
        const loop_clock::rep next = timers_.earliest();
        if (next != std::numeric_limits<loop_clock::rep>::max()) {
            const loop_clock::rep left = next - timer_ticks(loop_clock::now());
            timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
                loop_clock::duration(left < 0 ? 0 : left));
        }
    }
    // With no descriptor watched, nothing but a push or the timeout can end
    // the wait: the loop sleeps on the remote queue's futex word, cheaper to
    // wake than epoll. Otherwise on the wait point, which sees both.
    const bool on_wait_point = wait_.is_open() && wait_.watching();
    if (!remote_->begin_sleep(on_wait_point ? remote_queue::sleep_kind::wait_point
                                            : remote_queue::sleep_kind::futex)) {
        return; // something was queued meanwhile
    }
    struct sleeper {
        remote_queue* q;
        ~sleeper() { q->end_sleep(); }
    } awake_after{remote_};
    if (mode != idle_mode::until_done &&
        // seq_cst: see request_stop.
        (attention_.load(std::memory_order_seq_cst) & attention_stop) != 0) {
        return;
    }
    if (on_wait_point) {
        wait_.wait(timeout,
                   [this](void* data, std::uint8_t readiness) { io_event(data, readiness); });
    } else {
        remote_->futex_wait(timeout);
    }
}

// --- Running ------------------------------------------------------------------

inline void scheduler::run() {
    run_guard guard(*this, "run");
    run_loop<idle_mode::until_stuck>(nullptr);
}

inline void scheduler::run_forever() {
    run_guard guard(*this, "run_forever");
    run_loop<idle_mode::forever>(nullptr);
}

inline void scheduler::run_until_done(promise_base& p) {
    run_guard guard(*this, "run_until_complete");
    if (p.state_ == task_state::created) {
        spawn(p);
    }
    run_loop<idle_mode::until_done>(&p);
}

template <scheduler::idle_mode Mode>
void scheduler::run_loop(promise_base* until) {
    if (Mode != idle_mode::until_done && stop_requested(Mode)) {
        clear_stop();
        run_one_pass();
        return;
    }
    if ((attention_.load(std::memory_order_relaxed) & attention_error) != 0) {
        deliver_pending_now();
    }
    collect(); // a pass starts with what is ready and due now
    for (;;) {
        const bool over =
            tracer_ != nullptr ? take_steps<Mode, true>(until) : take_steps<Mode, false>(until);
        if (over) {
            return;
        }
    }
}

// The loop itself. With no tracer, a step is step() and one load of
// attention_; everything else (errors, stop, passes, a tracer being
// installed) is behind that load.
template <scheduler::idle_mode Mode, bool Traced>
bool scheduler::take_steps(promise_base* until) {
    for (;;) {
        if constexpr (Mode == idle_mode::until_done) {
            if (until->state_ == task_state::done) {
                return true;
            }
            if (until->state_ == task_state::abandoned ||
                (ready_.empty() && idle(Mode) != idle_result::ready)) {
                throw task_not_finished(
                    "braid::event_loop::run_until_complete: the loop has nothing left to run "
                    "but the task has not finished (it waits for something that nothing "
                    "will do, or it belongs to another loop)");
            }
        } else if (ready_.empty()) {
            if (idle(Mode) != idle_result::ready) {
                return true;
            }
            continue;
        }
        if constexpr (Traced) {
            step_traced();
        } else {
            step();
        }
        if (attention_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
            if (attend(Mode != idle_mode::until_done)) {
                return true;
            }
            if ((tracer_ != nullptr) != Traced) {
                return false;
            }
        }
    }
}

inline void scheduler::set_tracer(tracer* t) noexcept {
    // relaxed: the loop's own bit, read by the loop's own thread.
    if (t != nullptr) {
        attention_.fetch_or(attention_trace, std::memory_order_relaxed);
    } else {
        attention_.fetch_and(~attention_trace, std::memory_order_relaxed);
    }
    tracer_ = t;
}

// The promise of a frame in the ready queue. Every coroutine the loop
// resumes is a braid task, whose promise type derives from promise_base as
// its first base and is aligned to at most 16 bytes (promise<T> checks), so
// g++ and clang put it where they would put a promise_base.
inline promise_base& promise_of_frame(void* frame) noexcept {
    return std::coroutine_handle<promise_base>::from_address(frame).promise();
}

// Both kinds of item keep their link 16 bytes past their address (less the
// callback bit): a frame's promise starts there and begins with its wait
// word; a callback's address is 8 bytes before its node, which has the link
// after its table of operations. So finding it is one computation, with no
// branch on the kind (with one, clang 16 kept a value of yield's in the
// coroutine frame across the suspension: 8 more bytes in every frame that
// yields).
inline std::uintptr_t& scheduler::ready_links::link(std::uintptr_t item) noexcept {
    static_assert(offsetof(promise_base, wait_word_) == 0 &&
                      offsetof(call_node, ready_link) + ready_item::node_offset == 16,
                  "the ready queue's link is 16 bytes past every item");
    auto* const link = reinterpret_cast<std::uintptr_t*>((item & ~std::uintptr_t{1}) + 16);
    assert(ready_item{item}.is_callback()
               ? link == &ready_item{item}.node()->ready_link
               : link == &promise_of_frame(ready_item{item}.coroutine()).ready_link());
    return *link;
}

inline void scheduler::step_traced() {
    const ready_item item{ready_.pop_front()};
    ++rounds_;
    if (!item.is_callback()) {
        resume_traced(std::coroutine_handle<>::from_address(item.coroutine()));
        return;
    }
    tracer* const t = tracer_; // hears of the end, also if the callback removes it
    t->on_callback_begin(now());
    try {
        item.node()->run();
    } catch (...) {
        report(std::current_exception());
    }
    t->on_callback_end(now());
    settle_if_outside();
}

BRAID_DETAIL_NOINLINE inline void scheduler::settle_outside() noexcept {
    if (dispose_) {
        std::exchange(dispose_, {}).destroy(); // its coroutine has returned
    }
    if (next_) {
        const std::coroutine_handle<> h = std::exchange(next_, {});
        if (tracer_ != nullptr) {
            resume_traced(h);
        } else {
            resume(h);
        }
    }
}

BRAID_DETAIL_NOINLINE inline void scheduler::resume_stranded() noexcept {
    // The coroutine calling transfer_to may have just left its own frame to
    // free: it is still running, so that waits until it has returned.
    const std::coroutine_handle<> mine = std::exchange(dispose_, {});
    settle_outside(); // only next_ is left to take
    dispose_later(mine);
}

// What a tracer is told for a task suspended on a wait of kind k.
inline suspend_reason reason_for(wait_kind k) noexcept {
    switch (k) {
    case wait_kind::child:
        return suspend_reason::await;
    case wait_kind::sleep:
        return suspend_reason::sleep;
    case wait_kind::thread:
        return suspend_reason::thread;
    case wait_kind::stream:
        return suspend_reason::stream;
    case wait_kind::io:
        return suspend_reason::io;
    case wait_kind::group:
        return suspend_reason::group;
    }
    return suspend_reason::other;
}

inline void scheduler::resume_traced(std::coroutine_handle<> h) noexcept {
    for (;;) {
        promise_base& p = promise_of_frame(h.address());
        // The tracer that saw the step begin hears of its end, also when the
        // step removes it.
        tracer* const t = tracer_;
        if (t != nullptr) {
            t->on_resume(&p, p.name(), now());
        }
        note_resuming(h);
        wait_cut_short_.reset();
        h.resume();
        if (t != nullptr) {
            // Read before the frame may be freed below.
            if (p.state_ == task_state::done) {
                t->on_finish(&p,
                             p.ended_cancelled() ? task_ending::cancelled
                             : p.failed()        ? task_ending::exception
                                                 : task_ending::value,
                             now());
            } else {
                suspend_reason why = suspend_reason::other;
                if (const suspension* s = p.waiting_on()) {
                    why = reason_for(s->kind);
                } else if (wait_cut_short_) {
                    why = reason_for(*wait_cut_short_); // over at once, but begun
                } else if (ready_.holds_at_an_end(ready_item::frame(h.address()).bits)) {
                    why = suspend_reason::yield; // the policy put it back
                }
                t->on_suspend(&p, why, now());
            }
        }
        if (dispose_) {
            std::exchange(dispose_, {}).destroy();
        }
        if (!next_) {
            return;
        }
        h = std::exchange(next_, {});
    }
}

inline void scheduler::run_one_pass() {
    collect();
    for (std::size_t n = ready_count(); n > 0 && !ready_.empty(); --n) {
        if (tracer_ != nullptr) {
            step_traced();
        } else {
            step();
        }
        if (attention_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
            if (attend(true)) {
                return;
            }
        }
    }
}

// --- promise_base members that need the scheduler -----------------------------

inline bool promise_base::await_from(std::coroutine_handle<> awaiting_frame,
                                     promise_base& awaiting) noexcept {
    if (state_ == task_state::created && awaiting.has(cancel_pending_bit)) [[unlikely]] {
        awaiting.cancel_unstarted_child(*this);
        return false; // it has finished
    }
    continuation_ = awaiting_frame;
    if (state_ != task_state::created) {
        return true; // started elsewhere: finish() resumes the awaiting coroutine
    }
    sched_ = awaiting.sched_;
    scheduler& s = *sched_;
    if (s.inline_depth_ < scheduler::max_inline_depth) {
        // Run the child right here. Most children finish without suspending,
        // and then the awaiting coroutine goes on without a trip through the
        // trampoline. The nesting is bounded, so the stack is too.
        ++s.inline_depth_;
        state_ = task_state::running_inline;
        note_resuming(self());
        self().resume();
        --s.inline_depth_;
        if (state_ == task_state::done) {
            return false;
        }
        // The child suspended: from now on it is resumed by the trampoline,
        // and finish() hands the awaiting coroutine to the trampoline too.
        state_ = task_state::started;
        return true;
    }
    state_ = task_state::started;
    s.transfer_to(self());
    return true;
}

inline void promise_base::finish() noexcept {
    scheduler* const s = std::exchange(sched_, nullptr);
    // A child run by its awaiter's await_suspend returns there by itself.
    // Two branches, not the old state remembered across finish_rare: a value
    // live across that call cost every task body (where finish is inlined)
    // a saved register under clang, 4 instructions per yield.
    if (state_ == task_state::running_inline) {
        state_ = task_state::done;
        if (has(finish_rare_bits)) [[unlikely]] {
            finish_rare(*s);
        }
        return;
    }
    state_ = task_state::done;
    // A task that was awaited and simply returned takes the short path.
    if (has(finish_rare_bits)) [[unlikely]] {
        finish_rare(*s);
    }
    if (continuation_) {
        s->transfer_to(continuation_);
    }
}

inline bool promise_base::request_cancel() {
    switch (state_) {
    case task_state::done:
    case task_state::abandoned: // its loop is gone: it never runs again
        return false;
    case task_state::created:
        finish_unstarted_cancelled();
        return true;
    case task_state::started:
    case task_state::running_inline:
        break;
    }
    suspension* const s = wait();
    set(cancel_requested_bit);
    if (task_extras* e = extras_if_made(); e != nullptr && e->stop.stop_possible()) {
        e->stop.request_stop();
    }
    cancel_wait(s);
    return true;
}

// Passed down to an awaited task: this task goes on if the child swallows it.
// Otherwise pending, delivered at the task's next braid co_await; a wait other
// than a group's ends now (a group wakes the task once its children are
// done).
inline void promise_base::cancel_wait(suspension* s) noexcept {
    if (s != nullptr && s->kind == wait_kind::child) {
        s->cancel(s);
        return;
    }
    set(cancel_pending_bit);
    if (s != nullptr) {
        if (s->kind != wait_kind::group) {
            wait_word_ = 0; // woken now
        }
        s->cancel(s);
    }
}

BRAID_DETAIL_NOINLINE inline void promise_base::cancel_new_wait() noexcept {
    clear(cancel_pending_bit);
    suspension* const s = wait();
    if (s != nullptr) {
        sched_->note_wait_cut_short(s->kind);
    }
    cancel_wait(s);
}

// A task with a cancellation pending awaits `child`, which has not started:
// the cancellation passes to the child, which ends cancelled without
// beginning. Passing it on once the child has suspended instead would make
// the outcome depend on the nesting: past max_inline_depth an awaited child
// begins only after its awaiter has suspended. What the child's done
// callbacks throw goes to the loop, like a finishing task's.
BRAID_DETAIL_NOINLINE inline void
promise_base::cancel_unstarted_child(promise_base& child) noexcept {
    clear(cancel_pending_bit);
    try {
        (void)child.request_cancel();
    } catch (...) {
        sched_->report(std::current_exception());
    }
}

inline void promise_base::finish_unstarted_cancelled() {
    state_ = task_state::done;
    set(cancel_requested_bit | ended_cancelled_bit);
    set_error(std::make_exception_ptr(cancelled{})); // never started: not suspended
    std::exception_ptr first_error;
    if (task_extras* e = extras_if_made(); e != nullptr && e->stop.stop_possible()) {
        e->stop.request_stop();
    }
    while (callback_node* n = pop_callback()) {
        try {
            n->invoke(n, self().address());
        } catch (...) {
            if (!first_error) {
                first_error = std::current_exception();
            }
        }
        n->destroy(n);
    }
    if (first_error) {
        std::rethrow_exception(first_error);
    }
}

inline void promise_base::finish_rare(scheduler& s) noexcept {
    const bool has_callbacks = this->has_callbacks();
    // A spawned task that failed, with nobody awaiting it and no callback to
    // look at it. Fire-and-forget (only the loop owns it): its error goes to
    // the loop now. Held by task objects: whoever holds one may read it, and
    // if the last one goes unread the error goes to the loop then. Ending
    // cancelled is not an error: somebody asked for it.
    const bool unobserved = has(failed_bit) && !has(ended_cancelled_bit) && !continuation_ &&
                            !has_callbacks && has(spawned_bit);
    if (unobserved && refs_ == 1) {
        s.report(exception_);
    }

    // Callbacks run now, in order, before the loop does anything else.
    if (has_callbacks) {
        while (callback_node* n = pop_callback()) {
            try {
                n->invoke(n, self().address());
            } catch (...) {
                s.report(std::current_exception());
            }
            n->destroy(n);
        }
    }

    if (has(spawned_bit)) {
        clear(spawned_bit);
        if (unobserved && refs_ > 1) {
            // Keeps its loop, and stays listed, so that the loop's
            // destruction can tell it there is no loop to report to any more.
            set(unread_bit);
            sched_ = &s;
            (void)release(); // a task object holds it: never the last owner
            return;
        }
        s.unlink(*this);
        if (release()) {
            // Nobody holds the task any more. It cannot free itself while it
            // is still inside this call: the trampoline does, once it returns.
            s.dispose_later(self());
        }
    }
}

BRAID_DETAIL_NOINLINE inline void promise_base::note_read() noexcept {
    clear(unread_bit);
    std::exchange(sched_, nullptr)->unlink(*this);
}

BRAID_DETAIL_NOINLINE inline void promise_base::report_unread() noexcept {
    clear(unread_bit);
    scheduler* const s = std::exchange(sched_, nullptr);
    s->unlink(*this);
    s->report(exception_);
}

} // namespace braid::detail
