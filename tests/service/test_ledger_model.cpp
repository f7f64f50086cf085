// Seeded model-based property test of the ledger against an in-memory reference model, on real
// SQLite (a fresh in-memory database per sequence) and on a real PostgreSQL cluster. Random
// grant / lease / settle / void / expire / refund / reverse sequences, with idempotent replays
// and conflicting reuses of ids mixed in. After every step: outcome equals the model's, every
// lot's available/held amounts equal the model's, Σ posted = 0, Σ pending sides agree, no lot
// overdrawn. After every sequence: reconcile() (balance = fold of transfers, each hold resolved
// at most once, lease states agree with transfers) finds nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "service/db.h"
#include "service/ledger.h"
#include "tests/service/pg_cluster.h"

namespace stemsphere::service {
namespace {

constexpr int64_t kSecond = 1'000'000;

struct ModelLot {
    std::string owner, category;
    int64_t priority = 0, expires_at = 0, seq = 0, granted = 0;
    int64_t available = 0, held = 0;  // posted credit − debit − pending; pending debits
    bool revoked = false;
    int64_t expiry_transfers = 0;
};
struct ModelLease {
    std::string owner;
    std::vector<std::pair<std::string, int64_t>> parts;  // lot, held
    std::string state = "open";
    int64_t granted_ms = 0, hold = 0, expires_at = 0;
};
struct ModelTransfer {  // single transfers only (the reversible ones)
    std::string debit, credit;
    int64_t amount = 0;
    bool reversed = false;
};
struct Recorded {  // first outcome of an id, for replay checks
    int status = 0;
    Json::Value body;
    std::function<void()> replay_same;
};

class Model {
  public:
    explicit Model(const Ledger& ledger) : ledger_(ledger) {}

    std::map<std::string, ModelLot> lots;  // key: lot account id
    std::map<std::string, ModelLease> leases;
    std::map<std::string, ModelTransfer> singles;
    std::map<std::string, int64_t> op_posted;  // operator net posted (credit − debit)

    bool usable(const ModelLot& l, int64_t now) const { return !l.revoked && l.expires_at > now; }

    void move(const std::string& transfer, const std::string& debit, const std::string& credit,
              int64_t amount) {
        adjust(debit, -amount);
        adjust(credit, amount);
        singles[transfer] = {debit, credit, amount, false};
    }
    void adjust(const std::string& account, int64_t delta) {
        auto it = lots.find(account);
        if (it != lots.end()) {
            it->second.available += delta;
        } else {
            op_posted[account] += delta;
        }
    }

    void sweep(const std::string* owner, int64_t now) {
        for (auto& [id, lease] : leases) {
            if (lease.state != "open" || lease.expires_at > now) continue;
            if (owner && lease.owner != *owner) continue;
            for (auto& [lot, held] : lease.parts) {
                lots[lot].held -= held;
                lots[lot].available += held;
            }
            lease.state = "expired";
        }
        for (auto& [id, lot] : lots) {
            if (owner && lot.owner != *owner) continue;
            if ((lot.expires_at <= now || lot.revoked) && lot.available > 0) {
                const std::string t =
                    "lot-expire:" + id + ":" + std::to_string(lot.expiry_transfers++);
                move(t, id, "op:expired", lot.available);
            }
        }
    }

    int64_t owner_available(const std::string& owner, int64_t now) const {
        int64_t sum = 0;
        for (const auto& [id, l] : lots) {
            if (l.owner == owner && usable(l, now)) sum += l.available;
        }
        return sum;
    }

    // Lots of `owner` in draw-down order.
    std::vector<std::string> draw_order(const std::string& owner, int64_t now) const {
        std::vector<std::string> ids;
        for (const auto& [id, l] : lots) {
            if (l.owner == owner && usable(l, now) && l.available > 0) ids.push_back(id);
        }
        std::sort(ids.begin(), ids.end(), [this](const std::string& a, const std::string& b) {
            const auto &x = lots.at(a), &y = lots.at(b);
            return std::tie(x.priority, x.expires_at, x.seq) <
                   std::tie(y.priority, y.expires_at, y.seq);
        });
        return ids;
    }

