// The thin LV2 glue of Stemsphere: descriptor, features, port connection, control values →
// engine controls, latency report, the HRTF file parameter (patch:Set / state / worker).
// All signal processing lives in engine/ (Processor).
//
// Only urid:map is required. With worker:schedule, HRTF files are loaded in the worker and
// swapped in on the audio thread (eg-sampler's pattern: load → respond → swap → free the old set
// in the worker). Without a worker, run() never loads: a patch:Set is then ignored, and files are
// loaded synchronously in instantiate() (the default set) and restore() (sessions).
#include <lv2/atom/atom.h>
#include <lv2/atom/forge.h>
#include <lv2/atom/util.h>
#include <lv2/core/lv2.h>
#include <lv2/log/log.h>
#include <lv2/log/logger.h>
#include <lv2/patch/patch.h>
#include <lv2/state/state.h>
#include <lv2/urid/urid.h>
#include <lv2/worker/worker.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "engine/binaural/hrtf_set.h"
#include "engine/delay_line.h"
#include "engine/processor.h"
#include "plugin/metering.h"
#include "plugin/ports.h"

namespace {

using stemsphere::HrtfSet;
using stemsphere::kOutputChannels;
using stemsphere::kStemCount;
using namespace stemsphere::plugin;  // the port table

// Two plugins, one binary: Stemsphere (stereo out) and Stemsphere Stems (main pair + 4 stem
// pairs, the original URI). Indexed by Layout; they differ only in which ports they have.
constexpr std::array<const char*, 2> kUris = {"https://stemsphere.dev/plugins/stemsphere-stereo",
                                              "https://stemsphere.dev/plugins/stemsphere"};
constexpr const char* kHrtfFileUri = "https://stemsphere.dev/plugins/stemsphere#hrtf_file";
// Debian's libmysofa1 ships the MIT KEMAR set here.
constexpr const char* kDefaultHrtf = "/usr/share/libmysofa/default.sofa";
constexpr size_t kMaxPath = 4096;

// A control value from the host: NaN/Inf (buggy hosts, corrupt sessions) fall back to the
// default, everything else is clamped to the declared range (plugin/ports.h).
float control_value(const float* port, const PortInfo& info) {
    if (port == nullptr) return info.default_value;
    const float v = *port;
    if (!std::isfinite(v)) return info.default_value;
    return v < info.minimum ? info.minimum : (v > info.maximum ? info.maximum : v);
}

// The engine's own defaults are the ports' defaults, so an unconnected port changes nothing.
static_assert([] {
    constexpr stemsphere::ProcessorControls d{};
    bool same = d.enabled == (kPorts[kEnabled].default_value > 0.5f) &&
                d.binaural == (kPorts[kBinaural].default_value > 0.5f) &&
                d.head_yaw_deg == kPorts[kYaw].default_value &&
                d.head_pitch_deg == kPorts[kPitch].default_value &&
                d.head_roll_deg == kPorts[kRoll].default_value;
    for (uint32_t s = 0; s < kStemCount; ++s) {
        same = same && d.stems[s].gain_db == kPorts[kGainFirst + s].default_value &&
               d.stems[s].mute == (kPorts[kMuteFirst + s].default_value > 0.5f) &&
               d.stems[s].solo == (kPorts[kSoloFirst + s].default_value > 0.5f) &&
               d.placement[s].azimuth_deg == kPorts[kAzimuthFirst + s].default_value &&
               d.placement[s].elevation_deg == kPorts[kElevationFirst + s].default_value &&
               d.placement[s].distance_m == kPorts[kDistanceFirst + s].default_value &&
               d.placement[s].width_deg == kPorts[kWidthFirst + s].default_value;
    }
    return same;
}());

// The data of an optional host feature, or nullptr.
template <typename T>
const T* find_feature(const LV2_Feature* const* features, const char* uri) {
    for (int i = 0; features != nullptr && features[i] != nullptr; ++i) {
        if (std::strcmp(features[i]->URI, uri) == 0)
            return static_cast<const T*>(features[i]->data);
    }
    return nullptr;
}

// Releases a path string handed out by state:mapPath.
void free_mapped_path(const LV2_State_Free_Path* free_path, char* path) {
    if (path == nullptr) return;
    if (free_path != nullptr) {
        free_path->free_path(free_path->handle, path);
    } else {
        std::free(path);
    }
}

// Messages between run() and the worker: plain bytes, copied by the host.
enum class Job : uint32_t { kLoadHrtf, kFreeHrtf, kBuildProcessor, kFreeProcessor };
struct BuildProcessorJob {
    Job type = Job::kBuildProcessor;
    stemsphere::QualityMode mode;
};
struct FreeProcessorJob {
    Job type = Job::kFreeProcessor;
    stemsphere::Processor* processor;
};
struct ProcessorBuilt {
    Job type = Job::kBuildProcessor;
    stemsphere::QualityMode mode;
    stemsphere::Processor* processor;
};
struct LoadHrtfJob {
    Job type = Job::kLoadHrtf;
    char path[kMaxPath];
};
struct FreeHrtfJob {
    Job type = Job::kFreeHrtf;
    HrtfSet* set;
};
struct HrtfLoaded {
    Job type = Job::kLoadHrtf;
    HrtfSet* set;
    char path[kMaxPath];
};

struct Uris {
    LV2_URID atom_Path, atom_URID, atom_Object, atom_Sequence, patch_Set, patch_Get, patch_property,
        patch_value, hrtf_file;
    explicit Uris(const LV2_URID_Map* m) {
        atom_Path = m->map(m->handle, LV2_ATOM__Path);
        atom_URID = m->map(m->handle, LV2_ATOM__URID);
        atom_Object = m->map(m->handle, LV2_ATOM__Object);
        atom_Sequence = m->map(m->handle, LV2_ATOM__Sequence);
        patch_Set = m->map(m->handle, LV2_PATCH__Set);
        patch_Get = m->map(m->handle, LV2_PATCH__Get);
        patch_property = m->map(m->handle, LV2_PATCH__property);
        patch_value = m->map(m->handle, LV2_PATCH__value);
        hrtf_file = m->map(m->handle, kHrtfFileUri);
    }
};

// Frames of the block from its first to its last non-silent frame: digital silence at a block's
// edges is never metered (a DAW keeps running plugins on idle tracks, a renderer flushes its
// latency with zeros), so an N-minute song is N minutes whatever the block grid.
uint32_t sounding_frames(const float* l, const float* r, uint32_t n) {
    uint32_t first = 0;
    while (first < n && l[first] == 0.0f && r[first] == 0.0f) ++first;
    if (first == n) return 0;
    uint32_t last = n - 1;
    while (l[last] == 0.0f && r[last] == 0.0f) --last;
    return last - first + 1;
}

struct Stemsphere {
    Stemsphere(const LV2_URID_Map* m, double sample_rate, Layout ports_layout)
        : rate(sample_rate), layout(ports_layout), uris(m), usage(sample_rate) {}

