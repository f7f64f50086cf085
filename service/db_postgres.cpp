// PostgreSQL back end over libpq: a bounded pool of connections, one transaction per call,
// READ COMMITTED (guarded updates re-evaluate their WHERE clause on the newest row version, so
// the non-negative balance guard is race-free), bounded retries on 40001/40P01/lost connection.
//
// Round trips: BEGIN and every statement given to exec_later() wait in a queue and go out in one
// libpq pipeline with the next query, or with the COMMIT. A lease+settle on loopback is mostly
// round trips, so this is where its time went (docs/service.md has the figures).
#include "service/db_postgres.h"

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

namespace stemsphere::service {
namespace {

constexpr int kMaxAttempts = 8;
// A constraint conflict that a retry does not cure within this many attempts is a bug.
constexpr int kMaxConflictAttempts = 3;
// Type OIDs from pg_type.h (server headers are not needed for these stable values).
constexpr Oid kBoolOid = 16, kInt8Oid = 20, kInt2Oid = 21, kInt4Oid = 23, kNumericOid = 1700;

// `?` placeholders → `$1..$n` (no `?` appears inside our SQL literals).
std::string to_dollar_placeholders(std::string_view sql) {
    std::string out;
    out.reserve(sql.size() + 16);
    int n = 0;
    for (char c : sql) {
        if (c == '?') {
            out += '$';
            out += std::to_string(++n);
        } else {
            out += c;
        }
    }
    return out;
}

class PgConnection final : public DbTx {
  public:
    explicit PgConnection(const std::string& conninfo) {
        conn_ = PQconnectdb(conninfo.c_str());
        if (PQstatus(conn_) != CONNECTION_OK) {
            std::string msg = "cannot connect to PostgreSQL: " + std::string(PQerrorMessage(conn_));
            PQfinish(conn_);
            conn_ = nullptr;
            throw DbError(msg, true);
        }
        PQclear(PQexec(conn_, "SET client_min_messages = warning"));
    }
    ~PgConnection() override { PQfinish(conn_); }
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    bool healthy() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }
    Dialect dialect() const override { return Dialect::kPostgres; }

    // Queues a statement that returns nothing the caller reads (BEGIN, locks, writes).
    void exec_later(std::string_view sql, const std::vector<DbValue>& params,
                    int64_t expect_rows) override {
        queued_.push_back({prepare(sql), std::string(sql), params, expect_rows});
    }
    using DbTx::exec_later;
    // COMMIT in the same round trip as the queued statements, unless one of them must change a
    // given number of rows: that is only known from its result, and a COMMIT already sent with
    // it would commit regardless, so those go out first.
    void commit() {
        for (const Statement& st : queued_) {
            if (st.expect_rows >= 0) {
                PQclear(pipeline(nullptr));
                break;
            }
        }
        exec_later("COMMIT", {}, -1);
        PQclear(pipeline(nullptr));
    }
    void drop_queued() { queued_.clear(); }

    std::vector<DbRow> query(std::string_view sql, const std::vector<DbValue>& params) override {
        PGresult* res = run(sql, params);
        std::vector<DbRow> rows;
        const int nrows = PQntuples(res);
        const int ncols = PQnfields(res);
        rows.reserve(static_cast<size_t>(nrows));
        for (int r = 0; r < nrows; ++r) {
            DbRow row;
            row.columns.reserve(static_cast<size_t>(ncols));
            for (int c = 0; c < ncols; ++c) {
                if (PQgetisnull(res, r, c)) {
                    row.columns.emplace_back(std::monostate{});
                    continue;
                }
                const char* v = PQgetvalue(res, r, c);
                const Oid type = PQftype(res, c);
                if (type == kInt8Oid || type == kInt4Oid || type == kInt2Oid ||
                    type == kNumericOid) {
                    row.columns.emplace_back(static_cast<int64_t>(std::stoll(v)));
                } else if (type == kBoolOid) {
                    row.columns.emplace_back(static_cast<int64_t>(v[0] == 't' ? 1 : 0));
                } else {
                    row.columns.emplace_back(
                        std::string(v, static_cast<size_t>(PQgetlength(res, r, c))));
                }
            }
            rows.push_back(std::move(row));
        }
        PQclear(res);
        return rows;
    }

    int64_t exec(std::string_view sql, const std::vector<DbValue>& params) override {
        PGresult* res = run(sql, params);
        const char* affected = PQcmdTuples(res);
        const int64_t n = (affected && *affected) ? std::stoll(affected) : 0;
        PQclear(res);
        return n;
    }
    using DbTx::exec;
    using DbTx::query;

  private:
    struct Statement {
        const std::string* name;  // prepared statement name (owned by prepared_)
        std::string sql;
        std::vector<DbValue> params;
        int64_t expect_rows;  // < 0: any
    };

