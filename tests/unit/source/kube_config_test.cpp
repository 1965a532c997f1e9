// kubeconfig and in-cluster configuration loading: the common kubeconfig shapes, relative
// paths, contexts, the service-account files, and the errors a user sees for broken ones.

#include "source/kube_config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

#include "source/kube_client.hpp"
#include "watcher_test_support.hpp"

namespace wsgate::source {
namespace {

using test_support::TempDir;
using test_support::write_file;

// Not a real certificate: the loader only carries these bytes, it does not parse them.
const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
const std::string kCertPem = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
const std::string kKeyPem = "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n";

std::string base64(const std::string& text) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(text[i]) << 16) |
                       (static_cast<unsigned char>(text[i + 1]) << 8) |
                       static_cast<unsigned char>(text[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(n >> shift) & 63]);
  }
  if (i < text.size()) {
    unsigned n = static_cast<unsigned char>(text[i]) << 16;
    if (i + 1 < text.size()) n |= static_cast<unsigned char>(text[i + 1]) << 8;
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < text.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// A kubeconfig with one cluster/user/context; `cluster` and `user` are the inner mappings.
std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& context_extra = "") {
  return "apiVersion: v1\nkind: Config\n"
         "clusters:\n- name: prod\n  cluster:\n" +
         cluster + "users:\n- name: admin\n  user:\n" + user +
         "contexts:\n- name: prod-admin\n  context:\n    cluster: prod\n    user: admin\n" +
         context_extra + "current-context: prod-admin\n";
}

KubeConfig parse_ok(const std::string& text, const std::filesystem::path& base = {}) {
  auto result = parse_kubeconfig(text, base);
  if (auto* error = std::get_if<std::string>(&result)) ADD_FAILURE() << *error;
  return std::holds_alternative<KubeConfig>(result) ? std::get<KubeConfig>(result) : KubeConfig{};
}

std::string parse_error(const std::string& text, const std::filesystem::path& base = {}) {
  auto result = parse_kubeconfig(text, base);
  if (std::holds_alternative<KubeConfig>(result)) {
    ADD_FAILURE() << "expected an error";
    return {};
  }
  return std::get<std::string>(result);
}

TEST(ServerUrl, SplitsSchemeHostPortAndPath) {
  KubeConfig config;
  ASSERT_EQ(parse_server_url("https://api.example.com:6443", config), std::nullopt);
  EXPECT_EQ(config.scheme, "https");
  EXPECT_EQ(config.host, "api.example.com");
  EXPECT_EQ(config.port, "6443");
  EXPECT_EQ(config.base_path, "");

  ASSERT_EQ(parse_server_url("https://10.96.0.1", config), std::nullopt);
  EXPECT_EQ(config.port, "443");
  ASSERT_EQ(parse_server_url("http://127.0.0.1:8001/", config), std::nullopt);
  EXPECT_EQ(config.scheme, "http");
  EXPECT_EQ(config.port, "8001");
  EXPECT_EQ(config.base_path, "");
  ASSERT_EQ(parse_server_url("https://[fd00::1]:6443", config), std::nullopt);
  EXPECT_EQ(config.host, "fd00::1");
  EXPECT_EQ(config.server_url(), "https://[fd00::1]:6443");
  // Rancher-style proxies put the cluster under a path prefix.
  ASSERT_EQ(parse_server_url("https://rancher.example/k8s/clusters/c-1/", config), std::nullopt);
  EXPECT_EQ(config.base_path, "/k8s/clusters/c-1");
}

TEST(ServerUrl, RefusesWhatItCannotUse) {
  for (const char* url :
       {"", "ftp://host", "host:6443", "https://", "https://:6443", "https://host:0",
        "https://host:65536", "https://host:port", "https://host:", "https://user:pw@host",
        "https://host/?a=b", "https://[::1"}) {
    KubeConfig config;
    EXPECT_NE(parse_server_url(url, config), std::nullopt) << url;
  }
}