    double rate = 48000.0;
    Layout layout;           // which of the two plugins: the ports it has (plugin/ports.h)
    std::string models_dir;  // <bundle>/models: the neural modes' weights
    Uris uris;
    LV2_Atom_Forge forge{};
    LV2_Log_Logger logger{};
    const LV2_Worker_Schedule* schedule = nullptr;
    stemsphere::plugin::UsageChannel usage;  // metered milliseconds → the client thread
    bool metering = false;                   // registered with the MeteringService
    // Pro modes that are not sold yet are metered anyway (engine/quality_modes.h); read once
    // in instantiate(), never in run().
    bool meter_unsold = false;
    std::unique_ptr<stemsphere::Processor> processor;
    stemsphere::QualityMode active_mode = stemsphere::QualityMode::kLiveDsp;     // of `processor`
    stemsphere::QualityMode requested_mode = stemsphere::QualityMode::kLiveDsp;  // last asked for
    std::unique_ptr<HrtfSet> hrtf;  // the set the processor uses (owned here)
    char hrtf_path[kMaxPath] = {};  // its file; "" when none
    bool notify_path = false;       // announce hrtf_path on the notify port at the next run()
    // "Report Studio latency in Live modes": the Studio latency at this rate (0 when unknown:
    // the option then does nothing) and the delay that pads a Live mode's output up to it.
    size_t studio_latency = 0;
    std::unique_ptr<stemsphere::DelayLine> pad;

    // Port buffers by table row (plugin/ports.h); null until the host connects them, and always
    // for the rows this plugin does not have (the stereo plugin's stem outputs: not written).
    std::array<void*, kPortCount> port{};

