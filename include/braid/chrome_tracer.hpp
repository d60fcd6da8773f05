// SPDX-License-Identifier: MIT
#pragma once

// braid::chrome_tracer: a tracer (tracer.hpp) that writes what a loop does in
// Chrome's trace-event JSON format, which Perfetto's UI (ui.perfetto.dev,
// "Open trace file") and chrome://tracing show as a timeline.
//
//   braid::chrome_tracer trace("schedule.json");
//   braid::event_loop loop;
//   loop.set_tracer(&trace);
//   ... spawn, run ...
//   // the file is complete when `trace` is destroyed, or after trace.close()
//
// The timeline:
// - a track per task, named after the task (task::set_name) or, for a task
//   with no name, "task N", the N-th task of the group to appear;
// - on it, a slice per step of the task, named like the track, from the
//   moment the loop resumes the task to the moment the step ends, with how it
//   ended in its args ("suspended": "yield", "await", "sleep", ..., or
//   "finished": "value", "exception", "cancelled"), and an instant "spawn"
//   when the task is spawned. (A task started by co_await runs until its
//   first suspension inside the step of the task awaiting it: its own track
//   begins with its second part.)
// - a track "loop": callbacks (call_soon, timers', thread-safe calls') as
//   slices "callback", a timer becoming due as an instant "timer", and a call
//   or finished work arriving from another thread as an instant "wake-up".
// Times are microseconds from the first event of the trace, to the
// nanosecond, on the loop's clock (a loop on a manual_clock gives the manual
// clock's times).
//
// Groups: to trace several loops, or several runs, into one file, call
// begin_group("name") before each; the tracks that appear after it go under
// that name (a process, in the format's terms). Without it, all tracks go
// under one group, "braid::event_loop".
//
// The file is a JSON array, one event per line, complete and valid JSON once
// close() has run or the tracer is destroyed. Before that, events wait in
// the tracer's buffer (up to 64 KiB) and the stream's; after flush() the
// file holds whole events up to that point, which both viewers open although
// the closing bracket is missing (the format allows it, for programs that
// end early).
//
// Ownership and threads: the tracer owns the file it opens; a stream given to
// it stays the caller's and must outlive the tracer, or close(). The loop
// calls the tracer on its own thread; one tracer serves one loop at a time
// (loops that run one after another, or on one thread, can share it). A
// step costs about 1,200 instructions and 110 bytes of file (g++ -O2; about
// 0.1 µs where an untraced yield takes a few ns); memory grows with the tasks
// alive, not with the events (a finished task is forgotten).
// The loop calls tracers where an exception would end the program: a write
// error only sets the stream's state, which close() reports (so give it a
// stream whose exceptions() are off, as they are by default).

#include <braid/detail/trace_json.hpp>
#include <braid/tracer.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace braid {

class chrome_tracer final : public tracer {
public:
    // Writes to `file`, created or truncated. std::system_error if it cannot
    // be opened for writing.
    explicit chrome_tracer(const std::filesystem::path& file);
    // Writes to `out`, which the caller keeps alive until close() or the
    // tracer's destruction.
    explicit chrome_tracer(std::ostream& out);

    chrome_tracer(const chrome_tracer&) = delete;
    chrome_tracer& operator=(const chrome_tracer&) = delete;

    // Closes the trace (close()), ignoring a write error: call close() first
    // to hear of one.
    ~chrome_tracer() override;

    // Starts a group named `name`: from now on, the steps of every task, and
    // the loop's callbacks, timers and wake-ups, go on tracks of that group
    // ("task N" counts from 1 again). A task in the middle of a step ends
    // that step on its old track.
    void begin_group(std::string_view name);

    // Writes out what the stream buffers, so that the file is a readable
    // trace up to here even if the program ends without closing it.
    void flush();

    // Ends the JSON array and flushes; events after it are ignored, and a
    // second call does nothing. std::runtime_error if the stream failed at
    // any point (a full disk, a closed pipe): the trace is then incomplete.
    void close();

    void on_spawn(const void* task, std::string_view name, time_point t) override;
    void on_resume(const void* task, std::string_view name, time_point t) override;
    void on_suspend(const void* task, suspend_reason why, time_point t) override;
    void on_finish(const void* task, task_ending how, time_point t) override;
    void on_callback_begin(time_point t) override;
    void on_callback_end(time_point t) override;
    void on_timer(time_point t) override;
    void on_wakeup(time_point t) override;

private:
    struct task_track {
        std::int64_t pid = 0;
        std::int64_t tid = 0;
        std::string json_name;   // its name as a JSON string, written once per step
        bool in_step = false;    // between on_resume and the step's end
        bool stale = false;      // of an earlier group: forgotten after its step
        time_point step_began{}; // when in_step
    };
    struct open_callback {
        std::int64_t pid;
        std::int64_t tid;
        time_point began;
    };

