// Stemsphere inside Carla's rack engine (libcarla_host-plugin.so), driven offline: this program
// calls the rack's process() with its own buffers (docs: ../shared/docs/carla.md §5), so what it
// measures is what Carla's LV2 host does with the plugin (features, worker, latency, state).
//
// Checks, each printed as one line, exit status 1 if any fails:
//  - for every quality mode and several block sizes: an impulse comes out of the main pair
//    exactly Carla's reported latency later (binaural off), and the main pair equals the delayed
//    input afterwards (the stems sum to the mix);
//  - state: controls, quality and the HRTF file saved by Carla (.carxs) and loaded into a fresh
//    rack give the same controls, latency and output.
//
// Not built by CMake (it needs Carla's headers): tests/hosts/carla_test.sh compiles it against
// the Carla build in the cache. Usage: carla_rack URI SOFA_FILE WORK_DIR   (LV2_PATH from env)
#include <CarlaHost.h>
#include <CarlaNativePlugin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

CARLA_BACKEND_USE_NAMESPACE

namespace {

constexpr double kRate = 44100.0;
uint32_t g_block = 512;
NativeTimeInfo g_time;
int g_failures = 0;

uint32_t get_buffer_size(NativeHostHandle) {
    return g_block;
}
double get_sample_rate(NativeHostHandle) {
    return kRate;
}
bool is_offline(NativeHostHandle) {
    return true;
}
const NativeTimeInfo* get_time_info(NativeHostHandle) {
    return &g_time;
}
bool write_midi_event(NativeHostHandle, const NativeMidiEvent*) {
    return true;
}
void ui_parameter_changed(NativeHostHandle, uint32_t, float) {}
void ui_midi_program_changed(NativeHostHandle, uint8_t, uint32_t, uint32_t) {}
void ui_custom_data_changed(NativeHostHandle, const char*, const char*) {}
void ui_closed(NativeHostHandle) {}
const char* ui_file(NativeHostHandle, bool, const char*, const char*) {
    return nullptr;
}
intptr_t host_dispatcher(NativeHostHandle, NativeHostDispatcherOpcode, int32_t, intptr_t, void*,
                         float) {
    return 0;
}

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++g_failures;
}

double seconds_now() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// One Carla rack with Stemsphere in slot 0.
class Rack {
  public:
    Rack(const char* uri, uint32_t block) {
        g_block = block;
        std::memset(&g_time, 0, sizeof g_time);
        host_ = {nullptr,
                 "",
                 "stemsphere-carla-test",
                 0,
                 get_buffer_size,
                 get_sample_rate,
                 is_offline,
                 get_time_info,
                 write_midi_event,
                 ui_parameter_changed,
                 ui_midi_program_changed,
                 ui_custom_data_changed,
                 ui_closed,
                 ui_file,
                 ui_file,
                 host_dispatcher};
        desc_ = carla_get_native_rack_plugin();
        handle_ = desc_->instantiate(&host_);
        if (handle_ == nullptr) return;
        h_ = carla_create_native_plugin_host_handle(desc_, handle_);
        loaded_ = carla_add_plugin(h_, BINARY_NATIVE, PLUGIN_LV2, "", nullptr, uri, 0, nullptr,
                                   PLUGIN_OPTIONS_NULL);
        if (!loaded_) {
            std::printf("load failed: %s\n", carla_get_last_error(h_));
            return;
        }
        carla_set_active(h_, 0, true);
        desc_->activate(handle_);
        in_.assign(2, std::vector<float>(block));
        out_.assign(2, std::vector<float>(block));
    }
    ~Rack() {
        if (handle_ == nullptr) return;
        if (loaded_) desc_->deactivate(handle_);
        carla_host_handle_free(h_);
        desc_->cleanup(handle_);
    }
    Rack(const Rack&) = delete;
    Rack& operator=(const Rack&) = delete;

    bool loaded() const { return loaded_; }
    CarlaHostHandle handle() const { return h_; }
    uint32_t latency() const { return carla_get_plugin_latency(h_, 0); }

    int param(const char* symbol) const {
        const uint32_t n = carla_get_parameter_count(h_, 0);
        for (uint32_t i = 0; i < n; ++i) {
            const CarlaParameterInfo* info = carla_get_parameter_info(h_, 0, i);
            if (info != nullptr && std::strcmp(info->symbol, symbol) == 0) {
                return static_cast<int>(i);
            }
        }
        return -1;
    }
    bool set(const char* symbol, float value) {
        const int p = param(symbol);
        if (p < 0) return false;
        carla_set_parameter_value(h_, 0, static_cast<uint32_t>(p), value);
        return true;
    }
    float get(const char* symbol) const {
        const int p = param(symbol);
        return p < 0 ? NAN : carla_get_current_parameter_value(h_, 0, static_cast<uint32_t>(p));
    }

