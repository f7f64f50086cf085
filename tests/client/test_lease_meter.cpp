// The lease manager against a real stemsphere-server: exact debits under the rounding rule,
// kill -9 and restart (journal replay, no double charge), offline grace bounded by the lease.
#include <sys/wait.h>

#include "client/lease_meter.h"
#include "tests/client/server_harness.h"

namespace stemsphere::client::testing {
namespace {

constexpr std::int64_t kPrice = 1001;  // mt per minute: not a divisor of 60000, so rounding shows

struct Rig {
    TempDir dir;
    ServerProcess server{dir.path() + "/ledger.db", kPrice};
    TestUser user;
    std::string config_dir;

    void SetUp(std::int64_t grant_mt = 1'000'000) {
        ASSERT_TRUE(server.start());
        user = make_user(server, "meter@example.org");
        grant(server, user, grant_mt, "g1");
        config_dir = dir.path() + "/config";
        sign_in_client(server, user, config_dir);
    }
    MeterOptions options(std::int64_t lease_ms = 60'000, std::int64_t ttl_s = 0) const {
        MeterOptions o;
        o.server_url = server.url();
        o.config_dir = config_dir;
        o.lease_ms = lease_ms;
        o.lease_ttl_s = ttl_s;
        o.request_timeout_ms = 2000;
        return o;
    }
};

// Polls until licensed (a lease verified) or ~5 s passed.
bool wait_licensed(Meter& m) {
    for (int i = 0; i < 100; ++i) {
        m.poll();
        if (m.licensed()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

TEST(LeaseMeter, DebitsExactlyTheRecordedMinutesUnderTheRoundingRule) {
    Rig rig;
    rig.SetUp();
    auto meter = open_meter(rig.options(60'000));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    EXPECT_EQ(meter->status().state, LicenceState::active);
    // 2.5 min in uneven chunks, polling between them as the plugin's client thread does.
    const std::int64_t chunks[] = {7000, 13000, 999, 29001, 11000, 19000, 7000, 3000, 60000};
    std::int64_t total = 0;
    for (const std::int64_t c : chunks) {
        meter->record_usage(static_cast<std::uint64_t>(c));
        total += c;
        meter->poll();
        ASSERT_TRUE(meter->licensed()) << meter->status().message;
    }
    ASSERT_EQ(total, 150'000);
    meter->shutdown();
    // Leases of 1 min fill in order: 60000 + 60000 + 30000 ms, each settled on its own.
    const std::int64_t expected = 2 * price_of(60'000, kPrice) + price_of(30'000, kPrice);
    std::int64_t used = 0;
    int settles = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, &used, &settles), expected);
    EXPECT_EQ(used, 150'000);
    EXPECT_EQ(settles, 3);
    const Json::Value b = balance(rig.server, rig.user);
    EXPECT_EQ(b["available_mt"].asInt64(), 1'000'000 - expected) << b.toStyledString();
    EXPECT_EQ(b["held_mt"].asInt64(), 0) << "unused leases are voided at shutdown";
    int rc = -1;
    rig.server.admin("reconcile", &rc);
    EXPECT_EQ(rc, 0);
    // Everything settled: no journal is left to replay.
    EXPECT_TRUE(std::filesystem::is_empty(resolve_paths(rig.config_dir).journal_dir()));
}

TEST(LeaseMeter, KillNineMidUseThenRestartSettlesOnceFromTheJournal) {
    Rig rig;
    rig.SetUp();
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    if (child == 0) {
        auto meter = open_meter(rig.options(600'000));
        bool ok = wait_licensed(*meter);
        for (int i = 0; ok && i < 9; ++i) meter->record_usage(5000);  // 45 s, journalled
        const char byte = ok ? 'y' : 'n';
        (void)!::write(ready[1], &byte, 1);
        ::pause();  // killed here, mid-use, lease open
        ::_exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_EQ(byte, 'y');
    EXPECT_EQ(posted_total(rig.server, rig.user), 0) << "nothing settled before the crash";
    EXPECT_GT(balance(rig.server, rig.user)["held_mt"].asInt64(), 0) << "the lease is still held";

    // The next start adopts the dead process's journal and settles exactly what it recorded.
    for (int restart = 0; restart < 2; ++restart) {
        auto meter = open_meter(rig.options(600'000));
        ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
        meter->shutdown();
    }
    std::int64_t used = 0;
    int settles = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, &used, &settles), price_of(45'000, kPrice));
    EXPECT_EQ(used, 45'000);
    EXPECT_EQ(settles, 1);
    EXPECT_EQ(balance(rig.server, rig.user)["held_mt"].asInt64(), 0);
    EXPECT_TRUE(std::filesystem::is_empty(resolve_paths(rig.config_dir).journal_dir()));
}

}  // namespace
}  // namespace stemsphere::client::testing