    template <typename T>
    T* port_as(uint32_t index) const {
        return static_cast<T*>(port[index]);
    }
    float control(uint32_t index) const {
        return control_value(static_cast<const float*>(port[index]), kPorts[index]);
    }
    bool toggle(uint32_t index) const { return control(index) > 0.5f; }

    stemsphere::ProcessorControls read_controls() const {
        stemsphere::ProcessorControls c;
        c.enabled = toggle(kEnabled);
        c.binaural = toggle(kBinaural);
        for (uint32_t s = 0; s < kStemCount; ++s) {
            c.stems[s].gain_db = control(kGainFirst + s);
            c.stems[s].mute = toggle(kMuteFirst + s);
            c.stems[s].solo = toggle(kSoloFirst + s);
            auto& p = c.placement[s];
            p.azimuth_deg = control(kAzimuthFirst + s);
            p.elevation_deg = control(kElevationFirst + s);
            p.distance_m = control(kDistanceFirst + s);
            p.width_deg = control(kWidthFirst + s);
        }
        c.head_yaw_deg = control(kYaw);
        c.head_pitch_deg = control(kPitch);
        c.head_roll_deg = control(kRoll);
        return c;
    }

    // Frames the running mode's output is delayed by: with the option on, a Live mode (no
    // look-ahead) is padded to the Studio latency; Studio already has it and Render keeps its
    // own, longer one. Padding and reported latency change together, so the host's delay
    // compensation stays exact.
    size_t padding() const {
        const size_t own = processor->latency();
        if (!toggle(kStudioLatency) ||
            stemsphere::quality_mode_info(active_mode).max_lookahead_s > 0.0 ||
            studio_latency <= own) {
            return 0;
        }
        return std::min(studio_latency - own, pad->max_delay());
    }

    stemsphere::QualityMode read_mode() const {
        return static_cast<stemsphere::QualityMode>(
            static_cast<uint32_t>(std::lround(control(kQuality))));
    }

    // Does `mode` spend tokens in this instance?
    bool spends_tokens(stemsphere::QualityMode mode) const {
        return stemsphere::spends_tokens(stemsphere::quality_mode_info(mode), meter_unsold);
    }

    // A mode that spends tokens plays Live (DSP) while no lease covers it (same latency,
    // cross-faded).
    bool needs_fallback(stemsphere::QualityMode mode) const {
        return spends_tokens(mode) && !usage.licensed();
    }

    // Off the audio thread: a processor for `mode`, or nullptr (logged; the caller keeps the
    // current back end, so audio never stops).
    std::unique_ptr<stemsphere::Processor> build_processor(stemsphere::QualityMode mode) {
        std::string error;
        auto p = stemsphere::Processor::create(rate, mode, models_dir, &error);
        if (!p) {
            lv2_log_error(&logger,
                          "Stemsphere: cannot switch to %s, keeping the current mode: %s\n",
                          stemsphere::quality_mode_name(mode), error.c_str());
        } else {
            lv2_log_note(&logger, "Stemsphere: %s ready, latency %zu frames\n",
                         stemsphere::quality_mode_name(mode), p->latency());
        }
        return p;
    }

    // Makes `p` the running processor (same HRTF set and controls, fresh audio history) and
    // returns the one it replaces. Real-time safe.
    stemsphere::Processor* install_processor(stemsphere::Processor* p,
                                             stemsphere::QualityMode mode) {
        p->set_hrtf(hrtf.get());
        p->set_controls(read_controls());
        p->set_dsp_fallback(needs_fallback(mode));
        p->reset();
        stemsphere::Processor* old = processor.release();
        processor.reset(p);
        active_mode = mode;
        return old;
    }

    // Off the audio thread: read and prepare a SOFA file for this rate. Logs why on failure.
    std::unique_ptr<HrtfSet> load_hrtf(const char* path) {
        std::string error;
        auto set = HrtfSet::load(path, rate, &error, stemsphere::Processor::hrtf_filter_taps(rate));
        if (!set) {
            lv2_log_error(&logger, "Stemsphere: cannot use HRTF file \"%s\": %s\n", path,
                          error.c_str());
        } else {
            lv2_log_note(&logger, "Stemsphere: HRTF \"%s\" loaded (%zu directions)\n", path,
                         set->measurement_count());
        }
        return set;
    }