  private:
    const Ledger& ledger_;
};

struct Harness {
    Db& db;
    Ledger& ledger;
    int64_t& now;
    std::string prefix;  // keeps ids of sequences apart in a shared database
};

void create_account(Db& db, const std::string& id) {
    db.write([&](DbTx& tx) { tx.exec("INSERT INTO account(id, created_at) VALUES (?, 0)", {id}); });
}

// Compares every lot of the model with the database, and the global sums.
void check_state(Db& db, const Model& model, const std::string& where) {
    db.read([&](DbTx& tx) {
        for (const auto& [id, lot] : model.lots) {
            const auto rows = tx.query(
                "SELECT credits_posted - debits_posted - debits_pending, debits_pending FROM "
                "ledger_balance WHERE account_id = ?",
                {id});
            ASSERT_EQ(rows.size(), 1u) << where;
            ASSERT_EQ(rows[0].integer(0), lot.available) << where << " lot " << id;
            ASSERT_EQ(rows[0].integer(1), lot.held) << where << " lot " << id;
            ASSERT_GE(lot.available, 0) << where;
        }
        const auto sums = tx.query(
            "SELECT SUM(credits_posted - debits_posted), SUM(debits_pending), "
            "SUM(credits_pending), "
            "SUM(CASE WHEN must_not_overdraw = 1 AND debits_posted + debits_pending > "
            "credits_posted "
            "THEN 1 ELSE 0 END) FROM ledger_balance");
        ASSERT_EQ(sums.at(0).integer(0), 0) << where << ": Σ posted balances ≠ 0";
        ASSERT_EQ(sums[0].integer(1), sums[0].integer(2)) << where << ": pending sides differ";
        ASSERT_EQ(sums[0].integer(3), 0) << where << ": a wallet lot is overdrawn";
    });
}

// One random sequence of `steps` operations. Returns the number of operations checked.
int run_sequence(Harness& h, std::mt19937_64& rng, int steps) {
    Model model(h.ledger);
    auto pick = [&rng](int64_t lo, int64_t hi) {
        return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
    };
    const std::vector<std::string> owners = {h.prefix + "alice", h.prefix + "bob"};
    for (const auto& o : owners) create_account(h.db, o);
    std::vector<std::string> grant_ids, lease_ids;
    std::map<std::string, Recorded> first;  // idempotency key → first outcome
    int next_id = 0;
    auto fresh = [&](const char* kind) { return h.prefix + kind + std::to_string(next_id++); };
    const char* categories[] = {"subscription", "purchase", "promo"};
    int checked = 0;

    for (int step = 0; step < steps; ++step) {
        const int64_t now = h.now;
        const std::string& owner = owners[static_cast<size_t>(pick(0, 1))];
        const int op = static_cast<int>(pick(0, 99));
        std::string where =
            h.prefix + " step " + std::to_string(step) + " op " + std::to_string(op);
        if (op < 18) {  // grant
            GrantRequest g;
            g.grant_id = fresh("g");
            g.owner = owner;
            g.amount_mt = pick(1, 4000);
            g.category = categories[pick(0, 2)];
            g.priority = pick(0, 3);
            g.effective_at_us = now;
            g.expires_at_us = pick(0, 3) == 0 ? kNever : now + pick(1, 120) * kSecond;
            const Outcome out = h.ledger.grant(g);
            EXPECT_EQ(out.status, 201) << where << " " << out.body.toStyledString();
            const std::string lot = "lot:" + g.grant_id;
            model.lots[lot] = {owner,
                               g.category,
                               g.priority,
                               g.expires_at_us,
                               static_cast<int64_t>(model.lots.size()),
                               g.amount_mt,
                               0,
                               0,
                               false,
                               0};
            // Per-owner seq in the database counts that owner's lots; only the order matters.
            int64_t seq = 0;
            for (const auto& [id, l] : model.lots) seq += (l.owner == owner && id != lot) ? 1 : 0;
            model.lots[lot].seq = seq;
            model.move("grant:" + g.grant_id, "op:grants:" + g.category, lot, g.amount_mt);
            grant_ids.push_back(g.grant_id);
            // Replays: same request → same outcome; a changed amount → named mismatch.
            const Outcome again = h.ledger.grant(g);
            EXPECT_EQ(again.status, out.status) << where;
            EXPECT_EQ(again.body, out.body) << where;
            GrantRequest changed = g;
            changed.amount_mt += 1;
            const Outcome mismatch = h.ledger.grant(changed);
            EXPECT_EQ(mismatch.status, 422) << where;
            EXPECT_EQ(mismatch.body["field"].asString(), "amount_mt") << where;
        } else if (op < 45) {  // open a lease (sometimes replaying an old id)
            const bool replay = !lease_ids.empty() && pick(0, 4) == 0;
            LeaseRequest r;
            r.lease_id = replay ? lease_ids[static_cast<size_t>(
                                      pick(0, static_cast<int64_t>(lease_ids.size()) - 1))]
                                : fresh("l");
            if (replay && first.count("lease:" + r.lease_id)) {
                const Recorded& rec = first["lease:" + r.lease_id];
                rec.replay_same();
                ++checked;
                h.now += pick(0, 2) * kSecond;
                continue;
            }
            r.device_id = "dev" + std::to_string(pick(0, 2));
            r.want_ms = pick(1, 300'000);
            r.min_ms = pick(0, 1) ? 1 : r.want_ms;
            r.ttl_s = pick(1, 90);
            const Outcome out = h.ledger.open_lease(owner, r);
            model.sweep(&owner, now);
            size_t open = 0;
            for (const auto& [id, l] : model.leases)
                open += (l.owner == owner && l.state == "open");
            if (open >= static_cast<size_t>(h.ledger.config().max_open_leases)) {
                EXPECT_EQ(out.status, 429) << where;
                continue;
            }
            const int64_t available = model.owner_available(owner, now);
            const int64_t granted = std::min(r.want_ms, h.ledger.affordable_ms(available));
            if (granted < r.min_ms) {
                EXPECT_EQ(out.status, 402) << where << " " << out.body.toStyledString();
                EXPECT_EQ(out.body["error"].asString(), "insufficient_tokens") << where;
            } else {
                EXPECT_EQ(out.status, 201) << where << " " << out.body.toStyledString();
                EXPECT_EQ(out.body["granted_ms"].asInt64(), granted) << where;
                ModelLease lease;
                lease.owner = owner;
                lease.granted_ms = granted;
                lease.hold = h.ledger.cost_mt(granted);
                EXPECT_EQ(out.body["hold_mt"].asInt64(), lease.hold) << where;
                lease.expires_at = now + *r.ttl_s * kSecond;
                int64_t remaining = lease.hold;
                for (const auto& lot_id : model.draw_order(owner, now)) {
                    if (remaining == 0) break;
                    ModelLot& lot = model.lots[lot_id];
                    const int64_t take = std::min(remaining, lot.available);
                    lot.available -= take;
                    lot.held += take;
                    lease.parts.emplace_back(lot_id, take);
                    remaining -= take;
                }
                EXPECT_EQ(remaining, 0) << where;
                model.leases[r.lease_id] = lease;
            }
            lease_ids.push_back(r.lease_id);
            first["lease:" + r.lease_id] = {
                out.status, out.body, [&h, owner, r, out, where] {
                    const Outcome again = h.ledger.open_lease(owner, r);
                    EXPECT_EQ(again.status, out.status) << where;
                    EXPECT_EQ(again.body, out.body) << where;
                    LeaseRequest other = r;
                    other.want_ms += 1;
                    const Outcome mismatch = h.ledger.open_lease(owner, other);
                    EXPECT_EQ(mismatch.status, 422) << where;
                    EXPECT_EQ(mismatch.body["field"].asString(), "want_ms");
                }};
        } else if (op < 75) {  // settle or void a lease (possibly another owner's, or resolved)
            if (lease_ids.empty()) continue;
            const std::string lease_id =
                lease_ids[static_cast<size_t>(pick(0, static_cast<int64_t>(lease_ids.size()) - 1))];
            const bool settle = op < 65;
            const int64_t used_ms = pick(0, 330'000);
            const std::string rid = fresh(settle ? "s" : "v");
            const Outcome out = settle ? h.ledger.settle_lease(owner, lease_id, rid, used_ms)
                                       : h.ledger.void_lease(owner, lease_id, rid);
            model.sweep(&owner, now);
            auto it = model.leases.find(lease_id);
            if (it == model.leases.end() || it->second.owner != owner) {
                EXPECT_EQ(out.status, 404) << where << " " << out.body.toStyledString();
            } else if (it->second.state != "open") {
                EXPECT_EQ(out.status, 409) << where;
                EXPECT_EQ(out.body["error"].asString(), "lease_already_" + it->second.state)
                    << where;
            } else {
                EXPECT_EQ(out.status, 200) << where << " " << out.body.toStyledString();
                ModelLease& lease = it->second;
                int64_t to_post = settle ? std::min(h.ledger.cost_mt(used_ms), lease.hold) : 0;
                EXPECT_EQ(out.body["posted_mt"].asInt64(), to_post) << where;
                for (auto& [lot, held] : lease.parts) {
                    const int64_t post = std::min(to_post, held);
                    to_post -= post;
                    model.lots[lot].held -= held;
                    model.lots[lot].available += held - post;
                }
                lease.state = settle ? "settled" : "voided";
            }
            // Replaying the resolution id returns the same answer.
            const Outcome again = settle ? h.ledger.settle_lease(owner, lease_id, rid, used_ms)
                                         : h.ledger.void_lease(owner, lease_id, rid);
            if (out.status != 404) {
                EXPECT_EQ(again.status, out.status) << where;
                EXPECT_EQ(again.body, out.body) << where;
            }
            if (settle && out.status == 200) {
                const Outcome mismatch = h.ledger.settle_lease(owner, lease_id, rid, used_ms + 1);
                EXPECT_EQ(mismatch.status, 422) << where;
                EXPECT_EQ(mismatch.body["field"].asString(), "used_ms") << where;
            }
        } else if (op < 87) {  // time passes; the sweeper runs
            h.now += pick(1, 40) * kSecond;
            h.ledger.sweep();
            model.sweep(nullptr, h.now);
        } else if (op < 94) {  // payment refund of a grant
            if (grant_ids.empty()) continue;
            const std::string gid =
                grant_ids[static_cast<size_t>(pick(0, static_cast<int64_t>(grant_ids.size()) - 1))];
            const std::string rid = fresh("r");
            const Outcome out = h.ledger.refund_grant(rid, gid, "test");
            ModelLot& lot = model.lots["lot:" + gid];
            if (lot.revoked) {
                EXPECT_EQ(out.status, 409) << where;
            } else {
                EXPECT_EQ(out.status, 200) << where << " " << out.body.toStyledString();
                const int64_t take = lot.available;
                EXPECT_EQ(out.body["refunded_mt"].asInt64(), take) << where;
                if (take > 0) {
                    model.move("refund:" + rid, "lot:" + gid, "op:grants:" + lot.category, take);
                    model.singles["grant:" + gid].reversed = true;
                }
                lot.revoked = true;
            }
        } else {  // operator reversal of a random single transfer
            if (model.singles.empty()) continue;
            auto it = model.singles.begin();
            std::advance(it, pick(0, static_cast<int64_t>(model.singles.size()) - 1));
            const std::string tid = it->first;
            const ModelTransfer t = it->second;
            const std::string rid = fresh("x");
            const Outcome out = h.ledger.reverse_transfer(rid, tid, "test");
            auto lot_it = model.lots.find(t.credit);
            const bool limited = lot_it != model.lots.end();
            if (t.reversed) {
                EXPECT_EQ(out.status, 409) << where;
                EXPECT_EQ(out.body["error"].asString(), "already_reversed") << where;
            } else if (limited && lot_it->second.available < t.amount) {
                EXPECT_EQ(out.status, 409) << where;
                EXPECT_EQ(out.body["error"].asString(), "insufficient_tokens") << where;
            } else {
                EXPECT_EQ(out.status, 201) << where << " " << out.body.toStyledString();
                model.singles[tid].reversed = true;
                model.move("reverse:" + rid, t.credit, t.debit, t.amount);
            }
        }
        ++checked;
        check_state(h.db, model, where);
        if (::testing::Test::HasFailure()) return checked;
        h.now += pick(0, 3) * kSecond;
    }
    return checked;
}

uint64_t base_seed() {
    const char* env = std::getenv("STEMSPHERE_SEED");
    return env ? std::strtoull(env, nullptr, 10) : 20261122u;
}

TEST(LedgerModel, TenThousandRandomSequencesOnSqlite) {
    // STEMSPHERE_MODEL_SEQUENCES overrides the count for local soak runs (more) or profiling.
    const char* env = std::getenv("STEMSPHERE_MODEL_SEQUENCES");
    const int sequences = env ? std::atoi(env) : 10'000;
    constexpr int kSteps = 24;
    constexpr int kSequencesPerDatabase = 50;  // fresh database every 50, owners kept apart
    int64_t operations = 0;
    std::unique_ptr<Db> db;
    std::unique_ptr<Ledger> ledger;
    int64_t now = 1'800'000'000 * kSecond;
    auto reconcile_clean = [&] {
        for (const auto& p : ledger->reconcile(0)) {
            // Open leases past expiry are legitimate between sweeps; anything else is a bug.
            if (p.what != "open_lease_past_expiry") ADD_FAILURE() << p.what << " " << p.detail;
        }
    };
    for (int s = 0; s < sequences; ++s) {
        if (s % kSequencesPerDatabase == 0) {
            if (ledger) reconcile_clean();
            ledger.reset();
            db = open_database("sqlite::memory:");
            ledger = std::make_unique<Ledger>(*db, [&now] { return now; });
        }
        const uint64_t seed = base_seed() + static_cast<uint64_t>(s);
        std::mt19937_64 rng(seed);
        Harness h{*db, *ledger, now, "q" + std::to_string(s) + "-"};
        operations += run_sequence(h, rng, kSteps);
        ASSERT_FALSE(::testing::Test::HasFailure())
            << "sequence " << s << " (seed " << seed
            << "); the run is deterministic for STEMSPHERE_SEED=" << base_seed();
    }
    reconcile_clean();
    std::printf("sequences: %d, operations checked: %lld\n", sequences,
                static_cast<long long>(operations));
}

TEST(LedgerModel, RandomSequencesOnPostgres) {
    std::string why;
    auto cluster = testing::PgCluster::start(why);
    if (!cluster) GTEST_SKIP() << "skipped: " << why;
    auto db = open_database(cluster->create_database("model"));
    int64_t now = 1'800'000'000 * kSecond;
    Ledger ledger(*db, [&now] { return now; });
    constexpr int kSequences = 120;
    int64_t operations = 0;
    for (int s = 0; s < kSequences; ++s) {
        const uint64_t seed = base_seed() + static_cast<uint64_t>(s);
        std::mt19937_64 rng(seed);
        Harness h{*db, ledger, now, "q" + std::to_string(s) + "-"};
        operations += run_sequence(h, rng, 24);
        ASSERT_FALSE(::testing::Test::HasFailure())
            << "sequence " << s << " (seed " << seed
            << "); the run is deterministic for STEMSPHERE_SEED=" << base_seed();
    }
    for (const auto& p : ledger.reconcile(0)) {
        if (p.what != "open_lease_past_expiry") ADD_FAILURE() << p.what << " " << p.detail;
    }
    std::printf("sequences: %d, operations checked: %lld\n", kSequences,
                static_cast<long long>(operations));
}

TEST(LedgerSchema, EntriesAreAppendOnly) {
    auto db = open_database("sqlite::memory:");
    int64_t now = 1'800'000'000 * kSecond;
    Ledger ledger(*db, [&now] { return now; });
    create_account(*db, "u1");
    GrantRequest g;
    g.grant_id = "g1";
    g.owner = "u1";
    g.amount_mt = 500;
    g.category = "promo";
    ASSERT_EQ(ledger.grant(g).status, 201);
    EXPECT_THROW(db->write([](DbTx& tx) { tx.exec("UPDATE ledger_transfer SET amount = 1"); }),
                 DbError);
    EXPECT_THROW(db->write([](DbTx& tx) { tx.exec("DELETE FROM ledger_transfer"); }), DbError);
    EXPECT_EQ(ledger.balance("u1")["available_mt"].asInt64(), 500);
    EXPECT_TRUE(ledger.reconcile().empty());
}

}  // namespace
}  // namespace stemsphere::service
