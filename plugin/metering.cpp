#include "plugin/metering.h"

#include <lv2/log/logger.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "plugin/ports.h"

namespace stemsphere::plugin {

namespace {

using Clock = std::chrono::steady_clock;
using client::LicenceState;

// Published by the client thread, read by every instance's audio thread.
std::atomic<bool> g_licensed{false};
std::atomic<float> g_state{kStatusChecking};
// Metered milliseconds of all instances since the process started (audio threads add), and the
// total up to which the current lease(s) cover use (client thread publishes: what it recorded
// plus what the meter says is still covered). The audio thread stops metered modes itself the
// moment the total reaches it: the fade follows the end of a lease within one block, however
// late the client thread runs (blocked in an fsync or a request, or the machine loaded).
std::atomic<uint64_t> g_metered_total{0};
std::atomic<uint64_t> g_covered_until{0};
static_assert(std::atomic<float>::is_always_lock_free && std::atomic<bool>::is_always_lock_free &&
              std::atomic<uint64_t>::is_always_lock_free);

// How often the client thread wakes while metered audio flows: bounds the time from "no longer
// licensed" to the fade. With no metered audio it wakes once a second (idle cost).
constexpr auto kWake = std::chrono::milliseconds(50);
constexpr auto kIdleWake = std::chrono::seconds(1);
// Usage is handed to the Meter (which journals it with an fsync) once this much has gathered,
// or after kRecordEvery, whichever comes first.
constexpr uint64_t kRecordAtMs = 1000;
constexpr auto kRecordEvery = std::chrono::seconds(1);

struct Registration {
    UsageChannel* channel;
    const LV2_Log_Logger* logger;
};

class Service {
  public:
    void acquire(UsageChannel* channel, const LV2_Log_Logger* logger) {
        std::unique_lock lock(mutex_);
        instances_.push_back({channel, logger});
        if (instances_.size() == 1) {
            // The previous thread may still be finishing (the last cleanup() of another
            // instance just asked it to stop): one thread at a time.
            stopped_.wait(lock, [this] { return !running_; });
            running_ = true;
            stop_ = false;
            known_ = false;
            last_state_ = -1;
            g_licensed.store(false);
            g_covered_until.store(0);
            g_state.store(kStatusChecking);
            thread_ = std::thread([this] { loop(); });
        } else if (known_) {
            // A late instance learns the current state through the log too.
            log_state(logger, last_message_);
        }
    }

    void release(UsageChannel* channel) {
        std::thread finished;
        {
            std::unique_lock lock(mutex_);
            pending_ms_ += channel->drain() + channel->take_remainder();
            std::erase_if(instances_, [&](const Registration& r) { return r.channel == channel; });
            if (!instances_.empty()) return;
            stop_ = true;
            finished = std::move(thread_);
        }
        wake_.notify_all();
        if (finished.joinable()) finished.join();
    }

  private:
    void loop() {
        // Opened once an instance plays a metered mode (or has usage to record), here and never
        // in instantiate(): opening may read files and talk to the server. A session that
        // stays in the free mode never touches the account.
        std::unique_ptr<client::Meter> meter;
        auto next_poll = Clock::now();
        auto last_record = Clock::now();
        std::unique_lock lock(mutex_);
        bool flowing = false;
        while (true) {
            uint64_t drained = 0;
            bool wanted = false;
            for (const Registration& r : instances_) {
                drained += r.channel->drain();
                wanted = wanted || r.channel->wanted();
            }
            pending_ms_ += drained;
            const bool stopping = stop_;
            const auto now = Clock::now();
            const bool record = pending_ms_ > 0 && (stopping || pending_ms_ >= kRecordAtMs ||
                                                    now - last_record >= kRecordEvery);
            const uint64_t to_record = record ? std::exchange(pending_ms_, 0) : 0;
            lock.unlock();
            // The Meter may block on disk or network: never with the registry locked.
            if (!meter && (wanted || to_record > 0)) meter = open_process_meter();
            if (to_record > 0) {
                meter->record_usage(to_record);
                recorded_total_ += to_record;
                last_record = now;
            }
            if (stopping) {
                if (meter) meter->shutdown();  // settles, voids what is left
                {
                    std::lock_guard done(mutex_);
                    running_ = false;
                }
                stopped_.notify_all();
                return;
            }
            // Polled when it asks to be, and after each record: a lease half used is renewed, a
            // used-up one replaced (or found exhausted) without waiting for the idle poll.
            if (meter && (now >= next_poll || to_record > 0)) {
                const auto wait = meter->poll();
                next_poll = Clock::now() + std::max(wait, std::chrono::milliseconds(0));
            }
            if (meter) publish(*meter);
            lock.lock();
            // Fast while metered audio flows or a metered mode waits for a lease (so the fade
            // either way follows within one wake-up); once a second otherwise.
            const bool was_flowing = std::exchange(flowing, drained > 0);
            const bool waiting = wanted && !(g_licensed.load(std::memory_order_relaxed) &&
                                             g_metered_total.load(std::memory_order_relaxed) <
                                                 g_covered_until.load(std::memory_order_relaxed));
            wake_.wait_for(lock, flowing || was_flowing || waiting ? kWake : kIdleWake,
                           [this] { return stop_; });
        }
    }