    // The prepared statement for `sql` on this connection (prepared on first use).
    const std::string* prepare(std::string_view sql) {
        std::string key(sql);
        auto it = prepared_.find(key);
        if (it == prepared_.end()) {
            std::string name = "s" + std::to_string(prepared_.size());
            const std::string text = to_dollar_placeholders(sql);
            PGresult* prep = PQprepare(conn_, name.c_str(), text.c_str(), 0, nullptr);
            check(prep, sql);
            PQclear(prep);
            it = prepared_.emplace(std::move(key), std::move(name)).first;
        }
        return &it->second;
    }

    // Parameters as text (libpq's text format), kept alive in `texts` while sending.
    static std::vector<const char*> text_values(const std::vector<DbValue>& params,
                                                std::vector<std::string>& texts) {
        texts.assign(params.size(), {});
        std::vector<const char*> values(params.size(), nullptr);
        for (size_t i = 0; i < params.size(); ++i) {
            if (const auto* v = std::get_if<int64_t>(&params[i])) {
                texts[i] = std::to_string(*v);
                values[i] = texts[i].c_str();
            } else if (const auto* t = std::get_if<std::string>(&params[i])) {
                values[i] = t->c_str();
            }
        }
        return values;
    }

    PGresult* run(std::string_view sql, const std::vector<DbValue>& params) {
        const std::string* name = prepare(sql);
        if (!queued_.empty()) {
            Statement last{name, std::string(sql), params, -1};
            return pipeline(&last);
        }
        std::vector<std::string> texts;
        const std::vector<const char*> values = text_values(params, texts);
        PGresult* res = PQexecPrepared(conn_, name->c_str(), static_cast<int>(params.size()),
                                       values.data(), nullptr, nullptr, 0);
        check(res, sql);
        return res;
    }

    // Sends the queued statements and `last` (if any) in one pipeline with one sync, reads every
    // result, and returns `last`'s. After a failure the server skips the rest of the pipeline
    // (PGRES_PIPELINE_ABORTED), so nothing queued after it, COMMIT included, takes effect.
    PGresult* pipeline(const Statement* last) {
        std::vector<Statement> batch = std::move(queued_);
        queued_.clear();
        if (last) batch.push_back(*last);
        if (PQenterPipelineMode(conn_) != 1) {
            broken_ = true;
            throw DbError(
                "PostgreSQL: cannot enter pipeline mode: " + std::string(PQerrorMessage(conn_)),
                true);
        }
        std::optional<DbError> failure;
        size_t sent = 0;
        for (const Statement& st : batch) {
            std::vector<std::string> texts;
            const std::vector<const char*> values = text_values(st.params, texts);
            if (PQsendQueryPrepared(conn_, st.name->c_str(), static_cast<int>(st.params.size()),
                                    values.data(), nullptr, nullptr, 0) != 1) {
                failure =
                    DbError("PostgreSQL: send failed: " + std::string(PQerrorMessage(conn_)), true);
                break;
            }
            ++sent;
        }
        if (PQpipelineSync(conn_) != 1 && !failure) {
            failure =
                DbError("PostgreSQL: sync failed: " + std::string(PQerrorMessage(conn_)), true);
        }
        PGresult* last_result = nullptr;
        for (size_t i = 0; i < sent; ++i) {
            PGresult* res = PQgetResult(conn_);
            if (!res) {
                broken_ = true;
                if (!failure) failure = DbError("PostgreSQL: pipeline result missing", true);
                break;
            }
            for (PGresult* extra = PQgetResult(conn_); extra; extra = PQgetResult(conn_)) {
                PQclear(extra);  // the end-of-statement marker is a null; nothing else expected
            }
            const ExecStatusType st = PQresultStatus(res);
            if (st == PGRES_PIPELINE_ABORTED) {
                PQclear(res);
                continue;  // skipped after an earlier failure, which is already recorded
            }
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                if (!failure) failure = error_of(res, batch[i].sql);
                PQclear(res);
                continue;
            }
            if (batch[i].expect_rows >= 0 && !failure) {
                const char* affected = PQcmdTuples(res);
                const int64_t n = (affected && *affected) ? std::stoll(affected) : 0;
                if (n != batch[i].expect_rows) {
                    failure = DbError("concurrent change, retrying: " + batch[i].sql, true);
                }
            }
            if (last && i + 1 == batch.size()) {
                last_result = res;
            } else {
                PQclear(res);
            }
        }
        if (!broken_) {
            // The sync's own result ends the pipeline.
            for (int guard = 0; guard < 8; ++guard) {
                PGresult* res = PQgetResult(conn_);
                if (!res) continue;
                const bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
                PQclear(res);
                if (sync) break;
            }
        }
        if (PQexitPipelineMode(conn_) != 1) broken_ = true;
        if (failure || broken_) {
            PQclear(last_result);
            if (!failure) failure = DbError("PostgreSQL: pipeline left in a bad state", true);
            throw *failure;
        }
        return last_result;
    }

