#include "service/drain.h"

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace stemsphere::service {

int shut_down_idle_accepted_connections(int local_port) {
    int busy = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const std::string name = entry.path().filename().string();
        char* end = nullptr;
        const long fd_long = std::strtol(name.c_str(), &end, 10);
        if (end == name.c_str() || *end != '\0') continue;
        const int fd = static_cast<int>(fd_long);
        struct stat st {};
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int type = 0;
        socklen_t type_len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) {
            continue;
        }
        sockaddr_storage local{};
        socklen_t local_len = sizeof(local);
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
        int port = -1;
        if (local.ss_family == AF_INET) {
            port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
        } else if (local.ss_family == AF_INET6) {
            port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
        }
        if (port != local_port) continue;
        // Only connected sockets: the listening socket (if still open) has no peer.
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof(peer);
        if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
        int unread = 0;
        if (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0) {
            ++busy;
            continue;
        }
        shutdown(fd, SHUT_RDWR);
    }
    return busy;
}

}  // namespace stemsphere::service
