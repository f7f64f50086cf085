#include "tools/lv2host/plugin_host.h"

#include <lv2/atom/forge.h>
#include <lv2/atom/util.h>
#include <lv2/buf-size/buf-size.h>
#include <lv2/core/lv2.h>
#include <lv2/parameters/parameters.h>
#include <lv2/patch/patch.h>
#include <lv2/port-props/port-props.h>
#include <lv2/presets/presets.h>
#include <lv2/resize-port/resize-port.h>
#include <lv2/worker/worker.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace stemsphere::host {

namespace fs = std::filesystem;

namespace {

std::atomic<void (*)()> g_run_enter{nullptr};
std::atomic<void (*)()> g_run_leave{nullptr};
std::atomic<void (*)()> g_run_pause{nullptr};
std::atomic<void (*)()> g_run_resume{nullptr};
thread_local bool t_in_observed_run = false;

void set_error(std::string* error, const std::string& message) {
    if (error != nullptr) *error = message;
}

std::string format_value(double v) {
    char text[64];
    std::snprintf(text, sizeof(text), "%g", v);
    return text;
}

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

// Owns the LilvNodes made from URIs for one lookup session.
class NodeCache {
  public:
    explicit NodeCache(LilvWorld* world) : world_(world) {}
    ~NodeCache() {
        for (auto& entry : nodes_) lilv_node_free(entry.second);
    }
    NodeCache(const NodeCache&) = delete;
    NodeCache& operator=(const NodeCache&) = delete;
    const LilvNode* operator()(const char* uri) {
        auto found = nodes_.find(uri);
        if (found != nodes_.end()) return found->second;
        LilvNode* node = lilv_new_uri(world_, uri);
        nodes_.emplace(uri, node);
        return node;
    }

  private:
    LilvWorld* world_;
    std::map<std::string, LilvNode*> nodes_;
};

std::vector<std::string> node_strings(const LilvNodes* nodes) {
    std::vector<std::string> out;
    if (nodes == nullptr) return out;
    LILV_FOREACH(nodes, it, nodes) {
        out.emplace_back(lilv_node_as_string(lilv_nodes_get(nodes, it)));
    }
    return out;
}

bool load_bundle(LilvWorld* world, const std::string& dir, std::string* error) {
    std::error_code ec;
    const fs::path path = fs::absolute(fs::path(dir), ec);
    if (ec || !fs::is_directory(path, ec)) {
        set_error(error, "no LV2 bundle at '" + dir + "': not a directory");
        return false;
    }
    if (!fs::is_regular_file(path / "manifest.ttl", ec)) {
        set_error(error, "no LV2 bundle at '" + dir + "': manifest.ttl not found");
        return false;
    }
    std::string text = path.string();
    if (text.back() != '/') text += '/';  // lilv needs the trailing slash of a bundle URI
    LilvNode* bundle = lilv_new_file_uri(world, nullptr, text.c_str());
    lilv_world_load_bundle(world, bundle);
    lilv_node_free(bundle);
    return true;
}

// Host conditions rather than services: a plugin "requiring" them asks nothing we lack (we never
// run in place, and any host may be live).
bool is_implicit_feature(const std::string& uri) {
    return uri == LV2_CORE__isLive || uri == LV2_CORE__inPlaceBroken ||
           uri == LV2_CORE__hardRTCapable;
}

void abort_on_misuse(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "PluginHost misuse: %s\n", what);
    std::abort();
}

}  // namespace

bool RunObservation::active_on_this_thread() {
    return t_in_observed_run;
}

void RunObservation::suspend() {
    if (auto pause = g_run_pause.load()) pause();
}

void RunObservation::resume() {
    if (auto resume = g_run_resume.load()) resume();
}

void PluginHost::set_run_observer(void (*enter)(), void (*leave)(), void (*pause)(),
                                  void (*resume)()) {
    g_run_enter.store(enter);
    g_run_leave.store(leave);
    g_run_pause.store(pause);
    g_run_resume.store(resume);
}

std::unique_ptr<PluginHost> PluginHost::create(const std::string& bundle_dir,
                                               const std::string& uri, const HostOptions& options,
                                               std::string* error) {
    LilvWorld* world = lilv_world_new();
    for (const std::string& dir : options.extra_bundles) {
        if (!load_bundle(world, dir, error)) {
            lilv_world_free(world);
            return nullptr;
        }
    }
    if (!load_bundle(world, bundle_dir, error)) {
        lilv_world_free(world);
        return nullptr;
    }
    return create_in_world(world, "bundle '" + bundle_dir + "'", uri, options, error);
}

std::unique_ptr<PluginHost> PluginHost::create_from_lv2_path(const std::string& uri,
                                                             const HostOptions& options,
                                                             std::string* error) {
    LilvWorld* world = lilv_world_new();
    lilv_world_load_all(world);
    for (const std::string& dir : options.extra_bundles) {
        if (!load_bundle(world, dir, error)) {
            lilv_world_free(world);
            return nullptr;
        }
    }
    return create_in_world(world, "LV2_PATH", uri, options, error);
}

