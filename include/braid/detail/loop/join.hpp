// SPDX-License-Identifier: MIT
#pragma once

// detail::join: a task (the waiter) waiting for a set of tasks (its children)
// that run concurrently on its loop. when_all, when_any, wait_for and
// task_group are built on it.
//
// The children are spawned on the waiter's loop, which owns each until it
// finishes, and each gets a watch: a done callback that tells the join. A
// child holds its watch in the promise's slot for its rarely used parts
// (promise_base::add_watch) until it needs those, and a join in a frame keeps
// the watches in its own storage, so watching two children allocates nothing
// (a callback added by hand allocates the callback and the task_extras). The
// join applies its rule to every ending -- `all`: the first failure cancels
// the others; `any`: the first success cancels the others; `group`: the
// first failure that is not a cancellation cancels the others -- and wakes
// the waiter once every child has finished. Children never outlive the wait:
// a cancelled waiter (the join is its suspension, of kind `group`) cancels
// its children, waits for them, and only then receives braid::cancelled.
//
// Lifetimes: the join lives in the waiter's frame (when_all, when_any,
// wait_for) or on the heap, shared by count with the watches (task_group,
// whose object may go away while children still run). A join in a frame
// outlives every child's ending, except when the loop is destroyed with
// both unfinished; then no callback runs, and the join takes its watches
// back from the children (which the frame's parameters still own) as it goes.
//
// Single-threaded: the loop's thread.

#include <braid/detail/frame_pool.hpp>
#include <braid/detail/loop/scheduler.hpp>
#include <braid/detail/task_core.hpp>
#include <braid/errors.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

namespace braid {
class task_group;
} // namespace braid

namespace braid::detail {

// The children's promises: up to four inline (a when_all of two tasks
// allocates nothing for them), more on the heap.
class child_list {
public:
    child_list() noexcept = default;
    child_list(const child_list&) = delete;
    child_list& operator=(const child_list&) = delete;
    ~child_list() {
        if (data_ != inline_) {
            delete[] data_;
        }
    }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    promise_base*& operator[](std::size_t i) noexcept { return data_[i]; }
    promise_base** begin() noexcept { return data_; }
    promise_base** end() noexcept { return data_ + size_; }
    void reserve(std::size_t n) {
        if (n > capacity_) {
            n = n < 2 * capacity_ ? 2 * capacity_ : n;
            auto* bigger = new promise_base*[n];
            for (std::size_t i = 0; i < size_; ++i) {
                bigger[i] = data_[i];
            }
            if (data_ != inline_) {
                delete[] data_;
            }
            data_ = bigger;
            capacity_ = n;
        }
    }
    // Precondition: room was reserved, or the list is within its inline room.
    void push_back(promise_base* p) {
        if (size_ == capacity_) {
            reserve(2 * capacity_);
        }
        data_[size_++] = p;
    }

private:
    promise_base* inline_[4] = {};
    promise_base** data_ = inline_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 4;
};

class join : public suspension, public loop_link {
public:
    enum class rule : std::uint8_t { all, any, group };
    static constexpr std::size_t no_winner = std::numeric_limits<std::size_t>::max();

    explicit join(rule r) noexcept : rule_(r) {
        cancel = &join::cancel_impl;
        kind = wait_kind::group;
    }
    join(const join&) = delete;
    join& operator=(const join&) = delete;
    ~join();

    // The children, before the waiter awaits the join (which starts them).
    void reserve(std::size_t n) { children_.reserve(n); }
    void add(promise_base& child) { children_.push_back(&child); }

    // --- Awaiting: the waiter suspends until every child has finished. ---------

    [[nodiscard]] bool await_ready() const noexcept { return false; }

    // Starts the children on the waiter's loop. Everything that can fail is
    // done before the first child starts, so a failure leaves nothing running.
    template <braid_promise P>
    bool await_suspend(std::coroutine_handle<P> waiter) {
        start(waiter.promise(), *waiter.promise().owner());
        if (remaining_ == 0) {
            return false;
        }
        waiter_ = waiter;
        waiter.promise().suspend_on(this); // last: cancelling the waiter reaches the join
        return true;
    }

    // The waiter receives braid::cancelled when it was cancelled meanwhile.
    void await_resume() const {
        waiter_promise_->resumed();
        waiter_promise_->check_cancel();
    }

    // --- For task_group, whose children come and go ----------------------------

    // Starts one more child now (the waiter need not be waiting). Throws
    // std::bad_alloc with nothing started.
    void start_one(promise_base& child, scheduler& loop);
    // Waits for the children running now; the group's wait().
    template <braid_promise P>
    bool suspend_group_waiter(std::coroutine_handle<P> waiter) noexcept {
        waiter_promise_ = &waiter.promise();
        if (remaining_ == 0) {
            return false;
        }
        waiter_ = waiter;
        waiter_promise_->suspend_on(this);
        return true;
    }
    [[nodiscard]] bool has_waiter() const noexcept { return static_cast<bool>(waiter_); }

