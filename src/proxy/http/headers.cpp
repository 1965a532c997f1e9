#include "proxy/http/headers.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <array>

namespace wsgate::proxy {
namespace {

namespace beast = boost::beast;

// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones proxies strip.
constexpr std::array<http::field, 7> kHopByHop = {
    http::field::connection, http::field::keep_alive, http::field::proxy_connection,
    http::field::te,         http::field::trailer,    http::field::transfer_encoding,
    http::field::upgrade};

// Typical serialized heads fit: one allocation instead of a doubling series.
constexpr std::size_t kHeadReserve = 512;

void append_fields(std::string& out, const http::fields& fields) {
  for (const auto& field : fields) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
}

}  // namespace

std::string serialize_header(const http::response_header<>& header) {
  std::string out;
  out.reserve(kHeadReserve);
  out += "HTTP/1.1 ";
  out += std::to_string(header.result_int());
  out += ' ';
  out += header.reason().empty() ? std::string(http::obsolete_reason(header.result()))
                                 : std::string(header.reason());
  out += "\r\n";
  append_fields(out, header);
  return out;
}

std::string serialize_header(const RequestHeader& header) {
  std::string out;
  out.reserve(kHeadReserve);
  out += header.method_string();
  out += ' ';
  out += header.target();
  out += " HTTP/1.1\r\n";
  append_fields(out, header);
  return out;
}

void strip_hop_by_hop(http::fields& fields) {
  // Fields named in Connection are hop-by-hop too (copied: the pass below erases Connection).
  boost::container::small_vector<std::string, 4> named;
  for (auto it = fields.find(http::field::connection);
       it != fields.end() && it->name() == http::field::connection; ++it) {
    std::string_view value = it->value();
    while (!value.empty()) {
      const auto comma = value.find(',');
      std::string_view token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      if (!token.empty()) named.emplace_back(token);
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  // One pass over the fields: erasing by name searches the field set once per name, which cost
  // more than the rest of the header rewrite together (callgrind).
  for (auto it = fields.begin(); it != fields.end();) {
    const http::field field = it->name();
    bool hop = std::find(kHopByHop.begin(), kHopByHop.end(), field) != kHopByHop.end();
    // A Connection token may not remove what frames or routes the message: without its
    // Content-Length a body would be read by the next hop as a request of its own.
    if (!hop && field != http::field::content_length && field != http::field::host) {
      const std::string_view name = it->name_string();
      hop = std::any_of(named.begin(), named.end(),
                        [&](const std::string& token) { return beast::iequals(token, name); });
    }
    it = hop ? fields.erase(it) : std::next(it);
  }
}

void rewrite_request_headers(RequestHeader& header, bool upgrade, const std::string& client_address,
                             bool client_tls) {
  const std::string host(header[http::field::host]);
  std::string forwarded_for(header["X-Forwarded-For"]);
  strip_hop_by_hop(header);
  if (upgrade) {
    header.set(http::field::connection, "Upgrade");
    header.set(http::field::upgrade, "websocket");
  }
  forwarded_for = forwarded_for.empty() ? client_address : forwarded_for + ", " + client_address;
  header.set("X-Forwarded-For", forwarded_for);
  header.set("X-Forwarded-Proto", client_tls ? "https" : "http");
  if (!host.empty()) header.set("X-Forwarded-Host", host);
  header.version(11);
}

}  // namespace wsgate::proxy
