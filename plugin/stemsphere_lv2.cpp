// The thin LV2 glue of Stemsphere: descriptor, features, port connection, control values →
// engine controls, latency report. All signal processing lives in engine/ (Processor).
//
// Only urid:map is required. log:log is used when present (stderr otherwise); options are read
// for information only, since the engine accepts any block length.
#include <lv2/core/lv2.h>
#include <lv2/log/log.h>
#include <lv2/log/logger.h>
#include <lv2/urid/urid.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "engine/processor.h"

namespace {

using stemsphere::kOutputChannels;
using stemsphere::kStemCount;

constexpr const char* kUri = "https://stemsphere.dev/plugins/stemsphere";

// Port indices; must match ttl/stemsphere.ttl.in.
enum Port : uint32_t {
    kInL = 0,
    kInR = 1,
    kOutFirst = 2,  // main L/R, then vocals, drums, bass, other (L/R each)
    kEnabled = kOutFirst + kOutputChannels,
    kQuality,
    kGainFirst,
    kMuteFirst = kGainFirst + kStemCount,
    kSoloFirst = kMuteFirst + kStemCount,
    kLatency = kSoloFirst + kStemCount,
    kPortCount
};

// A control value from the host: NaN/Inf (buggy hosts, corrupt sessions) fall back to the
// default, everything else is clamped to the declared range.
float control_value(const float* port, float fallback, float lo, float hi) {
    if (port == nullptr) return fallback;
    const float v = *port;
    if (!std::isfinite(v)) return fallback;
    return v < lo ? lo : (v > hi ? hi : v);
}

bool toggle_value(const float* port, bool fallback) {
    return control_value(port, fallback ? 1.0f : 0.0f, 0.0f, 1.0f) > 0.5f;
}

struct Stemsphere {
    std::unique_ptr<stemsphere::Processor> processor;
    LV2_Log_Logger logger{};
    const float* in[2] = {nullptr, nullptr};
    float* out[kOutputChannels] = {};
    const float* enabled = nullptr;
    const float* quality = nullptr;
    const float* gain[kStemCount] = {};
    const float* mute[kStemCount] = {};
    const float* solo[kStemCount] = {};
    float* latency = nullptr;

    stemsphere::ProcessorControls read_controls() const {
        stemsphere::ProcessorControls c;
        c.enabled = toggle_value(enabled, true);
        for (size_t s = 0; s < kStemCount; ++s) {
            c.stems[s].gain_db = control_value(gain[s], 0.0f, -60.0f, 12.0f);
            c.stems[s].mute = toggle_value(mute[s], false);
            c.stems[s].solo = toggle_value(solo[s], false);
        }
        return c;
    }
};

LV2_Handle instantiate(const LV2_Descriptor*, double rate, const char*,
                       const LV2_Feature* const* features) {
    const LV2_URID_Map* map = nullptr;
    const LV2_Log_Log* log = nullptr;
    for (int i = 0; features != nullptr && features[i] != nullptr; ++i) {
        if (std::strcmp(features[i]->URI, LV2_URID__map) == 0) {
            map = static_cast<const LV2_URID_Map*>(features[i]->data);
        } else if (std::strcmp(features[i]->URI, LV2_LOG__log) == 0) {
            log = static_cast<const LV2_Log_Log*>(features[i]->data);
        }
    }
    LV2_Log_Logger logger{};
    lv2_log_logger_init(&logger, const_cast<LV2_URID_Map*>(map), const_cast<LV2_Log_Log*>(log));
    if (map == nullptr) {
        lv2_log_error(&logger, "Stemsphere: host does not provide urid:map\n");
        return nullptr;
    }
    if (!(rate >= 8000.0 && rate <= 384000.0)) {
        lv2_log_error(&logger, "Stemsphere: unsupported sample rate %.0f Hz (8 kHz - 384 kHz)\n",
                      rate);
        return nullptr;
    }
    try {
        auto self = std::make_unique<Stemsphere>();
        self->logger = logger;
        self->processor = stemsphere::Processor::with_dsp_backend(rate);
        lv2_log_note(&self->logger, "Stemsphere: %.0f Hz, STFT %zu/%zu, latency %zu frames\n", rate,
                     self->processor->format().fft_size, self->processor->format().hop,
                     self->processor->latency());
        return self.release();
    } catch (const std::exception& e) {
        lv2_log_error(&logger, "Stemsphere: cannot start: %s\n", e.what());
        return nullptr;
    }
}

void connect_port(LV2_Handle handle, uint32_t port, void* data) {
    auto* self = static_cast<Stemsphere*>(handle);
    if (port == kInL || port == kInR) {
        self->in[port] = static_cast<const float*>(data);
    } else if (port >= kOutFirst && port < kOutFirst + kOutputChannels) {
        self->out[port - kOutFirst] = static_cast<float*>(data);
    } else if (port == kEnabled) {
        self->enabled = static_cast<const float*>(data);
    } else if (port == kQuality) {
        self->quality = static_cast<const float*>(data);
    } else if (port >= kGainFirst && port < kMuteFirst) {
        self->gain[port - kGainFirst] = static_cast<const float*>(data);
    } else if (port >= kMuteFirst && port < kSoloFirst) {
        self->mute[port - kMuteFirst] = static_cast<const float*>(data);
    } else if (port >= kSoloFirst && port < kLatency) {
        self->solo[port - kSoloFirst] = static_cast<const float*>(data);
    } else if (port == kLatency) {
        self->latency = static_cast<float*>(data);
    }
}

void activate(LV2_Handle handle) {
    auto* self = static_cast<Stemsphere*>(handle);
    self->processor->set_controls(self->read_controls());
    self->processor->reset();
}

void run(LV2_Handle handle, uint32_t n) {
    auto* self = static_cast<Stemsphere*>(handle);
    if (self->latency != nullptr) *self->latency = static_cast<float>(self->processor->latency());
    if (self->in[0] == nullptr || self->in[1] == nullptr) return;  // host bug: nothing to read
    self->processor->set_controls(self->read_controls());
    self->processor->process(self->in[0], self->in[1], self->out, n);
}

void cleanup(LV2_Handle handle) {
    delete static_cast<Stemsphere*>(handle);
}

const void* extension_data(const char*) {
    return nullptr;
}

const LV2_Descriptor kDescriptor = {kUri, instantiate, connect_port, activate,
                                    run,  nullptr,     cleanup,      extension_data};

}  // namespace

extern "C" LV2_SYMBOL_EXPORT const LV2_Descriptor* lv2_descriptor(uint32_t index) {
    return index == 0 ? &kDescriptor : nullptr;
}