    // --- Outcome -----------------------------------------------------------------

    [[nodiscard]] std::size_t remaining() const noexcept { return remaining_; }
    // all, group: the first failure in time; any: the last failure.
    [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }
    std::exception_ptr take_error() noexcept { return std::move(error_); }
    // any: the index of the first child to succeed.
    [[nodiscard]] std::size_t winner() const noexcept { return winner_; }
    // Cancels every child still running (a timeout, or the waiter cancelled).
    void cancel_children() noexcept;

    // For task_group: shared by count with the watches.
    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) {
            delete this;
        }
    }
    // For task_group: the group object is gone; a child's failure that is not
    // a cancellation then goes to the loop's exception handler.
    void orphan(scheduler* loop) noexcept { orphaned_loop_ = loop; }
    // For task_group: a shared join on `loop`, told when the loop goes.
    void share_on(scheduler& loop) noexcept {
        shared_ = true;
        loop_ = &loop;
        loop_gone = &join::on_loop_gone;
        loop.attach(*this);
    }
    // The loop, or null once it is gone.
    [[nodiscard]] scheduler* loop() const noexcept { return loop_; }

private:
    // A child's done callback. A frame's join keeps its children's watches
    // in its own storage (`in_join`), which nothing frees one by one; a
    // shared join's are on the heap, one per child.
    struct watch final : callback_node {
        watch(join* j, std::size_t i, bool counted) noexcept : owner(j), index(i), shares(counted) {
            invoke = &watch::invoke_impl;
            destroy = &watch::destroy_impl;
        }
        struct in_join_t {};
        watch(join* j, std::size_t i, in_join_t) noexcept : owner(j), index(i), shares(false) {
            invoke = &watch::invoke_impl;
            destroy = &watch::forget_impl;
        }
        static void* operator new(std::size_t size) { return allocate_frame(size); }
        static void operator delete(void* p, std::size_t size) noexcept {
            deallocate_frame(p, size);
        }
        static void invoke_impl(callback_node* n, void*) {
            auto* w = static_cast<watch*>(n);
            w->owner->child_done(w->index);
        }
        // The child was destroyed unfinished (its loop is being destroyed).
        // A join in a frame may be gone already and is not touched; a shared
        // one forgets the child.
        static void destroy_impl(callback_node* n) noexcept {
            auto* w = static_cast<watch*>(n);
            if (w->shares) {
                w->owner->child_gone(w->index);
                w->owner->release();
            }
            delete w;
        }
        // Ran, or was taken back by ~join: the join's storage holds it.
        static void forget_impl(callback_node*) noexcept {}
        join* owner;
        std::size_t index;
        bool shares; // holds a reference to a shared (heap) join
    };

    static void on_loop_gone(loop_link* l) noexcept {
        auto* self = static_cast<join*>(l);
        self->loop_ = nullptr;
        self->orphaned_loop_ = nullptr;
    }
    void child_gone(std::size_t index) noexcept {
        if (children_[index] != nullptr) {
            children_[index] = nullptr;
            free_slots_.push_back(index); // room was made by start_one
            --remaining_;
        }
    }

    void start(promise_base& waiter, scheduler& loop);
    [[nodiscard]] watch* make_watches(std::size_t n);
    void release_watches() noexcept;
    void apply_rule(std::size_t index) noexcept;
    void settle(promise_base& child, std::size_t index) noexcept;
    void child_done(std::size_t index) noexcept;
    static void cancel_impl(suspension* s) noexcept { static_cast<join*>(s)->cancel_children(); }

    child_list children_; // null once finished
    // A frame's join: its children's watches, in place for up to four
    // (a when_all of two allocates nothing for them), else in one block.
    watch* watches_ = nullptr;
    std::size_t watch_block_ = 0; // children in the block, 0 when in place
    alignas(watch) unsigned char watch_room_[4 * sizeof(watch)];
    std::vector<std::size_t> free_slots_; // task_group: slots of finished children
    std::coroutine_handle<> waiter_;
    promise_base* waiter_promise_ = nullptr;
    scheduler* loop_ = nullptr;
    std::exception_ptr error_;
    std::size_t remaining_ = 0;
    std::size_t winner_ = no_winner;
    std::size_t refs_ = 1;
    scheduler* orphaned_loop_ = nullptr;
    rule rule_;
    bool shared_ = false;

    friend class braid::task_group;
};

// --- Implementation ----------------------------------------------------------

