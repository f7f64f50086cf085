// QR codes drawn by the server as SVG (libqrencode), so the 2FA set-up page needs no script and
// sends the secret to no one else.
#pragma once

#include <string>

namespace stemsphere::service {

// An <svg> element (one path of dark modules, a 4-module quiet zone) for `text` at error
// correction level M, with `label` as its accessible name; empty when the text does not fit.
std::string qr_svg(const std::string& text, const std::string& label);

}  // namespace stemsphere::service
