#include "service/hash_slots.h"

#include <thread>

#include "service/crypto.h"

namespace stemsphere::service {

HashSlots::HashSlots(Db& db, int slots, std::function<int64_t()> clock,
                     std::chrono::milliseconds hold)
    : db_(db),
      slots_(slots),
      clock_(std::move(clock)),
      hold_us_(static_cast<int64_t>(hold.count()) * 1000) {
    db_.write([&](DbTx& tx) {
        for (int64_t i = 0; i < slots_; ++i) {
            tx.exec("INSERT INTO hash_slot(slot) VALUES (?) ON CONFLICT (slot) DO NOTHING", {i});
        }
    });
}

std::optional<HashSlots::Held> HashSlots::take(std::chrono::milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    // Unique per take, so only this take frees the slot (not a later holder after a timeout).
    const std::string holder = random_token(12);
    for (int round = 0;; ++round) {
        std::optional<int64_t> slot;
        db_.write([&](DbTx& tx) {
            // A slot row lost in a crash frees itself by timeout: no need to wait for fsync.
            if (tx.dialect() == Dialect::kPostgres) {
                tx.exec_later("SET LOCAL synchronous_commit = off", {});
            }
            const int64_t now = clock_();
            // SKIP LOCKED: concurrent takers on any node pick different free rows, none waits.
            const std::string skip =
                tx.dialect() == Dialect::kPostgres ? " FOR UPDATE SKIP LOCKED" : "";
            const auto rows = tx.query(
                "UPDATE hash_slot SET holder = ?, until_at = ? WHERE slot = (SELECT slot FROM "
                "hash_slot WHERE slot < ? AND until_at < ? ORDER BY slot LIMIT 1" +
                    skip + ") RETURNING slot",
                {holder, now + hold_us_, static_cast<int64_t>(slots_), now});
            if (!rows.empty()) slot = rows[0].integer(0);
        });
        if (slot) return std::optional<Held>(std::in_place, this, *slot, holder);
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(2 + round, 20)));
    }
}

void HashSlots::give_back(int64_t slot, const std::string& holder) {
    try {
        db_.write([&](DbTx& tx) {
            if (tx.dialect() == Dialect::kPostgres) {
                tx.exec_later("SET LOCAL synchronous_commit = off", {});
            }
            tx.exec_later("UPDATE hash_slot SET until_at = 0 WHERE slot = ? AND holder = ?",
                          {slot, holder});
        });
    } catch (const DbError&) {
        // the slot frees itself when its hold ends
    }
}

}  // namespace stemsphere::service
