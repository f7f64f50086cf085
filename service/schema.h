#pragma once

#include "service/db.h"

namespace stemsphere::service {

// Brings the schema to the newest version (a `schema_version` table records what ran). The DDL
// is written once; `{INT}` and `{STRICT}` expand per dialect, and the append-only triggers are
// the only dialect-specific statements.
void migrate(Db& db);

// The newest schema version this binary knows.
int latest_schema_version();

}  // namespace stemsphere::service