    // Installs a loaded set; returns the one it replaces (or `set` itself when refused).
    HrtfSet* install(std::unique_ptr<HrtfSet> set, const char* path) {
        // The running processor keeps its own pointer: swap it first.
        if (!processor->set_hrtf(set.get())) return set.release();
        HrtfSet* old = hrtf.release();
        hrtf = std::move(set);
        std::strncpy(hrtf_path, path, kMaxPath - 1);
        hrtf_path[kMaxPath - 1] = '\0';
        notify_path = true;
        return old;
    }
};

LV2_Handle instantiate(const LV2_Descriptor* descriptor, double rate, const char* bundle_path,
                       const LV2_Feature* const* features) {
    const Layout layout =
        std::strcmp(descriptor->URI, kUris[static_cast<size_t>(Layout::kStems)]) == 0
            ? Layout::kStems
            : Layout::kStereo;
    const auto* map = find_feature<LV2_URID_Map>(features, LV2_URID__map);
    const auto* log = find_feature<LV2_Log_Log>(features, LV2_LOG__log);
    const auto* schedule = find_feature<LV2_Worker_Schedule>(features, LV2_WORKER__schedule);
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
        auto self = std::make_unique<Stemsphere>(map, rate, layout);
        self->logger = logger;
        self->schedule = schedule;
        self->models_dir = std::string(bundle_path != nullptr ? bundle_path : ".") + "/models";
        const char* meter_unsold = std::getenv(stemsphere::kMeterUnsoldModesEnv);
        self->meter_unsold = meter_unsold != nullptr && std::string(meter_unsold) == "1";
        lv2_atom_forge_init(&self->forge, const_cast<LV2_URID_Map*>(map));
        self->processor = stemsphere::Processor::with_dsp_backend(rate);
        // The default set is loaded here (not in run()); a missing file leaves binaural off.
        if (auto set = self->load_hrtf(kDefaultHrtf)) {
            delete self->install(std::move(set), kDefaultHrtf);
        }
        // Read from the Studio model's header (not run): what the Live modes pad up to.
        std::string error;
        if (auto studio = stemsphere::Processor::mode_latency(
                rate, stemsphere::QualityMode::kStudio, self->models_dir, &error)) {
            self->studio_latency = *studio;
        } else {
            lv2_log_warning(&self->logger,
                            "Stemsphere: Studio latency unknown, \"Report Studio latency in Live "
                            "modes\" does nothing: %s\n",
                            error.c_str());
        }
        const size_t live = self->processor->latency();
        self->pad = std::make_unique<stemsphere::DelayLine>(
            kOutputChannels, self->studio_latency > live ? self->studio_latency - live : 0);
        lv2_log_note(&self->logger, "Stemsphere: %.0f Hz, STFT %zu/%zu, latency %zu frames\n", rate,
                     self->processor->format().fft_size, self->processor->format().hop,
                     self->processor->latency());
        // The process's metering thread starts (or gains a user) here, never in run().
        stemsphere::plugin::MeteringService::acquire(&self->usage, &self->logger);
        self->metering = true;
        return self.release();
    } catch (const std::exception& e) {
        lv2_log_error(&logger, "Stemsphere: cannot start: %s\n", e.what());
        return nullptr;
    }
}

void connect_port(LV2_Handle handle, uint32_t port, void* data) {
    auto* self = static_cast<Stemsphere*>(handle);
    const uint32_t row = port_row(self->layout, port);
    if (row < kPortCount) self->port[row] = data;
}

void activate(LV2_Handle handle) {
    auto* self = static_cast<Stemsphere*>(handle);
    // Not real-time: the chosen mode's processor is built right here (hosts without a worker
    // switch modes this way; with a worker run() also switches while playing).
    const stemsphere::QualityMode mode = self->read_mode();
    self->requested_mode = mode;
    if (mode != self->active_mode) {
        if (auto p = self->build_processor(mode)) {
            delete self->install_processor(p.release(), mode);
        }
    }
    self->processor->set_controls(self->read_controls());
    self->processor->set_dsp_fallback(self->needs_fallback(self->active_mode));
    self->processor->reset();
    self->pad->set_delay(self->padding());
    self->notify_path = true;
}

