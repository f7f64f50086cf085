#include "tests/host/heap_counter.h"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "tools/lv2host/plugin_host.h"

#if defined(__SANITIZE_ADDRESS__)
#define STEMSPHERE_HEAP_COUNTER_DISABLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STEMSPHERE_HEAP_COUNTER_DISABLED 1
#endif
#endif

namespace {

std::atomic<uint64_t> g_calls{0};
std::atomic<uint64_t> g_runs{0};
// Plain thread_local bool: constant-initialised, so reading it never allocates (no TLS guard).
thread_local bool t_counting = false;

inline void note_call() {
    if (t_counting) g_calls.fetch_add(1, std::memory_order_relaxed);
}

void observer_enter() {
    g_runs.fetch_add(1, std::memory_order_relaxed);
    t_counting = true;
}
void observer_leave() {
    t_counting = false;
}
void observer_pause() {
    t_counting = false;
}
void observer_resume() {
    t_counting = true;
}

}  // namespace

namespace stemsphere::test {

HeapCounter::HeapCounter() {
    g_calls.store(0);
    g_runs.store(0);
    host::PluginHost::set_run_observer(observer_enter, observer_leave, observer_pause,
                                       observer_resume);
}

HeapCounter::~HeapCounter() {
    host::PluginHost::set_run_observer(nullptr, nullptr);
}

bool HeapCounter::available() {
#ifdef STEMSPHERE_HEAP_COUNTER_DISABLED
    return false;
#else
    return true;
#endif
}

uint64_t HeapCounter::calls_in_run() const {
    return g_calls.load();
}
uint64_t HeapCounter::runs() const {
    return g_runs.load();
}

void heap_counting_enter() {
    observer_enter();
}
void heap_counting_leave() {
    observer_leave();
}

}  // namespace stemsphere::test

#ifndef STEMSPHERE_HEAP_COUNTER_DISABLED

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* ptr, size_t size);
void __libc_free(void* ptr);
void* __libc_memalign(size_t alignment, size_t size);
void* __libc_valloc(size_t size);
void* __libc_pvalloc(size_t size);

void* malloc(size_t size) {
    note_call();
    return __libc_malloc(size);
}

void* calloc(size_t count, size_t size) {
    note_call();
    return __libc_calloc(count, size);
}

void* realloc(void* ptr, size_t size) {
    note_call();
    return __libc_realloc(ptr, size);
}

void free(void* ptr) {
    if (ptr != nullptr) note_call();
    __libc_free(ptr);
}

void* memalign(size_t alignment, size_t size) {
    note_call();
    return __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
    note_call();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
    note_call();
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void* ptr = __libc_memalign(alignment, size);
    if (ptr == nullptr) return ENOMEM;
    *out = ptr;
    return 0;
}

void* valloc(size_t size) {
    note_call();
    return __libc_valloc(size);
}

void* pvalloc(size_t size) {
    note_call();
    return __libc_pvalloc(size);
}
}  // extern "C"

// operator new/delete go through the interposed malloc/free above, so each counts once.
namespace {
void* checked_new(size_t size) {
    void* ptr = malloc(size == 0 ? 1 : size);
    if (ptr == nullptr) throw std::bad_alloc();
    return ptr;
}
void* checked_aligned_new(size_t size, std::align_val_t alignment) {
    void* ptr = nullptr;
    const auto a = static_cast<size_t>(alignment);
    if (posix_memalign(&ptr, a < sizeof(void*) ? sizeof(void*) : a, size == 0 ? 1 : size) != 0) {
        throw std::bad_alloc();
    }
    return ptr;
}
}  // namespace

void* operator new(size_t size) {
    return checked_new(size);
}
void* operator new[](size_t size) {
    return checked_new(size);
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
    return malloc(size ? size : 1);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
    return malloc(size ? size : 1);
}
void* operator new(size_t size, std::align_val_t alignment) {
    return checked_aligned_new(size, alignment);
}
void* operator new[](size_t size, std::align_val_t alignment) {
    return checked_aligned_new(size, alignment);
}
void* operator new(size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    try {
        return checked_aligned_new(size, alignment);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    try {
        return checked_aligned_new(size, alignment);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* ptr) noexcept {
    free(ptr);
}
void operator delete[](void* ptr) noexcept {
    free(ptr);
}
void operator delete(void* ptr, size_t) noexcept {
    free(ptr);
}
void operator delete[](void* ptr, size_t) noexcept {
    free(ptr);
}
void operator delete(void* ptr, const std::nothrow_t&) noexcept {
    free(ptr);
}
void operator delete[](void* ptr, const std::nothrow_t&) noexcept {
    free(ptr);
}
void operator delete(void* ptr, std::align_val_t) noexcept {
    free(ptr);
}
void operator delete[](void* ptr, std::align_val_t) noexcept {
    free(ptr);
}
void operator delete(void* ptr, size_t, std::align_val_t) noexcept {
    free(ptr);
}
void operator delete[](void* ptr, size_t, std::align_val_t) noexcept {
    free(ptr);
}
void operator delete(void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
    free(ptr);
}
void operator delete[](void* ptr, std::align_val_t, const std::nothrow_t&) noexcept {
    free(ptr);
}

#endif  // STEMSPHERE_HEAP_COUNTER_DISABLED