std::unique_ptr<PluginHost> PluginHost::create_in_world(LilvWorld* world, const std::string& where,
                                                        const std::string& uri,
                                                        const HostOptions& options,
                                                        std::string* error) {
    std::unique_ptr<PluginHost> host(new PluginHost());
    host->world_ = world;  // owned from here on, freed by the destructor
    host->options_ = options;
    host->uri_ = uri;
    if (!host->setup(where, error)) return nullptr;
    return host;
}

bool PluginHost::setup(const std::string& where, std::string* error) {
    if (!(options_.sample_rate >= 1000 && options_.sample_rate <= 1e6)) {
        set_error(error, "sample rate " + format_value(options_.sample_rate) + " Hz is not usable");
        return false;
    }
    if (options_.max_block < 1 || options_.max_block > (1u << 20)) {
        set_error(error, "max block " + std::to_string(options_.max_block) + " is not usable");
        return false;
    }
    options_.atom_buffer_bytes = std::max<uint32_t>(options_.atom_buffer_bytes, 1024);

    NodeCache node(world_);
    const LilvPlugins* plugins = lilv_world_get_all_plugins(world_);
    plugin_ = lilv_plugins_get_by_uri(plugins, node(uri_.c_str()));
    if (plugin_ == nullptr) {
        std::vector<std::string> found;
        LILV_FOREACH(plugins, it, plugins) {
            found.emplace_back(
                lilv_node_as_uri(lilv_plugin_get_uri(lilv_plugins_get(plugins, it))));
        }
        set_error(error,
                  "plugin <" + uri_ + "> not found in " + where +
                      (found.empty() ? " (it holds no plugin)" : " (it has: " + join(found) + ")"));
        return false;
    }

    if (options_.state_dir.empty()) {
        std::string pattern = (fs::temp_directory_path() / "stemsphere-host-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) {
            set_error(error, "cannot create a temporary state directory in " + pattern);
            return false;
        }
        options_.state_dir = pattern;
        owns_state_dir_ = true;
    } else {
        std::error_code ec;
        fs::create_directories(options_.state_dir, ec);
    }

    u_.atom_Float = urids_.map(LV2_ATOM__Float);
    u_.atom_Double = urids_.map(LV2_ATOM__Double);
    u_.atom_Int = urids_.map(LV2_ATOM__Int);
    u_.atom_Long = urids_.map(LV2_ATOM__Long);
    u_.atom_Bool = urids_.map(LV2_ATOM__Bool);
    u_.atom_Path = urids_.map(LV2_ATOM__Path);
    u_.atom_Sequence = urids_.map(LV2_ATOM__Sequence);
    u_.atom_Chunk = urids_.map(LV2_ATOM__Chunk);
    u_.atom_Object = urids_.map(LV2_ATOM__Object);
    u_.atom_URID = urids_.map(LV2_ATOM__URID);
    u_.patch_Set = urids_.map(LV2_PATCH__Set);
    u_.patch_property = urids_.map(LV2_PATCH__property);
    u_.patch_value = urids_.map(LV2_PATCH__value);
    u_.log_Error = urids_.map(LV2_LOG__Error);
    u_.log_Warning = urids_.map(LV2_LOG__Warning);
    u_.log_Note = urids_.map(LV2_LOG__Note);
    u_.log_Trace = urids_.map(LV2_LOG__Trace);

    // Atom buffers honour the largest rsz:minimumSize a port asks for (as jalv does).
    for (uint32_t i = 0; i < lilv_plugin_get_num_ports(plugin_); ++i) {
        const LilvPort* port = lilv_plugin_get_port_by_index(plugin_, i);
        LilvNodes* sizes = lilv_port_get_value(plugin_, port, node(LV2_RESIZE_PORT__minimumSize));
        if (sizes != nullptr && lilv_nodes_size(sizes) > 0) {
            const LilvNode* size = lilv_nodes_get_first(sizes);
            if (lilv_node_is_int(size) && lilv_node_as_int(size) > 0) {
                const auto bytes = static_cast<uint32_t>(lilv_node_as_int(size));
                options_.atom_buffer_bytes =
                    std::max(options_.atom_buffer_bytes, (bytes + 7u) & ~7u);
            }
        }
        lilv_nodes_free(sizes);
    }

    if (options_.provide_worker) {
        worker_ = std::make_unique<PluginWorker>(
            options_.threaded_worker, std::max<uint32_t>(65536, options_.atom_buffer_bytes));
    }
    build_features();

    std::vector<std::string> missing;
    for (const std::string& feature : required_features()) {
        const bool provided =
            std::find(provided_feature_uris_.begin(), provided_feature_uris_.end(), feature) !=
            provided_feature_uris_.end();
        if (!provided && !is_implicit_feature(feature)) missing.push_back(feature);
    }
    if (!missing.empty()) {
        set_error(error, "plugin <" + uri_ +
                             "> requires feature(s) this host does not provide: " + join(missing));
        return false;
    }
    LilvNodes* required_options = lilv_world_find_nodes(world_, lilv_plugin_get_uri(plugin_),
                                                        node(LV2_OPTIONS__requiredOption), nullptr);
    for (const std::string& option : node_strings(required_options)) {
        const bool provided =
            options_.provide_options &&
            std::any_of(option_list_.begin(), option_list_.end(), [&](const LV2_Options_Option& o) {
                const char* key = urids_.unmap(o.key);
                return key != nullptr && option == key;
            });
        if (!provided) missing.push_back(option);
    }
    lilv_nodes_free(required_options);
    if (!missing.empty()) {
        set_error(error, "plugin <" + uri_ +
                             "> requires option(s) this host does not provide: " + join(missing));
        return false;
    }

    if (!scan_ports(error)) return false;

    instance_ = lilv_plugin_instantiate(plugin_, options_.sample_rate, features_.data());
    if (instance_ == nullptr) {
        std::string message = "plugin <" + uri_ + "> failed to instantiate at " +
                              format_value(options_.sample_rate) + " Hz";
        const auto lines = log_lines();
        if (!lines.empty()) message += " (plugin log: " + lines.back() + ")";
        set_error(error, message);
        return false;
    }
    if (worker_) {
        const auto* iface = static_cast<const LV2_Worker_Interface*>(
            lilv_instance_get_extension_data(instance_, LV2_WORKER__interface));
        worker_->attach(lilv_instance_get_handle(instance_), iface);
    }
    connect_ports();
    load_presets();
    pending_atoms_.reserve(options_.atom_buffer_bytes);
    return true;
}