    // Plays `l`/`r` in blocks; returns the main pair (rack mode: the plugin's first output pair).
    void play(const std::vector<float>& l, const std::vector<float>& r, std::vector<float>& out_l,
              std::vector<float>& out_r) {
        out_l.assign(l.size(), 0.0f);
        out_r.assign(l.size(), 0.0f);
        for (size_t start = 0; start < l.size(); start += g_block) {
            const size_t n = std::min<size_t>(g_block, l.size() - start);
            std::fill(in_[0].begin(), in_[0].end(), 0.0f);
            std::fill(in_[1].begin(), in_[1].end(), 0.0f);
            std::copy_n(l.begin() + static_cast<long>(start), n, in_[0].begin());
            std::copy_n(r.begin() + static_cast<long>(start), n, in_[1].begin());
            step();
            std::copy_n(out_[0].begin(), n, out_l.begin() + static_cast<long>(start));
            std::copy_n(out_[1].begin(), n, out_r.begin() + static_cast<long>(start));
        }
    }
    // Silence until the reported latency differs from `from` (a mode switch took effect), at most
    // `max_wall` seconds; returns the frames played.
    size_t preroll_until_latency_leaves(uint32_t from, double max_wall) {
        const double t0 = seconds_now();
        size_t frames = 0;
        std::fill(in_[0].begin(), in_[0].end(), 0.0f);
        std::fill(in_[1].begin(), in_[1].end(), 0.0f);
        while (latency() == from && seconds_now() - t0 < max_wall) {
            step();
            frames += g_block;
        }
        return frames;
    }
    void silence(size_t frames) {
        std::fill(in_[0].begin(), in_[0].end(), 0.0f);
        std::fill(in_[1].begin(), in_[1].end(), 0.0f);
        for (size_t f = 0; f < frames; f += g_block) step();
    }

  private:
    void step() {
        float* ins[2] = {in_[0].data(), in_[1].data()};
        float* outs[2] = {out_[0].data(), out_[1].data()};
        g_time.playing = true;
        desc_->process(handle_, ins, outs, g_block, nullptr, 0);
        g_time.frame += g_block;
        // Carla delivers worker responses and other non-real-time work from idle.
        desc_->dispatcher(handle_, NATIVE_PLUGIN_OPCODE_IDLE, 0, 0, nullptr, 0.0f);
    }

    NativeHostDescriptor host_{};
    const NativePluginDescriptor* desc_ = nullptr;
    NativePluginHandle handle_ = nullptr;
    CarlaHostHandle h_ = nullptr;
    bool loaded_ = false;
    std::vector<std::vector<float>> in_, out_;
};

std::vector<float> noise(size_t frames, unsigned seed, float amp) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, amp);
    std::vector<float> x(frames);
    for (auto& v : x) v = dist(rng);
    return x;
}

// Impulse then noise through one mode at one block size; lag and residual against the input.
void check_mode(const char* uri, int mode, uint32_t block) {
    Rack rack(uri, block);
    const std::string name = "quality " + std::to_string(mode) + " block " + std::to_string(block);
    if (!rack.loaded()) {
        check(false, name + ": plugin loads");
        return;
    }
    rack.set("binaural", 0.0f);
    rack.silence(4096);
    const uint32_t live = rack.latency();
    if (mode != 0) {
        rack.set("quality", static_cast<float>(mode));
        if (mode >= 2) rack.preroll_until_latency_leaves(live, 60.0);
    }
    rack.silence(8192);  // past the fade-in of a fresh instance
    const uint32_t latency = rack.latency();
    const size_t at = 1000;
    const size_t frames = at + latency + static_cast<size_t>(0.6 * kRate);
    std::vector<float> l = noise(frames, 5, 0.1f), r = noise(frames, 6, 0.1f);
    std::fill(l.begin(), l.begin() + static_cast<long>(at) + 4000, 0.0f);
    std::fill(r.begin(), r.begin() + static_cast<long>(at) + 4000, 0.0f);
    l[at] = r[at] = 1.0f;
    std::vector<float> out_l, out_r;
    rack.play(l, r, out_l, out_r);
    size_t peak = 0;
    bool finite = true;
    for (size_t i = 0; i < frames; ++i) {
        finite = finite && std::isfinite(out_l[i]) && std::isfinite(out_r[i]);
        if (std::abs(out_l[i]) > std::abs(out_l[peak])) peak = i;
    }
    double err = 0.0, ref = 0.0;
    for (size_t i = at + latency; i < frames; ++i) {
        err = std::max(err, static_cast<double>(std::abs(out_l[i] - l[i - latency])));
        err = std::max(err, static_cast<double>(std::abs(out_r[i] - r[i - latency])));
        ref = std::max(ref, static_cast<double>(std::abs(l[i - latency])));
    }
    const double residual_db = 20.0 * std::log10(err / ref + 1e-30);
    char line[256];
    std::snprintf(line, sizeof line,
                  ": Carla latency %u, impulse lag %zu, main pair - delayed input %.1f dB%s",
                  latency, peak - at, residual_db, finite ? "" : ", NON-FINITE output");
    check(finite && peak - at == latency && residual_db < -80.0 && (mode < 2 || latency > live),
          name + line);
}

