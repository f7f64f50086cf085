// SQLite back end: one writer connection fed by a queue of write jobs that are committed in
// groups (each job inside its own SAVEPOINT, one fsync per group), plus a pool of reader
// connections on the WAL snapshot. WAL + synchronous=FULL: an acknowledged
// commit survives a crash or power loss.
#include "service/db_sqlite.h"

#include <sqlite3.h>

#include <cassert>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <unordered_map>

namespace stemsphere::service {
namespace {

constexpr size_t kMaxJobsPerGroup = 256;

bool is_transient(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// One sqlite3 connection with a prepared-statement cache.
class SqliteConnection final : public DbTx {
  public:
    SqliteConnection(const std::string& path, bool read_only) {
        const int flags = read_only
                              ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
        if (rc != SQLITE_OK) {
            std::string msg = "cannot open SQLite database '" + path +
                              "': " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
            sqlite3_close(db_);
            db_ = nullptr;
            throw DbError(msg, false);
        }
        sqlite3_extended_result_codes(db_, 1);
        sqlite3_busy_timeout(db_, 5000);
        if (!read_only) {
            exec("PRAGMA journal_mode=WAL");
            exec("PRAGMA synchronous=FULL");
        }
        exec("PRAGMA foreign_keys=ON");
    }
    ~SqliteConnection() override {
        for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
        sqlite3_close(db_);
    }
    SqliteConnection(const SqliteConnection&) = delete;
    SqliteConnection& operator=(const SqliteConnection&) = delete;

    Dialect dialect() const override { return Dialect::kSqlite; }

    std::vector<DbRow> query(std::string_view sql, const std::vector<DbValue>& params) override {
        sqlite3_stmt* stmt = prepare(sql, params);
        std::vector<DbRow> rows;
        for (;;) {
            const int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) fail(stmt, rc, sql);
            DbRow row;
            const int n = sqlite3_column_count(stmt);
            row.columns.reserve(static_cast<size_t>(n));
            for (int c = 0; c < n; ++c) {
                switch (sqlite3_column_type(stmt, c)) {
                    case SQLITE_NULL:
                        row.columns.emplace_back(std::monostate{});
                        break;
                    case SQLITE_INTEGER:
                        row.columns.emplace_back(
                            static_cast<int64_t>(sqlite3_column_int64(stmt, c)));
                        break;
                    default: {
                        const auto* text = sqlite3_column_text(stmt, c);
                        const int len = sqlite3_column_bytes(stmt, c);
                        row.columns.emplace_back(std::string(reinterpret_cast<const char*>(text),
                                                             static_cast<size_t>(len)));
                    }
                }
            }
            rows.push_back(std::move(row));
        }
        sqlite3_reset(stmt);
        return rows;
    }

    int64_t exec(std::string_view sql, const std::vector<DbValue>& params) override {
        sqlite3_stmt* stmt = prepare(sql, params);
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        }
        if (rc != SQLITE_DONE) fail(stmt, rc, sql);
        sqlite3_reset(stmt);
        return sqlite3_changes64(db_);
    }
    using DbTx::exec;
    using DbTx::query;

  private:
    sqlite3_stmt* prepare(std::string_view sql, const std::vector<DbValue>& params) {
        std::string key(sql);
        auto it = cache_.find(key);
        sqlite3_stmt* stmt = nullptr;
        if (it == cache_.end()) {
            const int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
            if (rc != SQLITE_OK) {
                throw DbError(
                    "SQLite prepare failed: " + std::string(sqlite3_errmsg(db_)) + " in: " + key,
                    is_transient(rc));
            }
            cache_.emplace(std::move(key), stmt);
        } else {
            stmt = it->second;
        }
        sqlite3_clear_bindings(stmt);
        const int expected = sqlite3_bind_parameter_count(stmt);
        assert(expected == static_cast<int>(params.size()) && "parameter count mismatch");
        if (expected != static_cast<int>(params.size())) {
            throw DbError("parameter count mismatch in: " + std::string(sql), false);
        }
        for (size_t i = 0; i < params.size(); ++i) {
            const int idx = static_cast<int>(i) + 1;
            if (const auto* v = std::get_if<int64_t>(&params[i])) {
                sqlite3_bind_int64(stmt, idx, *v);
            } else if (const auto* t = std::get_if<std::string>(&params[i])) {
                sqlite3_bind_text(stmt, idx, t->data(), static_cast<int>(t->size()),
                                  SQLITE_TRANSIENT);
            } else {
                sqlite3_bind_null(stmt, idx);
            }
        }
        return stmt;
    }