    bool accept(time_point t);
    task_track& track_of(const void* task, std::string_view name);
    task_track& new_track(const void* task, std::string_view name);
    std::int64_t loop_track();
    void end_step(const void* task, std::string_view key, std::string_view value, time_point t);
    void open_group(std::string_view name);
    void start_event(std::string_view phase, std::int64_t pid, std::int64_t tid, time_point t);
    void begin_line();
    void end_line();
    void drain();
    std::int64_t since_start(time_point t) const;
    void name_track(std::int64_t pid, std::int64_t tid, std::string_view what,
                    std::string_view name, std::int64_t sort_index);

    std::ofstream file_;
    std::ostream* out_;
    bool closed_ = false;
    bool first_line_ = true;
    std::optional<time_point> start_; // the first event's time
    std::int64_t next_id_ = 1;        // pids and tids, from one counter: no tid equals a pid
    std::int64_t group_pid_ = 0;      // 0: no group yet
    std::int64_t group_tasks_ = 0;    // tasks that appeared in the group
    std::int64_t group_loop_tid_ = 0; // 0: the group's loop track has not appeared
    std::unordered_map<const void*, task_track> tasks_;
    std::vector<open_callback> callbacks_;
    std::string text_; // written to the stream in blocks, not a line at a time
};

// --- definitions ---------------------------------------------------------------

inline chrome_tracer::chrome_tracer(const std::filesystem::path& file) : out_(&file_) {
    errno = 0;
    file_.open(file, std::ios::binary | std::ios::trunc);
    if (!file_) {
        const int error = errno != 0 ? errno : EIO;
        throw std::system_error(error, std::generic_category(),
                                "braid::chrome_tracer: cannot open " + file.string() +
                                    " for writing");
    }
    text_ = '[';
}

inline chrome_tracer::chrome_tracer(std::ostream& out) : out_(&out) {
    text_ = '[';
}

inline chrome_tracer::~chrome_tracer() {
    try {
        close();
    } catch (const std::exception&) {
        // A destructor cannot report it; close() does, for who calls it.
    }
}

inline void chrome_tracer::begin_group(std::string_view name) {
    for (auto it = tasks_.begin(); it != tasks_.end();) {
        if (it->second.in_step) {
            it->second.stale = true;
            ++it;
        } else {
            it = tasks_.erase(it);
        }
    }
    open_group(name);
}

inline void chrome_tracer::flush() {
    drain();
    out_->flush();
}

inline void chrome_tracer::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    text_ += "\n]\n";
    flush();
    const bool failed = out_->fail();
    if (out_ == &file_) {
        file_.close();
    }
    if (failed || file_.fail()) {
        throw std::runtime_error("braid::chrome_tracer::close: writing the trace failed; "
                                 "the trace is incomplete");
    }
}

inline void chrome_tracer::on_spawn(const void* task, std::string_view name, time_point t) {
    if (!accept(t)) {
        return;
    }
    // A task is spawned once: a known address is a task freed unseen.
    const std::int64_t tid = new_track(task, name).tid;
    start_event("i", group_pid_, tid, t);
    text_ += R"(,"s":"t","cat":"task","name":"spawn"})";
    end_line();
}

inline void chrome_tracer::on_resume(const void* task, std::string_view name, time_point t) {
    if (!accept(t)) {
        return;
    }
    task_track& track = track_of(task, name);
    track.in_step = true;
    track.step_began = t;
}

inline void chrome_tracer::on_suspend(const void* task, suspend_reason why, time_point t) {
    end_step(task, "suspended", to_string(why), t);
}

inline void chrome_tracer::on_finish(const void* task, task_ending how, time_point t) {
    end_step(task, "finished", to_string(how), t);
    tasks_.erase(task); // its address may serve another task from now on
}

inline void chrome_tracer::on_callback_begin(time_point t) {
    if (!accept(t)) {
        return;
    }
    const std::int64_t tid = loop_track();
    callbacks_.push_back({group_pid_, tid, t});
}

inline void chrome_tracer::on_callback_end(time_point t) {
    if (!accept(t) || callbacks_.empty()) {
        return;
    }
    const open_callback c = callbacks_.back();
    callbacks_.pop_back();
    start_event("X", c.pid, c.tid, c.began);
    text_ += R"(,"dur":)";
    detail::append_json_micros(text_, (t - c.began) / std::chrono::nanoseconds(1));
    text_ += R"(,"cat":"loop","name":"callback"})";
    end_line();
}

inline void chrome_tracer::on_timer(time_point t) {
    if (!accept(t)) {
        return;
    }
    start_event("i", group_pid_, loop_track(), t);
    text_ += R"(,"s":"t","cat":"loop","name":"timer"})";
    end_line();
}

inline void chrome_tracer::on_wakeup(time_point t) {
    if (!accept(t)) {
        return;
    }
    start_event("i", group_pid_, loop_track(), t);
    text_ += R"(,"s":"t","cat":"loop","name":"wake-up"})";
    end_line();
}

