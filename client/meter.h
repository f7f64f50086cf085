// The one door between the plugin (and the renderer) and the metering client.
//
// Contract, agreed before either side was written:
// - Nothing here is ever called from the audio thread. The plugin's audio thread only pushes
//   processed milliseconds into a lock-free ring and reads an atomic "licensed" flag; one
//   non-real-time client thread per process drains the rings and calls a Meter.
// - Every method may block on disk or network and is safe to call from several threads.
// - A Meter never throws out of these methods: failures become a MeterStatus.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace stemsphere::client {

// The licence states a user sees (the plugin's `status` port uses these values as scale points,
// so the numbers are part of the plugin's interface: never renumber, only append).
enum class LicenceState : int {
    signed_out = 0,     // no credentials: metered modes fall back to Live (DSP)
    active = 1,         // a verified lease covers metered use
    low_balance = 2,    // active, but the balance pays for less than a lease's worth
    offline_grace = 3,  // server unreachable; a verified lease still covers use until expires_at
    exhausted = 4,      // no balance left: metered modes fall back to Live (DSP)
    free_mode = 5,      // the chosen mode is free (nothing to meter)
};

struct MeterStatus {
    LicenceState state = LicenceState::signed_out;
    std::string message;          // one line for the host's log, the CLI and the inline display
    std::int64_t covered_ms = 0;  // metered audio the current lease(s) still cover
    // Added after the first contract, for `stemsphere-render`'s before/after lines:
    std::int64_t price_mt_per_minute = 0;  // the server's price (0: not known yet)
    std::int64_t available_mt = -1;        // balance at the last look (-1: not known)
    std::int64_t settled_ms = 0;           // this meter's own leases: usage settled so far
    std::int64_t settled_mt = 0;           // ... and what the server charged for it
};

class Meter {
  public:
    virtual ~Meter() = default;
    // Records `milliseconds` of audio processed in a metered mode. Journalled (fsync'd) before it
    // returns, so a crash after this call never loses or double-charges it.
    virtual void record_usage(std::uint64_t milliseconds) = 0;
    // True while a verified lease covers further metered use (online, or offline until its
    // expires_at). Cheap: answers from memory.
    virtual bool licensed() = 0;
    virtual MeterStatus status() = 0;
    // Housekeeping from the client thread: renew leases at half use, settle journalled usage,
    // retry after failures. Returns how long the caller may sleep before the next poll.
    // (Implementation note: record_usage() never touches the network; a renewal that usage made
    // due happens in the next poll(), so poll after recording. Record about once a second, not
    // per block: each call is one fdatasync. See docs/client-design.md.)
    virtual std::chrono::milliseconds poll() = 0;
    // Clean shutdown: settles what was used, voids unused leases. Bounded in time.
    virtual void shutdown() = 0;
};

struct MeterOptions {
    std::string server_url;  // empty: flag > $STEMSPHERE_SERVER > config file > built-in default
    std::string config_dir;  // empty: $XDG_CONFIG_HOME/stemsphere (or ~/.config/stemsphere)
    std::string client_id = "stemsphere-plugin";
    // Added after the first contract (defaults keep earlier callers unchanged):
    std::int64_t lease_ms = 600'000;  // minutes reserved ahead per lease (renewed at half use)
    std::int64_t lease_ttl_s = 0;     // lease lifetime asked for; 0: the server's default (24 h)
    long request_timeout_ms = 8000;   // per HTTP exchange, so a hanging server cannot stall us
};

// Opens the signed-in user's meter (credentials and usage journal in config_dir). Never throws:
// a missing sign-in gives a Meter whose status() is signed_out and licensed() false.
std::unique_ptr<Meter> open_meter(const MeterOptions& options);

}  // namespace stemsphere::client
