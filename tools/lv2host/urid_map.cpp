#include "tools/lv2host/urid_map.h"

namespace stemsphere::host {

namespace {

LV2_URID map_callback(LV2_URID_Map_Handle handle, const char* uri) {
    return static_cast<UridMap*>(handle)->map(uri);
}

const char* unmap_callback(LV2_URID_Unmap_Handle handle, LV2_URID urid) {
    return static_cast<UridMap*>(handle)->unmap(urid);
}

}  // namespace

UridMap::UridMap() {
    map_feature_.handle = this;
    map_feature_.map = map_callback;
    unmap_feature_.handle = this;
    unmap_feature_.unmap = unmap_callback;
}

LV2_URID UridMap::map(const char* uri) {
    if (uri == nullptr) return 0;
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto found = ids_.find(std::string_view(uri));
    if (found != ids_.end()) return found->second;
    uris_.emplace_back(uri);
    const auto id = static_cast<LV2_URID>(uris_.size());
    ids_.emplace(std::string_view(uris_.back()), id);
    return id;
}

const char* UridMap::unmap(LV2_URID urid) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (urid == 0 || urid > uris_.size()) return nullptr;
    return uris_[urid - 1].c_str();
}

}  // namespace stemsphere::host
