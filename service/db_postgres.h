#pragma once

#include <memory>
#include <string>

#include "service/db.h"

namespace stemsphere::service {

// Connects to PostgreSQL with a libpq connection string or URI; keeps a bounded pool.
std::unique_ptr<Db> make_postgres_db(const std::string& conninfo, size_t max_connections);

}  // namespace stemsphere::service
