#pragma once
// URI <-> URID table shared by the host, the plugin (urid:map / urid:unmap features) and lilv.

#include <lv2/urid/urid.h>

#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace stemsphere::host {

// Thread-safe because plugins may map URIs from their worker thread. The strings live in a deque
// so the `const char*` returned by unmap() stays valid while the table grows.
class UridMap {
  public:
    UridMap();
    UridMap(const UridMap&) = delete;
    UridMap& operator=(const UridMap&) = delete;

    // Returns the URID of `uri`, adding it on first use; 0 (invalid URID) for a null pointer.
    LV2_URID map(const char* uri);
    // Returns the URI of `urid`, or nullptr when it was never handed out.
    const char* unmap(LV2_URID urid) const;

    // Feature payloads; their addresses are stable for the lifetime of the map.
    LV2_URID_Map* map_feature() { return &map_feature_; }
    LV2_URID_Unmap* unmap_feature() { return &unmap_feature_; }

  private:
    mutable std::mutex mutex_;
    std::deque<std::string> uris_;  // uris_[i] has URID i + 1
    std::unordered_map<std::string_view, LV2_URID> ids_;
    LV2_URID_Map map_feature_{};
    LV2_URID_Unmap unmap_feature_{};
};

}  // namespace stemsphere::host
