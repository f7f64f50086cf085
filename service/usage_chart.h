// Usage per day for the account page: folded from the ledger's usage items (the same data as
// GET /v1/usage) and drawn by the server as an SVG bar chart, with a table as its text twin.
#pragma once

#include <json/json.h>

#include <cstdint>
#include <string>
#include <vector>

namespace stemsphere::service {

struct DayUsage {
    int64_t day_start_s = 0;  // 00:00 UTC
    int64_t used_ms = 0;
    int64_t posted_mt = 0;
};

// The last `days` UTC days up to and including today's, oldest first, zero where nothing was
// used. `items` are /v1/usage items ({used_ms, posted_mt, at}).
std::vector<DayUsage> usage_per_day(const Json::Value& items, int64_t now_s, int days);

// Bars of tokens per day with a labelled y axis; each bar carries a <title> (hover tooltip).
std::string usage_chart_svg(const std::vector<DayUsage>& days);

}  // namespace stemsphere::service
