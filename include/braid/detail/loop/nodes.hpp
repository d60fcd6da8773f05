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
#include <functional>
#include <tuple>
#include <utility>

namespace braid::detail {

class scheduler;

// A callback in the ready queue. run invokes it and lets go of the node (also
// when it throws); destroy lets go of it without running it.
struct call_node {
    void (*run)(call_node*) = nullptr;
    void (*destroy)(call_node*) noexcept = nullptr;
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
    explicit soon_call(A&&... a) : call(std::forward<A>(a)...) {
        run = &soon_call::run_impl;
        destroy = &soon_call::destroy_impl;
    }
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

    bound_call<F, Args...> call;
};

} // namespace braid::detail
