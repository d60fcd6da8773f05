// SPDX-License-Identifier: MIT
#pragma once

// Everything public in braid, in one include.

#include <braid/chrome_tracer.hpp>
#include <braid/clock.hpp>
#include <braid/errors.hpp>
#include <braid/event_loop.hpp>
#include <braid/io.hpp>
#include <braid/net.hpp>
#include <braid/policy.hpp>
#include <braid/run_in.hpp>
#include <braid/sleep.hpp>
#include <braid/stop_token.hpp>
#include <braid/stream_executor.hpp>
#include <braid/task.hpp>
#include <braid/task_group.hpp>
#include <braid/thread_pool.hpp>
#include <braid/timer.hpp>
#include <braid/version.hpp>
#include <braid/wait_for.hpp>
#include <braid/when_all.hpp>
#include <braid/when_any.hpp>
#include <braid/yield.hpp>
