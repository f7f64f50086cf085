// The account pages' only assets (stylesheet, script, icon), compiled into the server: nothing
// is loaded from anywhere else, so the Content-Security-Policy can say 'self'.
#pragma once

#include <string_view>

namespace stemsphere::service {

struct WebAsset {
    std::string_view path;  // "/static/site.css"
    std::string_view content_type;
    std::string_view body;
};

// Every asset; the server answers each path with its body.
const WebAsset* web_assets_begin();
const WebAsset* web_assets_end();

}  // namespace stemsphere::service
