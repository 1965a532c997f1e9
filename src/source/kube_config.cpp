#include "source/kube_config.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace wsgate::source {
namespace {

namespace fs = std::filesystem;

// Certificates, keys and tokens are a few KiB; a larger file is the wrong file.
constexpr std::size_t kMaxCredentialFileBytes = 1024 * 1024;

std::optional<std::string> read_small_file(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return path.string() + ": cannot read: " + std::strerror(errno);
  std::string text;
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxCredentialFileBytes) return path.string() + ": larger than 1 MiB";
  }
  if (in.bad()) return path.string() + ": read error";
  out = std::move(text);
  return std::nullopt;
}

std::string trim(std::string text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// Standard alphabet, padding optional, whitespace ignored (some tools wrap long data lines).
std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  std::uint32_t accumulator = 0;
  int bits = 0;
  bool padding = false;
  for (const char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    if (c >= '0' && c <= '9') value = c - '0' + 52;
    if (c == '+') value = 62;
    if (c == '/') value = 63;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (value < 0 || padding) return std::nullopt;
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((accumulator >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return std::nullopt;  // a dangling sextet cannot be a whole byte
  return out;
}

fs::path resolve_path(const fs::path& base_dir, const std::string& file) {
  const fs::path path(file);
  return path.is_absolute() || base_dir.empty() ? path : base_dir / path;
}

std::string scalar(const YAML::Node& map, const char* key) {
  const YAML::Node node = map[key];
  return node && node.IsScalar() ? node.Scalar() : std::string();
}

// `<name>-data` (base64, inline) wins over `<name>` (a file), as in client-go.
std::optional<std::string> read_data_or_file(const YAML::Node& map, const std::string& key,
                                             const fs::path& base_dir, std::string& out) {
  if (const std::string data = scalar(map, (key + "-data").c_str()); !data.empty()) {
    auto decoded = decode_base64(data);
    if (!decoded) return key + "-data: not valid base64";
    out = std::move(*decoded);
    return std::nullopt;
  }
  if (const std::string file = scalar(map, key.c_str()); !file.empty()) {
    if (auto error = read_small_file(resolve_path(base_dir, file), out)) return key + ": " + *error;
  }
  return std::nullopt;
}

// The `key` entry named `name` of a kubeconfig list (clusters, users, contexts); nullopt when
// there is no such entry (a null value is an entry: `user: {}` means anonymous).
std::optional<YAML::Node> find_named(const YAML::Node& root, const char* list, const char* key,
                                     const std::string& name) {
  const YAML::Node entries = root[list];
  if (!entries || !entries.IsSequence()) return std::nullopt;
  for (const auto& entry : entries) {
    if (entry.IsMap() && scalar(entry, "name") == name) return entry[key];
  }
  return std::nullopt;
}

std::string choose_context(const YAML::Node& root, std::string_view requested) {
  if (!requested.empty()) return std::string(requested);
  if (std::string current = scalar(root, "current-context"); !current.empty()) return current;
  const YAML::Node contexts = root["contexts"];
  // No current-context but only one context: the user can only mean that one.
  if (contexts && contexts.IsSequence() && contexts.size() == 1 && contexts[0].IsMap())
    return scalar(contexts[0], "name");
  return {};
}

std::optional<std::string> read_cluster(const YAML::Node& cluster, const fs::path& base_dir,
                                        KubeConfig& config) {
  if (auto error = parse_server_url(scalar(cluster, "server"), config)) return "server: " + *error;
  config.tls_server_name = scalar(cluster, "tls-server-name");
  const std::string insecure = scalar(cluster, "insecure-skip-tls-verify");
  config.insecure_skip_tls_verify = insecure == "true" || insecure == "True";
  if (auto error = read_data_or_file(cluster, "certificate-authority", base_dir, config.ca_pem))
    return error;
  // kubectl refuses this pair too: a CA that is never checked is a misconfiguration.
  if (config.insecure_skip_tls_verify && !config.ca_pem.empty())
    return std::string("certificate-authority and insecure-skip-tls-verify are exclusive");
  return std::nullopt;
}

std::optional<std::string> read_user(const YAML::Node& user, const fs::path& base_dir,
                                     KubeConfig& config) {
  if (!user || !user.IsMap()) return std::nullopt;  // no credentials: anonymous
  if (user["exec"] || user["auth-provider"])
    return std::string(
        "exec and auth-provider credential plugins are not supported; "
        "use a token or a client certificate");
  if (user["username"] || user["password"])
    return std::string(
        "basic authentication is not supported; use a token or a client certificate");
  config.token = trim(scalar(user, "token"));
  if (const std::string file = scalar(user, "tokenFile"); !file.empty() && config.token.empty())
    config.token_file = resolve_path(base_dir, file).string();
  if (auto error = read_data_or_file(user, "client-certificate", base_dir, config.client_cert_pem))
    return error;
  if (auto error = read_data_or_file(user, "client-key", base_dir, config.client_key_pem))
    return error;
  if (config.client_cert_pem.empty() != config.client_key_pem.empty())
    return std::string("client-certificate and client-key must be given together");
  if (!config.token_file.empty()) {
    std::string error;
    config.current_token(&error);
    if (!error.empty()) return "tokenFile: " + error;
  }
  return std::nullopt;
}

}  // namespace

std::string KubeConfig::current_token(std::string* error) const {
  if (token_file.empty()) return token;
  std::string text;
  if (auto reason = read_small_file(token_file, text)) {
    if (error != nullptr) *error = *reason;
    return {};
  }
  return trim(std::move(text));
}

std::string KubeConfig::server_url() const {
  const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + shown_host + ":" + port + base_path;
}

std::optional<std::string> parse_server_url(std::string_view url, KubeConfig& out) {
  if (url.empty()) return std::string("missing");
  std::string_view rest;
  if (url.starts_with("https://")) {
    out.scheme = "https";
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    out.scheme = "http";
    rest = url.substr(7);
  } else {
    return "\"" + std::string(url) + "\": expected an https:// or http:// URL";
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.find_first_of("?#") != std::string_view::npos)
    return "\"" + std::string(url) + "\": a query or fragment is not allowed";
  if (authority.find('@') != std::string_view::npos)
    return "\"" + std::string(url) + "\": credentials in the URL are not supported";
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return "\"" + std::string(url) + "\": unclosed [";
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return "\"" + std::string(url) + "\": junk after ]";
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return "\"" + std::string(url) + "\": missing host";
  if (port.empty() && authority.ends_with(':')) return "\"" + std::string(url) + "\": empty port";
  if (!port.empty()) {
    if (port.find_first_not_of("0123456789") != std::string_view::npos || port.size() > 5 ||
        std::stoul(std::string(port)) == 0 || std::stoul(std::string(port)) > 65535)
      return "\"" + std::string(url) + "\": invalid port";
  }
  out.host = std::string(host);
  out.port = port.empty() ? (out.scheme == "https" ? "443" : "80") : std::string(port);
  out.base_path = std::string(path);
  return std::nullopt;
}

KubeConfigResult parse_kubeconfig(std::string_view text, const fs::path& base_dir,
                                  std::string_view context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return "invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg;
  }
  if (!root.IsMap()) return std::string("not a kubeconfig (expected a mapping)");
  try {
    const std::string context_name = choose_context(root, context);
    if (context_name.empty()) return std::string("no current-context and no --context given");
    const auto ctx = find_named(root, "contexts", "context", context_name);
    if (!ctx || !ctx->IsMap()) return "context \"" + context_name + "\" not found";
    KubeConfig config;
    config.namespace_ = scalar(*ctx, "namespace");
    const std::string cluster_name = scalar(*ctx, "cluster");
    const auto cluster = find_named(root, "clusters", "cluster", cluster_name);
    if (!cluster || !cluster->IsMap())
      return "context \"" + context_name + "\": cluster \"" + cluster_name + "\" not found";
    if (auto error = read_cluster(*cluster, base_dir, config))
      return "cluster \"" + cluster_name + "\": " + *error;
    if (const std::string user_name = scalar(*ctx, "user"); !user_name.empty()) {
      const auto user = find_named(root, "users", "user", user_name);
      if (!user) return "context \"" + context_name + "\": user \"" + user_name + "\" not found";
      if (auto error = read_user(*user, base_dir, config))
        return "user \"" + user_name + "\": " + *error;
    }
    return config;
  } catch (const YAML::Exception& e) {
    // Only a malformed document gets here (a list where a mapping belongs, say).
    return "malformed kubeconfig: " + e.msg;
  }
}

KubeConfigResult load_kubeconfig(const fs::path& file, std::string_view context) {
  std::string text;
  if (auto error = read_small_file(file, text)) return *error;
  auto result = parse_kubeconfig(text, file.parent_path(), context);
  if (auto* error = std::get_if<std::string>(&result)) return file.string() + ": " + *error;
  std::get<KubeConfig>(result).origin = file.string();
  return result;
}

KubeConfigResult load_in_cluster(const InClusterEnv& env) {
  if (env.service_host.empty() || env.service_port.empty())
    return std::string(
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  KubeConfig config;
  config.origin = "in-cluster";
  // The service host is an address (IPv6 without brackets), the port a number.
  const std::string host = env.service_host.find(':') != std::string::npos
                               ? "[" + env.service_host + "]"
                               : env.service_host;
  if (auto error = parse_server_url("https://" + host + ":" + env.service_port, config))
    return "in-cluster: " + *error;
  config.token_file = (env.service_account_dir / "token").string();
  std::string error;
  config.current_token(&error);
  if (!error.empty()) return "in-cluster: " + error;
  if (auto reason = read_small_file(env.service_account_dir / "ca.crt", config.ca_pem))
    return "in-cluster: " + *reason;
  std::string ns;
  if (!read_small_file(env.service_account_dir / "namespace", ns)) config.namespace_ = trim(ns);
  return config;
}

KubeConfigResult resolve_kube_config(const std::string& kubeconfig,
                                     const fs::path& service_account_dir) {
  if (!kubeconfig.empty()) return load_kubeconfig(kubeconfig);
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (host != nullptr && *host != '\0') {
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    return load_in_cluster({host, port != nullptr ? port : "", service_account_dir});
  }
  if (const char* list = std::getenv("KUBECONFIG"); list != nullptr && *list != '\0') {
    const std::string first(list, std::strcspn(list, ":"));
    return load_kubeconfig(first);
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    const fs::path path = fs::path(home) / ".kube" / "config";
    std::error_code ec;
    if (fs::exists(path, ec)) return load_kubeconfig(path);
  }
  return std::string(
      "no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST unset), no "
      "--kubeconfig, no $KUBECONFIG and no ~/.kube/config");
}

}  // namespace wsgate::source
