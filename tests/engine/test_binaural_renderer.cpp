// BinauralRenderer: exact partitioned convolution at any block size, no clicks when sources,
// the head or the HRTF set change, head rotation, distance law, real-time safety (no heap calls
// in process()), containment of NaN input. Properties T4, T7-T11, T14 of shared/docs/binaural.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/binaural/binaural_metrics.h"
#include "engine/binaural/binaural_renderer.h"
#include "engine/binaural/hrtf_set.h"

// ---- heap-call counter
// --------------------------------------------------------------------------- Replaces the global
// operator new/delete of this test program to count calls made while g_count_heap is set. Weak, so
// that another test file's counter can win the link; the heap test checks that counting works and
// skips otherwise.
namespace {
std::atomic<bool> g_count_heap{false};
std::atomic<long> g_heap_calls{0};
void* counted_alloc_or_null(std::size_t size) noexcept {
    if (g_count_heap.load(std::memory_order_relaxed)) g_heap_calls.fetch_add(1);
    return std::malloc(size == 0 ? 1 : size);
}
void* counted_alloc(std::size_t size) {
    if (void* p = counted_alloc_or_null(size)) return p;
    throw std::bad_alloc();
}
void counted_free(void* p) noexcept {
    if (p != nullptr && g_count_heap.load(std::memory_order_relaxed)) g_heap_calls.fetch_add(1);
    std::free(p);
}
}  // namespace
__attribute__((weak)) void* operator new(std::size_t size) {
    return counted_alloc(size);
}
__attribute__((weak)) void* operator new[](std::size_t size) {
    return counted_alloc(size);
}
// The nothrow forms too (std::stable_sort's buffer uses them): replacing only some would pair the
// runtime's new with this delete, which ASan rightly reports as a mismatch.
__attribute__((weak)) void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return counted_alloc_or_null(size);
}
__attribute__((weak)) void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return counted_alloc_or_null(size);
}
__attribute__((weak)) void operator delete(void* p, const std::nothrow_t&) noexcept {
    counted_free(p);
}
__attribute__((weak)) void operator delete[](void* p, const std::nothrow_t&) noexcept {
    counted_free(p);
}
__attribute__((weak)) void operator delete(void* p) noexcept {
    counted_free(p);
}
__attribute__((weak)) void operator delete[](void* p) noexcept {
    counted_free(p);
}
__attribute__((weak)) void operator delete(void* p, std::size_t) noexcept {
    counted_free(p);
}
__attribute__((weak)) void operator delete[](void* p, std::size_t) noexcept {
    counted_free(p);
}