TEST(Kubeconfig, CaFileAndTokenResolveAgainstTheFilesDirectory) {
  TempDir dir;
  write_file(dir.path() / "ca.crt", kCaPem);
  const auto config =
      parse_ok(kubeconfig("    server: https://127.0.0.1:6443\n    certificate-authority: ca.crt\n",
                          "    token: abc.def\n"),
               dir.path());
  EXPECT_EQ(config.host, "127.0.0.1");
  EXPECT_EQ(config.ca_pem, kCaPem);
  EXPECT_EQ(config.token, "abc.def");
  EXPECT_EQ(config.current_token(), "abc.def");
  EXPECT_FALSE(config.insecure_skip_tls_verify);
}

TEST(Kubeconfig, InlineDataIsBase64Decoded) {
  const auto config =
      parse_ok(kubeconfig("    server: https://kube.example:443\n    certificate-authority-data: " +
                              base64(kCaPem) + "\n",
                          "    client-certificate-data: " + base64(kCertPem) +
                              "\n    client-key-data: " + base64(kKeyPem) + "\n"));
  EXPECT_EQ(config.ca_pem, kCaPem);
  EXPECT_EQ(config.client_cert_pem, kCertPem);
  EXPECT_EQ(config.client_key_pem, kKeyPem);
  EXPECT_EQ(config.token, "");
}

TEST(Kubeconfig, ClientCertificateFilesAndAbsolutePaths) {
  TempDir dir;
  write_file(dir.path() / "client.crt", kCertPem);
  write_file(dir.path() / "client.key", kKeyPem);
  const auto config =
      parse_ok(kubeconfig("    server: https://kube.example\n    insecure-skip-tls-verify: true\n",
                          "    client-certificate: client.crt\n    client-key: " +
                              (dir.path() / "client.key").string() + "\n"),
               dir.path());
  EXPECT_TRUE(config.insecure_skip_tls_verify);
  EXPECT_EQ(config.client_cert_pem, kCertPem);
  EXPECT_EQ(config.client_key_pem, kKeyPem);
}

TEST(Kubeconfig, TokenFileIsReadAgainForEveryRequest) {
  TempDir dir;
  write_file(dir.path() / "token", "first\n");
  const auto config = parse_ok(
      kubeconfig("    server: https://kube.example\n", "    tokenFile: token\n"), dir.path());
  EXPECT_EQ(config.current_token(), "first");
  write_file(dir.path() / "token", "second");
  EXPECT_EQ(config.current_token(), "second");
  std::filesystem::remove(dir.path() / "token");
  std::string error;
  EXPECT_EQ(config.current_token(&error), "");
  EXPECT_NE(error.find("token"), std::string::npos) << error;
}

TEST(Kubeconfig, ContextChoosesClusterUserAndNamespace) {
  const std::string text =
      "clusters:\n"
      "- name: a\n  cluster: {server: 'https://a.example:6443'}\n"
      "- name: b\n  cluster: {server: 'https://b.example:7443'}\n"
      "users:\n- name: ua\n  user: {token: ta}\n- name: ub\n  user: {token: tb}\n"
      "contexts:\n"
      "- name: ca\n  context: {cluster: a, user: ua, namespace: team-a}\n"
      "- name: cb\n  context: {cluster: b, user: ub}\n"
      "current-context: cb\n";
  const auto current = parse_ok(text);
  EXPECT_EQ(current.host, "b.example");
  EXPECT_EQ(current.token, "tb");
  EXPECT_EQ(current.namespace_, "");
  auto chosen = parse_kubeconfig(text, {}, "ca");
  ASSERT_TRUE(std::holds_alternative<KubeConfig>(chosen));
  EXPECT_EQ(std::get<KubeConfig>(chosen).host, "a.example");
  EXPECT_EQ(std::get<KubeConfig>(chosen).port, "6443");
  EXPECT_EQ(std::get<KubeConfig>(chosen).token, "ta");
  EXPECT_EQ(std::get<KubeConfig>(chosen).namespace_, "team-a");
  auto missing = parse_kubeconfig(text, {}, "nope");
  ASSERT_TRUE(std::holds_alternative<std::string>(missing));
  EXPECT_NE(std::get<std::string>(missing).find("context \"nope\" not found"), std::string::npos);
}

TEST(Kubeconfig, OneContextWithoutCurrentContextIsUsed) {
  const auto config = parse_ok(
      "clusters: [{name: c, cluster: {server: 'https://c.example'}}]\n"
      "contexts: [{name: only, context: {cluster: c}}]\n");
  EXPECT_EQ(config.host, "c.example");
  EXPECT_EQ(config.token, "");  // no user: anonymous
}

