// SPDX-License-Identifier: MIT
#pragma once

// The type-erased things the event loop queues:
//
//   call_node    a callback in the ready queue (call_soon, a due timer, a
//                thread-safe call once it has reached the loop)
//   bound_call   f and its decay-copied arguments, called once
//
// Nodes come from the frame pool (frame_pool.hpp): they are as short-lived
// as frames, and a node made on one thread and freed on another is fine.

#include <braid/detail/frame_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <utility>

namespace braid::detail {

class scheduler;

struct call_node;

// What a kind of callback does: one table per kind, so that a node costs one
// word for it (a callback of 8 bytes of captures stays in the smallest block
// of the frame pool, 24 bytes).
struct call_ops {
    void (*run)(call_node*);              // invokes it, lets go of the node (also when it throws)
    void (*destroy)(call_node*) noexcept; // lets go of the node without running it
};

// A callback in the ready queue. The queue links queued nodes through
// ready_link (ready_queue.hpp), which it alone uses.
struct call_node {
    call_node() noexcept = default;
    explicit call_node(const call_ops* o) noexcept : ops(o) {}
    void run() { ops->run(this); }
    void destroy() noexcept { ops->destroy(this); }

    const call_ops* ops = nullptr;
    std::uintptr_t ready_link; // set when queued
};

// f(args...), called at most once, with everything moved in.
template <class F, class... Args>
struct bound_call {
    template <class G, class... A>
    explicit bound_call(G&& g, A&&... a) : fn(std::forward<G>(g)), args(std::forward<A>(a)...) {}
    decltype(auto) operator()() { return std::apply(std::move(fn), std::move(args)); }
    F fn;
    std::tuple<Args...> args;
};

// Without arguments: f alone, so that a trivially copyable f (a lambda
// capturing pointers and numbers) stays trivially copyable, and is moved
// between threads by its bytes (see small_callable).
template <class F>
struct bound_call<F> {
    template <class G>
    explicit bound_call(G&& g) : fn(std::forward<G>(g)) {}
    decltype(auto) operator()() { return std::invoke(std::move(fn)); }
    F fn;
};

// A call_soon callback.
template <class F, class... Args>
struct soon_call final : call_node {
    template <class... A>
    explicit soon_call(A&&... a) : call_node(&ops_table), call(std::forward<A>(a)...) {}
    static void* operator new(std::size_t size) { return allocate_frame(size); }
    static void operator delete(void* p, std::size_t size) noexcept { deallocate_frame(p, size); }

    static void run_impl(call_node* node) {
        struct deleter {
            soon_call* c;
            ~deleter() { delete c; }
        } owner{static_cast<soon_call*>(node)};
        owner.c->call();
    }
    static void destroy_impl(call_node* node) noexcept { delete static_cast<soon_call*>(node); }
    static constexpr call_ops ops_table{&soon_call::run_impl, &soon_call::destroy_impl};

    bound_call<F, Args...> call;
};

} // namespace braid::detail
