#pragma once
// Counts heap calls (malloc family, operator new/delete) made inside PluginHost::run(), i.e.
// by the plugin's run() on the audio thread. Link heap_counter.cpp into the test executable: it
// interposes the allocator for the whole process (the executable's symbols win over libc's for
// the dlopened plugin too) and forwards to glibc's __libc_* functions.

#include <cstdint>

namespace stemsphere::test {

class HeapCounter {
  public:
    // Resets the counts and installs itself as the PluginHost run observer.
    HeapCounter();
    // Removes the observer.
    ~HeapCounter();
    HeapCounter(const HeapCounter&) = delete;
    HeapCounter& operator=(const HeapCounter&) = delete;

    // False when the allocator cannot be interposed (sanitizer builds own malloc): skip then.
    static bool available();
    // Heap calls made on an observed thread while inside run() since construction.
    uint64_t calls_in_run() const;
    // run() calls observed since construction.
    uint64_t runs() const;
};

// The raw hooks, for code that counts a region of its own (tests of the counter itself).
void heap_counting_enter();
void heap_counting_leave();

}  // namespace stemsphere::test