    // Makes the meter's answer visible to the audio threads; logs changes to every instance.
    void publish(client::Meter& meter) {
        const client::MeterStatus status = meter.status();
        const bool meter_licensed = meter.licensed();
        // covered_ms counts from what the meter has been told: recorded_total_.
        const uint64_t until = !meter_licensed ? 0
                               : status.covered_ms > 0
                                   ? recorded_total_ + static_cast<uint64_t>(status.covered_ms)
                                   : UINT64_MAX;  // licensed, extent not stated
        g_covered_until.store(until, std::memory_order_release);
        g_licensed.store(meter_licensed, std::memory_order_release);
        const bool licensed =
            meter_licensed && g_metered_total.load(std::memory_order_relaxed) < until;
        g_state.store(static_cast<float>(status.state), std::memory_order_release);
        std::lock_guard lock(mutex_);
        const int state = static_cast<int>(status.state);
        // Logged when what the user hears or sees changes (state or licence), not on every
        // new figure in the message.
        if (known_ && state == last_state_ && licensed == last_licensed_) return;
        known_ = true;
        last_state_ = state;
        last_licensed_ = licensed;
        last_message_ =
            "Stemsphere licence: " + std::string(kStatusLabels[static_cast<size_t>(state + 1)]) +
            (status.message.empty() ? "" : ": " + status.message) +
            (licensed ? "" : "; metered modes play Live (DSP)");
        for (const Registration& r : instances_) log_state(r.logger, last_message_);
    }

    static void log_state(const LV2_Log_Logger* logger, const std::string& message) {
        if (logger == nullptr || logger->log == nullptr) return;
        lv2_log_note(const_cast<LV2_Log_Logger*>(logger), "%s\n", message.c_str());
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable stopped_;
    bool running_ = false;  // a client thread exists and has not finished
    std::vector<Registration> instances_;
    std::thread thread_;
    bool stop_ = false;
    uint64_t pending_ms_ = 0;      // drained, not yet recorded
    uint64_t recorded_total_ = 0;  // handed to Meter::record_usage since the process started
    bool known_ = false;
    int last_state_ = -1;
    bool last_licensed_ = false;
    std::string last_message_;
};

Service& service() {
    static Service instance;  // lives until the module is unloaded; its thread is joined first
    return instance;
}

}  // namespace

UsageChannel::UsageChannel(double sample_rate)
    : rate_(static_cast<uint64_t>(std::max(1L, std::lround(sample_rate)))) {
    for (auto& slot : ring_) slot.store(0, std::memory_order_relaxed);
}

void UsageChannel::add_frames(uint32_t frames) {
    milli_frames_ += uint64_t{frames} * 1000;
    const uint64_t ms = milli_frames_ / rate_;
    milli_frames_ -= ms * rate_;
    unpushed_ms_ += ms;
    if (ms > 0) g_metered_total.fetch_add(ms, std::memory_order_relaxed);
    if (unpushed_ms_ == 0) return;
    const uint32_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == kCapacity) return;  // full: keep it
    const auto entry = static_cast<uint32_t>(std::min<uint64_t>(unpushed_ms_, UINT32_MAX));
    ring_[head % kCapacity].store(entry, std::memory_order_relaxed);
    head_.store(head + 1, std::memory_order_release);
    unpushed_ms_ -= entry;
}

void UsageChannel::set_wanted(bool wanted) {
    if (wanted == wanted_local_) return;
    wanted_local_ = wanted;
    wanted_.store(wanted, std::memory_order_relaxed);
}

bool UsageChannel::wanted() const {
    return wanted_.load(std::memory_order_relaxed);
}

bool UsageChannel::licensed() const {
    return g_licensed.load(std::memory_order_acquire) &&
           g_metered_total.load(std::memory_order_relaxed) <
               g_covered_until.load(std::memory_order_acquire);
}

float UsageChannel::state() const {
    return g_state.load(std::memory_order_acquire);
}

uint64_t UsageChannel::drain() {
    uint64_t total = 0;
    uint32_t tail = tail_.load(std::memory_order_relaxed);
    const uint32_t head = head_.load(std::memory_order_acquire);
    while (tail != head) {
        total += ring_[tail % kCapacity].load(std::memory_order_relaxed);
        ++tail;
    }
    tail_.store(tail, std::memory_order_release);
    return total;
}

uint64_t UsageChannel::take_remainder() {
    return std::exchange(unpushed_ms_, 0);
}

void MeteringService::acquire(UsageChannel* channel, const LV2_Log_Logger* logger) {
    service().acquire(channel, logger);
}

void MeteringService::release(UsageChannel* channel) {
    service().release(channel);
}

}  // namespace stemsphere::plugin