// patch:Set of hrtf_file with an atom:Path value → the worker loads it. patch:Get → announce.
void handle_message(Stemsphere* self, const LV2_Atom_Object* obj) {
    const Uris& u = self->uris;
    if (obj->body.otype == u.patch_Get) {
        self->notify_path = true;
        return;
    }
    if (obj->body.otype != u.patch_Set) return;
    const LV2_Atom* property = nullptr;
    const LV2_Atom* value = nullptr;
    lv2_atom_object_get(obj, u.patch_property, &property, u.patch_value, &value, 0);
    if (property == nullptr || property->type != u.atom_URID ||
        reinterpret_cast<const LV2_Atom_URID*>(property)->body != u.hrtf_file) {
        return;
    }
    if (value == nullptr || value->type != u.atom_Path || value->size == 0 ||
        value->size >= kMaxPath || self->schedule == nullptr) {
        return;  // malformed, or no worker: loading here would break real-time rules
    }
    LoadHrtfJob job;
    std::memcpy(job.path, LV2_ATOM_BODY_CONST(value), value->size);
    job.path[value->size - 1] = '\0';
    const auto size = static_cast<uint32_t>(offsetof(LoadHrtfJob, path) + value->size);
    self->schedule->schedule_work(self->schedule->handle, size, &job);
}

void write_notifications(Stemsphere* self) {
    auto* notify = self->port_as<LV2_Atom_Sequence>(kNotify);
    if (notify == nullptr) return;
    const uint32_t capacity = notify->atom.size;
    lv2_atom_forge_set_buffer(&self->forge, reinterpret_cast<uint8_t*>(notify), capacity);
    LV2_Atom_Forge_Frame seq;
    lv2_atom_forge_sequence_head(&self->forge, &seq, 0);
    if (self->notify_path && self->hrtf_path[0] != '\0') {
        const Uris& u = self->uris;
        LV2_Atom_Forge_Frame obj;
        lv2_atom_forge_frame_time(&self->forge, 0);
        lv2_atom_forge_object(&self->forge, &obj, 0, u.patch_Set);
        lv2_atom_forge_key(&self->forge, u.patch_property);
        lv2_atom_forge_urid(&self->forge, u.hrtf_file);
        lv2_atom_forge_key(&self->forge, u.patch_value);
        lv2_atom_forge_path(&self->forge, self->hrtf_path,
                            static_cast<uint32_t>(std::strlen(self->hrtf_path)));
        lv2_atom_forge_pop(&self->forge, &obj);
        self->notify_path = false;
    }
    lv2_atom_forge_pop(&self->forge, &seq);
}

void run(LV2_Handle handle, uint32_t n) {
    auto* self = static_cast<Stemsphere*>(handle);
    const size_t padding = self->padding();
    if (padding != self->pad->delay()) self->pad->set_delay(padding);  // starts from silence
    if (float* latency = self->port_as<float>(kLatency)) {
        *latency = static_cast<float>(self->processor->latency() + padding);
    }
    if (const auto* control = self->port_as<const LV2_Atom_Sequence>(kControl)) {
        LV2_ATOM_SEQUENCE_FOREACH(control, ev) {
            if (lv2_atom_forge_is_object_type(&self->forge, ev->body.type)) {
                handle_message(self, reinterpret_cast<const LV2_Atom_Object*>(&ev->body));
            }
        }
    }
    write_notifications(self);
    // A new quality mode is built in the worker and swapped in by work_response().
    const stemsphere::QualityMode mode = self->read_mode();
    if (mode != self->requested_mode && self->schedule != nullptr) {
        BuildProcessorJob job;
        job.mode = mode;
        if (self->schedule->schedule_work(self->schedule->handle, sizeof job, &job) ==
            LV2_WORKER_SUCCESS) {
            self->requested_mode = mode;
        }
    }
    const float* in_l = self->port_as<const float>(kInL);
    const float* in_r = self->port_as<const float>(kInR);
    if (in_l == nullptr || in_r == nullptr) return;  // host bug: nothing to read
    float* out[kOutputChannels];
    for (uint32_t c = 0; c < kOutputChannels; ++c) out[c] = self->port_as<float>(kOutFirst + c);
    // Metering: two atomic loads, and a ring push when a metered mode really ran.
    const bool metered = self->spends_tokens(self->active_mode);
    const bool licensed = self->usage.licensed();
    self->usage.set_wanted(metered);
    if (float* status = self->port_as<float>(kStatus)) {
        *status = metered ? self->usage.state()
                          : static_cast<float>(stemsphere::client::LicenceState::free_mode);
    }
    self->processor->set_dsp_fallback(metered && !licensed);
    self->processor->set_controls(self->read_controls());
    // Counted before process(): hosts may process in place.
    const uint32_t metered_frames = metered && licensed ? sounding_frames(in_l, in_r, n) : 0;
    self->processor->process(in_l, in_r, out, n);
    self->pad->process(out, n);
    if (metered_frames > 0) self->usage.add_frames(metered_frames);
}