namespace stemsphere {
namespace {

const char* const kDefaultSofa = "/usr/share/libmysofa/default.sofa";

#define REQUIRE_DEFAULT_SOFA()                                                               \
    do {                                                                                     \
        if (!std::filesystem::exists(kDefaultSofa)) GTEST_SKIP() << "skipped: no SOFA file"; \
    } while (0)

const HrtfSet& hrtf_at(double rate, uint32_t filter_taps = 0) {
    static std::map<std::pair<double, uint32_t>, std::unique_ptr<HrtfSet>> cache;
    auto& slot = cache[{rate, filter_taps}];
    if (!slot) {
        std::string error;
        slot = HrtfSet::load(kDefaultSofa, rate, &error, filter_taps);
        if (!slot) ADD_FAILURE() << error;
    }
    return *slot;
}

std::unique_ptr<BinauralRenderer> make_renderer(const HrtfSet& set, uint32_t block,
                                                bool any_block_size = false,
                                                uint32_t max_taps = 0) {
    BinauralRenderer::Config c;
    c.sample_rate = set.sample_rate();
    c.block_frames = block;
    c.any_block_size = any_block_size;
    c.max_filter_taps = max_taps != 0 ? max_taps : set.filter_taps();
    auto r = std::make_unique<BinauralRenderer>(c);
    EXPECT_TRUE(r->set_hrtf(&set));
    return r;
}

struct Stereo {
    std::vector<float> l, r;
};

using Inputs = std::array<const std::vector<float>*, 8>;

// Renders `frames` frames in calls of the sizes in `calls` (cycled); `before` runs before each
// call with the call's first frame.
Stereo render(BinauralRenderer& renderer, const Inputs& in, size_t frames,
              const std::vector<uint32_t>& calls,
              const std::function<void(size_t)>& before = nullptr) {
    Stereo out{std::vector<float>(frames), std::vector<float>(frames)};
    size_t pos = 0;
    for (size_t call = 0; pos < frames; ++call) {
        const auto n =
            static_cast<uint32_t>(std::min<size_t>(calls[call % calls.size()], frames - pos));
        std::array<const float*, 8> ptr{};
        for (int v = 0; v < 8; ++v) ptr[v] = in[v] != nullptr ? in[v]->data() + pos : nullptr;
        if (before) before(pos);
        renderer.process(ptr.data(), out.l.data() + pos, out.r.data() + pos, n);
        pos += n;
    }
    return out;
}

std::vector<float> noise(size_t frames, unsigned seed, float amplitude = 0.25f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-amplitude, amplitude);
    std::vector<float> x(frames);
    for (float& v : x) v = u(rng);
    return x;
}

std::vector<float> sine(size_t frames, double rate, double hz, float amplitude) {
    std::vector<float> x(frames);
    for (size_t i = 0; i < frames; ++i) {
        x[i] = amplitude *
               static_cast<float>(std::sin(2.0 * std::numbers::pi * hz * double(i) / rate));
    }
    return x;
}

// y[n] += sum_k h[k] x[n - k - delay], in double.
void add_direct_convolution(const std::vector<float>& x, const std::vector<float>& h, size_t delay,
                            std::vector<double>* y) {
    for (size_t n = delay; n < y->size(); ++n) {
        double acc = 0.0;
        const size_t avail = n - delay + 1;
        for (size_t k = 0; k < h.size() && k < avail; ++k)
            acc += double(h[k]) * double(x[n - delay - k]);
        (*y)[n] += acc;
    }
}

struct FilterPair {
    std::vector<float> left, right;
};

FilterPair filters_for(const HrtfSet& set, double az, double el) {
    HrtfSet::Scratch scratch(set.filter_taps());
    FilterPair f{std::vector<float>(set.filter_taps()), std::vector<float>(set.filter_taps())};
    uint32_t hint = 0;
    set.design_filters(direction_from_degrees(az, el), HrtfInterpolation::kBarycentric, &hint,
                       scratch, f.left.data(), f.right.data());
    return f;
}

// Largest deviation of the render from direct convolution of the two vocal channels placed at
// azimuth 20 +- 20 (width 40), elevation 10, from frame `skip` on.
double max_error_vs_direct(BinauralRenderer& renderer, const HrtfSet& set,
                           const std::vector<uint32_t>& calls, size_t frames, size_t skip) {
    const auto a = noise(frames, 1), b = noise(frames, 2);
    renderer.set_source(0, 20.0f, 10.0f, 1.0f, 40.0f);
    const Stereo out = render(renderer, {&a, &b}, frames, calls);
    const FilterPair fa = filters_for(set, 40.0, 10.0), fb = filters_for(set, 0.0, 10.0);
    const size_t delay = renderer.latency_frames();
    std::vector<double> el(frames, 0.0), er(frames, 0.0);
    add_direct_convolution(a, fa.left, delay, &el);
    add_direct_convolution(b, fb.left, delay, &el);
    add_direct_convolution(a, fa.right, delay, &er);
    add_direct_convolution(b, fb.right, delay, &er);
    double worst = 0.0, peak = 0.0;
    for (size_t n = skip; n < frames; ++n) {
        worst = std::max(
            {worst, std::fabs(double(out.l[n]) - el[n]), std::fabs(double(out.r[n]) - er[n])});
        peak = std::max(peak, std::fabs(el[n]));
    }
    EXPECT_GT(peak, 0.1);  // the comparison is not between silences
    return worst;
}

// T4 + zero latency: with block = hop, the output of a block depends on that same block.
TEST(BinauralRenderer, HopBlocksEqualDirectConvolutionWithoutLatency) {
    REQUIRE_DEFAULT_SOFA();
    for (const auto& [rate, hop] :
         std::vector<std::pair<double, uint32_t>>{{44100.0, 256}, {48000.0, 256}, {96000.0, 512}}) {
        const HrtfSet& set = hrtf_at(rate);
        auto r = make_renderer(set, hop);
        EXPECT_EQ(r->latency_frames(), 0u);
        // The first block fades in from silence (the HRTF was just set): compare after it.
        const double err = max_error_vs_direct(*r, set, {hop}, 20 * hop, hop);
        std::printf("%g Hz, hop %u: max |render - direct| = %.3g\n", rate, hop, err);
        EXPECT_LE(err, 1e-5) << rate;
    }
}

// T4/T9 with odd call sizes through the FIFO: equal to direct convolution delayed by exactly
// latency_frames() (also with a block size that is not a power of two).
TEST(BinauralRenderer, AnyCallSizeEqualsDirectConvolutionAfterReportedLatency) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    for (uint32_t block : {256u, 100u}) {
        auto r = make_renderer(set, block, true);
        EXPECT_EQ(r->latency_frames(), block);
        const double err =
            max_error_vs_direct(*r, set, {1, 17, 63, 64, 255, 1000, 7, 256, 3}, 9000, 2 * block);
        std::printf("block %u, odd calls: max |render - direct| = %.3g\n", block, err);
        EXPECT_LE(err, 1e-5) << block;
    }
}

