#pragma once
// The plugin's side of metering (DESIGN.md "Metering"): the audio thread of each instance only
// pushes processed milliseconds of metered modes into its own lock-free single-producer ring
// and reads two atomics; one client thread per process, shared by every instance, drains the
// rings into a client::Meter and publishes whether metered use is licensed.
//
// Threads: UsageChannel::add_frames/licensed/state are real-time safe (no allocation, lock or
// syscall: plain atomics). Everything in MeteringService runs outside run(): acquire() in
// instantiate(), release() in cleanup(); the client thread does the rest.
#include <lv2/log/logger.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "client/meter.h"

namespace stemsphere::plugin {

// Opens this process's Meter. Shipped plugin: client::open_meter (plugin/open_meter.cpp). The
// scripted test bundle (tests/plugin/scripted_meter.cpp) links its own definition instead.
std::unique_ptr<client::Meter> open_process_meter();

// One instance's usage, audio thread → client thread.
class UsageChannel {
  public:
    explicit UsageChannel(double sample_rate);

    // Audio thread: `frames` were processed in a metered mode.
    void add_frames(uint32_t frames);
    // Audio thread: this instance runs a metered mode (the client thread opens the meter for the
    // first such instance; until then nothing touches the account).
    void set_wanted(bool wanted);
    // Audio thread: may metered modes run? (Published by the client thread.)
    bool licensed() const;
    // Audio thread: kStatusChecking before the client thread's first answer, else the
    // client::LicenceState value.
    float state() const;

    // Client thread.
    bool wanted() const;
    // Client thread: milliseconds pushed since the last call.
    uint64_t drain();
    // When no run() can follow (cleanup): whole milliseconds still held by the audio side.
    uint64_t take_remainder();

  private:
    static constexpr uint32_t kCapacity = 4096;  // entries; ~5 s of 64-frame blocks at 48 kHz
    std::atomic<uint32_t> ring_[kCapacity];
    std::atomic<uint32_t> head_{0};  // written by the audio thread
    std::atomic<uint32_t> tail_{0};  // written by the client thread
    uint64_t rate_;                  // integer sample rate (Hz)
    uint64_t milli_frames_ = 0;      // audio side: frames × 1000 not yet pushed as whole ms
    uint64_t unpushed_ms_ = 0;       // audio side: whole ms waiting for ring space
    bool wanted_local_ = false;      // audio side: last value stored in wanted_
    std::atomic<bool> wanted_{false};
};

// The process-wide client thread. acquire() registers an instance (starting the thread for the
// first one), release() unregisters it (its remaining usage is recorded; the last one stops the
// thread after Meter::shutdown()).
class MeteringService {
  public:
    static void acquire(UsageChannel* channel, const LV2_Log_Logger* logger);
    static void release(UsageChannel* channel);
};

}  // namespace stemsphere::plugin
