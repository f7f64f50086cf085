#pragma once
// The one LV2 host of the project (lilv based). Used by stemsphere-render, the plugin tests and
// the benchmarks, so every consumer exercises the plugin the way a DAW does.
//
// Threading: one PluginHost is driven from one thread (create, controls, run, state). The plugin
// may call back from its worker thread (urid:map, log:log, worker respond); those paths are
// thread-safe. Only run() is meant to be real-time: it does not allocate or lock itself (except
// to record a path the plugin announces on its notify port, see notified_path()).

#include <lilv/lilv.h>
#include <lv2/atom/atom.h>
#include <lv2/log/log.h>
#include <lv2/options/options.h>
#include <lv2/state/state.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tools/lv2host/plugin_worker.h"
#include "tools/lv2host/urid_map.h"

namespace stemsphere::host {

struct HostOptions {
    double sample_rate = 48000;
    // Largest n passed to run(); also announced as bufsz:maxBlockLength / nominalBlockLength.
    uint32_t max_block = 4096;
    // worker:schedule. Synchronous by default: work() runs inside schedule_work, responses are
    // delivered after run() in a drain loop (deterministic, like a DAW's offline export).
    bool provide_worker = true;
    // Real worker thread + ring buffers (like jalv). Same results once wait_for_worker() returned.
    bool threaded_worker = false;
    // Toggles that let tests play "any host": the plugin must work with urid:map alone.
    bool provide_options = true;        // opts:options (sampleRate, block lengths, sequenceSize)
    bool provide_bounded_block = true;  // bufsz:boundedBlockLength
    bool provide_log = true;            // log:log (captured into log_lines())
    bool provide_state_paths = true;    // state:makePath + state:freePath at instantiate
    // Directory for state:makePath and saved state files; a private temp dir if empty (removed
    // again when the host is destroyed).
    std::string state_dir;
    // Bytes of each atom port buffer (announced as bufsz:sequenceSize); raised to the largest
    // rsz:minimumSize of the plugin's ports.
    uint32_t atom_buffer_bytes = 65536;
    // Further bundles to load next to the plugin's own (a separate preset bundle, for example).
    std::vector<std::string> extra_bundles;
    // Also print what the plugin logs to stderr as "[plugin] error: ..." (for command-line tools).
    bool echo_log_to_stderr = false;
};

// Metadata of one control port, from the plugin's TTL.
struct ControlInfo {
    std::string symbol;
    std::string name;
    uint32_t index = 0;
    bool is_input = true;
    float minimum = 0;  // NaN when the TTL gives none
    float maximum = 0;  // NaN when the TTL gives none
    float default_value = 0;
    bool integer = false;
    bool toggled = false;
    bool enumeration = false;
    std::vector<std::pair<float, std::string>> scale_points;  // value, label
};

class PluginHost {
  public:
    // Loads ONLY the bundle at `bundle_dir` (plus options.extra_bundles; no LV2_PATH scan) and
    // instantiates plugin `uri`. Returns nullptr and sets *error (if non-null) on failure: no
    // bundle there, unknown URI (the message lists the URIs found), a required feature or option
    // this host does not provide (named), an unsupported port type, or a failed instantiate.
    static std::unique_ptr<PluginHost> create(const std::string& bundle_dir, const std::string& uri,
                                              const HostOptions& options, std::string* error);
    // Same, but discovers plugins like other hosts do (LV2_PATH, else ~/.lv2:/usr/local/lib/lv2:
    // /usr/lib/lv2). For peers such as ZamHeadX2 in the benchmarks.
    static std::unique_ptr<PluginHost> create_from_lv2_path(const std::string& uri,
                                                            const HostOptions& options,
                                                            std::string* error);
    ~PluginHost();
    PluginHost(const PluginHost&) = delete;
    PluginHost& operator=(const PluginHost&) = delete;

    const std::string& uri() const { return uri_; }
    std::string name() const;
    double sample_rate() const { return options_.sample_rate; }
    uint32_t max_block() const { return options_.max_block; }

    // lv2:requiredFeature URIs of the plugin, and the feature URIs this host passed it.
    std::vector<std::string> required_features() const;
    const std::vector<std::string>& provided_features() const { return provided_feature_uris_; }
    // lilv_plugin_verify(): the TTL describes a complete plugin (binary, ports, ...).
    bool verify() const;

