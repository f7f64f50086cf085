// The one storage interface of stemsphere-server. SQLite and PostgreSQL implement it with the
// same schema; everything above it (ledger, accounts) is written once in portable SQL with `?`
// placeholders (the PostgreSQL back end rewrites them to $1..$n).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace stemsphere::service {

enum class Dialect { kSqlite, kPostgres };

// A bound parameter or a result column: NULL, a 64-bit integer or text.
using DbValue = std::variant<std::monostate, int64_t, std::string>;

struct DbRow {
    std::vector<DbValue> columns;

    bool is_null(size_t i) const { return std::holds_alternative<std::monostate>(columns.at(i)); }
    int64_t integer(size_t i) const;
    const std::string& text(size_t i) const;
};

// Raised for every database failure. `transient` marks failures that a retry of the whole
// transaction may cure (SQLITE_BUSY, PostgreSQL 40001/40P01, lost connection).
// `conflict` marks a unique or check constraint violation: between concurrent transactions it
// means another one committed the same id (or spent the same tokens) first, and a retry of the
// whole transaction sees its rows and gives the business answer (a stored replay, `email_taken`,
// `insufficient_tokens`, ...); `Db::write` retries it a few times, then it is a bug (500).
class DbError : public std::runtime_error {
  public:
    DbError(const std::string& message, bool transient, bool conflict = false)
        : std::runtime_error(message), transient_(transient), conflict_(conflict) {}
    bool transient() const { return transient_; }
    bool conflict() const { return conflict_; }

  private:
    bool transient_;
    bool conflict_;
};

// A statement executor bound to one open transaction. Never outlives the callback it is given to.
class DbTx {
  public:
    virtual ~DbTx() = default;
    virtual std::vector<DbRow> query(std::string_view sql, const std::vector<DbValue>& params) = 0;
    // Returns the number of rows changed.
    virtual int64_t exec(std::string_view sql, const std::vector<DbValue>& params) = 0;
    virtual Dialect dialect() const = 0;
    // A statement whose result the caller does not read. It may run later, but before the next
    // query() or exec() and before the commit (PostgreSQL sends it with them in one round trip);
    // its failure fails the transaction then. `expect_rows` ≥ 0: it must change exactly that many
    // rows, or the transaction fails as a transient conflict (and is retried).
    virtual void exec_later(std::string_view sql, const std::vector<DbValue>& params,
                            int64_t expect_rows = -1) {
        const int64_t changed = exec(sql, params);
        if (expect_rows >= 0 && changed != expect_rows) {
            throw DbError("concurrent change, retrying: " + std::string(sql), true);
        }
    }

    std::vector<DbRow> query(std::string_view sql) { return query(sql, {}); }
    int64_t exec(std::string_view sql) { return exec(sql, {}); }
};

class Db {
  public:
    virtual ~Db() = default;
    virtual Dialect dialect() const = 0;
    // Runs `work` in one serialisable-for-our-purposes write transaction: commits when it returns,
    // rolls back (and rethrows) when it throws. Transient failures are retried a bounded number
    // of times, so `work` must only touch the database and its own locals.
    virtual void write(const std::function<void(DbTx&)>& work) = 0;
    // Runs `work` on a consistent read snapshot; never blocks writers.
    virtual void read(const std::function<void(DbTx&)>& work) = 0;
    // One query on its own snapshot. PostgreSQL runs it outside a transaction block: one round
    // trip instead of BEGIN, the query and COMMIT (every authenticated request does one).
    virtual std::vector<DbRow> read_one(std::string_view sql, const std::vector<DbValue>& params) {
        std::vector<DbRow> rows;
        read([&](DbTx& tx) { rows = tx.query(sql, params); });
        return rows;
    }
};

struct DbOptions {
    size_t postgres_connections = 24;  // pool size per process (PostgreSQL)
};

// `sqlite:PATH` (PATH may be `:memory:` for tests) or `postgresql://...`. Runs the schema
// migrations before returning. Throws DbError with a readable message on a bad URL or database.
std::unique_ptr<Db> open_database(const std::string& url, const DbOptions& options = {});

}  // namespace stemsphere::service