    [[noreturn]] void fail(sqlite3_stmt* stmt, int rc, std::string_view sql) {
        std::string msg =
            "SQLite: " + std::string(sqlite3_errmsg(db_)) + " in: " + std::string(sql);
        sqlite3_reset(stmt);
        throw DbError(msg, is_transient(rc));
    }

    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

class SqliteDb final : public Db {
  public:
    explicit SqliteDb(std::string path) : path_(std::move(path)), in_memory_(path_ == ":memory:") {
        writer_ = std::make_unique<SqliteConnection>(path_, false);
    }
    SqliteDb(const SqliteDb&) = delete;
    SqliteDb& operator=(const SqliteDb&) = delete;

    Dialect dialect() const override { return Dialect::kSqlite; }

    // Group commit without a writer thread (leader/follower): a caller that finds no group
    // running becomes the leader, takes every queued job (its own among them) and runs them on
    // the writer connection; the others wait and find their job done. Jobs queued while a group
    // runs form the next group, so one fsync acknowledges many requests under load.
    void write(const std::function<void(DbTx&)>& work) override {
        Job job{&work, false, nullptr};
        std::unique_lock lock(queue_mutex_);
        queue_.push_back(&job);
        std::vector<Job*> group;
        std::vector<std::exception_ptr> errors;
        while (!job.finished) {
            if (leader_active_) {
                queue_cv_.wait(lock);
                continue;
            }
            leader_active_ = true;
            while (!queue_.empty() && group.size() < kMaxJobsPerGroup) {
                group.push_back(queue_.front());
                queue_.pop_front();
            }
            lock.unlock();
            run_group(group, errors);
            lock.lock();
            for (size_t i = 0; i < group.size(); ++i) {
                group[i]->error = errors[i];
                group[i]->finished = true;
            }
            group.clear();
            leader_active_ = false;
            queue_cv_.notify_all();
        }
        if (job.error) std::rethrow_exception(job.error);
    }

    void read(const std::function<void(DbTx&)>& work) override {
        // An in-memory database exists only on the writer connection.
        if (in_memory_) return write(work);
        std::unique_ptr<SqliteConnection> conn = take_reader();
        try {
            conn->exec("BEGIN");
            work(*conn);
            conn->exec("COMMIT");
        } catch (...) {
            try {
                conn->exec("ROLLBACK");
            } catch (const DbError&) {
                // the transaction was already closed by the failure
            }
            give_back_reader(std::move(conn));
            throw;
        }
        give_back_reader(std::move(conn));
    }

  private:
    struct Job {
        const std::function<void(DbTx&)>* work;
        bool finished = false;  // guarded by queue_mutex_
        std::exception_ptr error;
    };

    std::unique_ptr<SqliteConnection> take_reader() {
        {
            std::lock_guard lock(reader_mutex_);
            if (!readers_.empty()) {
                auto conn = std::move(readers_.back());
                readers_.pop_back();
                return conn;
            }
        }
        return std::make_unique<SqliteConnection>(path_, true);
    }
    void give_back_reader(std::unique_ptr<SqliteConnection> conn) {
        std::lock_guard lock(reader_mutex_);
        readers_.push_back(std::move(conn));
    }

    // Runs every job of the group in one transaction, each inside a savepoint so that one job's
    // failure undoes only that job. One COMMIT (one fsync) acknowledges the whole group.
    void run_group(const std::vector<Job*>& group, std::vector<std::exception_ptr>& errors) {
        errors.assign(group.size(), nullptr);
        bool any_ok = false;
        try {
            writer_->exec("BEGIN IMMEDIATE");
        } catch (...) {
            for (auto& e : errors) e = std::current_exception();
            return;
        }
        for (size_t i = 0; i < group.size(); ++i) {
            try {
                writer_->exec("SAVEPOINT job");
                (*group[i]->work)(*writer_);
                writer_->exec("RELEASE job");
                any_ok = true;
            } catch (...) {
                errors[i] = std::current_exception();
                try {
                    writer_->exec("ROLLBACK TO job");
                    writer_->exec("RELEASE job");
                } catch (...) {
                    // fall through to the commit, which then fails and fails the group
                }
            }
        }
        try {
            if (any_ok) {
                writer_->exec("COMMIT");
            } else {
                writer_->exec("ROLLBACK");
            }
        } catch (...) {
            const std::exception_ptr commit_error = std::current_exception();
            try {
                writer_->exec("ROLLBACK");
            } catch (...) {
                // nothing left to undo
            }
            for (auto& e : errors) {
                if (!e) e = commit_error;
            }
        }
    }

    std::string path_;
    bool in_memory_;
    std::unique_ptr<SqliteConnection> writer_;
    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::deque<Job*> queue_;
    bool leader_active_ = false;
    std::mutex reader_mutex_;
    std::vector<std::unique_ptr<SqliteConnection>> readers_;
};

}  // namespace

std::unique_ptr<Db> make_sqlite_db(const std::string& path) {
    return std::make_unique<SqliteDb>(path);
}

}  // namespace stemsphere::service
