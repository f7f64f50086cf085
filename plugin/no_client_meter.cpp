// Built only when this tree has no metering client library (client/ not built): the plugin then
// can never be licensed, so the metered modes play Live (DSP) and the status says why. Nothing
// is free by accident.
#include "plugin/metering.h"

namespace stemsphere::plugin {

namespace {
class NoClientMeter final : public client::Meter {
  public:
    void record_usage(std::uint64_t) override {}
    bool licensed() override { return false; }
    client::MeterStatus status() override {
        return {client::LicenceState::signed_out,
                "this build has no metering client (client/ was not built)", 0};
    }
    std::chrono::milliseconds poll() override { return std::chrono::hours(1); }
    void shutdown() override {}
};
}  // namespace

std::unique_ptr<client::Meter> open_process_meter() {
    return std::make_unique<NoClientMeter>();
}

}  // namespace stemsphere::plugin
