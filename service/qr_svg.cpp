#include "service/qr_svg.h"

#include <qrencode.h>

#include <memory>

#include "service/html.h"

namespace stemsphere::service {

std::string qr_svg(const std::string& text, const std::string& label) {
    std::unique_ptr<QRcode, decltype(&QRcode_free)> code(
        QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1), &QRcode_free);
    if (!code) return {};
    const int width = code->width;
    const int quiet = 4;
    const int size = width + 2 * quiet;
    std::string path;
    for (int y = 0; y < width; ++y) {
        for (int x = 0; x < width; ++x) {
            // Bit 0 of each module byte is "dark" (qrencode.h).
            if (code->data[y * width + x] & 1) {
                path +=
                    "M" + std::to_string(x + quiet) + " " + std::to_string(y + quiet) + "h1v1h-1z";
            }
        }
    }
    const std::string s = std::to_string(size);
    return "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + s + " " + s +
           "\" role=\"img\" aria-label=\"" + esc(label) +
           "\" shape-rendering=\"crispEdges\"><rect width=\"" + s + "\" height=\"" + s +
           "\" fill=\"#fff\"/><path fill=\"#000\" d=\"" + path + "\"/></svg>";
}

}  // namespace stemsphere::service
