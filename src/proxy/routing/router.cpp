#include "proxy/routing/router.hpp"

#include <algorithm>

namespace wsgate::proxy {
namespace {

char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// text (any case) equals lower (already lower-case), compared in place so match() needs no copy.
bool equals_lower(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (to_lower(text[i]) != lower[i]) return false;
  }
  return true;
}

// The host part of a Host header, still in its original case: without ":port", without the
// brackets of an IPv6 literal, without the trailing dot of a fully qualified name.
std::string_view host_part(std::string_view header) {
  if (!header.empty() && header.front() == '[') {
    const std::size_t close = header.find(']');
    return close == std::string_view::npos ? header.substr(1) : header.substr(1, close - 1);
  }
  // More than one ':' is an unbracketed IPv6 literal (not valid in Host, but not a port either).
  const std::size_t colon = header.find(':');
  if (colon != std::string_view::npos && header.find(':', colon + 1) == std::string_view::npos) {
    header = header.substr(0, colon);
  }
  if (!header.empty() && header.back() == '.') header.remove_suffix(1);
  return header;
}

}  // namespace

std::string normalize_host(std::string_view host_header) {
  std::string host(host_part(host_header));
  std::transform(host.begin(), host.end(), host.begin(), to_lower);
  return host;
}

Router::Router(const config::RouteTable& table) {
  for (const config::Route& route : table.routes()) {
    if (route.hosts.empty()) entries_.push_back(Entry{&route, route.path_prefix, "", 0});
    for (const std::string& host : route.hosts) {
      std::string normalized = normalize_host(host);
      const int rank = normalized.starts_with("*.") ? 1 : 2;
      entries_.push_back(Entry{&route, route.path_prefix, std::move(normalized), rank});
    }
  }
  // Best first, so match() can return the first hit. Stable: full ties keep table order (by id).
  std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.path_prefix.size() != b.path_prefix.size()) {
      return a.path_prefix.size() > b.path_prefix.size();
    }
    if (a.host_rank != b.host_rank) return a.host_rank > b.host_rank;
    return a.host.size() > b.host.size();
  });
}

bool Router::host_matches(const Entry& entry, std::string_view host) {
  switch (entry.host_rank) {
    case 2:
      return equals_lower(host, entry.host);
    case 1: {
      // "*.example.com" needs at least one label before ".example.com".
      const std::string_view suffix = std::string_view(entry.host).substr(1);
      return host.size() > suffix.size() &&
             equals_lower(host.substr(host.size() - suffix.size()), suffix);
    }
    default:
      return true;
  }
}

const config::Route* Router::match(std::string_view host, std::string_view target) const {
  const std::string_view request_host = host_part(host);
  const std::string_view path = target.substr(0, target.find('?'));
  for (const Entry& entry : entries_) {
    if (path.starts_with(entry.path_prefix) && host_matches(entry, request_host)) {
      return entry.route;
    }
  }
  return nullptr;
}

}  // namespace wsgate::proxy