void PluginHost::build_features() {
    feature_storage_.clear();
    provided_feature_uris_.clear();
    auto add = [this](const char* uri, void* data) {
        feature_storage_.push_back(LV2_Feature{uri, data});
        provided_feature_uris_.emplace_back(uri);
    };
    add(LV2_URID__map, urids_.map_feature());
    add(LV2_URID__unmap, urids_.unmap_feature());
    if (options_.provide_options) {
        option_sample_rate_ = static_cast<float>(options_.sample_rate);
        option_min_block_ = 1;
        option_max_block_ = static_cast<int32_t>(options_.max_block);
        option_nominal_block_ = static_cast<int32_t>(options_.max_block);
        option_sequence_size_ = static_cast<int32_t>(options_.atom_buffer_bytes);
        const auto option = [this](const char* key, LV2_URID type, uint32_t size, const void* v) {
            return LV2_Options_Option{LV2_OPTIONS_INSTANCE, 0, urids_.map(key), size, type, v};
        };
        option_list_ = {
            option(LV2_PARAMETERS__sampleRate, u_.atom_Float, sizeof(float), &option_sample_rate_),
            option(LV2_BUF_SIZE__minBlockLength, u_.atom_Int, sizeof(int32_t), &option_min_block_),
            option(LV2_BUF_SIZE__maxBlockLength, u_.atom_Int, sizeof(int32_t), &option_max_block_),
            option(LV2_BUF_SIZE__nominalBlockLength, u_.atom_Int, sizeof(int32_t),
                   &option_nominal_block_),
            option(LV2_BUF_SIZE__sequenceSize, u_.atom_Int, sizeof(int32_t),
                   &option_sequence_size_),
            LV2_Options_Option{LV2_OPTIONS_INSTANCE, 0, 0, 0, 0, nullptr},
        };
        add(LV2_OPTIONS__options, option_list_.data());
    }
    if (options_.provide_bounded_block) add(LV2_BUF_SIZE__boundedBlockLength, nullptr);
    if (worker_) add(LV2_WORKER__schedule, worker_->schedule_feature());
    if (options_.provide_log) {
        log_.handle = this;
        log_.printf = log_printf;
        log_.vprintf = log_vprintf;
        add(LV2_LOG__log, &log_);
    }
    if (options_.provide_state_paths) {
        make_path_.handle = this;
        make_path_.path = make_path;
        free_path_.handle = this;
        free_path_.free_path = free_path;
        add(LV2_STATE__makePath, &make_path_);
        add(LV2_STATE__freePath, &free_path_);
    }
    features_.clear();
    for (const LV2_Feature& feature : feature_storage_) features_.push_back(&feature);
    features_.push_back(nullptr);
}

std::vector<const LV2_Feature*> PluginHost::state_features() const {
    // lilv adds its own state:mapPath / makePath / freePath for save and restore; ours would
    // shadow them and break path mapping relative to the state directory.
    std::vector<const LV2_Feature*> out;
    for (const LV2_Feature* feature : features_) {
        if (feature == nullptr) continue;
        const std::string uri = feature->URI;
        if (uri == LV2_STATE__makePath || uri == LV2_STATE__freePath) continue;
        out.push_back(feature);
    }
    out.push_back(nullptr);
    return out;
}