    // Audio ports, in port order.
    size_t audio_input_count() const { return audio_inputs_.size(); }
    size_t audio_output_count() const { return audio_outputs_.size(); }
    std::vector<std::string> audio_input_symbols() const;
    std::vector<std::string> audio_output_symbols() const;

    // The symbol of every port, by port index (audio, control, atom and others).
    std::vector<std::string> port_symbols() const;
    // Atom ports, in port order.
    std::vector<std::string> atom_input_symbols() const { return symbols_of(atom_inputs_); }
    std::vector<std::string> atom_output_symbols() const { return symbols_of(atom_outputs_); }

    // Control ports, in port order.
    std::vector<std::string> control_input_symbols() const;
    std::vector<std::string> control_output_symbols() const;
    std::optional<ControlInfo> control_info(const std::string& symbol) const;
    // Sets a control input for the following run() calls. Rejects, with a one-line *error and no
    // change: unknown symbol (the message lists the valid ones), non-finite value, value outside
    // [minimum, maximum], non-integer value on an lv2:integer / toggled port, or a value that is
    // not one of the scale points of an lv2:enumeration port.
    bool set_control(const std::string& symbol, float value, std::string* error);
    // Current value of a control input or output; NaN for an unknown symbol.
    float control(const std::string& symbol) const;

    // The control output with lv2:designation lv2:latency or lv2:reportsLatency, if any, and its
    // current value in frames (0 without such a port). Valid after the first run().
    std::optional<uint32_t> latency_port_index() const { return latency_port_; }
    float latency() const;

    // Labels (rdfs:label) of the pset:Preset resources related to the plugin.
    std::vector<std::string> preset_labels() const;
    // Restores the preset through lilv_state_restore (controls and plugin state; the worker is
    // passed for state:threadSafeRestore). Pending worker responses are delivered before it
    // returns. Unknown label: false, *error lists the available labels.
    bool apply_preset(const std::string& label, std::string* error);

    // True when the plugin has an atom input that takes patch messages.
    bool has_atom_control_input() const { return control_atom_in_ != kNoPort; }
    // Queues patch:Set { patch:property <property_uri>; patch:value "path"^^atom:Path } for the
    // next run(). Errors: no atom control input, or the plugin does not list the property as
    // patch:writable, or the queue is full.
    bool set_path_parameter(const std::string& property_uri, const std::string& path,
                            std::string* error);
    // The last atom:Path value the plugin announced for `property_uri` on its notify output
    // (patch:Set), if any.
    std::optional<std::string> notified_path(const std::string& property_uri) const;

    // Plugin state (control inputs + state:interface properties) as Turtle, and back. Restoring
    // rejects unparsable text or state of another plugin without changing anything.
    std::string save_state_string();
    bool restore_state_string(const std::string& state, std::string* error);

    void activate();
    void deactivate();
    bool active() const { return active_; }

    // Processes n frames, 1 <= n <= max_block, between activate() and deactivate().
    // in: audio_input_count() pointers, out: audio_output_count() pointers; a null pointer means
    // silence in / output discarded. The run observer brackets lilv_instance_run() only; queued
    // patch messages go in, then ready worker responses are delivered.
    void run(const float* const* in, float* const* out, uint32_t n);
    // Blocks until the (threaded) worker has finished every job and its responses are delivered.
    // Needed before comparing outputs of threaded and synchronous workers; no-op when synchronous.
    void wait_for_worker();
    // Number of work() calls performed so far.
    uint64_t worker_jobs() const { return worker_ ? worker_->jobs_done() : 0; }

    // Process-wide hooks called right before and after each lilv_instance_run(). Used to count
    // heap calls in run() (tests/host/heap_counter.h). `pause` / `resume`, when given, bracket a
    // synchronous worker's work() that the plugin scheduled from inside run(): work() is by
    // contract not real-time, a synchronous host merely runs it in place. Pass nulls to remove.
    static void set_run_observer(void (*enter)(), void (*leave)(), void (*pause)() = nullptr,
                                 void (*resume)() = nullptr);

