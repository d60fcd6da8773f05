// SPDX-License-Identifier: MIT
#pragma once

// The exceptions braid throws for mistakes a caller can make. Every message
// has the form "braid::<type>::<function>: what went wrong".
//
//   std::logic_error
//   └── braid::usage_error            a call made in a state that forbids it
//       ├── braid::task_not_finished  task::result() before the task is done
//       └── braid::executor_shut_down work given to, or a result awaited from,
//                                     a thread_pool or stream_executor after
//                                     its shutdown
//   std::runtime_error
//   └── braid::timeout_error          braid::wait_for's time ran out
//
//   braid::cancelled                  thrown into a cancelled task; NOT a
//                                     std::exception (see below)
//
// Bad arguments (a negative size, a zero buffer) are std::invalid_argument.

#include <stdexcept>

namespace braid {

// A precondition of a braid call was broken: the call is never valid in the
// state the object is in (running a loop from inside itself, spawning a task
// twice, using a moved-from task, ...). Fix the calling code.
class usage_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// task::result() (or run_until_complete) on a task that has not finished, or
// that never will because its event_loop was destroyed first.
class task_not_finished : public usage_error {
public:
    using usage_error::usage_error;
};

// Work was given to a thread_pool or stream_executor after shutdown() began
// (or its destructor ran), or a stream_results was read past the point where
// its executor stopped producing because it was shut down. Keep the executor
// alive until its results have been read, or stop reading at shutdown.
class executor_shut_down : public usage_error {
public:
    using usage_error::usage_error;
};

// braid::wait_for ran out of time: the task it waited for was cancelled and
// ended cancelled.
class timeout_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What a cancelled task receives at the co_await it is suspended at (see
// task::cancel). It deliberately does not derive from std::exception, so that
// `catch (const std::exception&)` in a task does not swallow a cancellation by
// accident (as boost::thread_interrupted does not, and as Python moved
// asyncio.CancelledError out of Exception). Catch it by name to clean up, and
// rethrow it unless the task should go on.
class cancelled {
public:
    [[nodiscard]] const char* what() const noexcept {
        return "braid::cancelled: the task was cancelled";
    }
};

} // namespace braid