TEST(Kubeconfig, BrokenShapesGiveErrorsNamingTheProblem) {
  TempDir dir;
  const std::string server = "    server: https://kube.example\n";
  EXPECT_NE(parse_error("clusters: []\n").find("no current-context"), std::string::npos);
  EXPECT_NE(parse_error("- a\n- b\n").find("expected a mapping"), std::string::npos);
  EXPECT_NE(parse_error("clusters: [\n").find("invalid YAML"), std::string::npos);
  EXPECT_NE(parse_error("clusters: {a: b}\ncontexts: [{name: x, context: {cluster: a}}]\n")
                .find("cluster \"a\" not found"),
            std::string::npos);
  EXPECT_NE(parse_error(kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"))
                .find("server: missing"),
            std::string::npos);
  EXPECT_NE(parse_error(kubeconfig(server + "    certificate-authority-data: '!!not base64'\n",
                                   "    token: t\n"))
                .find("certificate-authority-data: not valid base64"),
            std::string::npos);
  EXPECT_NE(
      parse_error(kubeconfig(server + "    certificate-authority: missing.crt\n", "    token: t\n"),
                  dir.path())
          .find("missing.crt"),
      std::string::npos);
  EXPECT_NE(parse_error(kubeconfig(server +
                                       "    insecure-skip-tls-verify: true\n"
                                       "    certificate-authority-data: " +
                                       base64(kCaPem) + "\n",
                                   "    token: t\n"))
                .find("exclusive"),
            std::string::npos);
  EXPECT_NE(
      parse_error(kubeconfig(server, "    client-certificate-data: " + base64(kCertPem) + "\n"))
          .find("must be given together"),
      std::string::npos);
  EXPECT_NE(
      parse_error(kubeconfig(server, "    exec:\n      command: aws\n")).find("not supported"),
      std::string::npos);
  EXPECT_NE(parse_error(kubeconfig(server, "    tokenFile: absent-token\n"), dir.path())
                .find("tokenFile"),
            std::string::npos);
  const std::string user_missing =
      "clusters: [{name: c, cluster: {server: 'https://c'}}]\n"
      "contexts: [{name: x, context: {cluster: c, user: ghost}}]\ncurrent-context: x\n";
  EXPECT_NE(parse_error(user_missing).find("user \"ghost\" not found"), std::string::npos);
}

TEST(Kubeconfig, LoadNamesTheFileInErrors) {
  TempDir dir;
  const auto path = dir.path() / "config";
  auto missing = load_kubeconfig(path);
  ASSERT_TRUE(std::holds_alternative<std::string>(missing));
  EXPECT_NE(std::get<std::string>(missing).find(path.string()), std::string::npos);
  write_file(path, kubeconfig("    server: https://kube.example:6443\n", "    token: t\n"));
  auto loaded = load_kubeconfig(path);
  ASSERT_TRUE(std::holds_alternative<KubeConfig>(loaded));
  EXPECT_EQ(std::get<KubeConfig>(loaded).origin, path.string());
}

class InCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_.path() / "token", "sa-token-1\n");
    write_file(dir_.path() / "ca.crt", kCaPem);
    write_file(dir_.path() / "namespace", "wsgate-system");
  }
  TempDir dir_;
};

TEST_F(InCluster, ReadsTheServiceAccountFiles) {
  auto result = load_in_cluster({"10.96.0.1", "443", dir_.path()});
  ASSERT_TRUE(std::holds_alternative<KubeConfig>(result)) << std::get<std::string>(result);
  const auto& config = std::get<KubeConfig>(result);
  EXPECT_EQ(config.server_url(), "https://10.96.0.1:443");
  EXPECT_EQ(config.ca_pem, kCaPem);
  EXPECT_EQ(config.namespace_, "wsgate-system");
  EXPECT_EQ(config.origin, "in-cluster");
  EXPECT_EQ(config.current_token(), "sa-token-1");
  // The kubelet rotates projected tokens in place.
  write_file(dir_.path() / "token", "sa-token-2");
  EXPECT_EQ(config.current_token(), "sa-token-2");
}

