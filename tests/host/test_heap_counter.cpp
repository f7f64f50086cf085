// The heap counter itself: it must see calls made inside the counted region and only there.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "tests/host/heap_counter.h"

namespace {

// Through a volatile pointer so the compiler cannot elide the malloc/free pair.
void* (*volatile g_malloc)(size_t) = std::malloc;
void (*volatile g_free)(void*) = std::free;
void* (*volatile g_new)(size_t) = static_cast<void* (*)(size_t)>(&::operator new);
void (*volatile g_delete)(void*) = static_cast<void (*)(void*)>(&::operator delete);

TEST(HeapCounter, CountsCallsInsideTheRegionOnly) {
    if (!stemsphere::test::HeapCounter::available()) GTEST_SKIP() << "skipped: sanitizer build";
    stemsphere::test::HeapCounter counter;
    g_free(g_malloc(64));  // outside: not counted
    EXPECT_EQ(counter.calls_in_run(), 0u);
    stemsphere::test::heap_counting_enter();
    void* p = g_malloc(32);
    g_free(p);
    g_delete(g_new(16));
    stemsphere::test::heap_counting_leave();
    EXPECT_EQ(counter.calls_in_run(), 4u);
    EXPECT_EQ(counter.runs(), 1u);
}

}  // namespace