inline void join::start(promise_base& waiter, scheduler& loop) {
    waiter_promise_ = &waiter;
    loop_ = &loop;
    const std::size_t n = children_.size();
    // Everything that may fail first: the watches' storage and room for the
    // spawns.
    watch* const watches = make_watches(n);
    loop.reserve_spawns(n);
    // Nothing below throws.
    for (std::size_t i = 0; i < n; ++i) {
        promise_base& child = *children_[i];
        if (child.state() == task_state::done) {
            child.note_observed();
            apply_rule(i); // finished before: its ending counts at once
            continue;
        }
        if (child.state() == task_state::created) {
            loop.spawn(child);
        }
        child.add_watch(::new (static_cast<void*>(watches + i)) watch(this, i, watch::in_join_t{}));
        ++remaining_;
    }
}

inline join::watch* join::make_watches(std::size_t n) {
    if (n <= 4) {
        watches_ = reinterpret_cast<watch*>(watch_room_);
    } else {
        watches_ = static_cast<watch*>(allocate_frame(n * sizeof(watch)));
        watch_block_ = n;
    }
    return watches_;
}

inline join::~join() {
    if (remaining_ != 0 || watch_block_ != 0) [[unlikely]] {
        release_watches();
    }
}

inline void join::release_watches() noexcept {
    // The join goes before some child finished: the loop was destroyed with
    // both unfinished. The child must not reach its watch afterwards. (The
    // children outlive the join: the tasks that own them are the parameters
    // of the coroutine whose frame holds it.)
    if (watches_ == nullptr) {
        return; // a shared join's watches are the children's
    }
    for (std::size_t i = 0; remaining_ != 0 && i < children_.size(); ++i) {
        if (children_[i] != nullptr) {
            children_[i]->remove_watch(&watches_[i]);
        }
    }
    if (watch_block_ != 0) {
        deallocate_frame(watches_, watch_block_ * sizeof(watch));
    }
}

inline void join::start_one(promise_base& child, scheduler& loop) {
    loop_ = &loop;
    // A slot of a finished child is reused; room to free this one later is
    // made now, so that finishing cannot fail.
    const bool reuse = !free_slots_.empty();
    const std::size_t index = reuse ? free_slots_.back() : children_.size();
    if (!reuse) {
        children_.reserve(children_.size() + 1);
    }
    free_slots_.reserve(children_.size() + 1);
    auto w = std::make_unique<watch>(this, index, shared_);
    loop.reserve_spawns(1);
    // Nothing below throws.
    if (reuse) {
        free_slots_.pop_back();
        children_[index] = &child;
    } else {
        children_.push_back(&child);
    }
    loop.spawn(child);
    if (shared_) {
        add_ref();
    }
    child.add_watch(w.release());
    ++remaining_;
    if (error_ && rule_ == rule::group) {
        (void)child.request_cancel(); // the group is failing: it starts cancelled
    }
}

inline void join::apply_rule(std::size_t index) noexcept {
    promise_base& child = *children_[index];
    children_[index] = nullptr;
    // The common ending, a success under `all` or `group` in a frame's join,
    // changes nothing else: decided here, inline in child_done.
    if (!child.failed() && rule_ != rule::any && !shared_) [[likely]] {
        return;
    }
    settle(child, index);
}

inline void join::settle(promise_base& child, std::size_t index) noexcept {
    if (shared_) {
        free_slots_.push_back(index); // room was made by start_one
    }
    if (!child.failed()) {
        // A success matters to `any` only (an orphaned group has no winner).
        if (rule_ == rule::any && winner_ == no_winner) {
            winner_ = index;
            cancel_children();
        }
        return;
    }
    const bool cancelled = child.ended_cancelled();
    if (orphaned_loop_ != nullptr) {
        // The group is gone: nobody else will look at this child's failure.
        if (!cancelled) {
            orphaned_loop_->report(child.error());
        }
        return;
    }
    switch (rule_) {
    case rule::all:
        if (!error_) {
            error_ = child.error();
            cancel_children();
        }
        break;
    case rule::any:
        error_ = child.error();
        break;
    case rule::group:
        if (!cancelled && !error_) {
            error_ = child.error();
            cancel_children();
        }
        break;
    }
}

inline void join::child_done(std::size_t index) noexcept {
    apply_rule(index);
    if (--remaining_ == 0 && waiter_) {
        std::coroutine_handle<> w = std::exchange(waiter_, {});
        try {
            loop_->wake(w);
        } catch (...) {
            // No memory to grow the ready queue: the waiter could never be
            // resumed, and the program cannot go on correctly.
            std::terminate();
        }
    }
}

inline void join::cancel_children() noexcept {
    for (promise_base* child : children_) {
        if (child != nullptr) {
            try {
                (void)child->request_cancel();
            } catch (...) {
                std::terminate(); // out of memory while waking a child
            }
        }
    }
}

} // namespace braid::detail
