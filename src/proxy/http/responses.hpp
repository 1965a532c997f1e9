#pragma once
// The short answers the proxy writes itself (4xx/5xx with a plain-text reason).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgate::proxy {

using ExtraHeaders = std::vector<std::pair<std::string, std::string>>;

// A complete HTTP/1.1 response: status line, Content-Type text/plain, Content-Length, the body
// "<status> <text>: <reason>\n", and Connection: close unless keep_alive.
std::string make_error_response(int status, std::string_view reason, bool keep_alive,
                                const ExtraHeaders& extra = {});

}  // namespace wsgate::proxy