double max_abs_difference(const Stereo& a, const Stereo& b) {
    double d = 0.0;
    for (size_t i = 0; i < a.l.size(); ++i) {
        d = std::max({d, double(std::fabs(a.l[i] - b.l[i])), double(std::fabs(a.r[i] - b.r[i]))});
    }
    return d;
}

// T11: turning the head is the same as turning every source the other way.
TEST(BinauralRenderer, HeadRotationEqualsCounterRotatedSources) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const auto x = noise(6144, 3);
    struct Case {
        float yaw, pitch, roll;  // head
        float az, el;            // source with that head
        float az_ref, el_ref;    // same source, head straight
    };
    for (const Case& c : std::vector<Case>{{40, 0, 0, 0, 0, -40, 0},
                                           {-75, 0, 0, 30, 0, 105, 0},
                                           {0, 20, 0, 0, 0, 0, -20},
                                           {0, 0, 30, 90, 0, 90, -30}}) {
        auto turned = make_renderer(set, 256);
        turned->set_head(c.yaw, c.pitch, c.roll);
        turned->set_source(1, c.az, c.el, 1.0f, 0.0f);
        auto straight = make_renderer(set, 256);
        straight->set_source(1, c.az_ref, c.el_ref, 1.0f, 0.0f);
        const Inputs in{nullptr, nullptr, &x, &x};
        const Stereo a = render(*turned, in, x.size(), {256});
        const Stereo b = render(*straight, in, x.size(), {256});
        EXPECT_LE(max_abs_difference(a, b), 1e-6) << c.yaw << "/" << c.pitch << "/" << c.roll;
    }
}

double rms_db(const std::vector<float>& x, size_t from) {
    double e = 0.0;
    for (size_t i = from; i < x.size(); ++i) e += double(x[i]) * double(x[i]);
    return 10.0 * std::log10(e / double(x.size() - from));
}

