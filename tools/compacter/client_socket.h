// Noticing that an HTTP client went away while its request waits for decoding, as Go's
// net/http does for a request's context: the connection's socket (found by its two ports, since
// cpp-httplib 0.11 does not hand its socket to a handler) read without consuming anything. An
// end of file or a connection error means the client closed or lost the connection; bytes
// waiting (a pipelined next request) do not.
#pragma once
#include <string>

namespace compacter::cli {

// The descriptor of this process's TCP socket whose own port is `local_port` and whose peer is
// `peer_address`:`peer_port` (the numeric form getnameinfo writes, as in httplib::Request), or -1
// when there is none. The socket stays open while its request's handler runs.
int find_connection_socket(int local_port, const std::string& peer_address, int peer_port);

// Whether the peer of connected socket `fd` closed its side or the connection failed. Never
// blocks and consumes nothing.
bool peer_went_away(int fd);

}  // namespace compacter::cli
