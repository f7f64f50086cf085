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
    EXPECT_EQ(meter->status().price_mt_per_minute, kPrice);
    EXPECT_EQ(meter->status().available_mt, 1'000'000);
    meter->shutdown();
    // Leases of 1 min fill in order: 60000 + 60000 + 30000 ms, each settled on its own.
    const std::int64_t expected = 2 * price_of(60'000, kPrice) + price_of(30'000, kPrice);
    EXPECT_EQ(meter->status().settled_ms, 150'000);
    EXPECT_EQ(meter->status().settled_mt, expected) << "what the renderer prints after";
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

namespace stemsphere::client::testing {
namespace {

TEST(LeaseMeter, ServerStoppedWorksOfflineOnTheLeaseAndSettlesOnceBack) {
    Rig rig;
    rig.SetUp();
    auto meter = open_meter(rig.options(600'000, 120));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    meter->record_usage(10'000);
    rig.server.stop();
    meter->poll();  // nothing due: the meter does not call the server just to check on it
    EXPECT_EQ(meter->status().state, LicenceState::active);
    meter->record_usage(300'000);  // 310 s of 600: half used, so the poll asks for a renewal
    meter->poll();
    EXPECT_TRUE(meter->licensed()) << meter->status().message;
    EXPECT_EQ(meter->status().state, LicenceState::offline_grace) << meter->status().message;
    EXPECT_EQ(meter->status().covered_ms, 290'000);
    meter->record_usage(5'000);  // offline use, journalled
    ASSERT_TRUE(rig.server.restart());
    for (int i = 0; i < 200 && meter->status().state != LicenceState::active; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        meter->poll();
    }
    EXPECT_EQ(meter->status().state, LicenceState::active) << meter->status().message;
    meter->shutdown();
    std::int64_t used = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, &used), price_of(315'000, kPrice));
    EXPECT_EQ(used, 315'000);
    EXPECT_EQ(balance(rig.server, rig.user)["held_mt"].asInt64(), 0);
}

TEST(LeaseMeter, OfflineGraceEndsAtTheLeaseExpiry) {
    Rig rig;
    rig.SetUp();
    const auto asked = std::chrono::steady_clock::now();  // before the lease was asked for
    auto meter = open_meter(rig.options(600'000, 6));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    const auto granted = std::chrono::steady_clock::now();  // after it was granted
    rig.server.stop();
    meter->record_usage(300'000);  // half used: the poll's renewal finds the server gone
    meter->poll();
    bool was_offline = false;
    while (meter->licensed() &&
           std::chrono::steady_clock::now() - asked < std::chrono::seconds(10)) {
        meter->poll();
        was_offline = was_offline || meter->status().state == LicenceState::offline_grace;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto ended = std::chrono::steady_clock::now();
    using seconds = std::chrono::duration<double>;
    EXPECT_FALSE(meter->licensed());
    // The 6-s lease was created between `asked` and `granted`: it must end by granted + 6 s,
    // and it lasts its life less the 10 % settling margin (5.4 s) counted from `asked`.
    EXPECT_LE(seconds(ended - granted).count(), 6.0 + 0.1) << "grace must end by expires_at";
    EXPECT_GE(seconds(ended - asked).count(), 5.3) << "grace should last the lease's life";
    meter->poll();
    EXPECT_EQ(meter->status().state, LicenceState::offline_grace) << meter->status().message;
    EXPECT_EQ(meter->status().covered_ms, 0);
    meter->shutdown();
    EXPECT_TRUE(was_offline);
}

// A dead process's journal whose last line was torn by the crash: the complete lines are
// settled, the torn one (never acknowledged to the caller) is dropped.
TEST(LeaseMeter, TornLastJournalLineIsToleratedAndTheRestSettledOnce) {
    Rig rig;
    rig.SetUp();
    const pid_t child = ::fork();
    if (child == 0) {
        auto meter = open_meter(rig.options(600'000));
        if (!wait_licensed(*meter)) ::_exit(1);
        for (int i = 0; i < 5; ++i) meter->record_usage(5000);
        ::_exit(0);  // no shutdown: like a crash
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
    const std::string dir = resolve_paths(rig.config_dir).journal_dir();
    std::string file;
    for (const auto& e : std::filesystem::directory_iterator(dir)) file = e.path().string();
    ASSERT_FALSE(file.empty());
    std::filesystem::resize_file(file, std::filesystem::file_size(file) - 10);
    auto meter = open_meter(rig.options(600'000));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    meter->shutdown();
    EXPECT_EQ(posted_total(rig.server, rig.user), price_of(20'000, kPrice));
    EXPECT_TRUE(std::filesystem::is_empty(dir));
}

// Real corruption (a line in the middle changed): the journal is set aside, not replayed, and
// the status says so; the meter keeps working on a journal of its own.
TEST(LeaseMeter, CorruptJournalIsSetAsideWithAClearMessageAndNothingCharged) {
    Rig rig;
    rig.SetUp();
    const pid_t child = ::fork();
    if (child == 0) {
        auto meter = open_meter(rig.options(600'000));
        if (!wait_licensed(*meter)) ::_exit(1);
        for (int i = 0; i < 5; ++i) meter->record_usage(5000);
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
    const Paths paths = resolve_paths(rig.config_dir);
    std::string file;
    for (const auto& e : std::filesystem::directory_iterator(paths.journal_dir())) {
        file = e.path().string();
    }
    std::string text, error;
    ASSERT_EQ(read_small_file(file, text, error), ReadStatus::ok);
    const auto at = text.find("\"ms\":5000");  // the first usage line: 5000 → 9000
    ASSERT_NE(at, std::string::npos);
    text[at + 5] = '9';
    {
        std::FILE* f = std::fopen(file.c_str(), "w");
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
    }
    auto meter = open_meter(rig.options(600'000));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    const MeterStatus s = meter->status();
    EXPECT_NE(s.message.find("corrupt"), std::string::npos) << s.message;
    EXPECT_NE(s.message.find(paths.corrupt_dir()), std::string::npos) << s.message;
    EXPECT_TRUE(std::filesystem::exists(paths.corrupt_dir() + "/" +
                                        std::filesystem::path(file).filename().string()));
    meter->shutdown();
    EXPECT_EQ(posted_total(rig.server, rig.user), 0);
}

TEST(LeaseMeter, CorruptCredentialsFileGivesAClearSignedOutStatus) {
    Rig rig;
    rig.SetUp();
    const Paths paths = resolve_paths(rig.config_dir);
    std::string error;
    ASSERT_TRUE(
        write_file_atomically(paths.credentials_file(), "{\"version\": 1, \"server\":", error));
    auto meter = open_meter(rig.options());
    meter->poll();
    EXPECT_FALSE(meter->licensed());
    EXPECT_EQ(meter->status().state, LicenceState::signed_out);
    EXPECT_NE(meter->status().message.find("corrupt"), std::string::npos)
        << meter->status().message;
    EXPECT_NE(meter->status().message.find(paths.credentials_file()), std::string::npos);
    meter->record_usage(1000);  // nothing to charge, nothing breaks
    // The same through the CLI: exit code 6 and the file named.
    std::string out;
    const int rc = run_command(std::string(STEMSPHERE_ACCOUNT_BINARY) + " status --config-dir " +
                                   rig.config_dir + " --server " + rig.server.url() + " 2>&1",
                               out);
    EXPECT_EQ(rc, 6) << out;
    EXPECT_NE(out.find(paths.credentials_file()), std::string::npos) << out;
    // `logout` removes it (exit 0), and signing in again replaces it.
    EXPECT_EQ(run_command(std::string(STEMSPHERE_ACCOUNT_BINARY) + " logout --config-dir " +
                              rig.config_dir + " --server " + rig.server.url() + " 2>&1",
                          out),
              0)
        << out;
    EXPECT_FALSE(std::filesystem::exists(paths.credentials_file()));
    sign_in_client(rig.server, rig.user, rig.config_dir);
    EXPECT_TRUE(wait_licensed(*meter)) << meter->status().message;
    meter->shutdown();
}

TEST(LeaseMeter, SignedOutWithoutCredentials) {
    TempDir dir;
    MeterOptions o;
    o.server_url = "http://127.0.0.1:9";
    o.config_dir = dir.path();
    auto meter = open_meter(o);
    meter->poll();
    EXPECT_FALSE(meter->licensed());
    EXPECT_EQ(meter->status().state, LicenceState::signed_out);
    EXPECT_NE(meter->status().message.find("stemsphere-account login"), std::string::npos);
}

}  // namespace
}  // namespace stemsphere::client::testing

namespace stemsphere::client::testing {
namespace {

// A long session writes many usage lines; past a size (1 MiB; 16 KiB here) the journal is
// replaced by a snapshot of what is unresolved, and the charge is still exactly what was
// recorded.
TEST(LeaseMeter, GrownJournalIsCompactedWithoutChangingWhatIsCharged) {
    Rig rig;
    rig.SetUp();
    auto* meter = new LeaseMeter(rig.options(600'000));
    std::unique_ptr<Meter> owner(meter);
    meter->set_compaction_bytes(16 * 1024);
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    const std::string first = meter->journal_path();
    const auto t0 = std::chrono::steady_clock::now();
    constexpr int kCalls = 250;
    for (int i = 0; i < kCalls; ++i) meter->record_usage(3);
    const double per_call_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        kCalls;
    std::printf("record_usage: %.1f us per call (one fsync'd journal line each)\n", per_call_us);
    ASSERT_GT(std::filesystem::file_size(first), 16u * 1024);
    meter->poll();
    const std::string second = meter->journal_path();
    EXPECT_NE(second, first);
    EXPECT_FALSE(std::filesystem::exists(first));
    EXPECT_LT(std::filesystem::file_size(second), 2048u);
    meter->record_usage(1000);
    meter->shutdown();
    std::int64_t used = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, &used), price_of(3 * kCalls + 1000, kPrice));
    EXPECT_EQ(used, 3 * kCalls + 1000);
}

}  // namespace
}  // namespace stemsphere::client::testing

namespace stemsphere::client::testing {
namespace {

// Two DAWs on one sign-in: each process keeps its own journal and leases, and each is charged
// for exactly what it recorded.
TEST(LeaseMeter, TwoProcessesOnOneSignInAreEachChargedForTheirOwnUse) {
    Rig rig;
    rig.SetUp();
    std::vector<pid_t> children;
    for (int p = 0; p < 2; ++p) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            auto meter = open_meter(rig.options(60'000));
            if (!wait_licensed(*meter)) ::_exit(1);
            for (int i = 0; i < 10; ++i) {
                meter->record_usage(p == 0 ? 9'000 : 4'000);
                meter->poll();
                if (!meter->licensed()) ::_exit(2);
            }
            meter->shutdown();
            ::_exit(meter->status().settled_ms == (p == 0 ? 90'000 : 40'000) ? 0 : 3);
        }
        children.push_back(pid);
    }
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_EQ(WEXITSTATUS(status), 0);
    }
    std::int64_t used = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, &used),
              price_of(60'000, kPrice) + price_of(30'000, kPrice) + price_of(40'000, kPrice));
    EXPECT_EQ(used, 130'000);
    EXPECT_EQ(balance(rig.server, rig.user)["held_mt"].asInt64(), 0);
    EXPECT_TRUE(std::filesystem::is_empty(resolve_paths(rig.config_dir).journal_dir()));
}

}  // namespace
}  // namespace stemsphere::client::testing

namespace stemsphere::client::testing {
namespace {

// Checksums intact but the story impossible (a settle for more than was recorded): set aside,
// never sent.
TEST(LeaseMeter, ContradictoryJournalIsSetAsideNotReplayed) {
    Rig rig;
    rig.SetUp();
    const Paths paths = resolve_paths(rig.config_dir);
    Credentials c;
    std::string error;
    ASSERT_EQ(load_credentials(paths, c, error), CredentialsState::ok);
    Lease l;
    l.id = "l-forged";
    l.want_ms = 600'000;
    l.granted_ms = 600'000;
    l.created_at = 1;
    l.expires_at = 2;
    l.deadline_ms = 1000;
    l.settle_id = "s-forged";
    l.settle_used_ms = 9'000;  // but only 5 s recorded below
    std::string text;
    for (const auto& r : {LeaseBook::begin_record(c.account_id, c.device_id, rig.server.url()),
                          LeaseBook::want_record(l), LeaseBook::open_record(l),
                          LeaseBook::use_record(l.id, 5'000), LeaseBook::settle_record(l)}) {
        text += Journal::encode_line(r);
    }
    ASSERT_TRUE(ensure_private_dir(paths.journal_dir(), error));
    ASSERT_TRUE(write_file_atomically(paths.journal_dir() + "/jforged.jnl", text, error));
    auto meter = open_meter(rig.options());
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    EXPECT_NE(meter->status().message.find("corrupt"), std::string::npos);
    EXPECT_NE(meter->status().message.find("9000 ms"), std::string::npos)
        << meter->status().message;
    EXPECT_TRUE(std::filesystem::exists(paths.corrupt_dir() + "/jforged.jnl"));
    meter->shutdown();
    EXPECT_EQ(posted_total(rig.server, rig.user), 0);
}

}  // namespace
}  // namespace stemsphere::client::testing

namespace stemsphere::client::testing {
namespace {

// Two journals describing the same lease (what a crash in the middle of a compaction leaves,
// or a restored backup): the lease is settled once; the second settle is refused, not charged.
TEST(LeaseMeter, DuplicatedJournalIsChargedOnce) {
    Rig rig;
    rig.SetUp();
    const pid_t child = ::fork();
    if (child == 0) {
        auto meter = open_meter(rig.options(600'000));
        if (!wait_licensed(*meter)) ::_exit(1);
        meter->record_usage(33'000);
        ::_exit(0);  // no shutdown
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_EQ(WEXITSTATUS(status), 0);
    const std::string dir = resolve_paths(rig.config_dir).journal_dir();
    std::string file;
    for (const auto& e : std::filesystem::directory_iterator(dir)) file = e.path().string();
    std::filesystem::copy_file(file, dir + "/jcopy.jnl");
    auto meter = open_meter(rig.options(600'000));
    ASSERT_TRUE(wait_licensed(*meter)) << meter->status().message;
    meter->shutdown();
    int settles = 0;
    EXPECT_EQ(posted_total(rig.server, rig.user, nullptr, &settles), price_of(33'000, kPrice));
    EXPECT_EQ(settles, 1);
    EXPECT_TRUE(std::filesystem::is_empty(dir));
}

}  // namespace
}  // namespace stemsphere::client::testing