// The first event's time is the trace's zero, whether or not the event
// writes a line at once (a step's slice is written at its end).
inline bool chrome_tracer::accept(time_point t) {
    if (closed_) {
        return false;
    }
    if (!start_) {
        start_ = t;
    }
    return true;
}

inline chrome_tracer::task_track& chrome_tracer::track_of(const void* task, std::string_view name) {
    auto it = tasks_.find(task);
    if (it != tasks_.end() && !it->second.stale) {
        return it->second;
    }
    // A task not seen since its group began, or never: one started by a
    // co_await, or spawned before the tracer was installed.
    return new_track(task, name);
}

inline chrome_tracer::task_track& chrome_tracer::new_track(const void* task,
                                                           std::string_view name) {
    if (group_pid_ == 0) {
        open_group("braid::event_loop");
    }
    task_track track;
    track.pid = group_pid_;
    track.tid = next_id_++;
    ++group_tasks_;
    const std::string shown =
        name.empty() ? "task " + std::to_string(group_tasks_) : std::string(name);
    detail::append_json_string(track.json_name, shown);
    name_track(track.pid, track.tid, "thread", shown, group_tasks_);
    task_track& slot = tasks_[task];
    slot = std::move(track);
    return slot;
}

inline std::int64_t chrome_tracer::loop_track() {
    if (group_pid_ == 0) {
        open_group("braid::event_loop");
    }
    if (group_loop_tid_ == 0) {
        group_loop_tid_ = next_id_++;
        name_track(group_pid_, group_loop_tid_, "thread", "loop", 0); // above the tasks
    }
    return group_loop_tid_;
}

inline void chrome_tracer::end_step(const void* task, std::string_view key, std::string_view value,
                                    time_point t) {
    if (!accept(t)) {
        return;
    }
    auto it = tasks_.find(task);
    if (it == tasks_.end() || !it->second.in_step) {
        return; // its step began before the tracer was installed
    }
    task_track& track = it->second;
    track.in_step = false;
    start_event("X", track.pid, track.tid, track.step_began);
    text_ += R"(,"dur":)";
    detail::append_json_micros(text_, (t - track.step_began) / std::chrono::nanoseconds(1));
    text_ += R"(,"cat":"task","name":)";
    text_ += track.json_name;
    text_ += R"(,"args":{")"; // the key and value are braid's words: nothing to escape
    text_ += key;
    text_ += R"(":")";
    text_ += value;
    text_ += R"("}})";
    end_line();
    if (track.stale) {
        tasks_.erase(it);
    }
}

inline void chrome_tracer::open_group(std::string_view name) {
    if (closed_) {
        return;
    }
    group_pid_ = next_id_++;
    group_tasks_ = 0;
    group_loop_tid_ = 0;
    name_track(group_pid_, 0, "process", name, group_pid_);
}

// Metadata: the name of a process (tid 0: none) or thread, and where the
// viewers sort it.
inline void chrome_tracer::name_track(std::int64_t pid, std::int64_t tid, std::string_view what,
                                      std::string_view name, std::int64_t sort_index) {
    for (const bool sort : {false, true}) {
        begin_line();
        text_ += R"({"ph":"M","pid":)";
        detail::append_json_int(text_, pid);
        if (tid != 0) {
            text_ += R"(,"tid":)";
            detail::append_json_int(text_, tid);
        }
        text_ += R"(,"name":")";
        text_ += what;
        text_ += sort ? R"(_sort_index","args":{"sort_index":)" : R"(_name","args":{"name":)";
        if (sort) {
            detail::append_json_int(text_, sort_index);
        } else {
            detail::append_json_string(text_, name);
        }
        text_ += "}}";
        end_line();
    }
}

inline void chrome_tracer::start_event(std::string_view phase, std::int64_t pid, std::int64_t tid,
                                       time_point t) {
    begin_line();
    text_ += R"({"ph":")";
    text_ += phase;
    text_ += R"(","pid":)";
    detail::append_json_int(text_, pid);
    text_ += R"(,"tid":)";
    detail::append_json_int(text_, tid);
    text_ += R"(,"ts":)";
    detail::append_json_micros(text_, since_start(t));
}

inline std::int64_t chrome_tracer::since_start(time_point t) const {
    return (t - *start_) / std::chrono::nanoseconds(1);
}

// A separator before each event, not after: a file cut after any whole
// event is an array missing only its closing bracket.
inline void chrome_tracer::begin_line() {
    text_ += first_line_ ? "\n" : ",\n";
    first_line_ = false;
}

inline void chrome_tracer::end_line() {
    if (text_.size() >= 64 * 1024) {
        drain();
    }
}

inline void chrome_tracer::drain() {
    out_->write(text_.data(), static_cast<std::streamsize>(text_.size()));
    text_.clear();
}

} // namespace braid