TEST_F(InCluster, Ipv6ServiceHost) {
  auto result = load_in_cluster({"fd00:10:96::1", "443", dir_.path()});
  ASSERT_TRUE(std::holds_alternative<KubeConfig>(result));
  EXPECT_EQ(std::get<KubeConfig>(result).host, "fd00:10:96::1");
}

TEST_F(InCluster, MissingPiecesAreErrors) {
  EXPECT_TRUE(std::holds_alternative<std::string>(load_in_cluster({"", "443", dir_.path()})));
  EXPECT_TRUE(std::holds_alternative<std::string>(load_in_cluster({"10.0.0.1", "x", dir_.path()})));
  std::filesystem::remove(dir_.path() / "ca.crt");
  auto no_ca = load_in_cluster({"10.0.0.1", "443", dir_.path()});
  ASSERT_TRUE(std::holds_alternative<std::string>(no_ca));
  EXPECT_NE(std::get<std::string>(no_ca).find("ca.crt"), std::string::npos);
  std::filesystem::remove(dir_.path() / "token");
  auto no_token = load_in_cluster({"10.0.0.1", "443", dir_.path()});
  ASSERT_TRUE(std::holds_alternative<std::string>(no_token));
  EXPECT_NE(std::get<std::string>(no_token).find("token"), std::string::npos);
}

// Sets (or unsets, for nullptr) an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    value ? ::setenv(name, value, 1) : ::unsetenv(name);
  }
  ~ScopedEnv() { old_ ? ::setenv(name_, old_->c_str(), 1) : ::unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_F(InCluster, ResolveOrder) {
  TempDir other;
  const auto path = other.path() / "kubeconfig";
  write_file(path, kubeconfig("    server: https://from-file.example\n", "    token: t\n"));
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
    // An explicit --kubeconfig wins even inside a cluster.
    auto explicit_file = resolve_kube_config(path.string(), dir_.path());
    ASSERT_TRUE(std::holds_alternative<KubeConfig>(explicit_file));
    EXPECT_EQ(std::get<KubeConfig>(explicit_file).host, "from-file.example");
    auto in_cluster = resolve_kube_config("", dir_.path());
    ASSERT_TRUE(std::holds_alternative<KubeConfig>(in_cluster));
    EXPECT_EQ(std::get<KubeConfig>(in_cluster).host, "10.96.0.1");
  }
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    ScopedEnv list("KUBECONFIG", (path.string() + ":/nonexistent/second").c_str());
    auto from_env = resolve_kube_config("", dir_.path());
    ASSERT_TRUE(std::holds_alternative<KubeConfig>(from_env));
    EXPECT_EQ(std::get<KubeConfig>(from_env).host, "from-file.example");
  }
  {
    ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
    ScopedEnv list("KUBECONFIG", nullptr);
    ScopedEnv home("HOME", other.path().c_str());
    auto nothing = resolve_kube_config("", dir_.path());
    ASSERT_TRUE(std::holds_alternative<std::string>(nothing));
    EXPECT_NE(std::get<std::string>(nothing).find("no Kubernetes configuration"),
              std::string::npos);
  }
}

TEST(KubeClientContext, RefusesUnusableTlsMaterial) {
  KubeConfig bad_ca;
  bad_ca.host = "kube.example";
  bad_ca.port = "443";
  bad_ca.ca_pem = "not a certificate";
  auto ca = KubeClientContext::create(bad_ca);
  ASSERT_TRUE(std::holds_alternative<std::string>(ca));
  EXPECT_NE(std::get<std::string>(ca).find("certificate authority"), std::string::npos);

  KubeConfig bad_cert = bad_ca;
  bad_cert.ca_pem.clear();
  bad_cert.insecure_skip_tls_verify = true;
  bad_cert.client_cert_pem = kCertPem;  // not a parsable certificate
  bad_cert.client_key_pem = kKeyPem;
  auto cert = KubeClientContext::create(bad_cert);
  ASSERT_TRUE(std::holds_alternative<std::string>(cert));
  EXPECT_NE(std::get<std::string>(cert).find("client certificate"), std::string::npos);

  KubeConfig insecure = bad_cert;
  insecure.client_cert_pem.clear();
  insecure.client_key_pem.clear();
  EXPECT_TRUE((std::holds_alternative<std::shared_ptr<KubeClientContext>>(
      KubeClientContext::create(insecure))));
}

}  // namespace
}  // namespace wsgate::source