bool PluginHost::scan_ports(std::string* error) {
    NodeCache node(world_);
    const uint32_t count = lilv_plugin_get_num_ports(plugin_);
    std::vector<float> minimum(count), maximum(count), defaults(count);
    lilv_plugin_get_port_ranges_float(plugin_, minimum.data(), maximum.data(), defaults.data());
    ports_.assign(count, Port{});
    control_values_.assign(count, 0.0f);

    for (uint32_t i = 0; i < count; ++i) {
        const LilvPort* lport = lilv_plugin_get_port_by_index(plugin_, i);
        Port& port = ports_[i];
        port.symbol = lilv_node_as_string(lilv_port_get_symbol(plugin_, lport));
        const bool input = lilv_port_is_a(plugin_, lport, node(LV2_CORE__InputPort));
        const bool output = lilv_port_is_a(plugin_, lport, node(LV2_CORE__OutputPort));
        const bool optional =
            lilv_port_has_property(plugin_, lport, node(LV2_CORE__connectionOptional));
        const std::string where = "port " + std::to_string(i) + " ('" + port.symbol + "')";
        if (input == output) {
            set_error(error, "plugin <" + uri_ + "> " + where + " is neither input nor output");
            return false;
        }
        if (lilv_port_is_a(plugin_, lport, node(LV2_CORE__AudioPort))) {
            port.kind = input ? PortKind::kAudioIn : PortKind::kAudioOut;
            port.audio.assign(options_.max_block, 0.0f);
            (input ? audio_inputs_ : audio_outputs_).push_back(i);
        } else if (lilv_port_is_a(plugin_, lport, node(LV2_CORE__ControlPort))) {
            port.kind = input ? PortKind::kControlIn : PortKind::kControlOut;
            (input ? control_inputs_ : control_outputs_).push_back(i);
            ControlInfo info;
            info.symbol = port.symbol;
            LilvNode* name = lilv_port_get_name(plugin_, lport);
            info.name = name != nullptr ? lilv_node_as_string(name) : port.symbol;
            lilv_node_free(name);
            info.index = i;
            info.is_input = input;
            info.minimum = minimum[i];
            info.maximum = maximum[i];
            float initial = defaults[i];
            if (std::isnan(initial)) initial = std::isnan(minimum[i]) ? 0.0f : minimum[i];
            info.default_value = initial;
            info.integer = lilv_port_has_property(plugin_, lport, node(LV2_CORE__integer));
            info.toggled = lilv_port_has_property(plugin_, lport, node(LV2_CORE__toggled));
            info.enumeration = lilv_port_has_property(plugin_, lport, node(LV2_CORE__enumeration));
            if (LilvScalePoints* points = lilv_port_get_scale_points(plugin_, lport)) {
                LILV_FOREACH(scale_points, it, points) {
                    const LilvScalePoint* point = lilv_scale_points_get(points, it);
                    info.scale_points.emplace_back(
                        lilv_node_as_float(lilv_scale_point_get_value(point)),
                        lilv_node_as_string(lilv_scale_point_get_label(point)));
                }
                lilv_scale_points_free(points);
                std::sort(info.scale_points.begin(), info.scale_points.end());
            }
            controls_.push_back(info);
            control_values_[i] = initial;
            const bool reports_latency =
                lilv_port_has_property(plugin_, lport, node(LV2_CORE__reportsLatency));
            LilvNodes* designations =
                lilv_port_get_value(plugin_, lport, node(LV2_CORE__designation));
            const bool designated_latency =
                designations != nullptr &&
                lilv_nodes_contains(designations, node(LV2_CORE__latency));
            lilv_nodes_free(designations);
            if (output && (reports_latency || designated_latency) && !latency_port_) {
                latency_port_ = i;
            }
        } else if (lilv_port_is_a(plugin_, lport, node(LV2_ATOM__AtomPort))) {
            port.kind = input ? PortKind::kAtomIn : PortKind::kAtomOut;
            port.atom.assign(options_.atom_buffer_bytes / sizeof(uint64_t), 0);
            (input ? atom_inputs_ : atom_outputs_).push_back(i);
            LilvNodes* designations =
                lilv_port_get_value(plugin_, lport, node(LV2_CORE__designation));
            const bool designated_control =
                designations != nullptr &&
                lilv_nodes_contains(designations, node(LV2_CORE__control));
            lilv_nodes_free(designations);
            const bool takes_patch =
                lilv_port_supports_event(plugin_, lport, node(LV2_PATCH__Message));
            uint32_t& slot = input ? control_atom_in_ : notify_atom_out_;
            if (designated_control || (takes_patch && slot == kNoPort)) slot = i;
        } else if (lilv_port_is_a(plugin_, lport, node(LV2_CORE__CVPort))) {
            port.kind = PortKind::kOther;
            port.audio.assign(options_.max_block, 0.0f);
        } else if (optional) {
            port.kind = PortKind::kOther;
            port.scratch.assign(options_.atom_buffer_bytes, 0);
        } else {
            set_error(error,
                      "plugin <" + uri_ + "> " + where + " has a type this host does not support");
            return false;
        }
    }
    // Without a port that declares patch messages, the first atom input/output still serves.
    if (control_atom_in_ == kNoPort && !atom_inputs_.empty()) control_atom_in_ = atom_inputs_[0];
    if (notify_atom_out_ == kNoPort && !atom_outputs_.empty()) notify_atom_out_ = atom_outputs_[0];
    return true;
}

