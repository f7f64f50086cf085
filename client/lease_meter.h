// The Meter behind open_meter(): leases reserved ahead, verified offline, usage journalled
// before it counts, settled exactly once (see docs/client-design.md).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "client/files.h"
#include "client/http.h"
#include "client/journal.h"
#include "client/lease_book.h"
#include "client/meter.h"
#include "client/session.h"

namespace stemsphere::client {

class LeaseMeter final : public Meter {
  public:
    explicit LeaseMeter(const MeterOptions& options);
    ~LeaseMeter() override;

    void record_usage(std::uint64_t milliseconds) override;
    bool licensed() override;
    MeterStatus status() override;
    std::chrono::milliseconds poll() override;
    void shutdown() override;

    // For tests and the CLI: the journal this process writes ("" before the first poll).
    std::string journal_path();
    // Size past which the journal is compacted (default 1 MiB; tests use less).
    void set_compaction_bytes(std::size_t bytes);

  private:
    struct Orphan {
        std::unique_ptr<Journal> journal;
        LeaseBook book;
    };

    // All below run with mutex_ held.
    bool ensure_journal();
    void adopt_orphans();
    // Replaces a journal grown past compact_at_bytes_ by a snapshot of what is unresolved.
    void compact_journal();
    // How one exchange with the server went.
    enum class Step {
        ok,           // done, or nothing to do
        unreachable,  // no answer, 5xx, throttled: retry later with the same ids
        bad_reply,    // the server answered something unusable: keep the last good state
    };
    bool ensure_lease_key(bool fresh);
    Step read_balance();
    // Drives one lease towards its next state (open → settle/void → done).
    Step advance(Lease& lease, Journal& journal, bool closing);
    Step send_settle(Lease& lease, Journal& journal);
    Step send_void(Lease& lease, Journal& journal);
    Step send_open(Lease& lease);
    bool write(Journal& journal, const Json::Value& record);
    Step resolve(Lease& lease, Journal& journal, const std::string& outcome, std::int64_t posted);
    bool verify_lease(const Json::Value& body, const Lease& lease, std::string& why) const;
    std::int64_t margin_ms(const Lease& lease) const;
    bool usable(const Lease& lease, std::int64_t now) const;
    void publish();  // status_ and the atomics from the current state
    void note(const std::string& message, bool lasting);

    MeterOptions options_;
    Paths paths_;
    std::string server_;
    std::string setup_error_;  // a bad server URL: nothing works
    std::unique_ptr<HttpClient> http_;
    std::unique_ptr<Session> session_;

    std::mutex mutex_;
    std::unique_ptr<Journal> journal_;
    LeaseBook book_;
    std::string journal_error_;
    std::vector<Orphan> orphans_;
    std::string lease_key_;  // raw Ed25519 public key
    bool offline_ = false;
    bool exhausted_ = false;
    bool low_balance_ = false;
    bool contacted_ = false;
    bool closed_ = false;
    bool renew_due_ = false;
    std::size_t compact_at_bytes_ = 1 << 20;
    std::int64_t price_mt_per_minute_ = 0;
    std::int64_t available_mt_ = -1;
    bool balance_due_ = true;  // look at the balance (price) at the first contact and after a 402
    std::int64_t next_open_ms_ = 0;
    std::int64_t next_adopt_ms_ = 0;
    std::int64_t retry_at_ms_ = 0;
    long backoff_ms_ = 0;
    std::string lasting_note_;    // e.g. a journal set aside: shown until the process ends
    std::string transient_note_;  // e.g. a malformed reply: cleared by the next good exchange

    std::mutex status_mutex_;
    MeterStatus status_;
    std::atomic<bool> licensed_{false};
    std::atomic<std::int64_t> licensed_until_ms_{0};
};

}  // namespace stemsphere::client
