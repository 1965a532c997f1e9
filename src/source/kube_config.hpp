#pragma once
// Where the Kubernetes API server is and how to authenticate to it: the in-cluster
// service-account files, or a kubeconfig file in the shapes kubectl and client-go read.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wsgate::source {

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string scheme = "https";  // "https", or "http" (kubectl proxy)
  std::string host;              // without brackets for IPv6
  std::string port;              // always set: the URL's, else 443 / 80
  std::string base_path;         // path prefix of the server URL without trailing '/', usually ""
  std::string tls_server_name;   // name to send as SNI and to verify; empty = host
  std::string ca_pem;            // trusted CAs (PEM); empty = the system store
  bool insecure_skip_tls_verify = false;
  std::string token;       // bearer token given inline
  std::string token_file;  // read again for every request: projected tokens rotate
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_;  // the context's (or the pod's) namespace; informational
  std::string origin;      // "in-cluster" or the kubeconfig path, for log lines

  // The bearer token to send now (token_file re-read), or "" for none. An unreadable token
  // file gives "" and `error`.
  std::string current_token(std::string* error = nullptr) const;
  // "https://host:port/base" for log lines.
  std::string server_url() const;
};

using KubeConfigResult = std::variant<KubeConfig, std::string>;  // the config, or why not

// Splits "https://host:port/prefix" into `out`'s scheme/host/port/base_path. Returns the reason
// when the URL is not one we can use.
std::optional<std::string> parse_server_url(std::string_view url, KubeConfig& out);

// A kubeconfig's text. Relative file paths in it resolve against `base_dir`, as kubectl does
// (against the file's own directory). `context` empty = the file's current-context.
KubeConfigResult parse_kubeconfig(std::string_view text, const std::filesystem::path& base_dir,
                                  std::string_view context = {});
KubeConfigResult load_kubeconfig(const std::filesystem::path& file, std::string_view context = {});

struct InClusterEnv {
  std::string service_host;  // KUBERNETES_SERVICE_HOST
  std::string service_port;  // KUBERNETES_SERVICE_PORT
  std::filesystem::path service_account_dir{kServiceAccountDir};
};

// The pod's view: API server from the environment, token/ca.crt/namespace from the
// service-account directory.
KubeConfigResult load_in_cluster(const InClusterEnv& env);

// What `--kubernetes` uses: `kubeconfig` when given; else in-cluster when
// KUBERNETES_SERVICE_HOST is set; else $KUBECONFIG (its first entry), else ~/.kube/config.
KubeConfigResult resolve_kube_config(const std::string& kubeconfig,
                                     const std::filesystem::path& service_account_dir);

}  // namespace wsgate::source