// Saves controls, quality and HRTF file with Carla's own state file, loads it into a fresh rack.
void check_state(const char* uri, const char* sofa, const std::string& work) {
    const std::string file = work + "/stemsphere.carxs";
    const std::vector<float> l = noise(40000, 7, 0.1f), r = noise(40000, 8, 0.1f);
    std::vector<float> a_l, a_r, b_l, b_r;
    const std::pair<const char*, float> controls[] = {
        {"vocals_gain", -7.5f}, {"drums_azimuth", 45.0f}, {"bass_mute", 1.0f}, {"quality", 2.0f}};
    uint32_t saved_latency = 0;
    {
        Rack a(uri, 512);
        if (!a.loaded()) return check(false, "state: plugin loads");
        a.silence(4096);
        const uint32_t live = a.latency();
        carla_set_custom_data(a.handle(), 0, CUSTOM_DATA_TYPE_PATH, "file", sofa);
        for (const auto& [sym, v] : controls) a.set(sym, v);
        a.preroll_until_latency_leaves(live, 60.0);
        a.silence(8192);
        saved_latency = a.latency();
        a.play(l, r, a_l, a_r);
        carla_prepare_for_save(a.handle(), 0);
        check(carla_save_plugin_state(a.handle(), 0, file.c_str()), "state: Carla saves " + file);
    }
    Rack b(uri, 512);
    if (!b.loaded()) return check(false, "state: plugin loads again");
    b.silence(4096);
    const uint32_t live = b.latency();
    check(carla_load_plugin_state(b.handle(), 0, file.c_str()), "state: Carla loads it");
    for (const auto& [sym, v] : controls) {
        check(b.get(sym) == v, std::string("state: ") + sym + " restored as " +
                                   std::to_string(b.get(sym)) + " (saved " + std::to_string(v) +
                                   ")");
    }
    b.preroll_until_latency_leaves(live, 60.0);
    b.silence(8192);
    check(b.latency() == saved_latency, "state: latency after load " + std::to_string(b.latency()) +
                                            " == saved " + std::to_string(saved_latency));
    bool hrtf_saved = false;
    const uint32_t n = carla_get_custom_data_count(b.handle(), 0);
    for (uint32_t i = 0; i < n; ++i) {
        const CustomData* cd = carla_get_custom_data(b.handle(), 0, i);
        if (cd != nullptr && std::strstr(cd->value, ".sofa") != nullptr) hrtf_saved = true;
    }
    check(hrtf_saved, "state: the HRTF file is in the restored plugin's data");
    b.play(l, r, b_l, b_r);
    double diff = 0.0;
    for (size_t i = 0; i < l.size(); ++i) {
        diff = std::max({diff, static_cast<double>(std::abs(a_l[i] - b_l[i])),
                         static_cast<double>(std::abs(a_r[i] - b_r[i]))});
    }
    check(diff < 1e-4, "state: restored output equals the saved instance's (max difference " +
                           std::to_string(diff) + ")");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s URI SOFA_FILE WORK_DIR\n", argv[0]);
        return 2;
    }
    const char* uri = argv[1];
    // Every mode at a block of 1000 and 4096 frames; the small blocks in Live (DSP) and Studio,
    // whose cost grows with the number of run() calls (a block of 1 runs about 3x real time).
    const std::pair<int, std::vector<uint32_t>> plan[] = {
        {0, {1, 63, 1000, 4096}}, {1, {1000, 4096}}, {2, {63, 4096}}, {3, {1000}}};
    for (const auto& [mode, blocks] : plan) {
        for (uint32_t block : blocks) check_mode(uri, mode, block);
    }
    check_state(uri, argv[2], argv[3]);
    std::printf("%s (%d failed)\n", g_failures == 0 ? "PASS" : "FAIL", g_failures);
    return g_failures == 0 ? 0 : 1;
}
