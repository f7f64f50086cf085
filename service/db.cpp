#include "service/db.h"

#include "service/db_postgres.h"
#include "service/db_sqlite.h"
#include "service/schema.h"

namespace stemsphere::service {

int64_t DbRow::integer(size_t i) const {
    const DbValue& v = columns.at(i);
    if (const auto* n = std::get_if<int64_t>(&v)) return *n;
    if (std::holds_alternative<std::monostate>(v)) return 0;
    throw DbError("column " + std::to_string(i) + " is text, integer expected", false);
}

const std::string& DbRow::text(size_t i) const {
    static const std::string kEmpty;
    const DbValue& v = columns.at(i);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (std::holds_alternative<std::monostate>(v)) return kEmpty;
    throw DbError("column " + std::to_string(i) + " is an integer, text expected", false);
}

std::unique_ptr<Db> open_database(const std::string& url, const DbOptions& options) {
    std::unique_ptr<Db> db;
    if (url.rfind("sqlite:", 0) == 0) {
        const std::string path = url.substr(7);
        if (path.empty()) throw DbError("empty SQLite path in '" + url + "'", false);
        db = make_sqlite_db(path);
    } else if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
        db = make_postgres_db(url, options.postgres_connections);
    } else {
        throw DbError(
            "unsupported database URL '" + url + "' (expected sqlite:PATH or postgresql://...)",
            false);
    }
    migrate(*db);
    return db;
}

}  // namespace stemsphere::service