void PluginHost::connect_ports() {
    for (uint32_t i = 0; i < ports_.size(); ++i) {
        Port& port = ports_[i];
        void* buffer = nullptr;
        switch (port.kind) {
            case PortKind::kAudioIn:
            case PortKind::kAudioOut:
                buffer = port.audio.data();
                break;
            case PortKind::kControlIn:
            case PortKind::kControlOut:
                buffer = &control_values_[i];
                break;
            case PortKind::kAtomIn:
            case PortKind::kAtomOut:
                buffer = port.atom.data();
                break;
            case PortKind::kOther:
                buffer = port.audio.empty() ? static_cast<void*>(port.scratch.data())
                                            : static_cast<void*>(port.audio.data());
                break;
        }
        lilv_instance_connect_port(instance_, i, buffer);
    }
}

void PluginHost::load_presets() {
    NodeCache node(world_);
    LilvNodes* related = lilv_plugin_get_related(plugin_, node(LV2_PRESETS__Preset));
    if (related == nullptr) return;
    LILV_FOREACH(nodes, it, related) {
        const LilvNode* preset = lilv_nodes_get(related, it);
        lilv_world_load_resource(world_, preset);
        LilvNode* label = lilv_world_get(world_, preset, node(LILV_NS_RDFS "label"), nullptr);
        if (label != nullptr) {
            presets_.emplace_back(lilv_node_as_string(label), lilv_node_as_uri(preset));
            lilv_node_free(label);
        }
    }
    lilv_nodes_free(related);
    std::sort(presets_.begin(), presets_.end());
}

PluginHost::~PluginHost() {
    if (instance_ != nullptr) {
        if (active_) lilv_instance_deactivate(instance_);
        if (worker_) worker_->stop();
        lilv_instance_free(instance_);
    }
    worker_.reset();
    if (world_ != nullptr) lilv_world_free(world_);
    if (owns_state_dir_) {
        std::error_code ec;
        fs::remove_all(options_.state_dir, ec);
    }
}

std::string PluginHost::name() const {
    LilvNode* name = lilv_plugin_get_name(plugin_);
    std::string out = name != nullptr ? lilv_node_as_string(name) : uri_;
    lilv_node_free(name);
    return out;
}

std::vector<std::string> PluginHost::required_features() const {
    LilvNodes* nodes = lilv_plugin_get_required_features(plugin_);
    std::vector<std::string> out = node_strings(nodes);
    lilv_nodes_free(nodes);
    return out;
}

bool PluginHost::verify() const {
    return lilv_plugin_verify(plugin_);
}

std::vector<std::string> PluginHost::symbols_of(const std::vector<uint32_t>& indices) const {
    std::vector<std::string> out;
    for (uint32_t i : indices) out.push_back(ports_[i].symbol);
    return out;
}

std::vector<std::string> PluginHost::port_symbols() const {
    std::vector<std::string> out;
    for (const Port& port : ports_) out.push_back(port.symbol);
    return out;
}

std::vector<std::string> PluginHost::audio_input_symbols() const {
    return symbols_of(audio_inputs_);
}

std::vector<std::string> PluginHost::audio_output_symbols() const {
    return symbols_of(audio_outputs_);
}

std::vector<std::string> PluginHost::control_input_symbols() const {
    return symbols_of(control_inputs_);
}

std::vector<std::string> PluginHost::control_output_symbols() const {
    return symbols_of(control_outputs_);
}

std::optional<ControlInfo> PluginHost::control_info(const std::string& symbol) const {
    for (const ControlInfo& info : controls_) {
        if (info.symbol == symbol) return info;
    }
    return std::nullopt;
}

bool PluginHost::set_control(const std::string& symbol, float value, std::string* error) {
    const ControlInfo* info = nullptr;
    for (const ControlInfo& candidate : controls_) {
        if (candidate.symbol == symbol && candidate.is_input) info = &candidate;
    }
    if (info == nullptr) {
        set_error(error, "unknown control '" + symbol +
                             "' (controls: " + join(control_input_symbols()) + ")");
        return false;
    }
    const std::string what = "control '" + symbol + "' = " + format_value(double{value});
    if (!std::isfinite(value)) {
        set_error(error, what + ": not a finite number");
        return false;
    }
    if ((!std::isnan(info->minimum) && value < info->minimum) ||
        (!std::isnan(info->maximum) && value > info->maximum)) {
        set_error(error, what + ": outside its range [" + format_value(double{info->minimum}) +
                             ", " + format_value(double{info->maximum}) + "]");
        return false;
    }
    if ((info->integer || info->toggled) && std::nearbyint(value) != value) {
        set_error(error, what + ": must be a whole number");
        return false;
    }
    if (info->toggled && value != 0.0f && value != 1.0f) {
        set_error(error, what + ": a toggle takes 0 or 1");
        return false;
    }
    if (info->enumeration && !info->scale_points.empty()) {
        const bool listed =
            std::any_of(info->scale_points.begin(), info->scale_points.end(),
                        [&](const auto& point) { return std::fabs(point.first - value) < 1e-6f; });
        if (!listed) {
            std::vector<std::string> choices;
            for (const auto& [v, label] : info->scale_points) {
                choices.push_back(format_value(double{v}) + " (" + label + ")");
            }
            set_error(error, what + ": not one of " + join(choices));
            return false;
        }
    }
    control_values_[info->index] = value;
    return true;
}