// T14: 1/r level; air absorption only darkens (high frequencies fall faster than lows).
TEST(BinauralRenderer, DistanceFollowsInverseLawWithAirAbsorption) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const auto low = sine(24064, 48000.0, 200.0, 0.5f), high = sine(24064, 48000.0, 10000.0, 0.5f);
    auto level = [&](const std::vector<float>& x, float distance) {
        auto r = make_renderer(set, 256);
        r->set_source(3, 30.0f, 0.0f, distance, 0.0f);
        return rms_db(
            render(*r, {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, &x}, x.size(), {256})
                .l,
            4096);
    };
    EXPECT_NEAR(level(low, 1.0f) - level(low, 0.5f), -6.02, 0.1);
    EXPECT_NEAR(level(low, 4.0f) - level(low, 2.0f), -6.02, 0.1);
    // The near limit (0.25 m) caps the gain.
    EXPECT_NEAR(level(low, 0.1f) - level(low, 0.25f), 0.0, 0.01);
    const double high_drop = level(high, 8.0f) - level(high, 2.0f);
    std::printf("2 m -> 8 m: 200 Hz %.2f dB, 10 kHz %.2f dB\n", level(low, 8.0f) - level(low, 2.0f),
                high_drop);
    EXPECT_LT(high_drop, -12.04 - 3.0);
}

SwitchArtefacts click_figures(const Stereo& s, size_t at, double rate) {
    return switch_artefacts(s.l, s.r, at, rate);
}

// T7: a 500 Hz tone whose source jumps from one side to the other (ITD flips by 1.4 ms).
TEST(BinauralRenderer, SourceJumpDoesNotClick) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const size_t frames = 48128;  // a multiple of every block size used
    const auto tone = sine(frames, 48000.0, 500.0, 0.5f);
    const Inputs in{&tone};
    struct Mode {
        uint32_t block;
        bool fifo;
        std::vector<uint32_t> calls;
    };
    for (const Mode& m :
         std::vector<Mode>{{256, false, {256}}, {64, false, {64}}, {128, true, {37, 200, 1, 91}}}) {
        auto r = make_renderer(set, m.block, m.fifo);
        size_t jumped_at = 0;
        const Stereo out = render(*r, in, frames, m.calls, [&](size_t pos) {
            const bool jump = pos >= 24000;
            if (jump && jumped_at == 0) jumped_at = pos;
            r->set_source(0, jump ? 90.0f : -90.0f, 0.0f, 1.0f, 0.0f);
        });
        // The jump takes effect at the next block boundary (plus the FIFO latency).
        const size_t boundary = (jumped_at + m.block - 1) / m.block * m.block + r->latency_frames();
        const SwitchArtefacts f = click_figures(out, boundary + m.block / 2, 48000.0);
        std::printf("jump -90 -> +90, block %u%s: HF leakage %.1f dB, step %+.2f dB\n", m.block,
                    m.fifo ? " (odd calls)" : "", f.leakage_db, f.step_db);
        EXPECT_LE(f.leakage_db, -60.0) << m.block;
        EXPECT_LE(f.step_db, 1.0) << m.block;
    }
    // The measure itself detects a hard switch (what ZamHeadX2 does).
    auto left = make_renderer(set, 256), right = make_renderer(set, 256);
    left->set_source(0, -90.0f, 0.0f, 1.0f, 0.0f);
    right->set_source(0, 90.0f, 0.0f, 1.0f, 0.0f);
    Stereo spliced = render(*left, in, frames, {256});
    const Stereo after = render(*right, in, frames, {256});
    std::copy(after.l.begin() + 24064, after.l.end(), spliced.l.begin() + 24064);
    std::copy(after.r.begin() + 24064, after.r.end(), spliced.r.begin() + 24064);
    const SwitchArtefacts hard = click_figures(spliced, 24064, 48000.0);
    std::printf("hard switch: HF leakage %.1f dB, step %+.2f dB\n", hard.leakage_db, hard.step_db);
    EXPECT_GT(hard.leakage_db, -40.0);
}

