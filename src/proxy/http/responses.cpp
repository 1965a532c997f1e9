#include "proxy/http/responses.hpp"

#include "proxy/http/request_checks.hpp"

namespace wsgate::proxy {

std::string make_error_response(int status, std::string_view reason, bool keep_alive,
                                const ExtraHeaders& extra) {
  std::string body = std::to_string(status);
  body += ' ';
  body += status_text(status);
  body += ": ";
  body += reason;
  body += '\n';
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(status_text(status)) +
                    "\r\nServer: wsgate\r\nContent-Type: text/plain; charset=utf-8\r\n";
  for (const auto& [name, value] : extra) out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out += body;
  return out;
}

}  // namespace wsgate::proxy