float PluginHost::control(const std::string& symbol) const {
    for (const ControlInfo& info : controls_) {
        if (info.symbol == symbol) return control_values_[info.index];
    }
    return std::nanf("");
}

float PluginHost::latency() const {
    return latency_port_ ? control_values_[*latency_port_] : 0.0f;
}

std::vector<std::string> PluginHost::preset_labels() const {
    std::vector<std::string> out;
    for (const auto& preset : presets_) out.push_back(preset.first);
    return out;
}

bool PluginHost::apply_preset(const std::string& label, std::string* error) {
    const auto found = std::find_if(presets_.begin(), presets_.end(),
                                    [&](const auto& preset) { return preset.first == label; });
    if (found == presets_.end()) {
        set_error(error, "unknown preset '" + label + "' (presets: " +
                             (presets_.empty() ? std::string("none") : join(preset_labels())) +
                             ")");
        return false;
    }
    LilvNode* preset = lilv_new_uri(world_, found->second.c_str());
    LilvState* state = lilv_state_new_from_world(world_, urids_.map_feature(), preset);
    lilv_node_free(preset);
    if (state == nullptr) {
        set_error(error, "preset '" + label + "' could not be loaded");
        return false;
    }
    // Found among this plugin's related presets, so it applies here even when its state names
    // another plugin first (a preset may list several in lv2:appliesTo, as Stemsphere's do).
    const bool ok = restore(state, error, /*any_plugin=*/true);
    lilv_state_free(state);
    return ok;
}

bool PluginHost::restore(const LilvState* state, std::string* error, bool any_plugin) {
    const LilvNode* applies_to = lilv_state_get_plugin_uri(state);
    if (!any_plugin && (applies_to == nullptr || uri_ != lilv_node_as_uri(applies_to))) {
        set_error(error, std::string("state is for plugin <") +
                             (applies_to != nullptr ? lilv_node_as_uri(applies_to) : "?") +
                             ">, not <" + uri_ + ">");
        return false;
    }
    const auto features = state_features();
    lilv_state_restore(state, instance_, set_port_value, this, 0, features.data());
    // A plugin with state:threadSafeRestore schedules its loading; finish it now so the
    // restored state is in effect for the next run().
    if (worker_) worker_->wait_until_idle();
    return true;
}

void PluginHost::set_port_value(const char* symbol, void* user_data, const void* value,
                                uint32_t size, uint32_t type) {
    auto* self = static_cast<PluginHost*>(user_data);
    for (const ControlInfo& info : self->controls_) {
        // Presets of some plugins (a-comp) also store output ports: only inputs are applied.
        if (info.symbol != symbol || !info.is_input) continue;
        float v = 0;
        if (type == self->u_.atom_Float && size == sizeof(float)) {
            std::memcpy(&v, value, sizeof(v));
        } else if (type == self->u_.atom_Double && size == sizeof(double)) {
            double d = 0;
            std::memcpy(&d, value, sizeof(d));
            v = static_cast<float>(d);
        } else if ((type == self->u_.atom_Int || type == self->u_.atom_Bool) &&
                   size == sizeof(int32_t)) {
            int32_t i = 0;
            std::memcpy(&i, value, sizeof(i));
            v = static_cast<float>(i);
        } else if (type == self->u_.atom_Long && size == sizeof(int64_t)) {
            int64_t i = 0;
            std::memcpy(&i, value, sizeof(i));
            v = static_cast<float>(i);
        } else {
            const std::lock_guard<std::mutex> lock(self->log_mutex_);
            self->log_lines_.push_back(std::string("host: ignored value of port '") + symbol +
                                       "' (unsupported type)");
            return;
        }
        self->control_values_[info.index] = v;
        return;
    }
}

const void* PluginHost::get_port_value(const char* symbol, void* user_data, uint32_t* size,
                                       uint32_t* type) {
    auto* self = static_cast<PluginHost*>(user_data);
    for (const ControlInfo& info : self->controls_) {
        if (info.symbol == symbol && info.is_input) {
            *size = sizeof(float);
            *type = self->u_.atom_Float;
            return &self->control_values_[info.index];
        }
    }
    *size = 0;
    *type = 0;
    return nullptr;
}

