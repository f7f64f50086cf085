// PostgreSQL back end over libpq: a bounded pool of connections, one transaction per call,
// READ COMMITTED (guarded updates re-evaluate their WHERE clause on the newest row version, so
// the non-negative balance guard is race-free), bounded retries on 40001/40P01/lost connection.
#include "service/db_postgres.h"

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

namespace stemsphere::service {
namespace {

constexpr int kMaxAttempts = 8;
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

    bool healthy() const { return PQstatus(conn_) == CONNECTION_OK; }
    Dialect dialect() const override { return Dialect::kPostgres; }

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
    PGresult* run(std::string_view sql, const std::vector<DbValue>& params) {
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
        std::vector<std::string> texts(params.size());
        std::vector<const char*> values(params.size(), nullptr);
        for (size_t i = 0; i < params.size(); ++i) {
            if (const auto* v = std::get_if<int64_t>(&params[i])) {
                texts[i] = std::to_string(*v);
                values[i] = texts[i].c_str();
            } else if (const auto* t = std::get_if<std::string>(&params[i])) {
                values[i] = t->c_str();
            }
        }
        PGresult* res = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                                       values.data(), nullptr, nullptr, 0);
        check(res, sql);
        return res;
    }

    void check(PGresult* res, std::string_view sql) {
        const ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const std::string sqlstate = state ? state : "";
        std::string msg = "PostgreSQL " + sqlstate + ": " + PQresultErrorMessage(res) +
                          " in: " + std::string(sql);
        PQclear(res);
        const bool transient = sqlstate == "40001" || sqlstate == "40P01" || !healthy() ||
                               sqlstate.rfind("08", 0) == 0;
        throw DbError(msg, transient);
    }

    PGconn* conn_ = nullptr;
    std::unordered_map<std::string, std::string> prepared_;
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

  private:
    void transaction(const char* begin, const std::function<void(DbTx&)>& work) {
        thread_local std::minstd_rand jitter(std::random_device{}());
        for (int attempt = 1;; ++attempt) {
            std::unique_ptr<PgConnection> conn = take();
            try {
                conn->exec(begin);
                work(*conn);
                conn->exec("COMMIT");
                give_back(std::move(conn));
                return;
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

    // After a failed transaction: roll back and keep the connection, or drop it if it is broken.
    void recycle(std::unique_ptr<PgConnection> conn) {
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
