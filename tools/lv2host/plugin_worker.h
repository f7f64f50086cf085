#pragma once
// The host side of the LV2 worker extension (worker:schedule) for one plugin instance.

#include <lv2/worker/worker.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <semaphore>
#include <thread>
#include <vector>

namespace stemsphere::host {

// Single-producer single-consumer byte ring carrying length-prefixed messages. Writing and reading
// never allocate, so the audio thread can use either end.
class MessageRing {
  public:
    explicit MessageRing(uint32_t capacity_bytes);
    // False (and nothing written) when the message does not fit in the free space.
    bool write(const void* data, uint32_t size);
    // Size of the next message, 0 when empty.
    uint32_t peek_size() const;
    // Copies the next message into `out` (at least peek_size() bytes); false when empty.
    bool read(void* out, uint32_t out_capacity);

  private:
    uint32_t free_space() const;
    void copy_in(uint32_t at, const void* data, uint32_t size);
    void copy_out(uint32_t at, void* out, uint32_t size) const;

    std::vector<uint8_t> bytes_;
    uint32_t mask_;
    std::atomic<uint32_t> write_pos_{0};
    std::atomic<uint32_t> read_pos_{0};
};

// Hooks a synchronous worker uses to step out of the observed run() region while work() runs
// (see PluginHost::set_run_observer).
struct RunObservation {
    static bool active_on_this_thread();
    static void suspend();
    static void resume();
};

// Runs work() either synchronously inside schedule_work (like Ardour when exporting; the result
// is deterministic) or on a worker thread fed through a ring buffer (like jalv). Responses are
// queued and handed to work_response() by deliver_responses(), which the host calls after run().
class PluginWorker {
  public:
    PluginWorker(bool threaded, uint32_t ring_bytes);
    ~PluginWorker();
    PluginWorker(const PluginWorker&) = delete;
    PluginWorker& operator=(const PluginWorker&) = delete;

    // Connects the instance once it exists; before that, schedule_work reports an error.
    void attach(LV2_Handle instance, const LV2_Worker_Interface* iface);
    // Stops the worker thread (pending jobs are finished first). Call before freeing the instance.
    void stop();
    LV2_Worker_Schedule* schedule_feature() { return &schedule_; }
    bool threaded() const { return threaded_; }

    // Audio-thread side: delivers every response that is ready, repeatedly, since a response may
    // schedule more work. Never allocates.
    void deliver_responses();
    // Calls the plugin's end_run() if it has one (after run() and its responses).
    void end_run();
    // Blocks until no job is pending and every response has been delivered (threaded mode).
    void wait_until_idle();
    uint64_t jobs_done() const { return jobs_done_.load(); }

  private:
    static LV2_Worker_Status schedule_callback(LV2_Worker_Schedule_Handle handle, uint32_t size,
                                               const void* data);
    static LV2_Worker_Status respond_callback(LV2_Worker_Respond_Handle handle, uint32_t size,
                                              const void* data);
    LV2_Worker_Status schedule(uint32_t size, const void* data);
    LV2_Worker_Status respond(uint32_t size, const void* data);
    void thread_main();
    bool deliver_one();

    const bool threaded_;
    LV2_Handle instance_ = nullptr;
    const LV2_Worker_Interface* iface_ = nullptr;
    LV2_Worker_Schedule schedule_{};
    MessageRing requests_;
    MessageRing responses_;
    std::vector<uint8_t> request_scratch_;   // worker thread only
    std::vector<uint8_t> response_scratch_;  // audio thread only
    std::atomic<uint32_t> pending_jobs_{0};
    std::atomic<uint64_t> jobs_done_{0};
    std::atomic<bool> stopping_{false};
    std::counting_semaphore<> wake_{0};
    std::thread thread_;
};

}  // namespace stemsphere::host
