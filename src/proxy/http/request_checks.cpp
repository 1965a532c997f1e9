#include "proxy/http/request_checks.hpp"

#include <algorithm>
#include <cctype>

namespace wsgate::proxy {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A Host value (RFC 9110 §7.2: uri-host [":" port]) uses reg-name, IP-literal and port
// characters only: no '/', '@', '?', '#', '\\' or whitespace that could make the router and a
// backend read different hosts.
bool valid_host_value(std::string_view host) {
  static constexpr std::string_view kAllowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%";
  return host.find_first_not_of(kAllowed) == std::string_view::npos;
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::size_t count_fields(const RequestHeader& req, http::field name) {
  const auto range = req.equal_range(name);
  return static_cast<std::size_t>(std::distance(range.first, range.second));
}

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const auto item = trim(value.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Rejection check_framing(const RequestHeader& req) {
  const auto content_lengths = count_fields(req, http::field::content_length);
  const auto transfer_encodings = count_fields(req, http::field::transfer_encoding);
  if (content_lengths > 0 && transfer_encodings > 0)
    return {400, "both Content-Length and Transfer-Encoding"};
  if (content_lengths > 1) {
    const auto range = req.equal_range(http::field::content_length);
    const auto first = trim(range.first->value());
    for (auto it = range.first; it != range.second; ++it) {
      if (trim(it->value()) != first) return {400, "conflicting Content-Length headers"};
    }
    // Equal values are allowed by RFC 9110 §8.6, but not every backend agrees: refuse.
    return {400, "repeated Content-Length headers"};
  }
  if (content_lengths == 1 && !all_digits(trim(req[http::field::content_length])))
    return {400, "Content-Length is not a number"};
  if (transfer_encodings > 1) return {400, "repeated Transfer-Encoding"};
  if (transfer_encodings == 1) {
    const auto te = trim(req[http::field::transfer_encoding]);
    if (!iequals(te, "chunked")) return {400, "unsupported Transfer-Encoding"};
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (req.version() < 11) return {400, "Transfer-Encoding in an HTTP/1.0 request"};
  }
  const auto hosts = count_fields(req, http::field::host);
  if (hosts > 1) return {400, "repeated Host header"};
  if (hosts == 1 && !valid_host_value(trim(req[http::field::host])))
    return {400, "invalid Host header"};
  return {};
}

Rejection normalize_target(RequestHeader& req) {
  if (req.method() == http::verb::connect) return {405, "CONNECT is not supported"};
  const std::string_view target = req.target();
  if (target.starts_with('/')) return {};
  if (target == "*") {
    if (req.method() == http::verb::options) return {};
    return {400, "asterisk-form request target needs OPTIONS"};
  }
  std::size_t scheme_len = 0;
  if (istarts_with(target, "http://")) {
    scheme_len = 7;
  } else if (istarts_with(target, "https://")) {
    scheme_len = 8;
  } else {
    return {400, "request target must be a path or an http(s) URL"};
  }
  const std::string_view rest = target.substr(scheme_len);
  const std::size_t path_at = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, path_at);
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      !valid_host_value(authority)) {
    return {400, "invalid authority in the request target"};
  }
  std::string path(path_at == std::string_view::npos ? std::string_view() : rest.substr(path_at));
  if (!path.empty() && path.front() == '#') path.clear();  // a fragment is never sent
  // (insert of one char, not of "/": GCC 12 -O2 flags the string-literal insert with -Wrestrict)
  if (path.empty() || path.front() != '/') path.insert(path.begin(), '/');
  const std::string host(authority);
  req.target(path);
  req.set(http::field::host, host);
  return {};
}

std::string_view status_text(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

}  // namespace wsgate::proxy