// T8: a full circle in one second, controls updated every call; the render stays a clean tone.
TEST(BinauralRenderer, SweepAroundTheHeadStaysClean) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const size_t frames = 48128;  // a multiple of every block size used
    const auto tone = sine(frames, 48000.0, 500.0, 0.5f);
    for (uint32_t block : {32u, 64u, 512u}) {
        auto r = make_renderer(set, block);
        const Stereo out = render(*r, {&tone}, frames, {block}, [&](size_t pos) {
            r->set_source(0, static_cast<float>(360.0 * double(pos) / double(frames)), 0.0f, 1.0f,
                          0.0f);
        });
        double worst = -1e9;
        for (size_t at = 4096; at + 2048 <= frames; at += 2048) {
            for (const auto* y : {&out.l, &out.r}) {
                worst = std::max(worst, high_frequency_leakage_db(
                                            std::span(*y).subspan(at - 2048, 4096), 48000.0));
            }
        }
        bool finite = true, denormal = false;
        for (const auto* y : {&out.l, &out.r}) {
            for (float v : *y) {
                finite &= std::isfinite(v);
                denormal |= v != 0.0f && std::fabs(v) < 1e-30f;
            }
        }
        std::printf("sweep 360 deg/s, block %u: worst HF leakage %.1f dB\n", block, worst);
        EXPECT_LE(worst, -60.0) << block;
        EXPECT_TRUE(finite);
        EXPECT_FALSE(denormal);
    }
}

// Real-time safety: nothing in process() or the control setters touches the heap, while every
// control moves every call and the HRTF set is swapped.
TEST(BinauralRenderer, NoHeapCallsWhileControlsMove) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& a = hrtf_at(48000.0);
    const HrtfSet& b = hrtf_at(48000.0, 384);
    {
        g_heap_calls = 0;
        g_count_heap = true;
        int* volatile probe = new int(1);
        delete probe;
        g_count_heap = false;
        if (g_heap_calls.load() < 2) GTEST_SKIP() << "skipped: heap counter not active";
    }
    const auto x = noise(256, 4);
    std::array<const float*, 8> in{};
    for (auto& p : in) p = x.data();
    std::vector<float> l(256), r(256);
    for (bool fifo : {false, true}) {
        auto renderer = make_renderer(a, 64, fifo, a.filter_taps());
        const uint32_t sizes[] = {64, 64, 64};
        const uint32_t odd[] = {1, 63, 17, 100};
        g_heap_calls = 0;
        g_count_heap = true;
        for (int call = 0; call < 200; ++call) {
            for (int stem = 0; stem < 4; ++stem) {
                renderer->set_source(stem, float(call * 7 + stem * 90), float(call % 40 - 20),
                                     0.5f + float(call % 5), float(call % 90));
            }
            renderer->set_head(float(call), float(call % 30), float(-call % 20));
            if (call % 50 == 25) renderer->set_hrtf(call % 100 == 25 ? &b : &a);
            const uint32_t n = fifo ? odd[call % 4] : sizes[call % 3];
            renderer->process(in.data(), l.data(), r.data(), n);
        }
        g_count_heap = false;
        EXPECT_EQ(g_heap_calls.load(), 0) << (fifo ? "fifo" : "hop blocks");
        EXPECT_GT(renderer->filter_updates(), 100u);
    }
}

// set_hrtf: wrong rate / too long filters are refused; a swap fades like a move.
TEST(BinauralRenderer, HrtfSwapIsValidatedAndSmooth) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& full = hrtf_at(48000.0);
    const HrtfSet& short_set = hrtf_at(48000.0, 256);
    auto r = make_renderer(short_set, 256, false, 256);
    EXPECT_FALSE(r->set_hrtf(&hrtf_at(44100.0)));
    EXPECT_FALSE(r->set_hrtf(&full));  // longer than max_filter_taps
    EXPECT_EQ(r->hrtf(), &short_set);

    auto s = make_renderer(full, 256);
    const size_t frames = 48128;  // a multiple of every block size used
    const auto tone = sine(frames, 48000.0, 500.0, 0.5f);
    s->set_source(0, 60.0f, 0.0f, 1.0f, 0.0f);
    const Stereo out = render(*s, {&tone}, frames, {256}, [&](size_t pos) {
        if (pos == 24064) {
            EXPECT_TRUE(s->set_hrtf(&short_set));
        } else if (pos == 36096) {
            EXPECT_TRUE(s->set_hrtf(nullptr));
        }
    });
    const SwitchArtefacts f = click_figures(out, 24064 + 128, 48000.0);
    std::printf("HRTF swap: HF leakage %.1f dB, step %+.2f dB\n", f.leakage_db, f.step_db);
    EXPECT_LE(f.leakage_db, -60.0);
    EXPECT_LE(f.step_db, 1.0);
    // nullptr fades to silence within one block.
    EXPECT_GT(std::fabs(out.l[36000]), 0.0f);
    for (size_t i = 36096 + 256; i < frames; ++i) ASSERT_EQ(out.l[i], 0.0f) << i;
}

