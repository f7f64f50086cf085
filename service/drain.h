// Graceful shutdown support for cpp-httplib 0.11.4. After Server::stop() a worker thread that
// sits on an idle keep-alive connection waits for the next request until the keep-alive timeout
// (30 s here) before it notices, so a SIGTERM took that long. The library exposes no handle on
// its accepted sockets, so this finds them among the process's descriptors (TCP sockets whose
// local port is the server's) and shuts them down, which ends those waits at once. Call it only
// once no request is being handled: the library will not write a response on a socket whose
// reading side is shut (it takes the end-of-file for a client that went away).
#pragma once

namespace stemsphere::service {

// Shuts down the accepted connections that have no unread request bytes; returns how many it
// left alone because bytes of a request are waiting in them (their worker is about to serve it:
// wait for it, then call again).
int shut_down_idle_accepted_connections(int local_port);

}  // namespace stemsphere::service