    // Messages the plugin logged through log:log, oldest first, as "error: text" (also warning,
    // note, trace). Thread-safe snapshot.
    std::vector<std::string> log_lines() const;
    void clear_log();

  private:
    static constexpr uint32_t kNoPort = UINT32_MAX;
    enum class PortKind { kAudioIn, kAudioOut, kControlIn, kControlOut, kAtomIn, kAtomOut, kOther };
    struct Port {
        PortKind kind = PortKind::kOther;
        std::string symbol;
        std::vector<float> audio;      // max_block floats (audio and CV ports)
        std::vector<uint64_t> atom;    // atom_buffer_bytes, 8-byte aligned
        std::vector<uint8_t> scratch;  // buffer for optional ports of unknown type
    };

    PluginHost() = default;
    static std::unique_ptr<PluginHost> create_in_world(LilvWorld* world, const std::string& where,
                                                       const std::string& uri,
                                                       const HostOptions& options,
                                                       std::string* error);
    bool setup(const std::string& where, std::string* error);
    bool scan_ports(std::string* error);
    void build_features();
    void connect_ports();
    void load_presets();
    // any_plugin: skip the check that the state was saved by this plugin's URI (presets).
    bool restore(const LilvState* state, std::string* error, bool any_plugin = false);
    std::vector<const LV2_Feature*> state_features() const;
    void prepare_atom_ports();
    void read_notifications();
    std::vector<std::string> symbols_of(const std::vector<uint32_t>& indices) const;

    static int log_vprintf(LV2_Log_Handle handle, LV2_URID type, const char* fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
    static int log_printf(LV2_Log_Handle handle, LV2_URID type, const char* fmt, ...)
        __attribute__((format(printf, 3, 4)));
    static char* make_path(LV2_State_Make_Path_Handle handle, const char* path);
    static void free_path(LV2_State_Free_Path_Handle handle, char* path);
    static void set_port_value(const char* symbol, void* user_data, const void* value,
                               uint32_t size, uint32_t type);
    static const void* get_port_value(const char* symbol, void* user_data, uint32_t* size,
                                      uint32_t* type);

    HostOptions options_;
    std::string uri_;
    bool owns_state_dir_ = false;
    LilvWorld* world_ = nullptr;
    const LilvPlugin* plugin_ = nullptr;
    LilvInstance* instance_ = nullptr;
    bool active_ = false;

    UridMap urids_;
    struct Urids {
        LV2_URID atom_Float, atom_Double, atom_Int, atom_Long, atom_Bool, atom_Path, atom_Sequence,
            atom_Chunk, atom_Object, atom_URID, patch_Set, patch_property, patch_value, log_Error,
            log_Warning, log_Note, log_Trace;
    } u_{};

    std::vector<Port> ports_;
    std::vector<ControlInfo> controls_;  // control inputs and outputs, in port order
    std::vector<float> control_values_;  // one per port index; control ports connect here
    std::vector<uint32_t> audio_inputs_, audio_outputs_, control_inputs_, control_outputs_;
    std::vector<uint32_t> atom_inputs_, atom_outputs_;
    uint32_t control_atom_in_ = kNoPort;
    uint32_t notify_atom_out_ = kNoPort;
    std::optional<uint32_t> latency_port_;
    std::vector<std::pair<std::string, std::string>> presets_;  // label, preset URI

    // Raw atoms (LV2_Atom header + body, 8-byte padded) waiting for the next run().
    std::vector<uint8_t> pending_atoms_;
    std::map<std::string, std::string> notified_paths_;

    // Feature payloads (addresses handed to the plugin, so the host never moves).
    std::unique_ptr<PluginWorker> worker_;
    LV2_Log_Log log_{};
    LV2_State_Make_Path make_path_{};
    LV2_State_Free_Path free_path_{};
    float option_sample_rate_ = 0;
    int32_t option_min_block_ = 1, option_max_block_ = 0, option_nominal_block_ = 0,
            option_sequence_size_ = 0;
    std::vector<LV2_Options_Option> option_list_;
    std::vector<LV2_Feature> feature_storage_;
    std::vector<const LV2_Feature*> features_;  // null-terminated
    std::vector<std::string> provided_feature_uris_;

    mutable std::mutex log_mutex_;
    std::vector<std::string> log_lines_;
};

}  // namespace stemsphere::host