// Moves below min_update_angle_deg are not lost: the filters reach the final position once the
// settle time has passed, and then render exactly like a source placed there from the start.
TEST(BinauralRenderer, SmallMovesSettleOnTheTarget) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const auto x = noise(48 * 256, 6);
    auto moved = make_renderer(set, 256), placed = make_renderer(set, 256);
    placed->set_source(0, 30.4f, 0.0f, 1.0f, 0.0f);
    const uint64_t designs_before = moved->filter_updates();
    const Stereo a = render(*moved, {&x}, x.size(), {256}, [&](size_t pos) {
        moved->set_source(0, pos < 2560 ? 30.0f : 30.4f, 0.0f, 1.0f, 0.0f);
    });
    const Stereo b = render(*placed, {&x}, x.size(), {256});
    EXPECT_GT(moved->filter_updates(), designs_before + 8);  // the 0.4 degree move was designed
    // From 2560 + settle (50 ms = 2400 frames) + one block + filter length on, identical.
    double diff = 0.0;
    for (size_t i = 2560 + 2400 + 256 + set.filter_taps() + 256; i < x.size(); ++i) {
        diff = std::max(
            {diff, double(std::fabs(a.l[i] - b.l[i])), double(std::fabs(a.r[i] - b.r[i]))});
    }
    EXPECT_LE(diff, 1e-6);
}

// NaN/Inf input is dropped for the block it arrives in and leaves no trace afterwards.
TEST(BinauralRenderer, NonFiniteInputIsContained) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = hrtf_at(48000.0);
    const auto clean = noise(8192, 5);
    auto dirty = clean;
    dirty[1000] = std::nanf("");
    dirty[3000] = INFINITY;
    auto zeroed = clean;
    std::fill(zeroed.begin() + 768, zeroed.begin() + 1024, 0.0f);  // the blocks the NaN/Inf hit
    std::fill(zeroed.begin() + 2816, zeroed.begin() + 3072, 0.0f);
    // At 1 m the input path is a plain gain: identical to a render with those blocks silent.
    // At 3 m the air-absorption state also restarts; the renders agree once the convolution
    // history has moved past the hit blocks.
    for (const auto& [distance, compare_from] :
         std::vector<std::pair<float, size_t>>{{1.0f, 0}, {3.0f, 3072 + 1024}}) {
        auto a = make_renderer(set, 256), b = make_renderer(set, 256);
        a->set_source(0, 0.0f, 0.0f, distance, 0.0f);
        b->set_source(0, 0.0f, 0.0f, distance, 0.0f);
        const Stereo out = render(*a, {&dirty}, dirty.size(), {256});
        const Stereo ref = render(*b, {&zeroed}, zeroed.size(), {256});
        double diff = 0.0;
        for (size_t i = 0; i < out.l.size(); ++i) {
            ASSERT_TRUE(std::isfinite(out.l[i]) && std::isfinite(out.r[i])) << i;
            if (i >= compare_from) {
                diff = std::max({diff, double(std::fabs(out.l[i] - ref.l[i])),
                                 double(std::fabs(out.r[i] - ref.r[i]))});
            }
        }
        EXPECT_LE(diff, 1e-6) << distance;
    }
}

}  // namespace
}  // namespace stemsphere