void cleanup(LV2_Handle handle) {
    auto* self = static_cast<Stemsphere*>(handle);
    // Records this instance's last milliseconds; the last instance stops the client thread.
    if (self->metering) stemsphere::plugin::MeteringService::release(&self->usage);
    delete self;
}

// Worker thread: load or free HRTF sets.
LV2_Worker_Status work(LV2_Handle handle, LV2_Worker_Respond_Function respond,
                       LV2_Worker_Respond_Handle respond_handle, uint32_t size, const void* data) {
    auto* self = static_cast<Stemsphere*>(handle);
    if (size < sizeof(Job)) return LV2_WORKER_ERR_UNKNOWN;
    Job type;
    std::memcpy(&type, data, sizeof type);
    if (type == Job::kFreeProcessor && size == sizeof(FreeProcessorJob)) {
        FreeProcessorJob job;
        std::memcpy(&job, data, sizeof job);
        delete job.processor;
        return LV2_WORKER_SUCCESS;
    }
    if (type == Job::kBuildProcessor && size == sizeof(BuildProcessorJob)) {
        BuildProcessorJob job;
        std::memcpy(&job, data, sizeof job);
        auto p = self->build_processor(job.mode);
        if (!p) return LV2_WORKER_SUCCESS;  // logged; the current back end keeps running
        ProcessorBuilt built;
        built.mode = job.mode;
        built.processor = p.release();
        if (respond(respond_handle, sizeof built, &built) != LV2_WORKER_SUCCESS) {
            delete built.processor;
            lv2_log_error(&self->logger, "Stemsphere: host refused the worker response\n");
        }
        return LV2_WORKER_SUCCESS;
    }
    if (type == Job::kFreeHrtf && size == sizeof(FreeHrtfJob)) {
        FreeHrtfJob job;
        std::memcpy(&job, data, sizeof job);
        delete job.set;
        return LV2_WORKER_SUCCESS;
    }
    if (type != Job::kLoadHrtf || size <= offsetof(LoadHrtfJob, path) ||
        size > sizeof(LoadHrtfJob)) {
        return LV2_WORKER_ERR_UNKNOWN;
    }
    HrtfLoaded loaded{};
    std::memcpy(loaded.path, static_cast<const char*>(data) + offsetof(LoadHrtfJob, path),
                size - offsetof(LoadHrtfJob, path));
    loaded.path[kMaxPath - 1] = '\0';
    auto set = self->load_hrtf(loaded.path);
    if (!set) return LV2_WORKER_SUCCESS;  // logged; the previous set stays active
    loaded.set = set.release();
    if (respond(respond_handle, sizeof loaded, &loaded) != LV2_WORKER_SUCCESS) {
        delete loaded.set;
        lv2_log_error(&self->logger, "Stemsphere: host refused the worker response\n");
    }
    return LV2_WORKER_SUCCESS;
}

// Audio thread: swap a new HRTF set or processor in, hand the old one to the worker to free.
LV2_Worker_Status work_response(LV2_Handle handle, uint32_t size, const void* data) {
    auto* self = static_cast<Stemsphere*>(handle);
    if (size < sizeof(Job)) return LV2_WORKER_ERR_UNKNOWN;
    Job type;
    std::memcpy(&type, data, sizeof type);
    if (type == Job::kBuildProcessor && size == sizeof(ProcessorBuilt)) {
        ProcessorBuilt built;
        std::memcpy(&built, data, sizeof built);
        FreeProcessorJob job;
        job.processor = self->install_processor(built.processor, built.mode);
        // Leaking one processor is better than freeing it on the audio thread.
        self->schedule->schedule_work(self->schedule->handle, sizeof job, &job);
        return LV2_WORKER_SUCCESS;
    }
    if (type != Job::kLoadHrtf || size != sizeof(HrtfLoaded)) return LV2_WORKER_ERR_UNKNOWN;
    HrtfLoaded loaded;
    std::memcpy(&loaded, data, sizeof loaded);
    HrtfSet* old = self->install(std::unique_ptr<HrtfSet>(loaded.set), loaded.path);
    if (old != nullptr) {
        FreeHrtfJob job;
        job.set = old;
        self->schedule->schedule_work(self->schedule->handle, sizeof job, &job);
    }
    return LV2_WORKER_SUCCESS;
}

