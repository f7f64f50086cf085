#pragma once

#include <memory>
#include <string>

#include "service/db.h"

namespace stemsphere::service {

// Opens (creating if needed) the SQLite file at `path`; `:memory:` gives a private in-memory one.
std::unique_ptr<Db> make_sqlite_db(const std::string& path);

}  // namespace stemsphere::service
