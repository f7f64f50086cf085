// The shipped plugin's meter: the signed-in user's, through the metering client (client/).
#include "plugin/metering.h"

namespace stemsphere::plugin {

std::unique_ptr<client::Meter> open_process_meter() {
    client::MeterOptions options;  // server and sign-in from the environment / config file
    options.client_id = "stemsphere-plugin";
    return client::open_meter(options);
}

}  // namespace stemsphere::plugin
