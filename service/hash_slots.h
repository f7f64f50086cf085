// A cluster-wide bound on password hashes running at once. Every replica on one PostgreSQL
// database takes a row of `hash_slot` before it runs argon2id and frees it after, so a login
// flood spread over N nodes still runs at most `slots` hashes at a time and cannot starve the
// ledger routes of CPU on shared hosts. A slot is held for at most `hold` (a node that dies while
// hashing frees it by timeout). Beyond the bound the caller answers `503 busy`, as the per-node
// pool does.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "service/db.h"

namespace stemsphere::service {

class HashSlots {
  public:
    // `clock` gives µs since the epoch; `slots` ≥ 1 rows exist after construction.
    HashSlots(Db& db, int slots, std::function<int64_t()> clock,
              std::chrono::milliseconds hold = std::chrono::milliseconds(10'000));

    // A slot held until the returned object goes, or nothing when none freed up within `wait`.
    class Held;
    std::optional<Held> take(std::chrono::milliseconds wait);

    class Held {
      public:
        Held(HashSlots* owner, int64_t slot, std::string holder)
            : owner_(owner), slot_(slot), holder_(std::move(holder)) {}
        Held(Held&& other) noexcept
            : owner_(other.owner_), slot_(other.slot_), holder_(std::move(other.holder_)) {
            other.owner_ = nullptr;
        }
        Held(const Held&) = delete;
        Held& operator=(const Held&) = delete;
        Held& operator=(Held&&) = delete;
        ~Held() {
            if (owner_) owner_->give_back(slot_, holder_);
        }

      private:
        HashSlots* owner_;
        int64_t slot_;
        std::string holder_;
    };

  private:
    Db& db_;
    int slots_;
    std::function<int64_t()> clock_;
    int64_t hold_us_;
    void give_back(int64_t slot, const std::string& holder);
};

}  // namespace stemsphere::service
