#include "engine/neural/neural_model.h"

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

namespace stemsphere {

namespace {

constexpr char kMagic[8] = {'S', 'T', 'S', 'P', 'H', 'N', 'N', '\0'};
// Limits far above any shipped model; they stop a corrupt header from asking for gigabytes.
constexpr size_t kMaxBands = 512;
constexpr size_t kMaxChannels = 1024;
constexpr size_t kMaxKernel = 16;
constexpr size_t kMaxLayers = 32;
constexpr size_t kMaxDilation = 1024;
constexpr size_t kMaxLookahead = 1024;
constexpr size_t kMaxFileBytes = size_t{64} << 20;

// Reads little-endian fields from the file image, refusing to run past its end.
class Reader {
  public:
    Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    bool u32(uint32_t* v) {
        if (size_ - pos_ < 4) return false;
        *v = static_cast<uint32_t>(data_[pos_]) | (static_cast<uint32_t>(data_[pos_ + 1]) << 8) |
             (static_cast<uint32_t>(data_[pos_ + 2]) << 16) |
             (static_cast<uint32_t>(data_[pos_ + 3]) << 24);
        pos_ += 4;
        return true;
    }
    bool f32(float* v) {
        uint32_t bits = 0;
        if (!u32(&bits)) return false;
        std::memcpy(v, &bits, sizeof bits);
        return true;
    }
    bool bytes(size_t n, const uint8_t** out) {
        if (size_ - pos_ < n) return false;
        *out = data_ + pos_;
        pos_ += n;
        return true;
    }
    size_t remaining() const { return size_ - pos_; }