std::string PluginHost::save_state_string() {
    const auto features = state_features();
    // No directories: file paths stay absolute, so the string restores in any other host.
    LilvState* state = lilv_state_new_from_instance(
        plugin_, instance_, urids_.map_feature(), nullptr, nullptr, nullptr, nullptr,
        get_port_value, this, LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE, features.data());
    char* text = lilv_state_to_string(world_, urids_.map_feature(), urids_.unmap_feature(), state,
                                      "urn:stemsphere:host-state", nullptr);
    std::string out = text != nullptr ? text : "";
    lilv_free(text);
    lilv_state_free(state);
    return out;
}

bool PluginHost::restore_state_string(const std::string& text, std::string* error) {
    LilvState* state = text.empty()
                           ? nullptr
                           : lilv_state_new_from_string(world_, urids_.map_feature(), text.c_str());
    if (state == nullptr) {
        set_error(error, "not a valid LV2 state (Turtle did not parse into a state)");
        return false;
    }
    const bool ok = restore(state, error);
    lilv_state_free(state);
    return ok;
}

bool PluginHost::set_path_parameter(const std::string& property_uri, const std::string& path,
                                    std::string* error) {
    if (control_atom_in_ == kNoPort) {
        set_error(error, "plugin <" + uri_ + "> has no atom control input for patch messages");
        return false;
    }
    NodeCache node(world_);
    if (!lilv_world_ask(world_, lilv_plugin_get_uri(plugin_), node(LV2_PATCH__writable),
                        node(property_uri.c_str()))) {
        set_error(error,
                  "plugin <" + uri_ + "> does not declare patch:writable <" + property_uri + ">");
        return false;
    }
    std::vector<uint64_t> buffer((path.size() + 256) / sizeof(uint64_t) + 1);
    LV2_Atom_Forge forge;
    lv2_atom_forge_init(&forge, urids_.map_feature());
    lv2_atom_forge_set_buffer(&forge, reinterpret_cast<uint8_t*>(buffer.data()),
                              buffer.size() * sizeof(uint64_t));
    LV2_Atom_Forge_Frame frame;
    lv2_atom_forge_object(&forge, &frame, 0, u_.patch_Set);
    lv2_atom_forge_key(&forge, u_.patch_property);
    lv2_atom_forge_urid(&forge, urids_.map(property_uri.c_str()));
    lv2_atom_forge_key(&forge, u_.patch_value);
    lv2_atom_forge_path(&forge, path.c_str(), static_cast<uint32_t>(path.size()));
    lv2_atom_forge_pop(&forge, &frame);
    const auto* atom = reinterpret_cast<const LV2_Atom*>(buffer.data());
    const size_t bytes = lv2_atom_pad_size(static_cast<uint32_t>(sizeof(LV2_Atom) + atom->size));
    const size_t room = options_.atom_buffer_bytes - sizeof(LV2_Atom_Sequence);
    // Each queued atom becomes one event (time stamp + atom) in the input sequence.
    size_t queued_events = 0;
    for (size_t at = 0; at < pending_atoms_.size(); ++queued_events) {
        LV2_Atom head;
        std::memcpy(&head, pending_atoms_.data() + at, sizeof(head));
        at += lv2_atom_pad_size(static_cast<uint32_t>(sizeof(LV2_Atom) + head.size));
    }
    if (pending_atoms_.size() + bytes + (queued_events + 1) * sizeof(int64_t) > room) {
        set_error(error, "too many patch messages queued before the next run()");
        return false;
    }
    const auto* raw = reinterpret_cast<const uint8_t*>(buffer.data());
    pending_atoms_.insert(pending_atoms_.end(), raw, raw + bytes);
    return true;
}

std::optional<std::string> PluginHost::notified_path(const std::string& property_uri) const {
    const auto found = notified_paths_.find(property_uri);
    if (found == notified_paths_.end()) return std::nullopt;
    return found->second;
}

void PluginHost::prepare_atom_ports() {
    for (uint32_t i : atom_inputs_) {
        auto* seq = reinterpret_cast<LV2_Atom_Sequence*>(ports_[i].atom.data());
        seq->atom.type = u_.atom_Sequence;
        seq->atom.size = sizeof(LV2_Atom_Sequence_Body);
        seq->body.unit = 0;
        seq->body.pad = 0;
        if (i != control_atom_in_) continue;
        for (size_t at = 0; at < pending_atoms_.size();) {
            LV2_Atom head;
            std::memcpy(&head, pending_atoms_.data() + at, sizeof(head));
            const uint32_t atom_bytes = static_cast<uint32_t>(sizeof(LV2_Atom)) + head.size;
            LV2_Atom_Event* event = lv2_atom_sequence_end(&seq->body, seq->atom.size);
            event->time.frames = 0;
            std::memcpy(&event->body, pending_atoms_.data() + at, atom_bytes);
            seq->atom.size +=
                lv2_atom_pad_size(static_cast<uint32_t>(sizeof(LV2_Atom_Event)) + head.size);
            at += lv2_atom_pad_size(atom_bytes);
        }
        pending_atoms_.clear();  // keeps its capacity: no allocation here
    }
    for (uint32_t i : atom_outputs_) {
        auto* atom = reinterpret_cast<LV2_Atom*>(ports_[i].atom.data());
        atom->type = u_.atom_Chunk;
        atom->size = options_.atom_buffer_bytes - static_cast<uint32_t>(sizeof(LV2_Atom));
    }
}

