#pragma once
// What a metered render costs, as the account sees it: the signed-in user's /v1/balance through
// the metering client (client/), read before and after the render. The spending itself happens
// inside the plugin, which meters itself in this process like in a DAW.

#include <cstdint>
#include <string>

namespace stemsphere::render {

struct Balance {
    bool ok = false;
    std::string error;  // why not (signed out, offline, ...) when !ok
    int64_t available_mt = 0;
    int64_t held_mt = 0;                  // in open leases (this process's included)
    int64_t milli_tokens_per_minute = 0;  // the price
    int64_t total_mt() const { return available_mt + held_mt; }
};

// Reads the balance of the user signed in on this machine (server and sign-in as
// stemsphere-account finds them). Never throws; bounded in time.
Balance read_balance();

// Milli-tokens for `ms` of metered audio at `price` per minute, rounded up once (the server's
// rule for a lease's whole usage, docs/api.md).
int64_t cost_mt(int64_t ms, int64_t price);

// "12.345" tokens from milli-tokens.
std::string tokens_text(int64_t mt);

}  // namespace stemsphere::render
