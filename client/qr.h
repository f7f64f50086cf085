// A QR code drawn with Unicode half blocks, two modules per character cell, for the device
// sign-in URL in a terminal.
#pragma once

#include <string>

namespace stemsphere::client {

// Lines of text (with a quiet zone), or "" when the text does not fit a QR code.
std::string draw_qr(const std::string& text);

}  // namespace stemsphere::client