LV2_State_Status save(LV2_Handle handle, LV2_State_Store_Function store,
                      LV2_State_Handle state_handle, uint32_t, const LV2_Feature* const* features) {
    auto* self = static_cast<Stemsphere*>(handle);
    if (self->hrtf_path[0] == '\0') return LV2_STATE_SUCCESS;
    const auto* map_path = find_feature<LV2_State_Map_Path>(features, LV2_STATE__mapPath);
    const auto* free_path = find_feature<LV2_State_Free_Path>(features, LV2_STATE__freePath);
    char* abstract =
        map_path != nullptr ? map_path->abstract_path(map_path->handle, self->hrtf_path) : nullptr;
    const char* value = abstract != nullptr ? abstract : self->hrtf_path;
    const LV2_State_Status status =
        store(state_handle, self->uris.hrtf_file, value, std::strlen(value) + 1,
              self->uris.atom_Path, LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE);
    free_mapped_path(free_path, abstract);
    return status;
}

// Not declared threadSafeRestore: the host never runs restore() concurrently with run(), so the
// set is loaded and swapped here directly.
LV2_State_Status restore(LV2_Handle handle, LV2_State_Retrieve_Function retrieve,
                         LV2_State_Handle state_handle, uint32_t,
                         const LV2_Feature* const* features) {
    auto* self = static_cast<Stemsphere*>(handle);
    size_t size = 0;
    uint32_t type = 0;
    uint32_t flags = 0;
    const void* value = retrieve(state_handle, self->uris.hrtf_file, &size, &type, &flags);
    if (value == nullptr) return LV2_STATE_SUCCESS;  // nothing saved: keep the current set
    if (type != self->uris.atom_Path || size == 0 || size >= kMaxPath) {
        lv2_log_error(&self->logger, "Stemsphere: ignoring malformed saved HRTF path\n");
        return LV2_STATE_ERR_BAD_TYPE;
    }
    const auto* map_path = find_feature<LV2_State_Map_Path>(features, LV2_STATE__mapPath);
    const auto* free_path = find_feature<LV2_State_Free_Path>(features, LV2_STATE__freePath);
    std::string stored(static_cast<const char*>(value),
                       strnlen(static_cast<const char*>(value), size));
    char* absolute =
        map_path != nullptr ? map_path->absolute_path(map_path->handle, stored.c_str()) : nullptr;
    const std::string path = absolute != nullptr ? absolute : stored;
    free_mapped_path(free_path, absolute);
    if (path == self->hrtf_path) return LV2_STATE_SUCCESS;
    auto set = self->load_hrtf(path.c_str());
    if (!set) return LV2_STATE_SUCCESS;  // logged; the previous set stays active
    delete self->install(std::move(set), path.c_str());
    return LV2_STATE_SUCCESS;
}

const void* extension_data(const char* uri) {
    static const LV2_Worker_Interface worker = {work, work_response, nullptr};
    static const LV2_State_Interface state = {save, restore};
    if (std::strcmp(uri, LV2_WORKER__interface) == 0) return &worker;
    if (std::strcmp(uri, LV2_STATE__interface) == 0) return &state;
    return nullptr;
}

const std::array<LV2_Descriptor, 2> kDescriptors = {{
    {kUris[0], instantiate, connect_port, activate, run, nullptr, cleanup, extension_data},
    {kUris[1], instantiate, connect_port, activate, run, nullptr, cleanup, extension_data},
}};

}  // namespace

extern "C" LV2_SYMBOL_EXPORT const LV2_Descriptor* lv2_descriptor(uint32_t index) {
    return index < kDescriptors.size() ? &kDescriptors[index] : nullptr;
}