void PluginHost::read_notifications() {
    if (notify_atom_out_ == kNoPort) return;
    const auto* seq =
        reinterpret_cast<const LV2_Atom_Sequence*>(ports_[notify_atom_out_].atom.data());
    if (seq->atom.type != u_.atom_Sequence ||
        seq->atom.size > options_.atom_buffer_bytes - sizeof(LV2_Atom)) {
        return;
    }
    LV2_ATOM_SEQUENCE_FOREACH(seq, event) {
        if (event->body.type != u_.atom_Object) continue;
        const auto* object = reinterpret_cast<const LV2_Atom_Object*>(&event->body);
        if (object->body.otype != u_.patch_Set) continue;
        const LV2_Atom* property = nullptr;
        const LV2_Atom* value = nullptr;
        lv2_atom_object_get(object, u_.patch_property, &property, u_.patch_value, &value, 0);
        if (property == nullptr || value == nullptr || property->type != u_.atom_URID ||
            value->type != u_.atom_Path || value->size == 0) {
            continue;
        }
        const char* key = urids_.unmap(reinterpret_cast<const LV2_Atom_URID*>(property)->body);
        const char* text = static_cast<const char*>(LV2_ATOM_BODY_CONST(value));
        if (key != nullptr) notified_paths_[key] = std::string(text, strnlen(text, value->size));
    }
}

void PluginHost::activate() {
    if (active_) return;
    lilv_instance_activate(instance_);
    active_ = true;
}

void PluginHost::deactivate() {
    if (!active_) return;
    lilv_instance_deactivate(instance_);
    active_ = false;
}

void PluginHost::run(const float* const* in, float* const* out, uint32_t n) {
    abort_on_misuse(active_, "run() before activate()");
    abort_on_misuse(n >= 1 && n <= options_.max_block, "run() with n outside [1, max_block]");
    for (size_t k = 0; k < audio_inputs_.size(); ++k) {
        float* buffer = ports_[audio_inputs_[k]].audio.data();
        if (in != nullptr && in[k] != nullptr) {
            std::memcpy(buffer, in[k], n * sizeof(float));
        } else {
            std::memset(buffer, 0, n * sizeof(float));
        }
    }
    prepare_atom_ports();

    void (*enter)() = g_run_enter.load();
    void (*leave)() = g_run_leave.load();
    t_in_observed_run = true;
    if (enter != nullptr) enter();
    lilv_instance_run(instance_, n);
    if (leave != nullptr) leave();
    t_in_observed_run = false;

    if (worker_) {
        worker_->deliver_responses();
        worker_->end_run();
    }
    for (size_t k = 0; k < audio_outputs_.size(); ++k) {
        if (out != nullptr && out[k] != nullptr) {
            std::memcpy(out[k], ports_[audio_outputs_[k]].audio.data(), n * sizeof(float));
        }
    }
    read_notifications();
}

void PluginHost::wait_for_worker() {
    if (worker_) worker_->wait_until_idle();
}

int PluginHost::log_vprintf(LV2_Log_Handle handle, LV2_URID type, const char* fmt, va_list ap) {
    auto* self = static_cast<PluginHost*>(handle);
    char text[2048];
    const int written = std::vsnprintf(text, sizeof(text), fmt, ap);
    size_t length = strnlen(text, sizeof(text));
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r')) --length;
    const char* level = type == self->u_.log_Error     ? "error"
                        : type == self->u_.log_Warning ? "warning"
                        : type == self->u_.log_Note    ? "note"
                        : type == self->u_.log_Trace   ? "trace"
                                                       : "log";
    std::string line = std::string(level) + ": " + std::string(text, length);
    if (self->options_.echo_log_to_stderr) std::fprintf(stderr, "[plugin] %s\n", line.c_str());
    const std::lock_guard<std::mutex> lock(self->log_mutex_);
    self->log_lines_.push_back(std::move(line));
    return written;
}

int PluginHost::log_printf(LV2_Log_Handle handle, LV2_URID type, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int written = log_vprintf(handle, type, fmt, ap);
    va_end(ap);
    return written;
}

std::vector<std::string> PluginHost::log_lines() const {
    const std::lock_guard<std::mutex> lock(log_mutex_);
    return log_lines_;
}

void PluginHost::clear_log() {
    const std::lock_guard<std::mutex> lock(log_mutex_);
    log_lines_.clear();
}

char* PluginHost::make_path(LV2_State_Make_Path_Handle handle, const char* path) {
    auto* self = static_cast<PluginHost*>(handle);
    const fs::path full = fs::path(self->options_.state_dir) / fs::path(path).relative_path();
    std::error_code ec;
    fs::create_directories(full.parent_path(), ec);
    return strdup(full.c_str());
}

void PluginHost::free_path(LV2_State_Free_Path_Handle handle, char* path) {
    (void)handle;
    std::free(path);
}

}  // namespace stemsphere::host