  private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

std::shared_ptr<const NeuralModel> fail(std::string* error, const std::string& why) {
    if (error) *error = "model file: " + why;
    return nullptr;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

size_t NeuralModel::receptive_field() const {
    size_t frames = 1;
    for (size_t d : dilations) frames += (kernel - 1) * d;
    return frames;
}

size_t NeuralModel::parameter_count() const {
    size_t n = feat_mean.size() + feat_std.size() + in_weight.size() + in_bias.size() +
               out_weight.size() + out_bias.size();
    for (size_t l = 0; l < layers(); ++l) {
        n +=
            conv_weight[l].size() + conv_bias[l].size() + mix_weight[l].size() + mix_bias[l].size();
    }
    return n;
}

std::shared_ptr<const NeuralModel> NeuralModel::parse(const uint8_t* data, size_t size,
                                                      std::string* error) {
    if (size < sizeof kMagic + 4 || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
        return fail(error, "not a Stemsphere model (bad magic)");
    }
    if (size > kMaxFileBytes) return fail(error, "larger than 64 MiB");
    Reader tail(data + size - 4, 4);
    uint32_t stored_crc = 0;
    tail.u32(&stored_crc);
    if (crc32(data, size - 4) != stored_crc) {
        return fail(error, "checksum mismatch (file corrupt or truncated)");
    }

    Reader r(data + sizeof kMagic, size - sizeof kMagic - 4);
    uint32_t version = 0, variant = 0, bands = 0, channels = 0, kernel = 0, layers = 0, ahead = 0;
    auto model = std::make_shared<NeuralModel>();
    if (!r.u32(&version)) return fail(error, "truncated header");
    if (version < kOldestVersion || version > kFormatVersion) {
        return fail(error, "format version " + std::to_string(version) + ", this build reads " +
                               std::to_string(kOldestVersion) + " to " +
                               std::to_string(kFormatVersion));
    }
    uint32_t flags = 0;
    if (!r.u32(&variant) || !r.u32(&bands) || !r.u32(&channels) || !r.u32(&kernel) ||
        !r.u32(&layers) || !r.u32(&ahead) || (version >= 2 && !r.u32(&flags)) ||
        !r.f32(&model->fmax_hz) || !r.f32(&model->power_floor) ||
        (version >= 2 && !r.f32(&model->correction_bound))) {
        return fail(error, "truncated header");
    }
    if ((flags & ~kFlagGuided) != 0) return fail(error, "unknown flags in the header");
    model->guided = (flags & kFlagGuided) != 0;
    if (variant > static_cast<uint32_t>(NeuralVariant::kRender)) return fail(error, "bad variant");
    if (bands < 2 || bands > kMaxBands || channels < 1 || channels > kMaxChannels || kernel < 1 ||
        kernel > kMaxKernel || layers > kMaxLayers || ahead > kMaxLookahead) {
        return fail(error, "hyper-parameters out of range");
    }
    if (!(model->fmax_hz > 0.0f && model->fmax_hz < 1e6f) ||
        !(model->power_floor > 0.0f && model->power_floor < 1.0f)) {
        return fail(error, "bad band range or power floor");
    }
    if (!(model->correction_bound >= 0.0f && model->correction_bound <= 100.0f) ||
        (!model->guided && model->correction_bound != 0.0f)) {
        return fail(error, "bad correction bound");
    }
    model->variant = static_cast<NeuralVariant>(variant);
    model->bands = bands;
    model->channels = channels;
    model->kernel = kernel;
    model->lookahead = ahead;
    for (uint32_t l = 0; l < layers; ++l) {
        uint32_t d = 0;
        if (!r.u32(&d)) return fail(error, "truncated header");
        if (d < 1 || d > kMaxDilation) return fail(error, "dilation out of range");
        model->dilations.push_back(d);
    }
    if (ahead >= model->receptive_field())
        return fail(error, "look-ahead exceeds the receptive field");

    uint32_t count = 0;
    if (!r.u32(&count)) return fail(error, "truncated tensor table");
    const size_t in_features = model->input_features();
    const size_t c = channels;
    struct Expected {
        std::string name;
        size_t numel;
        std::vector<float>* dest;
    };
    std::vector<Expected> expected = {
        {"feat_mean", in_features, &model->feat_mean},
        {"feat_std", in_features, &model->feat_std},
        {"inp.weight", c * in_features, &model->in_weight},
        {"inp.bias", c, &model->in_bias},
    };
    model->conv_weight.resize(layers);
    model->conv_bias.resize(layers);
    model->mix_weight.resize(layers);
    model->mix_bias.resize(layers);
    for (uint32_t l = 0; l < layers; ++l) {
        const std::string i = std::to_string(l);
        expected.push_back({"convs." + i + ".weight", c * c * kernel, &model->conv_weight[l]});
        expected.push_back({"convs." + i + ".bias", c, &model->conv_bias[l]});
        expected.push_back({"mixes." + i + ".weight", c * c, &model->mix_weight[l]});
        expected.push_back({"mixes." + i + ".bias", c, &model->mix_bias[l]});
    }
    expected.push_back({"out.weight", 4 * size_t{bands} * c, &model->out_weight});
    expected.push_back({"out.bias", 4 * size_t{bands}, &model->out_bias});
    if (count != expected.size()) {
        return fail(error, "has " + std::to_string(count) + " tensors, expected " +
                               std::to_string(expected.size()));
    }
    for (const Expected& e : expected) {
        uint32_t name_len = 0, numel = 0;
        const uint8_t* name = nullptr;
        const uint8_t* values = nullptr;
        if (!r.u32(&name_len) || name_len > 256 || !r.bytes(name_len, &name)) {
            return fail(error, "truncated tensor table");
        }
        const std::string got(reinterpret_cast<const char*>(name), name_len);
        if (got != e.name)
            return fail(error, "tensor '" + got + "' where '" + e.name + "' belongs");
        if (!r.u32(&numel) || numel != e.numel) {
            return fail(error, "tensor '" + e.name + "' has the wrong size");
        }
        if (!r.bytes(size_t{numel} * 4, &values)) return fail(error, "truncated tensor data");
        e.dest->resize(numel);
        Reader v(values, size_t{numel} * 4);
        for (uint32_t i = 0; i < numel; ++i) {
            float x = 0.0f;
            v.f32(&x);
            if (!std::isfinite(x)) return fail(error, "tensor '" + e.name + "' is not finite");
            (*e.dest)[i] = x;
        }
    }
    for (float s : model->feat_std) {
        if (!(s > 0.0f)) return fail(error, "feature scale must be positive");
    }
    if (r.remaining() != 0) return fail(error, "trailing bytes after the tensors");
    return model;
}

std::shared_ptr<const NeuralModel> NeuralModel::load(const std::string& path, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(error, "cannot open '" + path + "'");
    in.seekg(0, std::ios::end);
    const std::streamoff end = in.tellg();
    if (end < 0) return fail(error, "cannot read '" + path + "'");
    if (static_cast<size_t>(end) > kMaxFileBytes) return fail(error, "larger than 64 MiB");
    in.seekg(0, std::ios::beg);
    std::vector<uint8_t> bytes(static_cast<size_t>(end));
    if (!in.read(reinterpret_cast<char*>(bytes.data()), end)) {
        return fail(error, "cannot read '" + path + "'");
    }
    std::string why;
    auto model = parse(bytes.data(), bytes.size(), &why);
    if (!model && error) *error = why + " ('" + path + "')";
    return model;
}

}  // namespace stemsphere
