#include "client/qr.h"

#include <qrencode.h>

namespace stemsphere::client {

std::string draw_qr(const std::string& text) {
    QRcode* code = QRcode_encodeString(text.c_str(), 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (!code) return "";
    const int width = code->width;
    constexpr int kQuiet = 2;
    auto dark = [&](int x, int y) {
        if (x < 0 || y < 0 || x >= width || y >= width) return false;
        return (code->data[y * width + x] & 1) != 0;
    };
    // Light modules are drawn (terminal text is light on dark by default), like `qrencode -t
    // UTF8`; each cell shows the module above in its upper half and the one below in its lower.
    std::string out;
    for (int y = -kQuiet; y < width + kQuiet; y += 2) {
        for (int x = -kQuiet; x < width + kQuiet; ++x) {
            const bool top_light = !dark(x, y);
            const bool bottom_light = y + 1 < width + kQuiet && !dark(x, y + 1);
            if (top_light && bottom_light)
                out += "\u2588";
            else if (top_light)
                out += "\u2580";
            else if (bottom_light)
                out += "\u2584";
            else
                out += " ";
        }
        out += "\n";
    }
    QRcode_free(code);
    return out;
}

}  // namespace stemsphere::client
