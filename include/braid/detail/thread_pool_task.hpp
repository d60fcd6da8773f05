// SPDX-License-Identifier: MIT
#pragma once

// detail::thread_pool_task: what a thread_pool queues and its workers run. Its
// call must not throw (the pool catches a task's exception before it gets
// here); room for four pointers inline covers the small callables a pool
// runs (a lambda holding a pointer and an index, a shared_ptr).
// detail::thread_pool_queue: the pool's FIFO of them, guarded by its mutex.

#include <braid/detail/ring_fifo.hpp>
#include <braid/detail/small_callable.hpp>

namespace braid::detail {

using thread_pool_task = small_callable<4 * sizeof(void*), true>;
using thread_pool_queue = ring_fifo<thread_pool_task>;

} // namespace braid::detail