    DbError error_of(PGresult* res, std::string_view sql) const {
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const std::string sqlstate = state ? state : "";
        std::string msg = "PostgreSQL " + sqlstate + ": " + PQresultErrorMessage(res) +
                          " in: " + std::string(sql);
        const bool transient = sqlstate == "40001" || sqlstate == "40P01" || !healthy() ||
                               sqlstate.rfind("08", 0) == 0;
        // 23505 unique_violation, 23514 check_violation (a balance limit): what a concurrent
        // transaction's commit can make ours run into; a retry sees its rows.
        return DbError(msg, transient, sqlstate == "23505" || sqlstate == "23514");
    }

    void check(PGresult* res, std::string_view sql) {
        const ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
        DbError error = error_of(res, sql);
        PQclear(res);
        throw error;
    }

    PGconn* conn_ = nullptr;
    bool broken_ = false;
    std::unordered_map<std::string, std::string> prepared_;
    std::vector<Statement> queued_;
};

class PostgresDb final : public Db {
  public:
    PostgresDb(std::string conninfo, size_t max_connections)
        : conninfo_(std::move(conninfo)), max_connections_(max_connections) {
        give_back(std::make_unique<PgConnection>(conninfo_));  // fail early on a bad URL
    }

    Dialect dialect() const override { return Dialect::kPostgres; }

    void write(const std::function<void(DbTx&)>& work) override { transaction("BEGIN", work); }
    void read(const std::function<void(DbTx&)>& work) override {
        transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", work);
    }

    std::vector<DbRow> read_one(std::string_view sql, const std::vector<DbValue>& params) override {
        thread_local std::minstd_rand jitter(std::random_device{}());
        for (int attempt = 1;; ++attempt) {
            std::unique_ptr<PgConnection> conn = take();
            try {
                std::vector<DbRow> rows = conn->query(sql, params);
                give_back(std::move(conn));
                return rows;
            } catch (const DbError& e) {
                recycle(std::move(conn));
                if (!e.transient() || attempt >= kMaxAttempts) throw;
                std::this_thread::sleep_for(std::chrono::microseconds(
                    (200 << attempt) + static_cast<int>(jitter() % 1000)));
            } catch (...) {
                recycle(std::move(conn));
                throw;
            }
        }
    }

  private:
    void transaction(const char* begin, const std::function<void(DbTx&)>& work) {
        thread_local std::minstd_rand jitter(std::random_device{}());
        for (int attempt = 1;; ++attempt) {
            std::unique_ptr<PgConnection> conn = take();
            try {
                conn->exec_later(begin, {}, -1);  // goes out with the first query
                work(*conn);
                conn->commit();
                give_back(std::move(conn));
                return;
            } catch (const DbError& e) {
                recycle(std::move(conn));
                // A conflict with a concurrent transaction: the other one has committed
                // (PostgreSQL waits for it before raising 23505), so the retry sees its rows.
                const bool retry = e.conflict() ? attempt < kMaxConflictAttempts
                                                : e.transient() && attempt < kMaxAttempts;
                if (!retry) throw;
                std::this_thread::sleep_for(std::chrono::microseconds(
                    (200 << attempt) + static_cast<int>(jitter() % 1000)));
            } catch (...) {
                recycle(std::move(conn));
                throw;
            }
        }
    }

    // After a failed transaction: roll back and keep the connection, or drop it if it is broken.
    void recycle(std::unique_ptr<PgConnection> conn) {
        conn->drop_queued();
        if (conn->healthy()) {
            try {
                conn->exec("ROLLBACK");
                give_back(std::move(conn));
                return;
            } catch (const DbError&) {
                // fall through: the connection is unusable
            }
        }
        drop();
    }

    std::unique_ptr<PgConnection> take() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return !idle_.empty() || open_ < max_connections_; });
        if (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            return conn;
        }
        ++open_;
        lock.unlock();
        try {
            return std::make_unique<PgConnection>(conninfo_);
        } catch (...) {
            drop();
            throw;
        }
    }
    void give_back(std::unique_ptr<PgConnection> conn) {
        {
            std::lock_guard lock(mutex_);
            if (open_ == 0) open_ = 1;  // the constructor's probe connection
            idle_.push_back(std::move(conn));
        }
        cv_.notify_one();
    }
    // A connection was lost or closed: free its slot.
    void drop() {
        {
            std::lock_guard lock(mutex_);
            if (open_ > 0) --open_;
        }
        cv_.notify_one();
    }

    std::string conninfo_;
    size_t max_connections_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<PgConnection>> idle_;
    size_t open_ = 0;
};

}  // namespace

std::unique_ptr<Db> make_postgres_db(const std::string& conninfo, size_t max_connections) {
    return std::make_unique<PostgresDb>(conninfo, max_connections);
}

}  // namespace stemsphere::service
