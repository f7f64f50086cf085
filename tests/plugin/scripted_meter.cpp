// The test seam of plugin metering (plugin/metering.h): the scripted test bundle links this
// open_process_meter() instead of plugin/open_meter.cpp, so tests drive the plugin's licence
// state without an account or a server. It is never part of the shipped bundle.
//
// $STEMSPHERE_SCRIPTED_METER names a control file, re-read on every call, of `key=value` lines:
//   state=N        the client::LicenceState reported (default 1, active)
//   licensed=0|1   what licensed() answers (default: 1 when state is active, low balance or
//                  offline grace)
//   balance_ms=N   once N ms have been recorded: state exhausted, not licensed; before that
//                  status().covered_ms is what is left
// Opening writes <file>.opened; each record_usage() rewrites <file>.used with
// "used_ms=TOTAL records=COUNT". Without the variable the meter is active and licensed for ever.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "plugin/metering.h"

namespace stemsphere::plugin {

namespace {

using client::LicenceState;

class ScriptedMeter final : public client::Meter {
  public:
    explicit ScriptedMeter(std::string path) : path_(std::move(path)) {}

    void record_usage(std::uint64_t milliseconds) override {
        std::lock_guard lock(mutex_);
        used_ms_ += milliseconds;
        ++records_;
        if (path_.empty()) return;
        std::ofstream(path_ + ".used") << "used_ms=" << used_ms_ << " records=" << records_ << "\n";
    }
    bool licensed() override {
        std::lock_guard lock(mutex_);
        return answer().first;
    }
    client::MeterStatus status() override {
        std::lock_guard lock(mutex_);
        const auto [licensed, state] = answer();
        const long long covered =
            balance_ms_ > 0 ? balance_ms_ - static_cast<long long>(used_ms_) : 0;
        return {state, licensed ? "scripted meter" : "scripted meter: not licensed",
                std::max(0LL, covered)};
    }
    std::chrono::milliseconds poll() override { return std::chrono::milliseconds(100); }
    void shutdown() override {}

  private:
    std::pair<bool, LicenceState> answer() {
        std::map<std::string, long long> keys;
        if (!path_.empty()) {
            std::ifstream in(path_);
            std::string line;
            while (std::getline(in, line)) {
                const size_t eq = line.find('=');
                if (eq != std::string::npos) {
                    keys[line.substr(0, eq)] = std::atoll(line.c_str() + eq + 1);
                }
            }
        }
        auto state = static_cast<LicenceState>(keys.count("state") ? keys["state"] : 1);
        balance_ms_ = keys.count("balance_ms") ? keys["balance_ms"] : 0;
        if (keys.count("balance_ms") && used_ms_ >= static_cast<uint64_t>(keys["balance_ms"])) {
            state = LicenceState::exhausted;
        }
        const bool covered = state == LicenceState::active || state == LicenceState::low_balance ||
                             state == LicenceState::offline_grace;
        const bool licensed = keys.count("licensed") && state != LicenceState::exhausted
                                  ? keys["licensed"] != 0
                                  : covered;
        return {licensed, state};
    }

    std::mutex mutex_;
    std::string path_;
    uint64_t used_ms_ = 0;
    uint64_t records_ = 0;
    long long balance_ms_ = 0;  // from the last read of the file; 0: unlimited
};

}  // namespace

std::unique_ptr<client::Meter> open_process_meter() {
    const char* path = std::getenv("STEMSPHERE_SCRIPTED_METER");
    if (path != nullptr) std::ofstream(std::string(path) + ".opened") << "opened\n";
    return std::make_unique<ScriptedMeter>(path != nullptr ? path : "");
}

}  // namespace stemsphere::plugin
